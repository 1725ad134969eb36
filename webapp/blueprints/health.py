"""``/healthz`` for load balancers and monitoring: JSON, 200 when the site can take and
analyse uploads, 503 (with what is wrong) when it cannot.

Checks the database (a query), the storage root (a file written and removed in the uploads
and results folders), in Celery mode the broker (a connection) and the workers that answer
(each with its model version; none answering is reported, but the site still takes
uploads: they wait in the queue). Reads no model weights: the web process of a scaled-out
deployment never imports TensorFlow.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, jsonify
from sqlalchemy import func, select, text

from ..extensions import db
from ..models import Detection
from ..services import modelcard

bp = Blueprint("health", __name__)


def _check(fn) -> dict[str, Any]:
    started = time.monotonic()
    try:
        detail = fn() or {}
        ok = True
    except Exception as err:  # noqa: BLE001 - a health check reports, it does not raise
        detail, ok = {"error": _describe(err)}, False
    return {"ok": ok, "ms": round((time.monotonic() - started) * 1000, 1), **detail}


def _describe(err: BaseException) -> str:
    """The error's kind and message, without file paths (OSError) or SQL."""
    if isinstance(err, OSError) and err.strerror:
        return f"{type(err).__name__}: {err.strerror}"
    first = str(getattr(err, "orig", None) or err).strip().splitlines()
    return f"{type(err).__name__}: {first[0] if first else ''}"[:200]


def _database() -> dict[str, Any]:
    db.session.execute(text("SELECT 1"))
    queued = db.session.scalar(
        select(func.count()).select_from(Detection).where(Detection.status == "queued")
    )
    return {"dialect": db.engine.dialect.name, "queued": int(queued or 0)}


def _storage() -> dict[str, Any]:
    cfg = current_app.config
    for key in ("UPLOAD_FOLDER", "RESULTS_FOLDER"):
        probe = Path(cfg[key]) / f".healthz-{uuid.uuid4().hex}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"ok")
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)
    return {}


def _broker() -> dict[str, Any]:
    from ..services.celery_app import celery

    with celery.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return {}


def _workers() -> dict[str, Any]:
    from ..services.celery_app import celery

    replies = celery.control.broadcast("faceproof_model", reply=True, timeout=1.0) or []
    workers = {name: info for reply in replies for name, info in reply.items()}
    return {"count": len(workers), "workers": workers}


@bp.get("/healthz")
def healthz():
    cfg = current_app.config
    celery_mode = str(cfg.get("DETECTION_QUEUE")).lower() == "celery"
    checks = {"database": _check(_database), "storage": _check(_storage)}
    if celery_mode:
        checks["broker"] = _check(_broker)
        if checks["broker"]["ok"]:
            checks["workers"] = _check(_workers)
            checks["workers"]["ok"] = True  # informative: jobs wait in the queue meanwhile
    db.session.rollback()
    versions = modelcard.installed_versions()
    healthy = all(c["ok"] for c in checks.values())
    body = {
        "status": "ok" if healthy else "unavailable",
        "queue": "celery" if celery_mode else "threads",
        "model_version": modelcard.current_model_version(),
        "model_versions": versions,
        "checks": checks,
    }
    response = jsonify(body)
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    return response
