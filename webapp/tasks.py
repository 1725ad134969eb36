"""The Celery worker's entry point: ``celery -A webapp.tasks worker`` (README "Scaling out").

Used when ``DETECTION_QUEUE=celery``: web processes queue the analysis task
(:mod:`webapp.services.celery_app`: the Celery app, its settings, the task) and never import
TensorFlow. Here each worker pool process builds the Flask app and loads the model, then
runs jobs one at a time.

The model loads in a background thread started when the pool process starts, never in
Celery's ``worker_process_init`` itself: Celery kills a pool process that has not reported
"up" within ``worker_proc_alive_timeout``, and loading TensorFlow and the model on a busy
machine can take far longer than that. A job that arrives meanwhile waits for the load
(:func:`flask_app`). When a pool process dies (killed, out of memory, a hard time limit),
its job goes back to the queue (``acks_late`` + ``reject_on_worker_lost``) and the worker
starts a replacement, which comes up at once and loads the model in the background again.

``FACEPROOF_TEST_MODEL_LOAD_DELAY`` (seconds, tests and benchmarks only) sleeps that long
before the load, to stand for a slow model load on a busy machine.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from celery import signals
from celery.worker.control import inspect_command
from flask import Flask

from .services.celery_app import (  # noqa: F401 - the worker finds the task through here
    analyze,
    celery,
    celery_settings,
    configure,
    environment_config,
    serve_with,
)

log = logging.getLogger(__name__)

configure(environment_config())

_app: Flask | None = None  # this pool process's Flask app, made by the warm-up thread
_ready = threading.Event()  # set once the app is made and the model loaded (or failed to)
_warmup: threading.Thread | None = None
_lock = threading.Lock()


def _warm_up() -> None:
    """Build this process's Flask app and load the default model (in the background)."""
    global _app
    try:
        from . import create_app
        from .extensions import db
        from .services.analysis import load_detector

        os.environ["FACEPROOF_CELERY_WORKER"] = "1"  # no start-up recovery: the broker's job
        app = create_app()
        with app.app_context():
            db.engine.dispose(close=False)  # never share a parent's connections after a fork
        _app = app
        delay = float(os.environ.get("FACEPROOF_TEST_MODEL_LOAD_DELAY") or 0)
        if delay > 0:  # test-only: a slow model load
            time.sleep(delay)
        started = time.monotonic()
        try:
            load_detector(app, None)
        except Exception:  # noqa: BLE001 - the job reports it, with its reason, on the row
            log.exception("Could not load the default model at worker start")
            return
        # Printed (the worker logs stdout): tests and benchmarks wait for it.
        print(
            f"faceproof: model loaded in worker process {os.getpid()} "
            f"({time.monotonic() - started:.1f} s)",
            flush=True,
        )
    except Exception:  # noqa: BLE001 - flask_app() makes the app again and raises
        log.exception("Worker process start-up failed")
    finally:
        _ready.set()


def start_warm_up() -> threading.Thread:
    """Start :func:`_warm_up` in a thread, once per process."""
    global _warmup
    with _lock:
        if _warmup is None:
            _warmup = threading.Thread(target=_warm_up, name="faceproof-warm-up", daemon=True)
            _warmup.start()
        return _warmup


def flask_app() -> Flask:
    """This pool process's Flask app, once it is made and the model has loaded (waits)."""
    start_warm_up()
    _ready.wait()
    if _app is None:  # the warm-up failed before the app existed: make it here, or raise
        from . import create_app

        os.environ["FACEPROOF_CELERY_WORKER"] = "1"
        return create_app()
    return _app


serve_with(flask_app)


@signals.worker_process_init.connect
def _start_loading(**_: Any) -> None:
    """Each pool process: start building the app and loading the model, and return at once
    (so the process reports "up" within Celery's liveness wait however slow the load)."""
    start_warm_up()


@inspect_command()
def faceproof_model(state, **_: Any) -> dict[str, Any]:
    """``celery -A webapp.tasks inspect faceproof_model``: this worker's default model version
    (for /healthz). Reads config.json only: the worker's main process makes no Flask app."""
    from .services.modelcard import model_info

    return {"model_version": model_info(environment_config()["MODEL_DIR"]).get("version")}
