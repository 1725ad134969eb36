"""Intake: check an upload, save it under the storage root, create its row, queue it."""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from pathlib import Path
from typing import IO

from flask import current_app
from werkzeug.datastructures import FileStorage

from ..config import ALLOWED_EXTENSIONS, FORMATS_MESSAGE
from ..detection.errors import DetectionError
from ..models import Detection, new_id
from .database import BUSY_MESSAGE  # noqa: F401 - batches say it as intake's
from .detections import (  # noqa: F401 - find_existing: part of intake's interface
    StoredFile,
    UploadRejected,
    create_for_stored_file,
    find_existing,
    storage_rejection,
)
from .formatting import human_bytes
from .modelcard import current_model_version, installed_versions
from .storage import is_storage_error, upload_folder

log = logging.getLogger(__name__)


CHUNK = 1024 * 1024


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


def request_too_large_message(batch_form: bool = False) -> str:
    """What a request over MAX_CONTENT_LENGTH is told (413); ``batch_form``: the upload form,
    which also takes several files at once (up to BATCH_MAX_BYTES)."""
    cfg = current_app.config
    limit = human_bytes(cfg.get("MAX_CONTENT_LENGTH"))
    if batch_form:
        return (
            f"Uploads can be at most {limit} per file, and "
            f"{human_bytes(cfg['BATCH_MAX_BYTES'])} for several files "
            "sent together. Trim the clip or export it at a lower resolution, or send "
            "fewer files at once, then try again."
        )
    return (
        f"Uploads can be at most {limit}. Trim the clip or export it at a "
        "lower resolution, then try again."
    )


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
    if file is None or not file.filename:
        raise UploadRejected("Choose a video clip or a photo to analyse.", "no_file")
    versions = list(dict.fromkeys(versions)) or [chosen_model(None)]
    name = clean_filename(file.filename) or "upload"
    ext = extension_of(name)
    if ext not in ALLOWED_EXTENSIONS:
        raise UploadRejected(FORMATS_MESSAGE, "unsupported_media", 415)

    folder = upload_folder()
    part = folder / f"{new_id()}.part"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        sha, size = _save_stream(file.stream, part, current_app.config.get("MAX_CONTENT_LENGTH"))
        if size == 0:
            raise UploadRejected("The file is empty.", "corrupt_media")
        found = [find_existing(sha, version, owner_id) for version in versions]
        if all(found):  # every model has judged these bytes for this owner: nothing to store
            part.unlink()
            return [(det, True) for det in found]
        info = _probe_upload(part)
    except BaseException as err:
        part.unlink(missing_ok=True)
        if is_storage_error(err):
            log.error("Upload refused: storage full or not writable (%s)", err)
            raise storage_rejection() from err
        raise
    stored = StoredFile.probed(part, name, f".{ext}", sha, size, info)
    return create_for_stored_file(stored, owner_id, versions)


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
