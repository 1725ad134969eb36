"""Security: storage never reachable by URL, CSRF on every form, limits enforced before the
work (body size before reading it, pixels before decoding), headers on every response, no
debugger, and a per-client upload rate limit answering 429 in HTML and JSON."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from conftest import detection_id_from, make_app, upload, wait_for_job
from corpus import generators as g
from PIL import ImageFile

from webapp import create_app

SECRET = "TOP-SECRET-KEY-0123456789"


@pytest.fixture
def keep_app(tmp_path, model_dir, detector):
    """The app keeping uploads (so there is a stored original to try to reach), with a
    secret_key file in its instance folder."""
    app = make_app(
        tmp_path, MODEL_DIR=str(model_dir), DETECTOR_LOADER=lambda _d: detector, KEEP_UPLOADS=True
    )
    (Path(app.instance_path) / "secret_key").write_text(SECRET)
    yield app
    app.extensions["detection_runner"].shutdown()


def test_uploads_stored_under_random_names_and_never_served(keep_app, files):
    client = keep_app.test_client()
    det = wait_for_job(keep_app, detection_id_from(upload(client, files["photo_jpg"])))
    assert re.fullmatch(r"[0-9a-f]{32}\.jpg", det.upload_name)
    assert (Path(keep_app.config["UPLOAD_FOLDER"]) / det.upload_name).is_file()
    for url in (
        f"/uploads/{det.upload_name}",
        f"/instance/uploads/{det.upload_name}",
        f"/static/../instance/uploads/{det.upload_name}",
        f"/static/%2e%2e/instance/uploads/{det.upload_name}",
        f"/results/{det.id}/files/../../uploads/{det.upload_name}",
        f"/results/{det.id}/files/%2e%2e/%2e%2e/uploads/{det.upload_name}",
    ):
        assert client.get(url).status_code == 404, url


def test_no_user_path_reaches_the_filesystem(keep_app, files):
    client = keep_app.test_client()
    det_id = detection_id_from(upload(client, files["clip"]))
    wait_for_job(keep_app, det_id)
    assert client.get(f"/results/{det_id}/files/chips/000.jpg").status_code == 200
    assert client.get(f"/results/{det_id}/files/thumb.jpg").status_code == 200
    for url in (
        "/static/../instance/secret_key",
        "/static/%2e%2e/instance/secret_key",
        "/static/..%2finstance%2fsecret_key",
        "/static//etc/passwd",
        "/results/../instance/secret_key",
        f"/results/{det_id}/chips/../../secret_key",
        f"/results/{det_id}/files/../../secret_key",
        f"/results/{det_id}/files/%2e%2e/%2e%2e/secret_key",
        f"/results/{det_id}/files/..%2f..%2fsecret_key",
        f"/results/{det_id}/files/chips/../../../secret_key",
        f"/results/{det_id}/files//etc/passwd",
        f"/results/{det_id}/files/result.json",  # only through the download route
        f"/results/{det_id}/files/result.json.tmp",
        f"/results/{det_id}/files/chips",
        f"/results/{'0' * 32}/files/thumb.jpg",  # an id that does not exist
        "/results/..%2f..%2fsecret_key/files/thumb.jpg",
        "/api/v1/detections/..%2f..%2fsecret_key",
    ):
        response = client.get(url, follow_redirects=True)  # "//" is redirected to "/" first
        assert response.status_code == 404, url
        assert SECRET not in response.get_data(as_text=True)


def test_every_form_needs_a_csrf_token(app, client, files):
    """Every POST route outside the (CSRF-exempt, cookie-less) API refuses a missing token."""
    det_id = detection_id_from(upload(client, files["photo_jpg"]))
    wait_for_job(app, det_id)
    posts = [
        rule
        for rule in app.url_map.iter_rules()
        if "POST" in rule.methods and not rule.rule.startswith("/api/")
    ]
    assert {r.rule for r in posts} >= {"/upload", "/results/<detection_id>/delete"}
    for rule in posts:
        url = rule.rule.replace("<detection_id>", det_id)
        response = client.post(url, data={"x": "1"})
        assert response.status_code == 400, url
        assert "expired or was sent from another site" in response.get_data(as_text=True)
    assert client.get(f"/results/{det_id}").status_code == 200  # nothing was deleted
    html = client.get("/").get_data(as_text=True) + client.get("/upload").get_data(as_text=True)
    html += client.get(f"/results/{det_id}").get_data(as_text=True)
    html += client.get("/history").get_data(as_text=True)
    forms = re.findall(r"<form[^>]*method=\"post\"[^>]*>(.*?)</form>", html, re.S | re.I)
    assert forms and all('name="csrf_token"' in form for form in forms)


class CountingStream(io.RawIOBase):
    """A request body of ``size`` bytes, made up as it is read; counts what the server reads.
    (Seekable only so that the test client can measure it; nothing is allocated.)"""

    def __init__(self, size: int):
        self.size, self.pos, self.read_bytes = size, 0, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: 0, 1: self.pos, 2: self.size}[whence] + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buf) -> int:
        n = max(0, min(len(buf), self.size - self.pos))
        buf[:n] = b"a" * n
        self.pos += n
        self.read_bytes += n
        return n


@pytest.mark.parametrize("url", ["/upload", "/api/v1/detections", "/api/v1/batches"])
def test_body_over_the_size_limit_is_refused_before_it_is_read(app, client, url):
    """One file may be MAX_CONTENT_LENGTH; a request that may carry several (the form, the
    batch API) may be as large as a batch (BATCH_MAX_BYTES, plus the multipart framing)."""
    from webapp.services.batches import MULTIPART_ALLOWANCE

    limit = app.config["MAX_CONTENT_LENGTH"]
    if url != "/api/v1/detections":
        limit = max(limit, app.config["BATCH_MAX_BYTES"]) + MULTIPART_ALLOWANCE
    declared = limit + 1
    body = CountingStream(declared)
    response = client.post(
        url,
        input_stream=body,
        content_type="multipart/form-data; boundary=xyz",
        headers={"Content-Length": str(declared)},
    )
    assert response.status_code == 413
    assert body.read_bytes == 0, f"{body.read_bytes} bytes read before refusing"
    if url == "/api/v1/batches":
        assert response.json["error"]["code"] == "batch_too_large"
        assert "one batch can hold" in response.json["error"]["message"]
    elif url.startswith("/api/"):
        assert response.json["error"]["code"] == "too_large"
    else:
        html = response.get_data(as_text=True)
        assert "That file is too large" in html and "for several files sent together" in html


def test_pixel_limit_enforced_before_decoding(app, client, tmp_path, monkeypatch):
    """A real 20000x20000 PNG (50 KB on disk, 400 megapixels) is refused from its header:
    no decoder ever loads it (the thumbnail, the probe, nothing)."""
    loaded: list[tuple[int, int]] = []
    real_load = ImageFile.ImageFile.load

    def load(self):
        loaded.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    bomb = g.bomb_png(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 200_000
    for big in (bomb, g.png_claiming(tmp_path / "claims.png", 9000, 9000)):
        response = upload(client, big)
        assert response.status_code == 413
        assert "pixels" in response.get_data(as_text=True)
    assert all(w * h <= app.config["MAX_PIXELS"] for w, h in loaded), loaded
    assert client.get("/api/v1/detections").json["total"] == 0


HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options")


def check_headers(response, what: str) -> None:
    for name in HEADERS:
        assert name in response.headers, f"{name} missing on {what}"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_security_headers_on_every_kind_of_response(tmp_path, model_dir, detector, files):
    app = make_app(
        tmp_path,
        MODEL_DIR=str(model_dir),
        DETECTOR_LOADER=lambda _d: detector,
        UPLOAD_RATE_LIMIT="2 per minute",
        MAX_CONTENT_LENGTH=2_000_000,
    )

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    try:
        client = app.test_client()
        check_headers(client.get("/"), "a page")
        check_headers(client.get("/static/css/site.css"), "a static file")
        check_headers(client.get("/nope"), "a 404")
        check_headers(client.get("/api/v1/detections/nope"), "a JSON 404")
        check_headers(client.put("/upload"), "a 405")
        check_headers(client.post("/upload", data={}), "a CSRF 400")
        boom = client.get("/boom")
        assert boom.status_code == 500
        check_headers(boom, "a 500")
        det_id = detection_id_from(upload(client, files["photo_jpg"]))
        big = client.post(
            "/api/v1/detections",
            data={"file": (io.BytesIO(b"\0" * 2_100_000), "big.mp4")},
            content_type="multipart/form-data",
        )
        assert big.status_code == 413
        check_headers(big, "a 413")
        limited = upload(client, files["photo_png"])
        assert limited.status_code == 429
        check_headers(limited, "a 429")
        wait_for_job(app, det_id)
        check_headers(client.get(f"/results/{det_id}/files/thumb.jpg"), "an artefact")
        check_headers(client.get(f"/results/{det_id}/frames.csv"), "a download")
    finally:
        app.extensions["detection_runner"].shutdown()


def test_session_cookie_is_httponly_and_samesite(client):
    response = client.get("/upload")  # the CSRF token lives in the session
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_no_debugger_and_no_traceback_in_production_config(tmp_path, monkeypatch):
    """The app as gunicorn builds it (no test config): debug off, no console, errors bare."""
    for name in ("FLASK_DEBUG", "FLASK_TESTING"):
        monkeypatch.delenv(name, raising=False)
    app = create_app(instance_path=tmp_path / "instance")

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals at /srv/app/secret.py line 3")

    try:
        assert app.debug is False and app.testing is False
        client = app.test_client()
        assert client.get("/console").status_code == 404
        assert client.get("/console?__debugger__=yes&cmd=resource&f=style.css").status_code == 404
        page = client.get("/boom")
        html = page.get_data(as_text=True)
        assert page.status_code == 500
        assert "Traceback" not in html and "secret internals" not in html
        assert "Something broke on our side" in html
        api = client.get("/api/v1/detections/x", headers={"Accept": "application/json"})
        assert api.status_code == 401 and "Traceback" not in api.get_data(as_text=True)
        assert api.json["error"]["code"] == "auth_required"  # private by default
    finally:
        app.extensions["detection_runner"].shutdown()


def test_upload_rate_limit_is_per_client(tmp_path, model_dir, detector, files):
    app = make_app(
        tmp_path,
        MODEL_DIR=str(model_dir),
        DETECTOR_LOADER=lambda _d: detector,
        UPLOAD_RATE_LIMIT="2 per minute",
    )
    try:
        alice = app.test_client()
        alice.environ_base["REMOTE_ADDR"] = "203.0.113.1"
        bob = app.test_client()
        bob.environ_base["REMOTE_ADDR"] = "203.0.113.2"
        assert upload(alice, files["photo_jpg"]).status_code == 303
        assert upload(alice, files["photo_png"]).status_code == 303
        page = upload(alice, files["clip"])
        assert page.status_code == 429
        html = page.get_data(as_text=True)
        assert "Slow down a little" in html and "2 per minute" in html
        assert int(page.headers["Retry-After"]) > 0
        with open(files["clip"], "rb") as fh:
            api = alice.post(
                "/api/v1/detections",
                data={"file": (fh, "clip.mp4")},
                content_type="multipart/form-data",
            )
        assert api.status_code == 429 and api.json["error"]["code"] == "rate_limited"
        assert "wait a minute" in api.json["error"]["message"]
        assert alice.get("/history").status_code == 200  # only uploads are limited
        assert upload(bob, files["clip"]).status_code == 303  # another client is not
    finally:
        app.extensions["detection_runner"].shutdown()
