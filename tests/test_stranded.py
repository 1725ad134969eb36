"""No stranded jobs: a web process killed between writing a detection's row and queueing its
job (a thread of its own pool, or a task on the Celery broker) leaves a row that the next
web process's recovery queues, and the job runs exactly once. In both queue modes.

The web process that dies is a real one: a child Python process uploads through the API and
exits (``os._exit``, as SIGKILL would leave it) right where the job was to be queued.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import QUEUE_MODES, make_app, wait_for_job
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import Detection, utcnow
from webapp.services.recovery import PUBLISHING, _holder_alive, recover_jobs

TESTS = Path(__file__).resolve().parent

#: The child: one upload through the API, then death instead of queueing its job.
CHILD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from conftest import QUEUE_MODES, make_app

    app = make_app(Path({tmp!r}), MODEL_DIR={model!r}, **QUEUE_MODES[{mode!r}])
    queue = app.extensions["detection_runner"]

    def crash(detection_id):  # the row is written; its job is never queued
        print("ROW", detection_id, flush=True)
        os._exit(17)

    queue.submit = crash
    with open({clip!r}, "rb") as fh:
        response = app.test_client().post("/api/v1/detections", data={{"file": (fh, "clip.mp4")}})
    print("NOT KILLED", response.status_code, response.get_data(as_text=True), flush=True)
    """
)


def upload_and_die(tmp_path: Path, model_dir: Path, clip: Path, mode: str) -> str:
    """Run the child; the id of the row it wrote before it died."""
    code = CHILD.format(
        tests=str(TESTS), tmp=str(tmp_path), model=str(model_dir), mode=mode, clip=str(clip)
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=TESTS.parent,
        env={**os.environ, "PYTHONPATH": str(TESTS.parent)},
    )
    assert out.returncode == 17, out.stdout + out.stderr[-3000:]
    return out.stdout.split("ROW ", 1)[1].split()[0]


@pytest.mark.parametrize("mode", list(QUEUE_MODES))
def test_a_web_process_killed_before_queueing_strands_no_job(
    tmp_path, model_dir, detector, files, mode
):
    det_id = upload_and_die(tmp_path, model_dir, files["clip"], mode)
    with sqlite3.connect(tmp_path / "test.sqlite") as conn:
        status, owner, attempts = conn.execute(
            "SELECT status, owner, attempts FROM detection WHERE id = ?", (det_id,)
        ).fetchone()
    assert status == "queued" and not attempts
    # Held by the dead process: its queue id, in celery mode marked "not yet published"
    assert owner.startswith(PUBLISHING) == (mode == "celery") and str(os.getpid()) not in owner
    # The next web process starts: its recovery queues the job.
    app = make_app(
        tmp_path, MODEL_DIR=str(model_dir), DETECTOR_LOADER=lambda _d: detector, **QUEUE_MODES[mode]
    )
    try:
        app.extensions["detection_runner"].start()  # at start-up, or by the first request
        det = wait_for_job(app, det_id, timeout=120)
        assert det.status == "done" and det.attempts == 1, det.error_message
        assert det.p_fake == detector.p_fake
        assert len(detector.calls) == 1
        # Exactly once: another look finds nothing left to do, and nothing runs again.
        with app.app_context():
            assert recover_jobs(app.extensions["detection_runner"]) == {"requeued": 0, "failed": 0}
        assert len(detector.calls) == 1
        results = Path(app.config["RESULTS_FOLDER"])
        assert [p.name for p in results.iterdir()] == [det_id]
        assert (results / det_id / "result.json").is_file()
    finally:
        app.extensions["detection_runner"].shutdown()


@pytest.mark.parametrize("mode", list(QUEUE_MODES))
def test_a_live_publisher_keeps_its_job(tmp_path, model_dir, detector, files, mode):
    """Recovery never takes a job whose publisher is alive: the row of a web process that is
    still between insert and publish (here: forever) is left to it."""
    app = make_app(
        tmp_path, MODEL_DIR=str(model_dir), DETECTOR_LOADER=lambda _d: detector, **QUEUE_MODES[mode]
    )
    queue = app.extensions["detection_runner"]
    held: list[str] = []
    real_submit = queue.submit
    queue.submit = held.append  # the job is not queued yet
    try:
        with open(files["photo_jpg"], "rb") as fh:
            response = app.test_client().post(
                "/api/v1/detections", data={"file": (fh, "photo.jpg")}
            )
        assert response.status_code == 202, response.get_data(as_text=True)
        assert held == [response.json["id"]]
        with app.app_context():
            assert recover_jobs(queue) == {"requeued": 0, "failed": 0}
            assert db.session.get(Detection, held[0]).status == "queued"
        assert detector.calls == []
        real_submit(held[0])  # now it is published (or run): once
        det = wait_for_job(app, held[0], timeout=60)
        assert det.status == "done" and det.attempts == 1 and len(detector.calls) == 1
        if mode == "celery":
            assert det.owner.startswith("celery:")  # the worker's claim
    finally:
        queue.shutdown()


def test_a_publisher_on_another_machine_gets_a_grace_period(tmp_path, model_dir):
    """A row written by a web process of another machine cannot be checked by its pid: it is
    taken over only after CELERY_PUBLISH_GRACE_SECONDS (publishing takes milliseconds)."""
    app = make_app(tmp_path, MODEL_DIR=str(model_dir), CELERY_PUBLISH_GRACE_SECONDS=60)
    other = f"{PUBLISHING}not-{socket.gethostname()}:4242:1234.abcd"
    mine_dead = f"{PUBLISHING}{socket.gethostname()}:999999999:1.abcd"
    with app.app_context():
        assert _holder_alive(other, utcnow() - timedelta(seconds=5))
        assert not _holder_alive(other, utcnow() - timedelta(seconds=61))
        assert not _holder_alive(mine_dead, utcnow())
        assert _holder_alive("celery", utcnow() - timedelta(days=1))  # the broker has it
        assert db.session.scalars(select(Detection)).all() == []
    app.extensions["detection_runner"].shutdown()
