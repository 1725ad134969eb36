"""Background jobs: crash recovery at start-up, retention, progress writes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import make_app, owner_of, wait_for_job

from webapp.extensions import db
from webapp.models import Detection


def dead_owner() -> str:
    """An owner id naming a process that has exited."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return f"{socket.gethostname()}:{int(proc.stdout)}:deadbeef"


@pytest.fixture
def crashed_state(tmp_path, files):
    """A database and upload folder as a crashed server leaves them."""
    app = make_app(tmp_path, DETECTOR_LOADER=lambda _d: None)
    uploads = Path(app.config["UPLOAD_FOLDER"])
    with app.app_context():
        rows = {
            "running": dict(
                status="running",
                stage="detect",
                progress=0.4,
                attempts=1,
                upload_name="a" * 32 + ".mp4",
            ),
            "queued": dict(
                status="queued", stage="queued", attempts=0, upload_name="b" * 32 + ".jpg"
            ),
            "lost_upload": dict(
                status="running", stage="features", attempts=1, upload_name="c" * 32 + ".mp4"
            ),
            "crashed_twice": dict(
                status="running", stage="decode", attempts=2, upload_name="d" * 32 + ".mp4"
            ),
        }
        ids = {}
        owner = dead_owner()
        for name, fields in rows.items():
            det = Detection(
                filename=f"{name}.mp4",
                sha256=name.ljust(64, "0"),
                size_bytes=1,
                media_type="video",
                owner=owner,
                model_version="test-model-1",
                **fields,
            )
            db.session.add(det)
            db.session.commit()
            ids[name] = det.id
    app.extensions["detection_runner"].shutdown()
    shutil.copy(files["clip"], uploads / ("a" * 32 + ".mp4"))
    shutil.copy(files["photo_jpg"], uploads / ("b" * 32 + ".jpg"))
    shutil.copy(files["clip"], uploads / ("d" * 32 + ".mp4"))
    return ids


def test_crash_recovery_requeues_or_fails_every_job(tmp_path, model_dir, detector, crashed_state):
    app = make_app(tmp_path, MODEL_DIR=str(model_dir), DETECTOR_LOADER=lambda _d: detector)
    try:
        ids = crashed_state
        running = wait_for_job(app, ids["running"])
        queued = wait_for_job(app, ids["queued"])
        assert running.status == "done" and running.verdict == "real" and running.attempts == 2
        assert queued.status == "done" and queued.media_type == "video"  # row kept
        with app.app_context():
            lost = db.session.get(Detection, ids["lost_upload"])
            twice = db.session.get(Detection, ids["crashed_twice"])
            assert lost.status == "failed" and lost.error_code == "interrupted"
            assert "upload it again" in lost.error_message
            assert twice.status == "failed" and "interrupted 2 times" in twice.error_message
        assert not any(Path(app.config["UPLOAD_FOLDER"]).iterdir())
        client = app.test_client()  # the rows were made without an owner: give it one
        owner = owner_of(client)
        with app.app_context():
            db.session.get(Detection, ids["lost_upload"]).owner_id = owner
            db.session.commit()
        html = client.get(f"/results/{ids['lost_upload']}").get_data(as_text=True)
        assert "server restarted" in html
    finally:
        app.extensions["detection_runner"].shutdown()


def test_jobs_of_a_live_process_are_left_alone(tmp_path, model_dir, detector, files):
    app = make_app(tmp_path, MODEL_DIR=str(model_dir), DETECTOR_LOADER=lambda _d: detector)
    live_owner = f"{socket.gethostname()}:{os.getppid()}:cafe0001"  # the parent is alive
    with app.app_context():
        det = Detection(
            filename="x.mp4",
            sha256="1" * 64,
            size_bytes=1,
            media_type="video",
            status="running",
            stage="detect",
            owner=live_owner,
            upload_name="e" * 32 + ".mp4",
        )
        db.session.add(det)
        db.session.commit()
        det_id = det.id
    shutil.copy(files["clip"], Path(app.config["UPLOAD_FOLDER"]) / ("e" * 32 + ".mp4"))
    app.extensions["detection_runner"].shutdown()
    app2 = make_app(tmp_path, MODEL_DIR=str(model_dir), DETECTOR_LOADER=lambda _d: detector)
    try:
        with app2.app_context():
            det = db.session.get(Detection, det_id)
            assert det.status == "running" and det.owner == live_owner
        assert detector.calls == []
    finally:
        app2.extensions["detection_runner"].shutdown()


def test_old_detections_are_purged(tmp_path, model_dir, detector):
    app = make_app(
        tmp_path, MODEL_DIR=str(model_dir), DETECTOR_LOADER=lambda _d: detector, RETENTION_DAYS=30
    )
    old_time = datetime.now(UTC) - timedelta(days=31)
    with app.app_context():
        old = Detection(
            filename="old.mp4",
            sha256="2" * 64,
            size_bytes=1,
            media_type="video",
            status="done",
            verdict="real",
            p_fake=0.1,
            created_at=old_time,
        )
        new = Detection(
            filename="new.mp4",
            sha256="3" * 64,
            size_bytes=1,
            media_type="video",
            status="done",
            verdict="real",
            p_fake=0.1,
        )
        db.session.add_all([old, new])
        db.session.commit()
        old_id = old.id
    (Path(app.config["RESULTS_FOLDER"]) / old_id).mkdir()
    app.extensions["detection_runner"].shutdown()
    app2 = make_app(
        tmp_path, MODEL_DIR=str(model_dir), DETECTOR_LOADER=lambda _d: detector, RETENTION_DAYS=30
    )
    try:
        with app2.app_context():
            assert [d.filename for d in db.session.query(Detection).all()] == ["new.mp4"]
        assert not (Path(app2.config["RESULTS_FOLDER"]) / old_id).exists()
    finally:
        app2.extensions["detection_runner"].shutdown()


def test_created_at_default_is_computed_per_row(app):
    with app.app_context():
        a = Detection(filename="a", sha256="4" * 64, size_bytes=1, media_type="image")
        db.session.add(a)
        db.session.commit()
        b = Detection(filename="b", sha256="5" * 64, size_bytes=1, media_type="image")
        db.session.add(b)
        db.session.commit()
        assert a.id != b.id and b.created_at >= a.created_at


def test_missing_model_fails_the_job_with_a_clear_message(tmp_path, files):
    from conftest import detection_id_from, upload

    from webapp.detection.errors import ModelNotFoundError

    def loader(_dir):
        raise ModelNotFoundError("No trained model in model/ (config.json missing).")

    app = make_app(tmp_path, MODEL_DIR=str(tmp_path / "none"), DETECTOR_LOADER=loader)
    try:
        det = wait_for_job(app, detection_id_from(upload(app.test_client(), files["photo_jpg"])))
        assert det.status == "failed" and det.error_code == "model_not_found"
    finally:
        app.extensions["detection_runner"].shutdown()


def test_cli_commands_do_not_take_over_jobs(
    tmp_path, model_dir, detector, crashed_state, monkeypatch
):
    """`flask detect` and friends build the app too; recovery waits for a serving process."""
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "true")
    monkeypatch.setattr(sys, "argv", ["flask", "detect", "clip.mp4"])
    app = make_app(tmp_path, MODEL_DIR=str(model_dir), DETECTOR_LOADER=lambda _d: detector)
    try:
        with app.app_context():
            assert db.session.get(Detection, crashed_state["running"]).status == "running"
        assert app.test_client().get("/").status_code == 200  # a request starts the queue
        assert wait_for_job(app, crashed_state["running"]).status == "done"
    finally:
        app.extensions["detection_runner"].shutdown()
