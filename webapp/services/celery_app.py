"""The Celery side of the queue: the Celery app, its settings and its one task.

Web processes in celery mode publish :data:`analyze` (``webapp.services.jobs.CeleryQueue``);
``celery -A webapp.tasks worker`` processes run it. The worker's own start-up (building the
Flask app and loading the model in each pool process) is the entry point's business:
``webapp.tasks`` hands this module the app to run jobs in (:func:`serve_with`).

What :func:`celery_settings` guarantees:

- ``acks_late`` + ``reject_on_worker_lost``: the message is acknowledged after the job, so a
  worker killed mid-analysis gives the job back to the queue (at once when one pool process
  dies; after ``CELERY_VISIBILITY_TIMEOUT`` when the whole machine is lost);
- ``worker_prefetch_multiplier=1``: a worker holds no job it is not running;
- ``worker_proc_alive_timeout`` (CELERY_PROC_ALIVE_TIMEOUT): a replacement pool process on a
  busy machine gets time to start (the model loads after it has said it is up);
- soft and hard time limits per job; a bounded number of attempts (MAX_JOB_ATTEMPTS), then
  the row is "failed" with the reason; re-delivered jobs of finished rows do nothing
  (:func:`webapp.services.analysis.run_delivered_job`).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from celery import Celery
from flask import Config, Flask, current_app, has_app_context

from ..config import PROJECT_ROOT, DefaultConfig, load_environment
from .analysis import run_delivered_job

#: The task's name on the broker (kept from before the split, so queued jobs still run).
TASK_NAME = "faceproof.analyze"

celery = Celery("faceproof")
_serving: Callable[[], Flask] | None = None  # the worker process's app (see serve_with)


def celery_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """Celery's settings from the website's config."""
    hard = int(config["CELERY_TIME_LIMIT"])
    soft = min(int(config["CELERY_SOFT_TIME_LIMIT"]), hard)
    visibility = max(int(config["CELERY_VISIBILITY_TIMEOUT"]), hard + 10)
    return {
        "broker_url": config["CELERY_BROKER_URL"],
        "broker_transport_options": {
            "visibility_timeout": visibility,
            # How often a worker looks for jobs of vanished workers past the timeout.
            "unacked_restore_interval": int(config["CELERY_RESTORE_INTERVAL"]),
            "unacked_restore_throttle": 1,
        },
        "broker_connection_retry_on_startup": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_proc_alive_timeout": float(config.get("CELERY_PROC_ALIVE_TIMEOUT") or 60),
        "task_soft_time_limit": soft,
        "task_time_limit": hard,
        "task_ignore_result": True,  # the outcome is the row, not a result backend
        "task_default_queue": "faceproof",
        "task_always_eager": bool(config.get("CELERY_TASK_ALWAYS_EAGER")),
        "task_eager_propagates": True,
        "worker_hijack_root_logger": False,
    }


def configure(config: Mapping[str, Any]) -> None:
    """Apply the website's ``config`` (the factory's queue calls this in celery mode). A new
    broker drops the connections made for the old one (tests build apps with different
    brokers)."""
    settings = celery_settings(config)
    if celery.conf.broker_url != settings["broker_url"]:
        celery._after_fork()  # forgets the connection and producer pools
    celery.conf.update(settings)


def environment_config() -> Config:
    """The website's settings as a worker started from the command line sees them:
    ``instance/config.py``, the plain ``SQLALCHEMY_DATABASE_URI``, ``CELERY_BROKER_URL``,
    ``STORAGE_ROOT`` variables, then ``FLASK_*``."""
    instance = os.environ.get("DEEPFAKE_INSTANCE_PATH") or str(PROJECT_ROOT / "instance")
    config = Config(str(Path(instance).resolve()))
    config.from_object(DefaultConfig)
    load_environment(config)
    return config


def serve_with(app: Callable[[], Flask]) -> None:
    """Run this process's jobs in the Flask app ``app()`` returns (the worker's entry point
    calls this; ``app()`` may wait until the app and its model are ready)."""
    global _serving
    _serving = app


def job_app() -> Flask:
    """The Flask app to run a job in: the current one (eager mode, tests), else the one the
    worker's entry point gave :func:`serve_with`."""
    if has_app_context():
        return current_app._get_current_object()
    if _serving is None:
        raise RuntimeError("Start workers with `celery -A webapp.tasks worker` (README).")
    return _serving()


@celery.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True)
def analyze(self, detection_id: str) -> str:
    """Analyse one detection row (idempotent; see the module's docstring)."""
    worker = f"celery:{self.request.hostname or socket.gethostname()}:{os.getpid()}"
    return run_delivered_job(job_app(), detection_id, f"{worker}:{uuid.uuid4().hex[:8]}")
