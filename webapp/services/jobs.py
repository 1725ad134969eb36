"""The queue interface: a thread pool in the web process (default) or Celery."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor

from flask import Flask, current_app
from sqlalchemy import select, update

from ..extensions import db
from ..models import Detection
from .analysis import _fail, run_job
from .database import _execute_commit, retry_locked, startup_lock
from .recovery import (
    _LIVE_RUNNERS,
    CELERY_OWNER,
    PUBLISHING,
    _start_ticks,
    fail_stale_jobs,
    recover_jobs,
    sweep_orphans,
)
from .storage import purge_expired

log = logging.getLogger(__name__)


def process_id() -> str:
    """A new id for a queue of this process: ``host:pid:<process start time>.<random>`` (the
    start time tells a recycled pid apart; crash recovery checks whether it is alive)."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or 0}.{uuid.uuid4().hex[:8]}"


def runner() -> JobRunner:
    """This app's queue (a :class:`JobRunner` or a :class:`CeleryQueue`)."""
    return current_app.extensions["detection_runner"]


def make_queue(app: Flask) -> JobRunner:
    """The queue DETECTION_QUEUE names: "threads" (default) or "celery"."""
    kind = str(app.config.get("DETECTION_QUEUE") or "threads").lower()
    if kind == "celery":
        return CeleryQueue(app)
    if kind != "threads":
        raise ValueError(f"DETECTION_QUEUE must be 'threads' or 'celery', not {kind!r}")
    return JobRunner(app)


class JobRunner:
    """A thread pool inside the app that runs the engine on queued detections.

    The detector is loaded once per process by the engine's loader (it caches). Each job
    gets its own app context and database session.
    """

    def __init__(self, app: Flask):
        self.app = app
        self.id = process_id()
        self.executor = ThreadPoolExecutor(
            max_workers=max(1, int(app.config["DETECTION_WORKERS"])), thread_name_prefix="detection"
        )
        self._futures: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.started = False
        _LIVE_RUNNERS.add(self.id)

    def start(self) -> None:
        """Take over jobs a crashed process left behind and purge expired results. Once.

        Called at start-up of a serving process, else by the first request. Then, every
        RECOVERY_INTERVAL_SECONDS, looks again: a process killed a moment ago may still have
        been visible (exiting, or a zombie not yet reaped) at start-up, and a sibling worker
        may die at any time.
        """
        with self._lock:
            if self.started:
                return
            self.started = True
        with self.app.app_context(), startup_lock(self.app.instance_path):
            self._recover()
            purge_expired()
            sweep_orphans()
        interval = float(self.app.config.get("RECOVERY_INTERVAL_SECONDS") or 0)
        if interval > 0:
            threading.Thread(
                target=self._watch, args=(interval,), name="job-recovery", daemon=True
            ).start()

    def _watch(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                with self.app.app_context(), startup_lock(self.app.instance_path):
                    self._recover()
                    db.session.remove()
            except Exception:  # noqa: BLE001 - try again next time
                log.warning("Periodic job recovery failed", exc_info=True)

    def _recover(self) -> None:
        recover_jobs(self)

    def submit(self, detection_id: str) -> Future:
        future = self.executor.submit(run_job, self.app, detection_id, self.id)
        with self._lock:
            self._futures[detection_id] = future
        return future

    def wait(self, detection_id: str, timeout: float | None = None) -> None:
        """Block until the job has finished in this process (tests use this)."""
        with self._lock:
            future = self._futures.get(detection_id)
        if future is not None:
            future.result(timeout=timeout)

    def shutdown(self, wait: bool = True) -> None:
        self._stop.set()
        self.executor.shutdown(wait=wait, cancel_futures=True)
        _LIVE_RUNNERS.discard(self.id)


class CeleryQueue(JobRunner):
    """Jobs go to the Celery broker; ``celery -A webapp.tasks worker`` processes, on this
    machine or others, run them (:data:`webapp.services.celery_app.analyze`). Nothing here
    imports TensorFlow. The broker, not this process, re-delivers the job of a worker that
    died. Start-up and the periodic check still sweep orphaned files, take over jobs a
    thread-mode process left behind and fail jobs stuck past every limit.

    Publishing survives a crash: a new row's owner is ``publish:<this process>`` (``id``)
    until its task is on the broker, then ``celery``. A row whose publisher died before
    publishing is published again by the next web process's recovery (see
    :func:`webapp.services.recovery.recover_jobs`), the same compare-and-set on the owner
    deciding who does it; the worker's claim makes a second delivery of a job that has
    already run do nothing.
    """

    def __init__(self, app: Flask):
        from . import celery_app

        self.app = app
        self.id = PUBLISHING + process_id()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.started = False
        celery_app.configure(app.config)
        _LIVE_RUNNERS.add(self.id)

    def _recover(self) -> None:
        recover_jobs(self)
        fail_stale_jobs()

    def submit(self, detection_id: str) -> None:
        """Publish the job of a row this queue owns, then mark it published (owner
        ``celery``). When the broker cannot be reached, the row fails with the reason."""
        from .celery_app import analyze

        with self.app.app_context():
            try:
                analyze.apply_async(args=[detection_id])
            except Exception:  # noqa: BLE001 - the broker is down: say so on the row
                log.exception("Could not queue detection %s", detection_id)
                _fail(
                    detection_id,
                    "queue_unavailable",
                    "The analysis queue of this server is not reachable, so the file could "
                    "not be queued. Please try again later.",
                )
                return
            retry_locked(
                lambda: _execute_commit(
                    update(Detection)
                    .where(Detection.id == detection_id, Detection.owner == self.id)
                    .values(owner=CELERY_OWNER)
                )
            )

    def wait(self, detection_id: str, timeout: float | None = None) -> None:
        """Block until the row is done or failed (tests use this)."""
        deadline = time.monotonic() + (timeout if timeout is not None else 3600)
        with self.app.app_context():
            try:
                while time.monotonic() < deadline:
                    status = db.session.scalar(
                        select(Detection.status).where(Detection.id == detection_id)
                    )
                    if status is None or status in ("done", "failed"):
                        return
                    db.session.rollback()
                    time.sleep(0.1)
            finally:
                db.session.remove()
        raise TimeoutError(f"detection {detection_id} not finished after {timeout} s")

    def shutdown(self, wait: bool = True) -> None:
        self._stop.set()
        _LIVE_RUNNERS.discard(self.id)
