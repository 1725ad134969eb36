"""Analysis in Celery workers: ``celery -A webapp.tasks worker`` (see README "Scaling out").

Used when ``DETECTION_QUEUE=celery``: web processes queue :func:`analyze` with the row's id
and never import TensorFlow; each worker process builds the Flask app and loads the model
once, when it starts, then runs jobs one at a time.

Settings come from the same places as the website's (``instance/config.py``, the plain
``SQLALCHEMY_DATABASE_URI``, ``CELERY_BROKER_URL``, ``STORAGE_ROOT`` variables, then
``FLASK_*``); :func:`celery_settings` turns them into Celery's. What they guarantee:

- ``acks_late`` + ``reject_on_worker_lost``: the message is acknowledged after the job, so a
  worker killed mid-analysis gives the job back to the queue (at once when one pool process
  dies; after ``CELERY_VISIBILITY_TIMEOUT`` when the whole machine is lost);
- ``worker_prefetch_multiplier=1``: a worker holds no job it is not running;
- soft and hard time limits per job; a bounded number of attempts (MAX_JOB_ATTEMPTS), then
  the row is "failed" with the reason; re-delivered jobs of finished rows do nothing
  (:func:`webapp.services.analysis.run_delivered_job`).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from celery import Celery, signals
from celery.worker.control import inspect_command

log = logging.getLogger(__name__)

celery = Celery("faceproof")
_app = None  # this worker process's Flask app (made on first use)


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
        "task_soft_time_limit": soft,
        "task_time_limit": hard,
        "task_ignore_result": True,  # the outcome is the row, not a result backend
        "task_default_queue": "faceproof",
        "task_always_eager": bool(config.get("CELERY_TASK_ALWAYS_EAGER")),
        "task_eager_propagates": True,
        "worker_hijack_root_logger": False,
    }


def configure(config: Mapping[str, Any]) -> None:
    """Apply the website's ``config`` (the factory calls this in celery mode). A new broker
    drops the connections made for the old one (tests build apps with different brokers)."""
    settings = celery_settings(config)
    if celery.conf.broker_url != settings["broker_url"]:
        celery._after_fork()  # forgets the connection and producer pools
    celery.conf.update(settings)


def _environment_config() -> Mapping[str, Any]:
    """The website's settings as a worker started from the command line sees them."""
    from flask import Config

    from .config import PROJECT_ROOT, DefaultConfig, load_environment

    instance = os.environ.get("DEEPFAKE_INSTANCE_PATH") or str(PROJECT_ROOT / "instance")
    config = Config(str(Path(instance).resolve()))
    config.from_object(DefaultConfig)
    load_environment(config)
    return config


configure(_environment_config())


def flask_app():
    """The Flask app to run a job in: the current one (eager mode, tests), else this worker
    process's own, made once."""
    global _app
    from flask import current_app, has_app_context

    if has_app_context():
        return current_app._get_current_object()
    if _app is None:
        from . import create_app

        os.environ["FACEPROOF_CELERY_WORKER"] = "1"  # no start-up recovery: the broker's job
        _app = create_app()
    return _app


@signals.worker_process_init.connect
def _load_model_once(**_: Any) -> None:
    """Each pool process: build the app and load the default model before the first job."""
    from .extensions import db
    from .services.analysis import load_detector

    app = flask_app()
    with app.app_context():
        db.engine.dispose(close=False)  # never share a parent's connections after a fork
    try:
        load_detector(app, None)
    except Exception:  # noqa: BLE001 - the job reports it, with its reason, on the row
        log.exception("Could not load the default model at worker start")
        return
    # Printed (the worker logs stdout): tests and benchmarks wait for it.
    print(f"faceproof: model loaded in worker process {os.getpid()}", flush=True)


@celery.task(name="faceproof.analyze", bind=True, acks_late=True, reject_on_worker_lost=True)
def analyze(self, detection_id: str) -> str:
    """Analyse one detection row (idempotent; see the module's docstring)."""
    from .services.analysis import run_delivered_job

    worker = f"celery:{self.request.hostname or socket.gethostname()}:{os.getpid()}"
    return run_delivered_job(flask_app(), detection_id, f"{worker}:{uuid.uuid4().hex[:8]}")


@inspect_command()
def faceproof_model(state, **_: Any) -> dict[str, Any]:
    """``celery -A webapp.tasks inspect faceproof_model``: this worker's default model version
    (for /healthz). Reads config.json only: the worker's main process makes no Flask app."""
    from .services.modelcard import model_info

    return {"model_version": model_info(_environment_config()["MODEL_DIR"]).get("version")}
