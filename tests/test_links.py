"""Checking a link: the worker fetches the file from a local web server (the only kind this
machine can reach), through the real site, in both queue modes; and every refusal of the
fetch guard: schemes, private and loopback addresses (by name, by number, after a
redirect), credentials, too large, not media, no video on the page, unreachable."""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

import media
import pytest
from conftest import QUEUE_MODES, detection_id_from, make_app, skip_or_fail_in_ci, wait_for_job
from linkserver import LinkServer

from webapp.extensions import db
from webapp.models import PENDING_LINK, Batch, Detection
from webapp.services import fetching
from webapp.services.fetching import LinkError, Policy, check_target, refusal

#: Every test using ``queue_mode`` runs with threads and with Celery (conftest.QUEUE_MODES).
BOTH_QUEUE_MODES = True
LOCAL = "127.0.0.1/32"


@pytest.fixture
def site(tmp_path: Path) -> LinkServer:
    """Generated media and pages on a local server."""
    folder = tmp_path / "site"
    folder.mkdir()
    media.face_clip(folder / "astronaut-pan.mp4")
    media.face_photo(folder / "astronaut.jpg")
    (folder / "notes.txt").write_text("not a video\n")
    media.text_as_mp4(folder / "fake.mp4")
    (folder / "watch.html").write_text(
        "<!doctype html><html><head><title>Rally speech</title></head><body>"
        '<video controls src="astronaut-pan.mp4"></video></body></html>'
    )
    (folder / "inside.html").write_text(
        "<!doctype html><html><head><title>Inside</title></head><body>"
        '<video controls src="http://10.0.0.9/secret.mp4"></video></body></html>'
    )
    (folder / "empty.html").write_text(
        "<!doctype html><html><head><title>Nothing</title></head><body><p>No video.</p></body></html>"
    )
    with LinkServer(folder) as server:
        yield server


def link_app(tmp_path, model_dir, detector, queue_mode, **overrides):
    settings = {
        "MODEL_DIR": str(model_dir),
        "DETECTOR_LOADER": lambda _dir: detector,
        "LINK_ALLOWED_NETWORKS": LOCAL,
        "LINK_TIMEOUT_SECONDS": 5.0,
        **QUEUE_MODES[queue_mode],
        **overrides,
    }
    return make_app(tmp_path, **settings)


@pytest.fixture
def app(tmp_path, model_dir, detector, queue_mode):
    """The site with the tests' local server allowed (LINK_ALLOWED_NETWORKS=127.0.0.1/32)."""
    app = link_app(tmp_path, model_dir, detector, queue_mode)
    yield app
    app.extensions["detection_runner"].shutdown()


def csrf(client) -> str:
    page = client.get("/upload").get_data(as_text=True)
    return page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]


def send_links(client, text: str, **fields):
    """The upload form with links and no file, as a browser posts it."""
    data = {"csrf_token": csrf(client), "urls": text, **fields}
    return client.post("/upload", data=data, content_type="multipart/form-data")


def row(app, det_id: str) -> Detection:
    with app.app_context():
        det = db.session.get(Detection, det_id)
        db.session.expunge(det)
        return det


# --------------------------------------------------------------------------- through the site


def test_a_direct_link_is_fetched_analysed_and_shown_with_its_url(app, client, site):
    url = site.url("/astronaut-pan.mp4")
    response = send_links(client, url)
    assert response.status_code == 303
    det_id = detection_id_from(response)
    det = wait_for_job(app, det_id)
    assert det.status == "done", det.error_message
    assert det.source_url == url and det.verdict == "real"
    assert det.media_type == "video" and det.filename == "astronaut-pan.mp4"
    clip = site.folder / "astronaut-pan.mp4"
    assert det.size_bytes == clip.stat().st_size and len(det.sha256) == 64
    assert det.upload_name is None  # deleted after analysis, as an upload is
    assert list(Path(app.config["UPLOAD_FOLDER"]).iterdir()) == []
    html = client.get(f"/results/{det_id}").get_data(as_text=True)
    assert f'href="{url}"' in html and "Likely real" in html and "sent as a link" in html
    assert url in client.get("/history").get_data(as_text=True)
    body = client.get(f"/api/v1/detections/{det_id}").json
    assert body["source_url"] == url and body["result"]["detection"]["source_url"] == url
    # The PDF report names the link too.
    from test_report import read_pdf, squeezed

    pdf = client.get(f"/results/{det_id}/report.pdf")
    assert pdf.status_code == 200, pdf.get_data(as_text=True)[:300]
    _, text = read_pdf(pdf.data)
    assert "Fetched from" in text and squeezed(url) in squeezed(text)
    # The server was asked for the file with no cookie or credentials.
    sent = [headers for path, headers in site.requests if path == "/astronaut-pan.mp4"]
    assert sent and not any(k.lower() in ("cookie", "authorization") for h in sent for k in h)


def test_api_takes_a_url_and_answers_queued(app, client, site):
    url = site.url("/astronaut.jpg")
    response = client.post("/api/v1/detections", data={"url": url})
    assert response.status_code == 202, response.json
    assert response.json["source_url"] == url
    if response.json["status"] == "queued":  # threads: not fetched yet (Celery here: eager)
        assert response.json["media_type"] == "link" and response.json["sha256"] is None
    det = wait_for_job(app, response.json["id"])
    assert det.status == "done" and det.media_type == "image" and det.width == 512
    assert client.get(f"/api/v1/detections/{det.id}").json["status"] == "done"
    # A JSON body works too; a file and a url together are refused.
    as_json = client.post("/api/v1/detections", json={"url": site.url("/astronaut-pan.mp4")})
    assert as_json.status_code == 202 and wait_for_job(app, as_json.json["id"]).status == "done"
    with open(site.folder / "astronaut.jpg", "rb") as fh:
        both = client.post("/api/v1/detections", data={"url": url, "file": (fh, "a.jpg")})
    assert both.status_code == 400 and both.json["error"]["code"] == "file_and_url"


def test_a_page_with_a_video_is_read_with_yt_dlp_behind_the_guard(app, client, site):
    response = send_links(client, site.url("/watch.html"))
    det = wait_for_job(app, detection_id_from(response))
    assert det.status == "done", det.error_message
    # The page's title names the file (yt-dlp numbers the videos of a page: "(1)").
    assert det.filename.startswith("Rally speech") and det.filename.endswith(".mp4")
    assert det.media_type == "video"
    assert det.source_url == site.url("/watch.html")
    paths = [path for path, _ in site.requests]
    assert "/watch.html" in paths and "/astronaut-pan.mp4" in paths


def test_the_video_address_a_page_gives_is_checked_too(app, client, site):
    det = failed_fetch(app, client, site.url("/inside.html"))
    assert det.error_code == "refused_address" and "10.0.0.9" in det.error_message


def test_a_page_behind_a_cookie_setting_redirect_gets_no_cookie_back(app, client, site):
    response = client.post("/api/v1/detections", data={"url": site.url("/redirect?to=/watch.html")})
    det = wait_for_job(app, response.json["id"])
    assert det.status == "done", det.error_message
    after = [h for path, h in site.requests if path in ("/watch.html", "/astronaut-pan.mp4")]
    assert len(after) >= 2 and not any("Cookie" in h for h in after)


def test_several_links_make_a_batch_with_refusals_listed(app, client, site):
    text = "\n".join([site.url("/astronaut.jpg"), "gopher://127.0.0.1/1", site.url("/astronaut-pan.mp4")])
    response = send_links(client, text, name="From the thread")
    assert response.status_code == 303 and "/batches/" in response.headers["Location"]
    with app.app_context():
        batch = db.session.scalars(db.select(Batch)).one()
        items = [(i.filename, i.error_code, i.detection_id) for i in batch.items]
    assert [code for _, code, _ in items] == [None, "bad_scheme", None]
    for _, _, det_id in (items[0], items[2]):
        assert wait_for_job(app, det_id).status == "done"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "gopher://127.0.0.1/1" in page and "Only http:// and https:// links" in page


def test_api_batch_takes_urls(app, client, site):
    response = client.post(
        "/api/v1/batches", data={"url": [site.url("/astronaut.jpg"), site.url("/notes.txt")]}
    )
    assert response.status_code == 202, response.json
    ids = [item["detection_id"] for item in response.json["items"]]
    assert wait_for_job(app, ids[0]).status == "done"
    failed = wait_for_job(app, ids[1])
    assert failed.status == "failed" and failed.error_code == "not_media"


def test_a_link_judged_by_every_model_side_by_side(tmp_path, queue_mode, site):
    """``models=all``: one row per model, each fetching the link; the rows of one link stay
    together before the file is in (never mixed with another link's) and share its SHA-256
    after; a batch of two links keeps each link's models apart."""
    from test_compare import NEW, OLD, two_model_app

    app = two_model_app(tmp_path, LINK_ALLOWED_NETWORKS=LOCAL, **QUEUE_MODES[queue_mode])
    try:
        client = app.test_client()
        answer = client.post(
            "/api/v1/detections", data={"url": site.url("/astronaut.jpg"), "models": "all"}
        ).json
        assert [a["model_version"] for a in answer["analyses"]] == [NEW, OLD]
        done = [wait_for_job(app, a["id"]) for a in answer["analyses"]]
        assert [d.status for d in done] == ["done", "done"]
        assert done[0].sha256 == done[1].sha256 and len(done[0].sha256) == 64
        assert [d.verdict for d in done] == ["fake", "inconclusive"]
        compared = client.get(f"/api/v1/detections/{done[0].id}/analyses").json
        assert sorted(i["model_version"] for i in compared["items"]) == sorted([NEW, OLD])

        slow = [site.url("/slow/astronaut.jpg"), site.url("/slow/astronaut-pan.mp4")]
        batch = client.post("/api/v1/batches", data={"url": slow, "models": "all"}).json
        for item in batch["items"]:  # (with threads: still downloading) each link's own rows
            ids = [a["detection_id"] for a in item["analyses"]]
            assert item["sha256"] is None or len(item["sha256"]) == 64  # no placeholder shown
            assert len(ids) == 2 and {row(app, i).source_url for i in ids} == {item["filename"]}
        for item in batch["items"]:
            for analysis in item["analyses"]:
                assert wait_for_job(app, analysis["detection_id"]).status == "done"
        after = client.get(f"/api/v1/batches/{batch['id']}").json
        for item in after["items"]:
            kinds = {a["detection_id"]: row(app, a["detection_id"]) for a in item["analyses"]}
            assert [a["model_version"] for a in item["analyses"]] == [NEW, OLD]
            assert {d.source_url for d in kinds.values()} == {item["filename"]}
            assert len({d.sha256 for d in kinds.values()}) == 1
        assert after["totals"]["analyses"]["done"] == 4
    finally:
        app.extensions["detection_runner"].shutdown()


def test_a_fetched_link_analysed_again_keeps_its_link(tmp_path, queue_mode, site):
    """"Analyse again with …" on a link's result: a copy of the fetched file (made by
    detections.create_for_stored_file, as for an upload) judged by the other model, and the
    new row still names the link it came from."""
    from test_compare import NEW, OLD, analyse_again, two_model_app

    app = two_model_app(
        tmp_path, KEEP_UPLOADS=True, LINK_ALLOWED_NETWORKS=LOCAL, **QUEUE_MODES[queue_mode]
    )
    try:
        client = app.test_client()
        url = site.url("/astronaut.jpg")
        first = wait_for_job(app, detection_id_from(send_links(client, url)))
        assert (first.status, first.model_version, first.source_url) == ("done", NEW, url)
        assert analyse_again(client, first.id, OLD).status_code == 303
        with app.app_context():
            again = db.session.scalars(
                db.select(Detection).where(Detection.model_version == OLD)
            ).one()
        done = wait_for_job(app, again.id)
        assert done.status == "done" and done.verdict == "inconclusive"
        assert (done.source_url, done.sha256, done.filename) == (url, first.sha256, first.filename)
        assert done.upload_name != first.upload_name  # its own copy of the fetched file
    finally:
        app.extensions["detection_runner"].shutdown()


def test_a_link_still_downloading_is_not_analysed_again(app):
    """Another model for a link whose file is not in yet: 409 with what to do, no row."""
    from webapp.services import compare
    from webapp.services.detections import UploadRejected

    with app.app_context():
        det = Detection(
            id="waiting", filename="clip.mp4", source_url="https://example.org/clip.mp4",
            sha256=PENDING_LINK + "waiting", size_bytes=0, media_type="link", owner_id="someone",
        )
        assert det.awaiting_download
        with pytest.raises(UploadRejected) as refused:
            compare.analyse_again(det, None)
        assert db.session.scalars(db.select(Detection)).all() == []
    assert (refused.value.code, refused.value.status) == ("link_not_fetched", 409)
    assert "still being downloaded" in str(refused.value)


def test_a_link_deleted_while_it_downloads_leaves_nothing(tmp_path, model_dir, detector, site):
    app = link_app(tmp_path, model_dir, detector, "threads")  # (eager Celery cannot overlap)
    try:
        client = app.test_client()
        det_id = client.post(
            "/api/v1/detections", data={"url": site.url("/slow/astronaut-pan.mp4")}
        ).json["id"]
        deadline = time.monotonic() + 30
        while client.get(f"/api/v1/detections/{det_id}").json["stage"] != "download":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.delete(f"/api/v1/detections/{det_id}").status_code == 204
        app.extensions["detection_runner"].wait(det_id, timeout=60)
        for key in ("UPLOAD_FOLDER", "RESULTS_FOLDER"):
            assert [p for p in Path(app.config[key]).rglob("*") if p.is_file()] == []
        with app.app_context():
            assert db.session.get(Detection, det_id) is None
    finally:
        app.extensions["detection_runner"].shutdown()


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "url, code",
    [
        ("file:///etc/passwd", "bad_scheme"),
        ("gopher://127.0.0.1:70/1", "bad_scheme"),
        ("ftp://example.org/clip.mp4", "bad_scheme"),
        ("javascript:alert(1)", "bad_scheme"),
        ("http://user:secret@example.org/clip.mp4", "bad_url"),
        ("http://10.0.0.7/clip.mp4", "refused_address"),
        ("http://[::ffff:169.254.169.254]/latest/meta-data", "refused_address"),
        ("", "bad_url"),
    ],
)
def test_refused_at_the_door_with_a_reason_and_nothing_stored(app, client, url, code):
    response = client.post("/api/v1/detections", data={"url": url})
    assert response.status_code == 400 and response.json["error"]["code"] == code
    form = send_links(client, url or " ")
    assert form.status_code == 400
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Detection)) == 0


def failed_fetch(app, client, url: str) -> Detection:
    response = client.post("/api/v1/detections", data={"url": url})
    assert response.status_code == 202, response.json
    det = wait_for_job(app, response.json["id"])
    assert det.status == "failed"
    assert list(Path(app.config["UPLOAD_FOLDER"]).glob("*")) == []  # nothing half-downloaded
    return det


def test_a_name_resolving_to_loopback_is_refused_without_the_allowlist(
    tmp_path, model_dir, detector, queue_mode, site
):
    app = link_app(tmp_path, model_dir, detector, queue_mode, LINK_ALLOWED_NETWORKS="")
    try:
        det = failed_fetch(app, app.test_client(), site.url("/astronaut.jpg", host="localhost"))
        assert det.error_code == "refused_address"
        assert "loopback" in det.error_message and "localhost" in det.error_message
        assert site.requests == []  # never connected
    finally:
        app.extensions["detection_runner"].shutdown()


def test_a_name_resolving_to_a_private_address_is_refused(app, client, site, monkeypatch):
    monkeypatch.setattr(fetching, "resolve_host", lambda host, port: ["10.20.30.40"])
    det = failed_fetch(app, client, "http://intranet.example/clip.mp4")
    assert det.error_code == "refused_address" and "private network" in det.error_message


def test_one_private_address_among_public_ones_refuses_the_name(monkeypatch):
    monkeypatch.setattr(fetching, "resolve_host", lambda host, port: ["93.184.216.34", "10.0.0.1"])
    with pytest.raises(LinkError) as err:
        check_target("https://mixed.example/a.mp4", Policy())
    assert err.value.code == "refused_address" and "10.0.0.1" in str(err.value)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_a_private_address_is_refused(app, client, site, monkeypatch, status):
    real = fetching.resolve_host
    monkeypatch.setattr(
        fetching,
        "resolve_host",
        lambda host, port: ["169.254.169.254"] if host == "metadata.example" else real(host, port),
    )
    det = failed_fetch(
        app, client, site.url(f"/redirect?status={status}&to=http://metadata.example/latest/")
    )
    assert det.error_code == "refused_address" and "link-local" in det.error_message


def test_a_redirect_to_an_allowed_file_is_followed_and_its_cookie_not_sent_back(app, client, site):
    response = client.post(
        "/api/v1/detections", data={"url": site.url("/redirect?to=/astronaut.jpg")}
    )
    det = wait_for_job(app, response.json["id"])
    assert det.status == "done" and det.filename == "astronaut.jpg"
    second = [h for path, h in site.requests if path == "/astronaut.jpg"]
    assert second and "Cookie" not in second[0]


def test_a_redirect_to_file_scheme_is_refused(app, client, site):
    det = failed_fetch(app, client, site.url("/redirect?to=file:///etc/passwd"))
    assert det.error_code == "bad_scheme"


def test_a_redirect_loop_stops(app, client, site):
    det = failed_fetch(app, client, site.url("/loop"))
    assert det.error_code == "too_many_redirects"


def test_the_connection_goes_to_the_checked_address_not_a_second_lookup(
    app, client, site, monkeypatch
):
    """The name resolves (for the check) to the allowed 127.0.0.1 once; the system resolver
    does not know it at all, so the download works only if the connection uses that
    checked address instead of looking the name up again."""
    calls = []

    def once(host, port):
        calls.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(fetching, "resolve_host", once)
    response = client.post(
        "/api/v1/detections", data={"url": site.url("/astronaut.jpg", host="pinned.invalid")}
    )
    det = wait_for_job(app, response.json["id"])
    assert det.status == "done", det.error_message
    assert calls == ["pinned.invalid"]
    assert site.requests[-1][1]["Host"] == f"pinned.invalid:{site.port}"


@pytest.fixture
def tls_site(tmp_path, site, monkeypatch):
    """The same files over HTTPS, as ``media.test`` (resolving to 127.0.0.1), with a
    certificate from a throw-away authority."""
    import shutil

    from linkserver import make_certificates

    if not shutil.which("openssl"):
        skip_or_fail_in_ci("the openssl command is not installed")
    certs = tmp_path / "certs"
    certs.mkdir()
    ca, cert, key = make_certificates(certs, "media.test")
    monkeypatch.setattr(fetching, "resolve_host", lambda host, port: ["127.0.0.1"])
    with LinkServer(site.folder, tls=(cert, key)) as server:
        server.ca = ca
        yield server


def test_https_is_pinned_to_the_checked_address_and_checks_the_name(
    app, client, tls_site, monkeypatch
):
    """Connected to 127.0.0.1 (what the check saw), the TLS handshake still names
    media.test and the certificate must be valid for it."""
    url = tls_site.url("/astronaut.jpg", host="media.test")
    untrusted = failed_fetch(app, client, url)  # the authority is not trusted yet
    assert untrusted.error_code == "unreachable" and "certificate" in untrusted.error_message
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_site.ca))
    response = client.post("/api/v1/detections", data={"url": url})
    det = wait_for_job(app, response.json["id"])
    assert det.status == "done", det.error_message
    wrong_name = failed_fetch(app, client, tls_site.url("/astronaut.jpg", host="other.test"))
    assert wrong_name.error_code == "unreachable" and "certificate" in wrong_name.error_message


@pytest.mark.parametrize("path", ["/astronaut-pan.mp4", "/unsized/astronaut-pan.mp4"])
def test_too_large_is_refused_with_or_without_a_length(
    tmp_path, model_dir, detector, queue_mode, site, path
):
    app = link_app(tmp_path, model_dir, detector, queue_mode, MAX_CONTENT_LENGTH=20_000)
    try:
        assert (site.folder / "astronaut-pan.mp4").stat().st_size > 20_000
        det = failed_fetch(app, app.test_client(), site.url(path))
        assert det.error_code == "too_large" and "limit" in det.error_message
    finally:
        app.extensions["detection_runner"].shutdown()


def test_too_long_is_refused(tmp_path, model_dir, detector, queue_mode, site):
    app = link_app(tmp_path, model_dir, detector, queue_mode, MAX_DURATION_SECONDS=1.0)
    try:
        det = failed_fetch(app, app.test_client(), site.url("/astronaut-pan.mp4"))
        assert det.error_code == "too_long" and "1 s" in det.error_message
    finally:
        app.extensions["detection_runner"].shutdown()


@pytest.mark.parametrize("path", ["/notes.txt", "/fake.mp4"])
def test_not_media_is_refused(app, client, site, path):
    det = failed_fetch(app, client, site.url(path))
    assert det.error_code == "not_media" and "not lead to a photo or a video" in det.error_message


def test_a_page_without_a_video_says_so(app, client, site):
    det = failed_fetch(app, client, site.url("/empty.html"))
    assert det.error_code == "no_video" and "No video was found" in det.error_message


def test_unreachable_and_missing_are_told_apart(app, client, site):
    det = failed_fetch(app, client, site.url("/nothing-here.mp4"))
    assert det.error_code == "unreachable" and "404" in det.error_message
    closed = LinkServer(site.folder)  # bound, never started: its port refuses connections
    closed.httpd.server_close()
    det = failed_fetch(app, client, closed.url("/astronaut.jpg"))
    assert det.error_code == "unreachable" and "could not be reached" in det.error_message


@pytest.mark.parametrize("path", ["/drip", "/stall"])
def test_a_slow_server_is_cut_at_the_deadline(tmp_path, model_dir, detector, queue_mode, site, path):
    """A body sent a little at a time, or headers that never end (each piece well within
    the per-read timeout): the whole fetch still stops at LINK_DOWNLOAD_SECONDS."""
    app = link_app(tmp_path, model_dir, detector, queue_mode, LINK_DOWNLOAD_SECONDS=1.0)
    try:
        started = time.monotonic()
        det = failed_fetch(app, app.test_client(), site.url(path))
        assert det.error_code == "unreachable" and "longer than 1 s" in det.error_message
        assert time.monotonic() - started < 4.0  # not the 5-s read timeout, not 20 s of drip
    finally:
        app.extensions["detection_runner"].shutdown()


def test_links_can_be_switched_off(tmp_path, model_dir, detector, queue_mode, site):
    app = link_app(tmp_path, model_dir, detector, queue_mode, LINKS_ENABLED=False)
    try:
        client = app.test_client()
        response = client.post("/api/v1/detections", data={"url": site.url("/astronaut.jpg")})
        assert response.status_code == 403 and response.json["error"]["code"] == "links_disabled"
        assert 'name="urls"' not in client.get("/upload").get_data(as_text=True)
    finally:
        app.extensions["detection_runner"].shutdown()


# --------------------------------------------------------------------------- the guard itself


@pytest.mark.parametrize(
    "address, why",
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fd00:ec2::254", "reserved or metadata"),
        ("100.100.100.200", "reserved or metadata"),
        ("100.64.0.1", "reserved"),
        ("0.0.0.0", "reserved"),
        ("::", "reserved"),
        ("224.0.0.251", "reserved or metadata"),
        ("ff02::1", "reserved or metadata"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "address"),  # documentation (private or reserved, by Python version)
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:a00:1::", "private"),  # 6to4 of 10.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private"),  # Teredo of 10.0.0.1
    ],
)
def test_refused_ranges(address, why):
    assert why in (refusal(ipaddress.ip_address(address)) or "allowed")


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert refusal(ipaddress.ip_address(address)) is None


def test_the_allowlist_lets_named_networks_through_and_only_those():
    allowed = fetching.parse_networks("127.0.0.1/32, 10.9.0.0/16")
    assert refusal(ipaddress.ip_address("127.0.0.1"), allowed) is None
    assert refusal(ipaddress.ip_address("::ffff:10.9.1.1"), allowed) is None
    assert refusal(ipaddress.ip_address("127.0.0.2"), allowed) is not None
    assert refusal(ipaddress.ip_address("10.8.0.1"), allowed) is not None
