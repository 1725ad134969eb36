"""Batches: several files through the form and ``POST /api/v1/batches``, each its own detection;
refused files reported per file with the single-upload message while the others go through;
limits; the batch page and its live status; CSV/JSON export; owners; retention.
(The privacy walk over every route is in test_privacy.py; migrations in test_batch_migration.py.)
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import make_app, owner_of, upload, wait_for_job
from test_privacy import make_user, sign_in

from webapp.extensions import db
from webapp.models import Batch, BatchItem, Detection

#: Every test using ``app`` runs with threads and with Celery (see conftest.QUEUE_MODES).
BOTH_QUEUE_MODES = True


def parts(*files: tuple[Path | bytes, str]) -> list[tuple[io.BytesIO, str]]:
    """``file`` parts: (a path or raw bytes, the name the client sends)."""
    return [
        (io.BytesIO(src if isinstance(src, bytes) else src.read_bytes()), name)
        for src, name in files
    ]


def csrf(client) -> str:
    page = client.get("/upload").get_data(as_text=True)
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


def form_post(client, files, **fields):
    return client.post("/upload", data={"csrf_token": csrf(client), "file": files, **fields})


def api_post(client, files, **fields):
    """The API called from the browser (PUBLIC_API): its pages are its own."""
    owner_of(client)
    return client.post("/api/v1/batches", data={"file": files, **fields})


def finish(app, client, batch_id: str) -> dict:
    """Wait for every job of the batch; its status JSON (as the page polls it)."""
    body = client.get(f"/batches/{batch_id}/status").json
    for item in body["items"]:
        if item["detection_id"]:
            wait_for_job(app, item["detection_id"])
    return client.get(f"/batches/{batch_id}/status").json


def count(app, model) -> int:
    with app.app_context():
        return db.session.query(model).count()


def stored_uploads(app) -> list[str]:
    return sorted(p.name for p in Path(app.config["UPLOAD_FOLDER"]).iterdir())


def single_upload_message(app, path: Path, name: str) -> tuple[str, str]:
    """What the single-file API answers for this file: (code, message)."""
    client = app.test_client()
    with open(path, "rb") as fh:
        body = client.post("/api/v1/detections", data={"file": (fh, name)}).json
    return body["error"]["code"], body["error"]["message"]


@pytest.fixture
def bad(tmp_path, files) -> dict[str, Path]:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a picture")
    (folder / "empty.mp4").write_bytes(b"")
    return {
        "notes.txt": folder / "notes.txt",
        "empty.mp4": folder / "empty.mp4",
        "notes.mp4": files["text_mp4"],
        "truncated.png": files["truncated_png"],
    }


# --------------------------------------------------------------------------- the form


def test_form_takes_several_files_and_shows_the_limits(tmp_path, model_dir, detector):
    app = make_app(tmp_path, MODEL_DIR=str(model_dir), DETECTOR_LOADER=lambda _d: detector,
                   BATCH_MAX_FILES=7, BATCH_MAX_BYTES=300 * 1024 * 1024)
    try:
        html = app.test_client().get("/upload").get_data(as_text=True)
        assert re.search(r'<input[^>]*id="file"[^>]*multiple', html)
        assert "up to 7 files, 300 MB in all" in html and "200 MB per file" in html
        assert 'data-batch-max-files="7"' in html and 'id="file-list"' in html
    finally:
        app.extensions["detection_runner"].shutdown()


def test_form_batch_with_good_and_bad_files(app, client, files, bad, detector):
    """Good files become detections; each bad one is listed with the message a single upload
    of it gets; nothing is dropped and nothing of the bad ones is stored."""
    sent = [(files["photo_jpg"], "face.jpg"), (bad["notes.txt"], "notes.txt"),
            (files["clip"], "pan.mp4"), (bad["empty.mp4"], "empty.mp4"),
            (bad["notes.mp4"], "notes.mp4"), (bad["truncated.png"], "truncated.png")]
    response = form_post(client, parts(*sent), name="Rally clips")
    assert response.status_code == 303
    batch_id = response.headers["Location"].rsplit("/", 1)[-1]
    assert response.headers["Location"].endswith(f"/batches/{batch_id}")
    body = finish(app, client, batch_id)
    assert body["title"] == "Rally clips" and body["file_count"] == 6 and body["finished"]
    assert [i["filename"] for i in body["items"]] == [name for _, name in sent]
    assert [i["position"] for i in body["items"]] == [1, 2, 3, 4, 5, 6]
    assert [i["status"] for i in body["items"]] == [
        "done", "rejected", "done", "rejected", "rejected", "rejected"]
    for item, (path, name) in zip(body["items"], sent, strict=True):
        assert item["size_bytes"] == path.stat().st_size
        if item["status"] == "rejected":
            code, message = single_upload_message(app, path, name)
            assert item["error"] == {"code": code, "message": message}, name
    assert body["totals"] == {
        "files": 6, "queued": 0, "running": 0, "done": 2, "failed": 0, "rejected": 4,
        "deleted": 0, "pending": 0,
        "verdicts": {"real": 2, "inconclusive": 0, "fake": 0, "no_face": 0},
        "analyses": {"total": 2, "queued": 0, "running": 0, "done": 2, "failed": 0,
                     "deleted": 0, "pending": 0},
        "disagreements": 0,
    }
    assert len(detector.calls) == 2 and count(app, Detection) == 2
    assert stored_uploads(app) == []  # analysed originals deleted, refused ones never kept
    html = client.get(f"/batches/{batch_id}").get_data(as_text=True)
    for _, name in sent:
        assert name in html
    assert html.count('class="batch-row"') == 6 and html.count(">Refused<") == 4
    assert "Likely real" in html and "The file is empty." in html
    for item in body["items"][:1]:
        assert f'href="{item["links"]["html"]}"' in html
        assert f'src="{item["links"]["thumbnail"]}"' in html


def test_one_file_through_the_form_still_goes_to_its_result(app, client, files):
    response = upload(client, files["photo_jpg"])
    assert response.status_code == 303 and "/results/" in response.headers["Location"]
    assert count(app, Batch) == 0


def test_form_batch_where_every_file_is_refused_keeps_nothing(app, client, bad):
    response = form_post(client, parts((bad["notes.txt"], "a.txt"), (bad["empty.mp4"], "b.mp4")))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "None of the 2 files could be analysed" in html
    assert "a.txt" in html and "not supported" in html and "b.mp4" in html and "empty" in html
    assert count(app, Batch) == 0 and count(app, BatchItem) == 0 and count(app, Detection) == 0
    # One kind of refusal: the status a single upload of them gets.
    same = form_post(client, parts((bad["notes.txt"], "a.txt"), (bad["notes.txt"], "c.txt")))
    assert same.status_code == 415


def test_every_refused_corpus_file_is_reported_in_a_batch(tmp_path, model_dir, detector, files):
    """The bad-input corpus (tests/corpus) in one batch with a good photo: each refused file
    gets the code and message the single upload of it gets; the photo is analysed."""
    from corpus import CASES, Corpus

    cases = [c for c in CASES if c.request == "file" and c.expect == "rejected" and not c.config]
    assert len(cases) >= 15
    corpus = Corpus(tmp_path / "corpus")
    (tmp_path / "corpus").mkdir()
    app = make_app(tmp_path, MODEL_DIR=str(model_dir), DETECTOR_LOADER=lambda _d: detector,
                   BATCH_MAX_FILES=len(cases) + 1)
    try:
        client = app.test_client()
        sent = [(corpus.path(c), c.filename) for c in cases] + [(files["photo_jpg"], "good.jpg")]
        response = api_post(client, parts(*sent))
        assert response.status_code == 202, response.json
        body = finish(app, client, response.json["id"])
        *refused, good = body["items"]
        for case, item in zip(cases, refused, strict=True):
            assert item["status"] == "rejected", case.key
            assert case.message.lower() in item["error"]["message"].lower(), case.key
            if case.code:
                assert item["error"]["code"] == case.code, case.key
        assert good["status"] == "done" and body["totals"]["rejected"] == len(cases)
        assert count(app, Detection) == 1
    finally:
        app.extensions["detection_runner"].shutdown()


# --------------------------------------------------------------------------- the API


def test_api_batch_is_202_with_an_entry_per_file(app, client, files, bad):
    response = api_post(client, parts((files["clip"], "pan.mp4"), (files["photo_png"], "a.png"),
                                      (bad["notes.txt"], "notes.txt")), name="From the API")
    assert response.status_code == 202, response.json
    body = response.json
    assert response.headers["Location"] == body["links"]["self"]
    assert body["links"]["self"].endswith(f"/api/v1/batches/{body['id']}")
    assert body["name"] == "From the API" and body["file_count"] == 3
    assert body["items"][2]["status"] == "rejected"
    assert body["items"][2]["error"]["code"] == "unsupported_media"
    done = finish(app, client, body["id"])
    api = client.get(f"/api/v1/batches/{body['id']}").json
    assert api["finished"] and api["totals"]["done"] == 2 and api["items"] == done["items"]
    first = api["items"][0]
    assert first["sha256"] == hashlib.sha256(files["clip"].read_bytes()).hexdigest()
    assert first["media_type"] == "video" and first["model_version"] == "test-model-1"
    assert first["verdict"] == "real" and first["p_fake"] == pytest.approx(0.12)
    assert client.get(first["links"]["api"]).json["id"] == first["detection_id"]
    listed = client.get("/api/v1/batches").json
    assert listed["total"] == 1 and listed["items"][0]["id"] == body["id"]
    assert "items" not in listed["items"][0] and listed["items"][0]["totals"]["done"] == 2


def test_api_batch_takes_a_model_and_refuses_an_unknown_one(app, client, files, model_dir):
    unknown = api_post(client, parts((files["photo_jpg"], "a.jpg"), (files["clip"], "b.mp4")),
                       model="2020.01.01-nope")
    assert unknown.status_code == 400 and unknown.json["error"]["code"] == "unknown_model"
    assert count(app, Batch) == 0 and count(app, Detection) == 0
    chosen = api_post(client, parts((files["photo_jpg"], "a.jpg"), (files["clip"], "b.mp4")),
                      model="test-model-1")
    assert chosen.status_code == 202
    assert {i["model_version"] for i in chosen.json["items"]} == {"test-model-1"}
    finish(app, client, chosen.json["id"])


def test_api_batch_where_every_file_is_refused_lists_each_reason(app, client, bad):
    response = api_post(client, parts((bad["notes.txt"], "a.txt"), (bad["empty.mp4"], "b.mp4")))
    assert response.status_code == 422
    body = response.json
    assert body["error"]["code"] == "no_file_accepted"
    assert [(i["filename"], i["error"]["code"]) for i in body["items"]] == [
        ("a.txt", "unsupported_media"), ("b.mp4", "corrupt_media")]
    missing = client.post("/api/v1/batches", data={})
    assert missing.status_code == 400 and missing.json["error"]["code"] == "no_file"
    assert count(app, Batch) == 0


def test_the_same_file_twice_is_analysed_once(app, client, files, detector):
    body = api_post(client, parts((files["photo_jpg"], "a.jpg"), (files["photo_jpg"], "b.jpg"))).json
    done = finish(app, client, body["id"])
    first, second = done["items"]
    assert first["detection_id"] == second["detection_id"] and second["reused"]
    assert len(detector.calls) == 1
    again = api_post(client, parts((files["photo_jpg"], "c.jpg"), (files["clip"], "d.mp4"))).json
    assert again["items"][0]["detection_id"] == first["detection_id"] and again["items"][0]["reused"]
    finish(app, client, again["id"])


def test_the_single_file_api_points_to_batches(client, files):
    response = client.post("/api/v1/detections", data={"file": parts(
        (files["photo_jpg"], "a.jpg"), (files["photo_png"], "b.png"))})
    assert response.status_code == 400 and "/api/v1/batches" in response.json["error"]["message"]


# --------------------------------------------------------------------------- limits


@pytest.fixture
def limited(tmp_path, model_dir, detector):
    """Batches of at most 3 files and 400 KB in all; one file at most 200 KB."""
    app = make_app(tmp_path, MODEL_DIR=str(model_dir), DETECTOR_LOADER=lambda _d: detector,
                   BATCH_MAX_FILES=3, BATCH_MAX_BYTES=400_000, MAX_CONTENT_LENGTH=200_000)
    yield app
    app.extensions["detection_runner"].shutdown()


def test_too_many_files_is_refused_whole(limited, files):
    client = limited.test_client()
    four = [(files["photo_jpg"], f"{n}.jpg") for n in range(4)]
    response = api_post(client, parts(*four))
    assert response.status_code == 400 and response.json["error"]["code"] == "too_many_files"
    assert "You sent 4 files; one batch holds at most 3" in response.json["error"]["message"]
    page = form_post(client, parts(*four))
    assert page.status_code == 400 and "one batch holds at most 3" in page.get_data(as_text=True)
    assert count(limited, Batch) == 0 and count(limited, Detection) == 0
    assert stored_uploads(limited) == []


def test_too_many_bytes_is_refused_whole(limited):
    client = limited.test_client()
    three = [(b"\0" * 150_000, f"{n}.mp4") for n in range(3)]  # 450 KB: each fine, all too much
    response = api_post(client, parts(*three))
    assert response.status_code == 413 and response.json["error"]["code"] == "batch_too_large"
    assert "more than 391 KB, the most one batch can hold" in response.json["error"]["message"]
    page = form_post(client, parts(*three))
    assert page.status_code == 413 and "one batch can hold" in page.get_data(as_text=True)
    # A body far over the batch limit is refused by its declared length, before it is read.
    huge = api_post(client, parts((b"\0" * 900_000, "big.mp4"), (b"\0" * 10, "small.mp4")))
    assert huge.status_code == 413 and huge.json["error"]["code"] == "batch_too_large"
    assert count(limited, Batch) == 0 and count(limited, Detection) == 0


def test_a_file_over_the_per_file_limit_is_refused_alone(limited, files):
    client = limited.test_client()
    response = api_post(client, parts((b"\0" * 250_000, "big.mp4"), (files["photo_jpg"], "a.jpg")))
    assert response.status_code == 202
    big, good = response.json["items"]
    assert big["status"] == "rejected" and big["error"]["code"] == "too_large"
    assert "larger than the 195 KB limit" in big["error"]["message"]
    assert good["status"] in ("queued", "running", "done")
    assert finish(limited, client, response.json["id"])["totals"]["done"] == 1


# --------------------------------------------------------------------------- the page


@pytest.fixture
def threads_app(tmp_path, model_dir, detector):
    """Jobs in threads only: eager Celery would finish every job inside the upload request."""
    app = make_app(tmp_path, MODEL_DIR=str(model_dir), DETECTOR_LOADER=lambda _d: detector)
    yield app
    app.extensions["detection_runner"].shutdown()


def test_batch_page_fills_in_from_its_status_json(threads_app, files, detector):
    app, client = threads_app, threads_app.test_client()
    detector.delay = 0.3
    batch_id = api_post(client, parts((files["clip"], "a.mp4"), (files["photo_jpg"], "b.jpg"))).json["id"]
    html = client.get(f"/batches/{batch_id}").get_data(as_text=True)
    assert 'id="batch"' in html and 'data-finished="false"' in html
    assert "js/batch.js" in html and 'http-equiv="refresh"' in html
    assert f'data-status-url="/batches/{batch_id}/status"' in html
    status = client.get(f"/batches/{batch_id}/status")
    assert status.headers["Cache-Control"] == "no-store"
    assert status.json["totals"]["pending"] >= 1 and not status.json["finished"]
    assert {i["status"] for i in status.json["items"]} <= {"queued", "running", "done"}
    done = finish(app, client, batch_id)
    assert done["finished"] and done["totals"]["verdicts"]["real"] == 2
    html = client.get(f"/batches/{batch_id}").get_data(as_text=True)
    assert 'data-finished="true"' in html and "js/batch.js" not in html
    assert "All files finished" in html and html.count("Likely real") >= 2


def test_history_links_each_detection_to_its_batch(app, client, files):
    batch_id = api_post(client, parts((files["photo_jpg"], "a.jpg"), (files["clip"], "b.mp4"))).json["id"]
    finish(app, client, batch_id)
    single = upload(client, files["photo_png"])
    wait_for_job(app, single.headers["Location"].rsplit("/", 1)[-1])
    html = client.get("/history").get_data(as_text=True)
    assert html.count(f'class="batch-link" href="/batches/{batch_id}"') == 2  # not the single one
    assert 'id="recent-batches"' in html and "Batch of 2 files" in html


def test_deleting_a_detection_then_the_batch(app, client, files):
    body = api_post(client, parts((files["photo_jpg"], "a.jpg"), (files["clip"], "b.mp4"))).json
    done = finish(app, client, body["id"])
    first = done["items"][0]["detection_id"]
    assert client.delete(f"/api/v1/detections/{first}").status_code == 204
    after = client.get(f"/api/v1/batches/{body['id']}").json
    assert after["items"][0]["status"] == "deleted" and after["items"][0]["detection_id"] is None
    assert after["totals"]["deleted"] == 1 and after["items"][0]["filename"] == "a.jpg"
    page = client.post(f"/batches/{body['id']}/delete", data={"csrf_token": csrf(client)})
    assert page.status_code == 303
    assert client.get(f"/batches/{body['id']}").status_code == 404
    assert count(app, Detection) == 0 and count(app, BatchItem) == 0
    assert not any(Path(app.config["RESULTS_FOLDER"]).iterdir())


def test_old_batches_are_purged_with_their_files(tmp_path, model_dir, detector, files):
    settings = dict(MODEL_DIR=str(model_dir), DETECTOR_LOADER=lambda _d: detector, RETENTION_DAYS=30)
    app = make_app(tmp_path, **settings)
    client = app.test_client()
    body = api_post(client, parts((files["photo_jpg"], "a.jpg"), (files["clip"], "b.mp4"))).json
    finish(app, client, body["id"])
    old = datetime.now(UTC) - timedelta(days=31)
    with app.app_context():
        db.session.get(Batch, body["id"]).created_at = old
        for det in db.session.query(Detection):
            det.created_at = old
        db.session.commit()
    app.extensions["detection_runner"].shutdown()
    again = make_app(tmp_path, **settings)  # the start-up purge
    try:
        assert count(again, Batch) == 0 and count(again, BatchItem) == 0
        assert count(again, Detection) == 0
    finally:
        again.extensions["detection_runner"].shutdown()


# --------------------------------------------------------------------------- export

#: A file name that a spreadsheet would run (the classic DDE payload).
DDE = "=cmd|' -c calc'!A0.jpg"


def test_csv_and_json_export_list_every_file(app, client, files, bad):
    sent = parts((files["photo_jpg"], DDE), (bad["notes.txt"], "+cmd.txt"),
                 (files["clip"], "-pan.mp4"), (files["photo_png"], "@face.png"))
    batch_id = form_post(client, sent).headers["Location"].rsplit("/", 1)[-1]
    body = finish(app, client, batch_id)
    response = client.get(f"/batches/{batch_id}/export.csv")
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="batch-{batch_id}.csv"'
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert list(rows[0]) == [
        "position", "filename", "size_bytes", "sha256", "media_type", "model_version", "status",
        "verdict", "verdict_label", "p_fake", "error_code", "error_message", "created_at",
        "finished_at", "detection_id", "result_url"]
    # Names a spreadsheet would run as formulas are written as text.
    assert [r["filename"] for r in rows] == [
        "'" + DDE, "'+cmd.txt", "'-pan.mp4", "'@face.png"]
    photo, refused, clip, png = rows
    assert photo["sha256"] == hashlib.sha256(files["photo_jpg"].read_bytes()).hexdigest()
    assert (photo["media_type"], photo["model_version"], photo["status"]) == ("image", "test-model-1", "done")
    assert (photo["verdict"], float(photo["p_fake"])) == ("real", pytest.approx(0.12))
    assert photo["result_url"] == f"http://localhost/results/{photo['detection_id']}"
    assert (clip["media_type"], png["media_type"]) == ("video", "image")
    assert (refused["status"], refused["error_code"], refused["sha256"]) == ("rejected", "unsupported_media", "")
    assert "not supported" in refused["error_message"] and refused["result_url"] == ""
    exported = client.get(f"/batches/{batch_id}/export.json")
    assert exported.headers["Content-Disposition"] == f'attachment; filename="batch-{batch_id}.json"'
    data = json.loads(exported.get_data(as_text=True))
    assert data["items"] == body["items"] and data["totals"]["rejected"] == 1
    assert data["items"][0]["filename"] == DDE  # the JSON keeps the name as sent


# --------------------------------------------------------------------------- owners


def test_a_batch_is_its_owners_and_follows_them_into_their_account(app, files):
    make_user(app, "editor")
    make_user(app, "root", "admin")
    alice, bob = app.test_client(), app.test_client()
    owner_of(bob)
    batch_id = form_post(alice, parts((files["photo_jpg"], "a.jpg"), (files["clip"], "b.mp4"))
                         ).headers["Location"].rsplit("/", 1)[-1]
    finish(app, alice, batch_id)
    for url in (f"/batches/{batch_id}", f"/batches/{batch_id}/status",
                f"/batches/{batch_id}/export.csv", f"/batches/{batch_id}/export.json",
                f"/api/v1/batches/{batch_id}"):
        assert bob.get(url).status_code == 404, url
    assert bob.delete(f"/api/v1/batches/{batch_id}").status_code == 404
    assert bob.post(f"/batches/{batch_id}/delete", data={"csrf_token": csrf(bob)}).status_code == 404
    assert bob.get("/api/v1/batches").json["total"] == 0
    assert "Batch of 2 files" not in bob.get("/history").get_data(as_text=True)
    admin = app.test_client()
    sign_in(admin, "root")
    assert admin.get(f"/batches/{batch_id}").status_code == 200
    # Signing in moves the browser's batch into the account, with its detections.
    sign_in(alice, "editor")
    phone = app.test_client()
    sign_in(phone, "editor")
    page = phone.get(f"/batches/{batch_id}").get_data(as_text=True)
    assert "a.jpg" in page and page.count("Likely real") >= 2
    assert count(app, Batch) == 1
