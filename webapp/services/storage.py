"""Files under the storage root: uploads, result folders, thumbnails; storage errors."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from PIL import Image, ImageOps
from sqlalchemy import delete, select
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from ..extensions import db
from ..models import Batch, Detection, utcnow
from .database import sqlstate

log = logging.getLogger(__name__)


THUMB_SIZE = (480, 480)


@dataclass(frozen=True)
class StoredFile:
    """A file under the upload folder that no detection owns yet, and what is known of it:
    ``detections.create_for_stored_file`` makes its rows, and the worker fills a link's row
    from one once it has fetched the file (``downloads``), with :meth:`columns` both.

    ``path`` is moved to the first new detection's name (or removed when none is made);
    ``suffix`` (".mp4") is the extension its copies get; ``thumbnail``, when given and
    present, is copied instead of drawing a new one (the file's other analyses have one);
    ``source_url``: the link the file was fetched from, if it was.
    """

    path: Path
    filename: str
    suffix: str
    sha256: str
    size_bytes: int
    media_type: str
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    fps: float | None = None
    frame_count: int | None = None
    thumbnail: Path | None = None
    source_url: str | None = None

    @classmethod
    def probed(cls, path: Path, filename: str, suffix: str, sha256: str, size: int, info: Any,
               source_url: str | None = None):
        """A new upload (or a link's fetched file), described by the engine's probe
        (``MediaInfo``)."""
        return cls(path, filename, suffix, sha256, size, info.media_type, info.width,
                   info.height, info.duration, info.fps, info.frame_count,
                   source_url=source_url)

    @classmethod
    def copy_of(cls, det: Detection, path: Path, suffix: str, thumbnail: Path | None = None):
        """Another copy of ``det``'s file (same bytes, same facts, the same link if any)."""
        return cls(path, det.filename, suffix, det.sha256, det.size_bytes, det.media_type,
                   det.width, det.height, det.duration, det.fps, det.frame_count, thumbnail,
                   det.source_url)

    def columns(self, upload_name: str) -> dict[str, Any]:
        """What a detection's row says of this file, stored as ``upload_name``."""
        return {
            "filename": self.filename,
            "source_url": self.source_url,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "media_type": self.media_type,
            "upload_name": upload_name,
            "width": self.width,
            "height": self.height,
            "duration": self.duration,
            "fps": self.fps,
            "frame_count": self.frame_count,
        }


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


class InsufficientStorage(HTTPException):
    """507: the disk is full or the instance folder is not writable (the error pages)."""

    code = 507
    description = STORAGE_MESSAGE


RESULT_STORAGE_MESSAGE = (
    "The analysis finished but its result could not be saved: the server's storage is full or "
    "not writable. Nothing half-written was kept. Please try again later."
)


def is_storage_error(err: BaseException) -> bool:
    """A full disk or an unwritable folder (OSError), or the database saying its disk is
    full (SQLite's message; PostgreSQL's SQLSTATE 53100)."""
    if isinstance(err, OSError):
        return err.errno in STORAGE_ERRNOS
    if isinstance(err, OperationalError):
        if sqlstate(err):
            return sqlstate(err) == "53100"
        text = str(err.orig if err.orig is not None else err).lower()
        return "disk is full" in text or "readonly database" in text
    return False


# --------------------------------------------------------------------------- paths


def upload_folder() -> Path:
    return Path(current_app.config["UPLOAD_FOLDER"])


def results_folder() -> Path:
    return Path(current_app.config["RESULTS_FOLDER"])


def result_dir(detection_id: str) -> Path:
    return results_folder() / detection_id


def upload_path(det: Detection) -> Path | None:
    return upload_folder() / det.upload_name if det.upload_name else None


def link_or_copy(source: Path, dest: Path) -> None:
    """Put the bytes of ``source`` at ``dest`` (a new name): a hard link where the file system
    allows, else a copy. Either way each name is deleted on its own, so every detection's job
    can remove its own upload after analysis. Raises FileNotFoundError when ``source`` is gone."""
    try:
        os.link(source, dest)
    except OSError as err:
        if err.errno == errno.ENOENT:
            raise
        shutil.copyfile(source, dest)  # another file system, or no hard links


def _discard_artefacts(detection_id: str) -> None:
    """Remove whatever an interrupted save wrote (chips, overlays, result), keep the thumbnail."""
    rdir = result_dir(detection_id)
    for sub in ("chips", "heatmaps"):
        shutil.rmtree(rdir / sub, ignore_errors=True)
    for name in ("result.json", "result.json.tmp"):
        with contextlib.suppress(OSError):
            (rdir / name).unlink(missing_ok=True)


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
    """Delete finished detections and batches older than RETENTION_DAYS. Returns how many
    detections."""
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
    # Batches go with their files (their items cascade); the detections went above.
    db.session.execute(delete(Batch).where(Batch.created_at < cutoff))
    db.session.commit()
    return len(old)


def _listdir(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []
