"""The Celery task's rules without a broker (eager mode): idempotent re-delivery, bounded
attempts, time limits. tests/test_scaleout.py runs them with real workers."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from billiard.exceptions import SoftTimeLimitExceeded
from conftest import QUEUE_MODES, make_app, wait_for_job
from sqlalchemy import update

from webapp import tasks
from webapp.extensions import db
from webapp.models import Detection


@pytest.fixture
def celery_app(tmp_path, model_dir, detector):
    app = make_app(
        tmp_path, MODEL_DIR=str(model_dir), DETECTOR_LOADER=lambda _d: detector,
        KEEP_UPLOADS=True, **QUEUE_MODES["celery"],
    )
    yield app
    app.extensions["detection_runner"].shutdown()


def post(app, path: Path) -> str:
    with open(path, "rb") as fh:
        response = app.test_client().post("/api/v1/detections", data={"file": (fh, path.name)})
    assert response.status_code in (201, 202), response.get_data(as_text=True)
    return response.json["id"]


def set_row(app, det_id: str, **values) -> None:
    with app.app_context():
        db.session.execute(update(Detection).where(Detection.id == det_id).values(**values))
        db.session.commit()


def test_settings_follow_the_config(celery_app):
    conf = tasks.celery.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit


def test_redelivered_job_of_a_finished_row_does_nothing(celery_app, files, detector):
    det_id = post(celery_app, files["clip"])
    det = wait_for_job(celery_app, det_id)
    assert det.status == "done" and det.attempts == 1
    result = Path(celery_app.config["RESULTS_FOLDER"]) / det_id / "result.json"
    before = result.read_bytes()
    with celery_app.app_context():
        assert tasks.analyze.apply(args=[det_id]).get() == "finished"
    assert len(detector.calls) == 1 and result.read_bytes() == before
    assert wait_for_job(celery_app, det_id).attempts == 1


def test_job_of_a_dead_worker_runs_again_then_gives_up(celery_app, files, detector):
    det_id = post(celery_app, files["clip"])
    wait_for_job(celery_app, det_id)
    # As if a worker had died mid-analysis once: re-delivered, it runs again.
    set_row(celery_app, det_id, status="running", owner="celery:w1@x:1:dead", attempts=1)
    with celery_app.app_context():
        assert tasks.analyze.apply(args=[det_id]).get() == "done"
    det = wait_for_job(celery_app, det_id)
    assert det.status == "done" and det.attempts == 2 and det.owner.startswith("celery:")
    assert json.loads((Path(celery_app.config["RESULTS_FOLDER"]) / det_id / "result.json")
                      .read_text())["detection"]["id"] == det_id
    # Died again at MAX_JOB_ATTEMPTS (2): failed, with the reason.
    set_row(celery_app, det_id, status="running", owner="celery:w2@x:2:dead", attempts=2)
    with celery_app.app_context():
        assert tasks.analyze.apply(args=[det_id]).get() == "gave_up"
    det = wait_for_job(celery_app, det_id)
    assert det.status == "failed" and det.error_code == "interrupted"
    assert "interrupted 2 times" in det.error_message
    assert len(detector.calls) == 2


def test_soft_time_limit_fails_the_job_with_the_reason(celery_app, files, detector):
    detector.error = SoftTimeLimitExceeded()
    det = wait_for_job(celery_app, post(celery_app, files["photo_jpg"]))
    assert det.status == "failed" and det.error_code == "timeout"
    assert "longer than this server allows" in det.error_message


def test_unreachable_broker_fails_the_upload_with_the_reason(tmp_path, model_dir, detector, files):
    app = make_app(
        tmp_path, MODEL_DIR=str(model_dir), DETECTOR_LOADER=lambda _d: detector,
        DETECTION_QUEUE="celery", CELERY_BROKER_URL="redis://127.0.0.1:9/0",
    )
    try:
        det = wait_for_job(app, post(app, files["photo_jpg"]), timeout=60)
    finally:
        app.extensions["detection_runner"].shutdown()
    assert det.status == "failed" and det.error_code == "queue_unavailable"



def test_a_pool_process_reports_up_at_once_and_jobs_wait_for_the_model(
    tmp_path, model_dir, monkeypatch
):
    """worker_process_init only starts the load (in a thread): a slow model load never counts
    against Celery's liveness wait (worker_proc_alive_timeout, from the config), and a job
    that arrives meanwhile gets the app once the load is over."""
    app = make_app(tmp_path, MODEL_DIR=str(model_dir), CELERY_PROC_ALIVE_TIMEOUT=45)
    assert tasks.celery_settings(app.config)["worker_proc_alive_timeout"] == 45
    ready = threading.Event()
    monkeypatch.setattr(tasks, "_ready", ready)
    monkeypatch.setattr(tasks, "_warmup", None)
    monkeypatch.setattr(tasks, "_app", None)

    def slow_load() -> None:  # as _warm_up, with a model that takes 1.5 s to load
        time.sleep(1.5)
        tasks._app = app
        ready.set()

    monkeypatch.setattr(tasks, "_warm_up", slow_load)
    started = time.monotonic()
    tasks._start_loading()  # what Celery calls in a new pool process
    assert time.monotonic() - started < 0.5 and not ready.is_set()
    assert tasks.flask_app() is app  # a job: waits for the load
    assert time.monotonic() - started >= 1.4
    tasks.start_warm_up().join(timeout=5)
    app.extensions["detection_runner"].shutdown()
