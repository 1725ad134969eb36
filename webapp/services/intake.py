"""Intake: check an upload, save it under the storage root, create its row, queue it."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import unicodedata
from datetime import timedelta
from pathlib import Path
from typing import IO

from flask import current_app
from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from ..config import ALLOWED_EXTENSIONS
from ..detection import registry
from ..detection.errors import DetectionError, ModelNotFoundError
from ..extensions import db
from ..models import Detection, new_id, utcnow
from ..templating import human_bytes
from .database import dedup_lock, is_locked_error, retry_locked
from .jobs import runner
from .modelcard import current_model_version
from .storage import (
    STORAGE_MESSAGE,
    is_storage_error,
    link_or_copy,
    make_thumbnail,
    result_dir,
    upload_folder,
)

log = logging.getLogger(__name__)


CHUNK = 1024 * 1024


class UploadRejected(Exception):
    """The upload cannot be analysed. ``str(err)`` is shown to the user."""

    def __init__(self, message: str, code: str = "invalid_upload", status: int = 400):
        super().__init__(message)
        self.code = code
        self.status = status


def storage_rejection() -> UploadRejected:
    return UploadRejected(STORAGE_MESSAGE, "storage_error", 507)


BUSY_MESSAGE = (
    "The server is too busy to take this right now and nothing was saved. Please try again "
    "in a minute."
)


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
    the field holds several (one detection per request here; no silent choice of the first;
    several files at once are a batch, see :mod:`webapp.services.batches`)."""
    files = [f for f in files if f is not None and f.filename]
    if len(files) > 1:
        raise UploadRejected(
            "Upload one file at a time here: this request held several files in one field. "
            "To send several at once, post them to /api/v1/batches.",
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
    from ..detection.media import probe_media

    cfg = current_app.config
    return probe_media(
        path, max_pixels=int(cfg["MAX_PIXELS"]), max_duration=float(cfg["MAX_DURATION_SECONDS"])
    )


def chosen_model(model: str | None) -> str | None:
    """The version an upload asked for (``model=<version>``), checked against the registry;
    None or "" means the default model. Raises :class:`UploadRejected` (400) for an unknown one."""
    model = (model or "").strip()
    if not model:
        return current_model_version()
    versions = installed_versions()
    if model not in versions:
        listed = ", ".join(versions) or "none"
        raise UploadRejected(f"Unknown model {model[:60]!r}. Available models: {listed}.", "unknown_model")
    return model


#: ``models=all``: every model of the registry.
ALL_MODELS = "all"


def installed_versions() -> list[str]:
    """The registry's versions, newest first; empty when it cannot be read."""
    try:
        return registry.Registry(Path(current_app.config["MODEL_DIR"])).versions
    except ModelNotFoundError:
        return []


def chosen_models(models: str | None, model: str | None = None) -> list[str | None]:
    """The versions an upload is to be judged by, the one it is about first.

    ``model`` picks that one (default: the default model). ``models`` adds others: ``all``
    (every installed model) or a comma-separated list of versions; empty adds none. With a
    list and no ``model``, the list's first version is the one the upload is about, unless
    the list holds the default model. Every version is checked against the registry: an
    unknown one raises :class:`UploadRejected` (400 ``unknown_model``) naming the installed ones.
    """
    wanted = [part.strip() for part in (models or "").split(",") if part.strip()]
    if not wanted:
        return [chosen_model(model)]
    if len(wanted) == 1 and wanted[0].lower() == ALL_MODELS:
        versions: list[str | None] = list(installed_versions())
    else:
        versions = [chosen_model(v) for v in wanted]
    if (model or "").strip():
        primary = chosen_model(model)
    else:
        default = chosen_model(None)
        primary = default if default in versions or not versions else versions[0]
    return list(dict.fromkeys([primary, *versions]))


def create_detection(
    file: FileStorage | None, owner_id: str, model: str | None = None
) -> tuple[Detection, bool]:
    """Store an upload for ``owner_id`` (an existing Owner row), check it by content and
    queue its analysis with ``model`` (a registry version; default: the default model).

    Returns ``(detection, reused)``: ``reused`` is True when the same owner already analysed
    (or is analysing) the same file with that model version; nothing new is stored then.
    Another owner's identical upload is analysed again, as theirs.
    Raises :class:`UploadRejected` with a user-facing message; on any failure nothing is left
    on disk or in the database.
    """
    return create_detections(file, owner_id, model)[0]


def create_detections(
    file: FileStorage | None, owner_id: str, model: str | None = None, models: str | None = None
) -> list[tuple[Detection, bool]]:
    """:func:`create_detection` with the upload judged by every model ``models`` names
    (``all``, or a comma-separated list; see :func:`chosen_models`) as well as ``model``:
    ``(detection, reused)`` per model, the one ``model`` picks first."""
    if file is None or not file.filename:
        raise UploadRejected("Choose a video clip or a photo to analyse.", "no_file")
    return create_analyses(file, owner_id, chosen_models(models, model))


def create_analyses(
    file: FileStorage | None, owner_id: str, versions: list[str | None]
) -> list[tuple[Detection, bool]]:
    """Store an upload once and queue one analysis of it per model version in ``versions``
    (checked ones, see :func:`chosen_models`; the one the upload is about first).

    Returns ``(detection, reused)`` per version, in that order. Each version follows the
    dedup rule of :func:`create_detection` on its own: the owner's existing analysis of the
    same bytes by that model is returned (``reused``) instead of a new one. Each new detection
    gets its own name for the file (a hard link, or a copy), so each job deletes its own after
    analysis (unless KEEP_UPLOADS) without taking the others'. The jobs are queued once every
    row is written, the first version's first. Raises :class:`UploadRejected`; on any failure
    nothing is left on disk or in the database.
    """
    from ..forms import FORMATS_MESSAGE

    if file is None or not file.filename:
        raise UploadRejected("Choose a video clip or a photo to analyse.", "no_file")
    versions = list(dict.fromkeys(versions)) or [chosen_model(None)]
    name = clean_filename(file.filename) or "upload"
    ext = extension_of(name)
    if ext not in ALLOWED_EXTENSIONS:
        raise UploadRejected(FORMATS_MESSAGE, "unsupported_media", 415)

    folder = upload_folder()
    part = folder / f"{new_id()}.part"
    found: dict[str | None, Detection] = {}
    new: dict[str | None, Detection] = {}
    written: list[Path] = []  # each new row's upload and result folder, removed on failure
    try:
        folder.mkdir(parents=True, exist_ok=True)
        sha, size = _save_stream(file.stream, part, current_app.config.get("MAX_CONTENT_LENGTH"))
        if size == 0:
            raise UploadRejected("The file is empty.", "corrupt_media")
        for version in versions:
            existing = find_existing(sha, version, owner_id)
            if existing is not None:
                found[version] = existing
        if len(found) == len(versions):
            part.unlink()
            return [(found[v], True) for v in versions]
        first: Detection | None = None  # the first new row: its file is probed, thumbnailed
        info = None
        # One microsecond apart, in the versions' order: the queue and the pages order by it.
        created = utcnow()
        for version in versions:
            if version in found:
                continue
            det_id = new_id()
            stored = folder / f"{det_id}.{ext}"
            rdir = result_dir(det_id)
            written += [stored, rdir]
            if first is None:
                os.replace(part, stored)
                info = _probe_upload(stored)
            else:
                link_or_copy(upload_folder() / first.upload_name, stored)
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
                created_at=created + timedelta(microseconds=len(new)),
            )
            new[version] = det
            rdir.mkdir(parents=True, exist_ok=True)
            if first is None:
                make_thumbnail(stored, info.media_type, info.duration, rdir / "thumb.jpg")
                first = det
            elif (result_dir(first.id) / "thumb.jpg").is_file():
                shutil.copyfile(result_dir(first.id) / "thumb.jpg", rdir / "thumb.jpg")
        # The same bytes may have arrived in another request (thread or process) meanwhile:
        # check again and insert under one lock, in one commit, so identical uploads make
        # one row per model.
        with dedup_lock(f"{owner_id}:{sha}"):
            for version in list(new):
                existing = find_existing(sha, version, owner_id)
                if existing is not None:
                    found[version] = existing
                    det = new.pop(version)
                    _remove(upload_folder() / det.upload_name)
                    _remove(result_dir(det.id))
            if new:
                retry_locked(lambda: _insert(*new.values()))
    except BaseException as err:
        db.session.rollback()
        part.unlink(missing_ok=True)
        for path in written:
            _remove(path)
        if is_storage_error(err):
            log.error("Upload refused: storage full or not writable (%s)", err)
            raise storage_rejection() from err
        if is_locked_error(err):
            log.error("Upload refused: database still locked after retries (%s)", err)
            raise UploadRejected(BUSY_MESSAGE, "busy", 503) from err
        raise
    for det in new.values():  # dict order: the versions' order, the upload's own model first
        try:
            runner().submit(det.id)
        except RuntimeError:  # the process is shutting down: the next start-up runs the job
            log.warning("Job queue closed; detection %s will run after the restart", det.id)
    return [(found[v], True) if v in found else (new[v], False) for v in versions]


def _probe_upload(stored: Path):
    """The engine's probe of a stored upload, its errors as :class:`UploadRejected`."""
    try:
        return probe(stored)
    except DetectionError as err:
        raise UploadRejected(
            str(err), err.code, 413 if err.code == "media_too_large" else 400
        ) from err
    except Exception as err:  # a decoder failing in a way the probe did not expect
        log.warning("Probe failed on an upload (%s)", type(err).__name__, exc_info=True)
        raise UploadRejected(
            "This file is damaged or is not a photo or video we can read.", "corrupt_media"
        ) from err


def _remove(path: Path) -> None:
    """Remove an upload or a result folder written for a row that is not inserted."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _insert(*dets: Detection) -> None:
    db.session.add_all(dets)
    db.session.commit()
