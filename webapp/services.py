"""The seam between the website and the engine: save the upload, queue a job, run the engine
in a background thread, write the row and the artefacts.

Views call :func:`create_detection`, :func:`delete_detection` and the readers below; they
never touch TensorFlow. The engine (``webapp.detection``) never touches the database: the
worker here turns its :class:`~webapp.detection.result.Analysis` into a row and files.

Files, all under the instance folder:

- ``uploads/<id>.<ext>``: the uploaded original, under a random name; deleted after analysis
  unless ``KEEP_UPLOADS``.
- ``results/<id>/thumb.jpg``: a small frame for the history page (made at upload).
- ``results/<id>/chips/NNN.jpg`` and ``heatmaps/NNN.jpg``: the scored face chips and their
  Grad-CAM overlays; ``results/<id>/result.json``: the full result (written last).

Every file belongs to a row: an upload that fails leaves nothing, a crash mid-upload leaves
orphans that the next start-up sweeps (:func:`sweep_orphans`), and a full or unwritable disk
is a clear error (see :func:`is_storage_error`), never a half-written result.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import hashlib
import io
import json
import logging
import math
import os
import random
import shutil
import socket
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np
from flask import Flask, current_app, url_for
from PIL import Image, ImageOps
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from werkzeug.datastructures import FileStorage
from werkzeug.utils import import_string

from .config import ALLOWED_EXTENSIONS
from .detection import registry
from .detection.errors import DetectionError, ModelNotFoundError
from .extensions import db
from .models import VERDICT_LABELS, Detection, as_utc, new_id, utcnow

log = logging.getLogger(__name__)

PENDING = ("queued", "running")
THUMB_SIZE = (480, 480)
CHUNK = 1024 * 1024

#: Where each engine stage sits on the overall progress bar: (start, end) fractions. The
#: engine reports (stage, fraction within that stage); face detection is the slow part.
STAGE_SPAN = {
    "queued": (0.0, 0.0),
    "load": (0.0, 0.03),
    "decode": (0.03, 0.20),
    "detect": (0.20, 0.60),
    "align": (0.60, 0.65),
    "features": (0.65, 0.85),
    "classify": (0.85, 0.88),
    "explain": (0.88, 0.97),
    "save": (0.97, 1.0),
}
#: Engine stage names shown under another name ("done" still has the saving to do).
STAGE_ALIASES = {"done": "save"}


class UploadRejected(Exception):
    """The upload cannot be analysed. ``str(err)`` is shown to the user."""

    def __init__(self, message: str, code: str = "invalid_upload", status: int = 400):
        super().__init__(message)
        self.code = code
        self.status = status


#: OS errors that mean "the disk is full or the instance folder is not writable".
STORAGE_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EFBIG,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
}
STORAGE_MESSAGE = (
    "The server could not store this file: its storage is full or not writable. Nothing was "
    "saved. Please try again later; if it keeps happening, tell the site's administrator."
)
RESULT_STORAGE_MESSAGE = (
    "The analysis finished but its result could not be saved: the server's storage is full or "
    "not writable. Nothing half-written was kept. Please try again later."
)


def is_storage_error(err: BaseException) -> bool:
    """A full disk or an unwritable folder (OSError), or SQLite saying its disk is full."""
    if isinstance(err, OSError):
        return err.errno in STORAGE_ERRNOS
    if isinstance(err, OperationalError):
        text = str(err.orig if err.orig is not None else err).lower()
        return "disk is full" in text or "readonly database" in text
    return False


def storage_rejection() -> UploadRejected:
    return UploadRejected(STORAGE_MESSAGE, "storage_error", 507)


BUSY_MESSAGE = (
    "The server is too busy to take this right now and nothing was saved. Please try again "
    "in a minute."
)


T = TypeVar("T")


def is_locked_error(err: BaseException) -> bool:
    text = str(getattr(err, "orig", None) or err).lower()
    return isinstance(err, OperationalError) and ("locked" in text or "busy" in text)


def retry_locked(action: Callable[[], T], attempts: int = 5) -> T:
    """Run ``action`` (a database write ending in a commit), retrying when SQLite says
    "database is locked" even after its busy timeout. ``action`` must be repeatable: the
    session is rolled back between attempts, which forgets pending changes."""
    for attempt in range(attempts):
        try:
            return action()
        except OperationalError as err:
            db.session.rollback()
            if not is_locked_error(err) or attempt == attempts - 1:
                raise
            log.warning("Database locked; retrying (%d/%d)", attempt + 1, attempts - 1)
            time.sleep(0.05 * 2**attempt + random.random() * 0.05)
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- paths


def upload_folder() -> Path:
    return Path(current_app.config["UPLOAD_FOLDER"])


def results_folder() -> Path:
    return Path(current_app.config["RESULTS_FOLDER"])


def result_dir(detection_id: str) -> Path:
    return results_folder() / detection_id


def upload_path(det: Detection) -> Path | None:
    return upload_folder() / det.upload_name if det.upload_name else None


# --------------------------------------------------------------------------- model info


_model_info_cache: dict[str, tuple[float, dict[str, Any]]] = {}


def default_model_dir(model_dir: str | Path | None = None) -> Path:
    """The folder of the registry's default model (MODEL_DIR may also be one model folder)."""
    root = Path(model_dir or current_app.config["MODEL_DIR"])
    try:
        return registry.Registry(root).default.path
    except ModelNotFoundError:
        return root


def model_info(model_dir: str | Path | None = None) -> dict[str, Any]:
    """The default model's ``config.json`` as a dict (``{}`` if absent or unreadable). No TensorFlow."""
    path = default_model_dir(model_dir) / "config.json"
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return {}
    cached = _model_info_cache.get(str(path))
    if cached and cached[0] == mtime:
        return cached[1]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("Unreadable model config %s", path)
        data = {}
    if not isinstance(data, dict):
        data = {}
    _model_info_cache[str(path)] = (mtime, data)
    return data


def current_model_version() -> str | None:
    version = model_info().get("version")
    return str(version) if version is not None else None


def model_card_text() -> str | None:
    path = default_model_dir() / "MODEL_CARD.md"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


_ACRONYMS = {
    "auc",
    "dfdc",
    "eer",
    "ap",
    "tpr",
    "fpr",
    "ece",
    "roc",
    "c23",
    "c40",
    "hq",
    "lq",
    "f1",
    "mae",
    "lstm",
    "cnn",
    "sbi",
}
_WORDS = {"val": "validation", "acc": "accuracy", "n": "", "num": "", "celebdf": "Celeb-DF",
          "ffpp": "FaceForensics++"}

#: Columns shown for each evaluated set, in this order, when config.json has them.
METRIC_COLUMNS = [
    ("n", "Items"),
    ("n_fake", "Fakes"),
    ("auc", "AUC"),
    ("balanced_accuracy", "Balanced accuracy"),
    ("accuracy", "Accuracy"),
    ("false_alarm_rate", "False alarms"),
    ("ece", "Calibration error"),
    ("fakes_called_fake", "Fakes called “likely fake”"),
    ("reals_called_fake", "Reals called “likely fake”"),
]
#: Which block of ``metrics`` to show, most honest first.
METRIC_SPLITS = [
    ("analyze", "the same analysis as an upload, on generator methods it never trained on and held-out test data"),
    ("test", "held-out test data"),
    ("val", "validation data"),
    ("validation", "validation data"),
]


def humanize(name: Any) -> str:
    """``dfdc_val`` -> "DFDC validation", ``clips_lstm`` -> "Clips LSTM", ``auc`` -> "AUC"."""
    words = []
    for word in str(name).replace("-", "_").split("_"):
        low = word.lower()
        if low in _ACRONYMS:
            words.append(word.upper())
        elif low in _WORDS:
            if _WORDS[low]:
                words.append(_WORDS[low])
        elif word:
            words.append(word)
    text = " ".join(words) or str(name)
    return text[0].upper() + text[1:] if not text[0].isupper() else text


def _fmt_metric(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3f}" if math.isfinite(value) else "–"
    return str(value)


def metrics_table(info: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The model's measured accuracy from config.json, as a table, or None if it has none.

    Prefers ``metrics["test"]`` (held out), then ``metrics["val"]``: each a mapping of
    evaluated set -> numbers. Also accepts ``{"set": {"auc": ...}}`` or a flat ``{"auc": ...}``.
    Returns ``{"split": str, "columns": [label], "rows": [{"name": str, "cells": [str]}]}``.
    """
    info = model_info() if info is None else info
    metrics = info.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        return None
    sets: dict[str, dict[str, Any]] = {}
    split = "validation data"
    for key, label in METRIC_SPLITS:
        block = metrics.get(key)
        if isinstance(block, dict):
            sets = {k: v for k, v in block.items() if isinstance(v, dict)}
            if sets:
                split = label
                break
    if not sets:
        nested = {k: v for k, v in metrics.items() if isinstance(v, dict)}
        scalars = {
            k: v
            for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        sets = nested if nested and not scalars else ({"validation": scalars} if scalars else {})
    if not sets:
        return None
    keys = [
        (k, label)
        for k, label in METRIC_COLUMNS
        if any(d.get(k) is not None for d in sets.values())
    ]
    if not keys:  # unknown names: show every number of the first set
        first = next(iter(sets.values()))
        keys = [
            (k, humanize(k))
            for k, v in first.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        ]
    if not keys:
        return None
    return {
        "split": split,
        "columns": [label for _, label in keys],
        "rows": [
            {"name": humanize(name), "cells": [_fmt_metric(d.get(k)) for k, _ in keys]}
            for name, d in sets.items()
        ],
    }


# --------------------------------------------------------------------------- upload


def clean_filename(name: str | None) -> str:
    """The client's file name, for display only: last path part, no control characters."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (
            (stem[: 200 - len(ext) - 2] + "…" + dot + ext) if dot and len(ext) <= 8 else name[:200]
        )
    return name


def single_file(files: list[FileStorage]) -> FileStorage | None:
    """The one uploaded file of a field, None if there is none. Raises UploadRejected when
    the field holds several (one analysis per upload; no silent choice of the first)."""
    files = [f for f in files if f is not None and f.filename]
    if len(files) > 1:
        raise UploadRejected(
            "Upload one file at a time: this request held several files in one field.",
            "too_many_files",
        )
    return files[0] if files else None


def extension_of(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _save_stream(stream: IO[bytes], dest: Path, limit: int | None) -> tuple[str, int]:
    """Copy ``stream`` to ``dest``, returning (sha256 hex, size). Raises UploadRejected 413."""
    digest = hashlib.sha256()
    size = 0
    with open(dest, "xb") as out:
        while chunk := stream.read(CHUNK):
            size += len(chunk)
            if limit is not None and size > limit:
                raise UploadRejected(too_large_message(), "too_large", 413)
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest(), size


def too_large_message() -> str:
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    return (
        (
            f"This file is larger than the {human_bytes(limit)} limit. Trim the clip or export it "
            "at a lower resolution, then upload it again."
        )
        if limit
        else "This file is too large."
    )


def human_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" or n >= 100 else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def find_existing(sha256: str, model_version: str | None, owner_id: str) -> Detection | None:
    """The owner's own finished (or still running) analysis of the same bytes by the same
    model version. Another owner's never counts: that would tell them the file was seen."""
    stmt = (
        select(Detection)
        .where(
            Detection.owner_id == owner_id,
            Detection.sha256 == sha256,
            Detection.model_version.is_(None)
            if model_version is None
            else Detection.model_version == model_version,
            Detection.status.in_(("done", "queued", "running")),
        )
        .order_by(Detection.created_at.desc())
        .limit(1)
    )
    return db.session.scalars(stmt).first()


def probe(path: Path):
    """Check the file by content with the engine's cheap probe (no TensorFlow)."""
    from .detection.media import probe_media

    cfg = current_app.config
    return probe_media(
        path, max_pixels=int(cfg["MAX_PIXELS"]), max_duration=float(cfg["MAX_DURATION_SECONDS"])
    )


def create_detection(file: FileStorage | None, owner_id: str) -> tuple[Detection, bool]:
    """Store an upload for ``owner_id`` (an existing Owner row), check it by content and
    queue its analysis.

    Returns ``(detection, reused)``: ``reused`` is True when the same owner already analysed
    (or is analysing) the same file with the current model version; nothing new is stored
    then. Another owner's identical upload is analysed again, as theirs.
    Raises :class:`UploadRejected` with a user-facing message; on any failure nothing is left
    on disk or in the database.
    """
    from .forms import FORMATS_MESSAGE

    if file is None or not file.filename:
        raise UploadRejected("Choose a video clip or a photo to analyse.", "no_file")
    name = clean_filename(file.filename) or "upload"
    ext = extension_of(name)
    if ext not in ALLOWED_EXTENSIONS:
        raise UploadRejected(FORMATS_MESSAGE, "unsupported_media", 415)

    folder = upload_folder()
    det_id = new_id()
    part = folder / f"{det_id}.part"
    stored = folder / f"{det_id}.{ext}"
    rdir = result_dir(det_id)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        sha, size = _save_stream(file.stream, part, current_app.config.get("MAX_CONTENT_LENGTH"))
        if size == 0:
            raise UploadRejected("The file is empty.", "corrupt_media")
        version = current_model_version()
        existing = find_existing(sha, version, owner_id)
        if existing is not None:
            part.unlink()
            return existing, True
        os.replace(part, stored)
        try:
            info = probe(stored)
        except DetectionError as err:
            raise UploadRejected(
                str(err), err.code, 413 if err.code == "media_too_large" else 400
            ) from err
        except Exception as err:  # a decoder failing in a way the probe did not expect
            log.warning("Probe failed on an upload (%s)", type(err).__name__, exc_info=True)
            raise UploadRejected(
                "This file is damaged or is not a photo or video we can read.", "corrupt_media"
            ) from err
        det = Detection(
            id=det_id,
            filename=name,
            sha256=sha,
            size_bytes=size,
            media_type=info.media_type,
            upload_name=stored.name,
            width=info.width,
            height=info.height,
            duration=info.duration,
            fps=info.fps,
            frame_count=info.frame_count,
            model_version=version,
            status="queued",
            stage="queued",
            progress=0.0,
            owner=runner().id,
            owner_id=owner_id,
        )
        rdir.mkdir(parents=True, exist_ok=True)
        make_thumbnail(stored, info.media_type, info.duration, rdir / "thumb.jpg")
        # The same bytes may have arrived in another request (thread or process) meanwhile:
        # check again and insert under one lock, so identical uploads make one row.
        with dedup_lock():
            existing = find_existing(sha, version, owner_id)
            if existing is None:
                retry_locked(lambda: _insert(det))
    except BaseException as err:
        db.session.rollback()
        for path in (part, stored):
            path.unlink(missing_ok=True)
        shutil.rmtree(rdir, ignore_errors=True)
        if is_storage_error(err):
            log.error("Upload refused: storage full or not writable (%s)", err)
            raise storage_rejection() from err
        if is_locked_error(err):
            log.error("Upload refused: database still locked after retries (%s)", err)
            raise UploadRejected(BUSY_MESSAGE, "busy", 503) from err
        raise
    if existing is not None:
        for path in (part, stored):
            path.unlink(missing_ok=True)
        shutil.rmtree(rdir, ignore_errors=True)
        return existing, True
    try:
        runner().submit(det.id)
    except RuntimeError:  # the process is shutting down: the next start-up runs the job
        log.warning("Job queue closed; detection %s will run after the restart", det.id)
    return det, False


def _insert(det: Detection) -> None:
    db.session.add(det)
    db.session.commit()


@contextlib.contextmanager
def dedup_lock() -> Iterator[None]:
    """Serialise "is this file already known? no: insert it" across threads and processes."""
    with open(Path(current_app.instance_path) / ".upload.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def make_thumbnail(path: Path, media_type: str, duration: float | None, dest: Path) -> bool:
    """Write a small JPEG of the photo, or of a frame about a second into the clip.

    Best effort: a clip whose frames cannot be decoded simply has no thumbnail.
    """
    try:
        if media_type == "image":
            with Image.open(path) as img:
                img = ImageOps.exif_transpose(img).convert("RGB")
                img.thumbnail(THUMB_SIZE)
                img.save(dest, "JPEG", quality=82)
            return True
        import av

        target = min(1.0, (duration or 0.0) / 3)
        picked = None
        with av.open(str(path), metadata_errors="ignore") as container:
            stream = container.streams.video[0]
            for i, frame in enumerate(container.decode(stream)):
                picked = frame
                if i >= 90 or (frame.time is not None and frame.time >= target):
                    break
            if picked is None:
                return False
            img = picked.to_image()
            rotation = int(getattr(picked, "rotation", 0) or 0)
        if rotation % 360:
            img = img.rotate(rotation, expand=True)
        img.thumbnail(THUMB_SIZE)
        img.convert("RGB").save(dest, "JPEG", quality=82)
        return True
    except Exception:  # noqa: BLE001 - a thumbnail is decoration, never a reason to refuse
        log.warning("No thumbnail for %s", path.name, exc_info=True)
        dest.unlink(missing_ok=True)
        return False


# --------------------------------------------------------------------------- reading


def load_result(det: Detection) -> dict[str, Any] | None:
    """The stored ``result.json`` of a finished detection, or None."""
    if det.status != "done":
        return None
    try:
        return json.loads((result_dir(det.id) / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("Missing or unreadable result.json for %s", det.id)
        return None


def has_thumbnail(det: Detection) -> bool:
    return (result_dir(det.id) / "thumb.jpg").is_file()


def queue_position(det: Detection) -> int:
    """How many jobs will run before this queued one (0 when running or next)."""
    if det.status != "queued":
        return 0
    stmt = (
        select(func.count())
        .select_from(Detection)
        .where(Detection.status.in_(PENDING), Detection.created_at < det.created_at)
    )
    return int(db.session.scalar(stmt) or 0)


def overall_progress(stage: str, fraction: float) -> float:
    """Map the engine's (stage, fraction within stage) to one 0..1 figure for the bar."""
    start, end = STAGE_SPAN.get(stage, (0.0, 1.0))
    fraction = min(max(float(fraction), 0.0), 1.0) if math.isfinite(fraction) else 0.0
    return start + (end - start) * fraction


def iso(value: datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat().replace("+00:00", "Z") if value else None


def status_dict(det: Detection) -> dict[str, Any]:
    """The small JSON the result page polls while a job runs."""
    progress = 1.0 if det.status == "done" else float(det.progress or 0.0)
    return {
        "id": det.id,
        "status": det.status,
        "stage": det.stage,
        "stage_label": det.stage_label,
        "progress": round(progress, 4),
        "percent": int(progress * 100),
        "queue_position": queue_position(det),
        "error": (
            {"code": det.error_code, "message": det.error_message}
            if det.status == "failed"
            else None
        ),
    }


def summary_dict(det: Detection) -> dict[str, Any]:
    """A detection as the API lists it."""
    return {
        **status_dict(det),
        "filename": det.filename,
        "sha256": det.sha256,
        "size_bytes": det.size_bytes,
        "media_type": det.media_type,
        "created_at": iso(det.created_at),
        "started_at": iso(det.started_at),
        "finished_at": iso(det.finished_at),
        "model_version": det.model_version,
        "verdict": det.verdict if det.status == "done" else None,
        "verdict_label": VERDICT_LABELS.get(det.verdict or "") if det.status == "done" else None,
        "p_fake": det.p_fake if det.status == "done" else None,
        "links": {
            "self": url_for("api.get_detection", detection_id=det.id, _external=True),
            "html": url_for("results.show", detection_id=det.id, _external=True),
            "thumbnail": (
                url_for("results.artefact", detection_id=det.id, name="thumb.jpg", _external=True)
                if has_thumbnail(det)
                else None
            ),
        },
    }


def result_with_urls(det: Detection, result: dict[str, Any]) -> dict[str, Any]:
    """``result.json`` with chip and heatmap paths turned into absolute URLs."""
    out = dict(result)
    chips = []
    for chip in result.get("chips", []):
        chip = dict(chip)
        for key in ("image", "heatmap"):
            if chip.get(key):
                chip[key + "_url"] = url_for(
                    "results.artefact", detection_id=det.id, name=chip[key], _external=True
                )
        chips.append(chip)
    out["chips"] = chips
    return out


def frames_csv(det: Detection, result: dict[str, Any]) -> str:
    """Per-frame scores as CSV: one row per scored face per sampled frame."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["frame_index", "timestamp_s", "track", "x0", "y0", "x1", "y1", "p_fake"])
    for fr in result.get("frames", []):
        box = list(fr.get("box") or [None] * 4)[:4]
        writer.writerow(
            [fr.get("index"), fr.get("timestamp"), fr.get("track"), *box, fr.get("p_fake")]
        )
    return buf.getvalue()


# --------------------------------------------------------------------------- deleting


def delete_detection(det: Detection) -> None:
    """Remove a detection: its row, its upload if still there, its result folder.

    A job still running finds its row gone when it finishes and throws its result away.
    """
    path = upload_path(det)
    det_id = det.id
    db.session.delete(det)
    db.session.commit()
    if path is not None:
        path.unlink(missing_ok=True)
    shutil.rmtree(result_dir(det_id), ignore_errors=True)


def purge_expired() -> int:
    """Delete finished detections older than RETENTION_DAYS. Returns how many."""
    days = current_app.config.get("RETENTION_DAYS") or 0
    if days <= 0:
        return 0
    cutoff = utcnow() - timedelta(days=days)
    old = db.session.scalars(
        select(Detection).where(
            Detection.created_at < cutoff, Detection.status.in_(("done", "failed"))
        )
    ).all()
    for det in old:
        delete_detection(det)
    return len(old)


# --------------------------------------------------------------------------- the worker


#: Runner ids of the job queues alive in this process (crash recovery asks).
_LIVE_RUNNERS: set[str] = set()


def runner() -> JobRunner:
    return current_app.extensions["detection_runner"]


class JobRunner:
    """A thread pool inside the app that runs the engine on queued detections.

    The detector is loaded once per process by the engine's loader (it caches). Each job
    gets its own app context and database session.
    """

    def __init__(self, app: Flask):
        self.app = app
        pid = os.getpid()
        # host:pid:<process start time>.<random>: the start time tells a recycled pid apart.
        self.id = f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or 0}.{uuid.uuid4().hex[:8]}"
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
            recover_jobs()
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
                    recover_jobs()
                    db.session.remove()
            except Exception:  # noqa: BLE001 - try again next time
                log.warning("Periodic job recovery failed", exc_info=True)

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
    model = app.config["MODEL_DIR"]
    if version:
        reg = registry.Registry(model)
        entry = reg.get(version)
        if entry is None:
            raise registry.UnknownModelError(
                f"Model version {version} is not installed on this server (available: "
                f"{', '.join(reg.versions) or 'none'}); upload the file again to use another model."
            )
        model = str(entry.path)
    return loader(model)


def run_job(app: Flask, detection_id: str, runner_id: str) -> None:
    """Analyse one queued detection. Runs in a worker thread; catches everything."""
    with app.app_context():
        if not retry_locked(lambda: _claim(detection_id, runner_id)):
            return  # not queued, or another process's job
        det = db.session.get(Detection, detection_id)
        if det is None:
            return
        path = upload_path(det)
        started = time.monotonic()
        try:
            if path is None or not path.is_file():
                raise DetectionError(
                    "The uploaded file is no longer available. Please upload it again."
                )
            report = _ProgressWriter(
                app, detection_id, float(app.config["PROGRESS_INTERVAL_SECONDS"])
            )
            report("load", 0.0)
            detector = load_detector(app, det.model_version)  # the model named at upload
            analysis = detector.analyze(
                str(path),
                progress=report,
                max_duration=float(app.config["MAX_DURATION_SECONDS"]),
                max_pixels=int(app.config["MAX_PIXELS"]),
            )
            report("save", 0.0)
            _finish(det, analysis, time.monotonic() - started)
        except DetectionError as err:
            _fail(detection_id, err.code, str(err))
        except Exception as err:
            if is_storage_error(err):
                app.logger.error(
                    "Result of %s not saved: storage full or not writable (%s)", detection_id, err
                )
                _discard_artefacts(detection_id)
                _fail(detection_id, "storage_error", RESULT_STORAGE_MESSAGE)
            else:
                app.logger.exception("Analysis of detection %s failed", detection_id)
                _fail(
                    detection_id,
                    "internal_error",
                    "Something went wrong inside the detector. The error has been logged; "
                    "please try again later.",
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


def _set_values(detection_id: str, **values: Any) -> int:
    res = db.session.execute(update(Detection).where(Detection.id == detection_id).values(**values))
    db.session.commit()
    return res.rowcount


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _discard_artefacts(detection_id: str) -> None:
    """Remove whatever an interrupted save wrote (chips, overlays, result), keep the thumbnail."""
    rdir = result_dir(detection_id)
    for sub in ("chips", "heatmaps"):
        shutil.rmtree(rdir / sub, ignore_errors=True)
    for name in ("result.json", "result.json.tmp"):
        with contextlib.suppress(OSError):
            (rdir / name).unlink(missing_ok=True)


def _finish(det: Detection, analysis, seconds: float) -> None:
    """Write artefacts and result.json, then the row. A deleted row discards the result.

    An OSError while writing (a full disk) propagates after removing what was written, so
    no half-written result is ever shown.
    """
    det_id = det.id
    rdir = result_dir(det_id)
    try:
        _write_artefacts(det, analysis, seconds, rdir)
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
    if not retry_locked(lambda: _set_values(det_id, **values)):  # deleted while running
        shutil.rmtree(rdir, ignore_errors=True)
        return
    if not (rdir / "result.json").is_file():  # deleted between the write and the commit
        row = db.session.get(Detection, det_id)
        if row is not None:
            db.session.delete(row)
            db.session.commit()


def _write_artefacts(det: Detection, analysis, seconds: float, rdir: Path) -> None:
    """Chips, Grad-CAM overlays, then result.json (atomically, last)."""
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
        "sha256": det.sha256,
        "size_bytes": det.size_bytes,
        "created_at": iso(det.created_at),
    }
    data["processing_seconds"] = round(seconds, 3)
    tmp = rdir / "result.json.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, default=_json_default, indent=1))
        fh.flush()
        os.fsync(fh.fileno())  # a full disk shows here, not after the rename
    os.replace(tmp, rdir / "result.json")


def _fail(detection_id: str, code: str, message: str) -> None:
    """Mark the job failed with a reason. If even that cannot be written (the database's disk
    is full), log it: the job stays "running" until the next start-up's recovery fails it."""
    db.session.rollback()
    try:
        retry_locked(
            lambda: _set_values(
                detection_id,
                status="failed",
                stage="failed",
                error_code=code[:32],
                error_message=message,
                finished_at=utcnow(),
            )
        )
    except Exception:  # noqa: BLE001 - nothing better to do than to log it
        log.exception("Could not mark detection %s failed (%s)", detection_id, code)


# --------------------------------------------------------------------------- start-up


@contextlib.contextmanager
def startup_lock(instance_path: str) -> Iterator[None]:
    """Serialise table creation and crash recovery between server processes."""
    Path(instance_path).mkdir(parents=True, exist_ok=True)
    with open(Path(instance_path) / ".startup.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _owner_alive(owner: str | None) -> bool:
    """Whether the process that queued a job is still alive (and so still holds it)."""
    if not owner:
        return False
    try:
        host, pid_text, rid = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False
    if pid == os.getpid():
        return owner in _LIVE_RUNNERS
    stat = _proc_stat(pid)
    if stat is not None:  # Linux: a zombie is dead; a different start time is another process
        state, ticks = stat
        if state in ("Z", "X"):
            return False
        started = rid.split(".", 1)[0]
        return not (started.isdigit() and int(started) and int(started) != ticks)
    if Path("/proc/self/stat").exists():  # /proc works, and has no such process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) of a process, from /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()  # after "pid (comm)": the name may hold spaces
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def _start_ticks(pid: int) -> int | None:
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def recover_jobs() -> dict[str, int]:
    """Re-queue or fail jobs left queued/running by a process that died. None is lost silently.

    Called at start-up under :func:`startup_lock`. A job is taken over with a
    compare-and-set on its owner, so two processes starting together never both run it.
    """
    me = runner()
    max_attempts = int(current_app.config["MAX_JOB_ATTEMPTS"])
    counts = {"requeued": 0, "failed": 0}
    rows = db.session.execute(
        select(Detection.id, Detection.owner, Detection.upload_name, Detection.attempts).where(
            Detection.status.in_(PENDING)
        )
    ).all()
    for det_id, owner, upload_name, attempts in rows:
        if _owner_alive(owner):
            continue
        same_owner = Detection.owner.is_(None) if owner is None else Detection.owner == owner
        cas = update(Detection).where(
            Detection.id == det_id, same_owner, Detection.status.in_(PENDING)
        )
        exists = bool(upload_name) and (upload_folder() / upload_name).is_file()
        if exists and (attempts or 0) < max_attempts:
            res = retry_locked(
                lambda cas=cas: _execute_commit(
                    cas.values(owner=me.id, status="queued", stage="queued", progress=0.0)
                )
            )
            if res.rowcount:
                counts["requeued"] += 1
                me.submit(det_id)
        else:
            if not exists:
                reason = (
                    "The server restarted during this analysis and the uploaded file was no "
                    "longer available. Please upload it again."
                )
            else:
                times = "once" if attempts == 1 else f"{attempts} times"
                reason = (
                    f"The analysis was interrupted {times} (the server stopped while "
                    "working on it), so it was given up. The file may be too demanding; try "
                    "a shorter clip."
                )
            res = retry_locked(
                lambda cas=cas, reason=reason: _execute_commit(
                    cas.values(
                        owner=me.id,
                        status="failed",
                        stage="failed",
                        error_code="interrupted",
                        error_message=reason,
                        finished_at=utcnow(),
                    )
                )
            )
            if res.rowcount:
                counts["failed"] += 1
                if upload_name and not current_app.config["KEEP_UPLOADS"]:
                    (upload_folder() / upload_name).unlink(missing_ok=True)
    if counts["requeued"] or counts["failed"]:
        current_app.logger.warning(
            "Crash recovery: %(requeued)d job(s) re-queued, %(failed)d marked failed", counts
        )
    return counts


def _execute_commit(stmt):
    res = db.session.execute(stmt)
    db.session.commit()
    return res


def sweep_orphans(min_age: float | None = None) -> int:
    """Delete uploads and result folders that no row owns: what a process killed in the middle
    of an upload leaves behind (the row is written last). Returns how many were removed.

    Only entries older than ``min_age`` seconds (ORPHAN_MIN_AGE_SECONDS) go: a live process
    may be between writing its files and committing its row right now.
    """
    if min_age is None:
        min_age = float(current_app.config["ORPHAN_MIN_AGE_SECONDS"])
    cutoff = time.time() - min_age
    ids = set(db.session.scalars(select(Detection.id)).all())
    uploads = set(
        db.session.scalars(select(Detection.upload_name).where(Detection.upload_name.is_not(None)))
    )
    removed = 0
    entries = [(p, p.name in uploads) for p in _listdir(upload_folder())]
    entries += [(p, p.name in ids) for p in _listdir(results_folder())]
    for path, owned in entries:
        try:
            if owned or path.lstat().st_mtime > cutoff:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed += 1
        except OSError:
            log.warning("Could not remove orphan %s", path, exc_info=True)
    if removed:
        current_app.logger.warning("Removed %d orphaned upload(s)/result folder(s)", removed)
    return removed


def _listdir(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def since(value: datetime | None) -> str:
    """'3 minutes ago' style text for a UTC datetime."""
    value = as_utc(value)
    if value is None:
        return ""
    seconds = (datetime.now(UTC) - value).total_seconds()
    if seconds < 60:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return ""
