"""The upload form: validation by content, friendly errors, nothing half-written, the job."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import detection_id_from, make_app, upload, wait_for_job
from sqlalchemy import func, select

from webapp.detection.errors import CorruptMediaError
from webapp.extensions import db
from webapp.models import Detection

#: Every test using ``app`` runs with threads and with Celery (see conftest.QUEUE_MODES).
BOTH_QUEUE_MODES = True


def count_rows(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Detection))


def stored_files(app) -> list[Path]:
    found = []
    for key in ("UPLOAD_FOLDER", "RESULTS_FOLDER"):
        found += [p for p in Path(app.config[key]).rglob("*") if p.is_file()]
    return found


def assert_nothing_stored(app):
    assert count_rows(app) == 0
    assert stored_files(app) == []


def test_upload_page_has_form_with_csrf(client):
    html = client.get("/upload").get_data(as_text=True)
    assert 'name="csrf_token"' in html and 'type="file"' in html
    assert ".mp4" in html and ".webp" in html  # accept attribute
    assert "200 MB" in html


@pytest.mark.parametrize("key", ["clip", "photo_jpg", "photo_png"])
def test_upload_queues_a_job_and_shows_the_result(app, client, files, key):
    response = upload(client, files[key])
    assert response.status_code == 303
    det_id = detection_id_from(response)
    det = wait_for_job(app, det_id)
    assert det.status == "done" and det.verdict == "real" and det.p_fake == pytest.approx(0.12)
    assert det.media_type == ("video" if key == "clip" else "image")
    assert det.filename == files[key].name and len(det.sha256) == 64
    # The original is deleted after analysis; the artefacts are kept.
    assert det.upload_name is None
    assert list(Path(app.config["UPLOAD_FOLDER"]).iterdir()) == []
    rdir = Path(app.config["RESULTS_FOLDER"]) / det_id
    assert (rdir / "result.json").is_file() and (rdir / "thumb.jpg").is_file()
    assert any((rdir / "chips").glob("*.jpg")) and any((rdir / "heatmaps").glob("*.jpg"))
    html = client.get(f"/results/{det_id}").get_data(as_text=True)
    assert "Likely real" in html and "12%" in html


def test_stored_under_a_random_name_not_the_users(app, client, files, detector, queue_mode):
    detector.delay = 0.2
    if queue_mode == "celery":  # eager: the job has run (and deleted the upload) already
        app.config["KEEP_UPLOADS"] = True
    det_id = detection_id_from(upload(client, files["clip"], name="../../etc/evil name.mp4"))
    names = [p.name for p in Path(app.config["UPLOAD_FOLDER"]).iterdir()]
    assert names == [f"{det_id}.mp4"]
    det = wait_for_job(app, det_id)
    assert det.filename == "evil name.mp4"


def test_keep_uploads_option(tmp_path, model_dir, detector, files):
    app = make_app(
        tmp_path, MODEL_DIR=str(model_dir), DETECTOR_LOADER=lambda _d: detector, KEEP_UPLOADS=True
    )
    try:
        det = wait_for_job(app, detection_id_from(upload(app.test_client(), files["photo_jpg"])))
        assert det.upload_name and (Path(app.config["UPLOAD_FOLDER"]) / det.upload_name).is_file()
    finally:
        app.extensions["detection_runner"].shutdown()


def test_same_file_same_model_links_to_stored_result(app, client, files, detector):
    first = detection_id_from(upload(client, files["photo_jpg"]))
    wait_for_job(app, first)
    again = upload(client, files["photo_jpg"], name="renamed.jpg", follow=True)
    assert again.status_code == 200
    assert again.request.path == f"/results/{first}"
    assert "already analysed" in again.get_data(as_text=True)
    assert count_rows(app) == 1 and len(detector.calls) == 1
    assert list(Path(app.config["UPLOAD_FOLDER"]).iterdir()) == []


def test_same_file_new_model_version_is_analysed_again(app, client, files, model_dir, detector):
    first = detection_id_from(upload(client, files["photo_jpg"]))
    wait_for_job(app, first)
    config = model_dir / "config.json"
    config.write_text(config.read_text().replace("test-model-1", "test-model-2"))
    detector.version = "test-model-2"
    second = detection_id_from(upload(client, files["photo_jpg"]))
    assert second != first
    assert wait_for_job(app, second).model_version == "test-model-2"


def test_no_file_shows_the_form_again(app, client):
    token = (
        client.get("/upload")
        .get_data(as_text=True)
        .split('name="csrf_token" type="hidden" value="')[1]
        .split('"')[0]
    )
    response = client.post(
        "/upload", data={"csrf_token": token}, content_type="multipart/form-data"
    )
    assert response.status_code == 400
    assert "Choose a video clip or a photo" in response.get_data(as_text=True)
    assert_nothing_stored(app)


def test_wrong_extension_is_refused(app, client, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    response = upload(client, path)
    assert response.status_code == 400
    assert "not supported" in response.get_data(as_text=True)
    assert_nothing_stored(app)


def test_text_file_named_mp4_is_refused_by_content(app, client, files):
    response = upload(client, files["text_mp4"])
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "neither a photo nor a video" in html and 'role="alert"' in html
    assert_nothing_stored(app)


def test_truncated_clip_is_refused(app, client, files):
    response = upload(client, files["truncated"])
    assert response.status_code == 400
    assert 'role="alert"' in response.get_data(as_text=True)
    assert_nothing_stored(app)


def test_truncated_photo_is_refused(app, client, files):
    response = upload(client, files["truncated_png"])
    assert response.status_code == 400
    assert "damaged" in response.get_data(as_text=True)
    assert_nothing_stored(app)


def test_empty_file_is_refused(app, client, tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    response = upload(client, path)
    assert response.status_code == 400 and "empty" in response.get_data(as_text=True)
    assert_nothing_stored(app)


def test_too_long_clip_is_refused(tmp_path, model_dir, detector, files):
    app = make_app(
        tmp_path,
        MODEL_DIR=str(model_dir),
        DETECTOR_LOADER=lambda _d: detector,
        MAX_DURATION_SECONDS=1.5,
    )
    try:
        response = upload(app.test_client(), files["clip"])
        assert response.status_code == 400
        assert "the limit is 2 s" in response.get_data(as_text=True)
        assert_nothing_stored(app)
    finally:
        app.extensions["detection_runner"].shutdown()


def test_oversize_upload_gets_friendly_413(tmp_path, model_dir, detector):
    app = make_app(
        tmp_path,
        MODEL_DIR=str(model_dir),
        DETECTOR_LOADER=lambda _d: detector,
        MAX_CONTENT_LENGTH=100_000,
    )
    try:
        client = app.test_client()
        big = tmp_path / "big.mp4"
        big.write_bytes(b"\0" * 300_000)
        response = upload(client, big)
        assert response.status_code == 413
        html = response.get_data(as_text=True)
        assert "That file is too large" in html and "97.7 KB" in html
        assert_nothing_stored(app)
    finally:
        app.extensions["detection_runner"].shutdown()


def test_csrf_token_required(app, client, files):
    with open(files["photo_jpg"], "rb") as fh:
        response = client.post(
            "/upload", data={"file": (fh, "a.jpg")}, content_type="multipart/form-data"
        )
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)
    assert_nothing_stored(app)


def test_csrf_required_for_delete(app, client, files):
    det_id = detection_id_from(upload(client, files["photo_jpg"]))
    wait_for_job(app, det_id)
    assert client.post(f"/results/{det_id}/delete").status_code == 400
    assert count_rows(app) == 1


def test_rate_limit_on_uploads(tmp_path, model_dir, detector, files):
    app = make_app(
        tmp_path,
        MODEL_DIR=str(model_dir),
        DETECTOR_LOADER=lambda _d: detector,
        UPLOAD_RATE_LIMIT="2 per minute",
    )
    try:
        client = app.test_client()
        codes = [upload(client, files["photo_jpg"]).status_code for _ in range(3)]
        assert codes[:2] == [303, 303] and codes[2] == 429
        page = upload(client, files["photo_jpg"])
        assert "Slow down" in page.get_data(as_text=True)
        assert client.get("/upload").status_code == 200  # only uploads are limited
        api = client.post("/api/v1/detections", data={"file": (io.BytesIO(b"x"), "a.jpg")})
        assert api.status_code == 429 and api.json["error"]["code"] == "rate_limited"
    finally:
        app.extensions["detection_runner"].shutdown()


def test_engine_failure_is_shown_with_its_reason(app, client, files, detector):
    detector.error = CorruptMediaError("The video is damaged after 1.0 s.")
    det_id = detection_id_from(upload(client, files["clip"]))
    det = wait_for_job(app, det_id)
    assert det.status == "failed" and det.error_code == "corrupt_media"
    html = client.get(f"/results/{det_id}").get_data(as_text=True)
    assert "We could not analyse this file" in html and "damaged after 1.0 s" in html
    assert list(Path(app.config["UPLOAD_FOLDER"]).iterdir()) == []


def test_unexpected_engine_error_is_logged_not_shown(app, client, files, detector, caplog):
    detector.error = ZeroDivisionError("secret internals")
    det = wait_for_job(app, detection_id_from(upload(client, files["photo_jpg"])))
    assert det.status == "failed" and det.error_code == "internal_error"
    assert "secret internals" not in det.error_message
    assert "secret internals" in caplog.text


def test_failed_database_write_leaves_nothing_on_disk(app, client, files, monkeypatch):
    from webapp.extensions import db

    def broken_commit():
        raise RuntimeError("disk full")

    monkeypatch.setattr(db.session, "commit", broken_commit)
    response = upload(client, files["photo_jpg"])
    assert response.status_code == 500
    monkeypatch.undo()
    assert_nothing_stored(app)
