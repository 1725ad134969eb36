"""One analysis job: claim the row, run the engine, write the artefacts and the row."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from flask import Flask
from PIL import Image
from sqlalchemy import func, update
from werkzeug.utils import import_string

from ..detection.errors import DetectionError
from ..detection.provenance import read_provenance
from ..extensions import db
from ..models import Detection, utcnow
from .database import _set_values, retry_locked
from .downloads import download_link
from .modelcard import model_folder
from .presenters import PENDING, STAGE_ALIASES, iso, overall_progress
from .storage import (
    RESULT_STORAGE_MESSAGE,
    _discard_artefacts,
    is_storage_error,
    purge_expired,
    result_dir,
    upload_path,
)

log = logging.getLogger(__name__)


class _ProgressWriter:
    """Writes (stage, progress) to the row, at most every ``interval`` seconds or on a new
    stage. Uses its own connection, so the engine may call it from any thread; never raises."""

    def __init__(self, app: Flask, detection_id: str, interval: float):
        self.engine = db.engine
        self.app = app
        self.id = detection_id
        self.interval = interval
        self.stage = ""
        self.value = 0.0
        self.last_write = 0.0
        self.lock = threading.Lock()

    def __call__(self, stage: str, fraction: float) -> None:
        try:
            stage = STAGE_ALIASES.get(str(stage), str(stage))[:16]
            value = max(self.value, overall_progress(stage, float(fraction)))
            now = time.monotonic()
            with self.lock:
                if stage == self.stage and now - self.last_write < self.interval:
                    self.value = value
                    return
                self.stage, self.value, self.last_write = stage, value, now
                with self.engine.begin() as conn:
                    conn.execute(
                        update(Detection)
                        .where(Detection.id == self.id)
                        .values(stage=stage, progress=value)
                    )
        except Exception:  # noqa: BLE001 - progress is cosmetic; never break an analysis
            self.app.logger.warning("Could not record progress of %s", self.id, exc_info=True)


def load_detector(app: Flask, version: str | None = None):
    """The engine's Detector for ``version`` of the registry at MODEL_DIR (None: its default).
    Imports TensorFlow on first use; the engine keeps recently used models loaded.

    Only a version of the registry is accepted here, never a path: the version may come from
    a request. A version no longer in the registry raises ``UnknownModelError``.
    """
    loader = app.config["DETECTOR_LOADER"]
    if isinstance(loader, str):
        loader = import_string(loader.replace(":", "."))
    return loader(model_folder(version, app.config["MODEL_DIR"]))


def run_job(app: Flask, detection_id: str, runner_id: str) -> None:
    """Analyse one queued detection of this process's thread pool. Catches everything."""
    with app.app_context():
        if not retry_locked(lambda: _claim(detection_id, runner_id)):
            return  # not queued, or another process's job
        _analyse(app, detection_id, runner_id)


def run_delivered_job(app: Flask, detection_id: str, worker_id: str) -> str:
    """Analyse a detection delivered by the task queue (Celery) to ``worker_id``.

    Idempotent: a row already done or failed (a re-delivered message) is left alone. A row
    still "running" is a re-delivery after its worker died: it runs again, unless it has
    already been tried MAX_JOB_ATTEMPTS times, then it is marked failed with the reason.
    Returns what happened: "done" (analysed; the row says how it went), "finished" (nothing
    to do), "gave_up" or "missing".
    """
    with app.app_context():
        max_attempts = int(app.config["MAX_JOB_ATTEMPTS"])
        outcome = retry_locked(lambda: _claim_delivery(detection_id, worker_id, max_attempts))
        if outcome != "claimed":
            det = db.session.get(Detection, detection_id)
            path = upload_path(det) if det is not None and outcome == "gave_up" else None
            if path is not None and not app.config["KEEP_UPLOADS"]:
                path.unlink(missing_ok=True)
            db.session.remove()
            return outcome
        _analyse(app, detection_id, worker_id)
        return "done"


def _claim_delivery(detection_id: str, worker_id: str, max_attempts: int) -> str:
    row = db.session.get(Detection, detection_id)
    if row is None:
        return "missing"
    db.session.refresh(row)
    if row.status not in PENDING:
        return "finished"
    attempts = row.attempts or 0
    same = update(Detection).where(
        Detection.id == detection_id,
        Detection.status == row.status,
        Detection.attempts == row.attempts,
    )
    if row.status == "running" and attempts >= max_attempts:
        times = "once" if attempts == 1 else f"{attempts} times"
        res = db.session.execute(
            same.values(
                status="failed",
                stage="failed",
                error_code="interrupted",
                error_message=(
                    f"The analysis was interrupted {times} (the analysis server stopped while "
                    "working on it), so it was given up. The file may be too demanding; try a "
                    "shorter clip."
                ),
                finished_at=utcnow(),
            )
        )
        db.session.commit()
        return "gave_up" if res.rowcount else "finished"
    res = db.session.execute(
        same.values(
            owner=worker_id,
            status="running",
            stage="load",
            progress=0.0,
            attempts=attempts + 1,
            started_at=utcnow(),
            error_code=None,
            error_message=None,
        )
    )
    db.session.commit()
    return "claimed" if res.rowcount else "finished"


def _is_timeout(err: BaseException) -> bool:
    """Celery's soft time limit (raised inside the task), without importing Celery here."""
    return type(err).__name__ == "SoftTimeLimitExceeded"


def _analyse(app: Flask, detection_id: str, claim: str) -> None:
    """Run the engine on a claimed row (``owner == claim``) and store the outcome."""
    det = db.session.get(Detection, detection_id)
    if det is None:
        db.session.remove()
        return
    path = upload_path(det)
    started = time.monotonic()
    try:
        if det.awaiting_download:  # a link: fetch its file first (services/downloads.py)
            interval = float(app.config["PROGRESS_INTERVAL_SECONDS"])
            path = download_link(app.config, det, _ProgressWriter(app, detection_id, interval))
            started = time.monotonic()
        if path is None or not path.is_file():
            raise DetectionError(
                "The uploaded file is no longer available. Please upload it again."
            )
        report = _ProgressWriter(app, detection_id, float(app.config["PROGRESS_INTERVAL_SECONDS"]))
        report("load", 0.0)
        detector = load_detector(app, det.model_version)  # the model named at upload
        analysis = detector.analyze(
            str(path),
            progress=report,
            max_duration=float(app.config["MAX_DURATION_SECONDS"]),
            max_pixels=int(app.config["MAX_PIXELS"]),
        )
        # what the file says about itself: shown beside the verdict, never fed into it
        provenance = read_provenance(
            path, det.media_type, app.config.get("PROVENANCE_TRUST_ANCHORS")
        )
        report("save", 0.0)
        _finish(det, analysis, time.monotonic() - started, claim, provenance)
    except DetectionError as err:
        _fail(detection_id, err.code, str(err), claim)
    except Exception as err:
        if _is_timeout(err):
            _discard_artefacts(detection_id)
            limit = app.config.get("CELERY_SOFT_TIME_LIMIT")
            _fail(
                detection_id,
                "timeout",
                f"The analysis took longer than this server allows ({limit} s) and was "
                "stopped. Try a shorter clip or a smaller file.",
                claim,
            )
        elif is_storage_error(err):
            app.logger.error(
                "Result of %s not saved: storage full or not writable (%s)", detection_id, err
            )
            _discard_artefacts(detection_id)
            _fail(detection_id, "storage_error", RESULT_STORAGE_MESSAGE, claim)
        else:
            app.logger.exception("Analysis of detection %s failed", detection_id)
            _fail(
                detection_id,
                "internal_error",
                "Something went wrong inside the detector. The error has been logged; "
                "please try again later.",
                claim,
            )
    finally:
        if not app.config["KEEP_UPLOADS"] and path is not None:
            path.unlink(missing_ok=True)
            with contextlib.suppress(Exception):
                retry_locked(lambda: _set_values(detection_id, upload_name=None))
        with contextlib.suppress(Exception):
            purge_expired()
        db.session.remove()


def _claim(detection_id: str, runner_id: str) -> bool:
    """Mark a queued job of this runner as running (a compare-and-set). False: not ours."""
    res = db.session.execute(
        update(Detection)
        .where(
            Detection.id == detection_id,
            Detection.status == "queued",
            Detection.owner == runner_id,
        )
        .values(
            status="running",
            stage="load",
            progress=0.0,
            attempts=func.coalesce(Detection.attempts, 0) + 1,
            started_at=utcnow(),
            error_code=None,
            error_message=None,
        )
    )
    db.session.commit()
    return bool(res.rowcount)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finish(
    det: Detection, analysis, seconds: float, claim: str | None = None, provenance=None
) -> None:
    """Write artefacts and result.json, then the row. A deleted row discards the result.

    An OSError while writing (a full disk) propagates after removing what was written, so
    no half-written result is ever shown.
    """
    det_id = det.id
    rdir = result_dir(det_id)
    try:
        _write_artefacts(det, analysis, seconds, rdir, provenance)
    except BaseException:
        _discard_artefacts(det_id)
        raise
    media = analysis.media
    values = dict(
        status="done",
        stage="done",
        progress=1.0,
        verdict=analysis.verdict,
        p_fake=None if analysis.p_fake is None else float(analysis.p_fake),
        model_version=str(analysis.model_version or det.model_version or ""),
        frames_sampled=int(analysis.frames_sampled),
        faces_found=int(analysis.faces_found),
        n_tracks=len(analysis.tracks),
        width=int(media.width),
        height=int(media.height),
        duration=float(media.duration),
        fps=float(media.fps),
        frame_count=int(media.frame_count),
        processing_seconds=round(seconds, 3),
        finished_at=utcnow(),
    )
    if not retry_locked(lambda: _set_values(det_id, owner=claim, **values)):
        if db.session.get(Detection, det_id) is None:  # deleted while running
            shutil.rmtree(rdir, ignore_errors=True)
        return  # or another worker took the job over: its result counts
    if not (rdir / "result.json").is_file():  # deleted between the write and the commit
        row = db.session.get(Detection, det_id)
        if row is not None:
            db.session.delete(row)
            db.session.commit()


def _write_artefacts(
    det: Detection, analysis, seconds: float, rdir: Path, provenance=None
) -> None:
    """Chips, Grad-CAM overlays, then result.json (atomically, last); ``provenance`` (what
    the file says about itself, ``detection.provenance``) is stored beside the result."""
    det_id = det.id
    (rdir / "chips").mkdir(parents=True, exist_ok=True)
    data = analysis.to_dict()
    data.pop("path", None)
    chips_out = data.get("chips", [])
    for i, chip in enumerate(analysis.chips):
        image_name = f"chips/{i:03d}.jpg"
        Image.fromarray(np.ascontiguousarray(chip.image)).convert("RGB").save(
            rdir / image_name, "JPEG", quality=90
        )
        heat_name = None
        if chip.heatmap is not None:
            (rdir / "heatmaps").mkdir(exist_ok=True)
            heat_name = f"heatmaps/{i:03d}.jpg"
            Image.fromarray(np.ascontiguousarray(chip.heatmap)).convert("RGB").save(
                rdir / heat_name, "JPEG", quality=90
            )
        if i < len(chips_out):
            chips_out[i]["image"] = image_name
            chips_out[i]["heatmap"] = heat_name
    data["detection"] = {
        "id": det_id,
        "filename": det.filename,
        "source_url": det.source_url,
        "sha256": det.sha256,
        "size_bytes": det.size_bytes,
        "created_at": iso(det.created_at),
    }
    data["processing_seconds"] = round(seconds, 3)
    if provenance is not None:
        data["provenance"] = provenance
    tmp = rdir / "result.json.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, default=_json_default, indent=1))
        fh.flush()
        os.fsync(fh.fileno())  # a full disk shows here, not after the rename
    os.replace(tmp, rdir / "result.json")


def _fail(detection_id: str, code: str, message: str, claim: str | None = None) -> None:
    """Mark the job failed with a reason. If even that cannot be written (the database's disk
    is full), log it: the job stays "running" until the next start-up's recovery fails it."""
    db.session.rollback()
    try:
        retry_locked(
            lambda: _set_values(
                detection_id,
                owner=claim,
                status="failed",
                stage="failed",
                error_code=code[:32],
                error_message=message,
                finished_at=utcnow(),
            )
        )
    except Exception:  # noqa: BLE001 - nothing better to do than to log it
        log.exception("Could not mark detection %s failed (%s)", detection_id, code)
