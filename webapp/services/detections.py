"""One way to create detections of a file the server already holds, and queue them.

Every intake ends here: an upload (``intake``, and each file of a batch through it), an
analysis again with another model (``compare``), a file fetched from a link. The caller stores
the file under the upload folder (any name: it is moved into place) and says what it knows of
it (a :class:`StoredFile`); :func:`create_for_stored_file` makes one row per model version, each
with its own name for the file and its own result folder and thumbnail, inserts them under
the per-owner dedup lock (identical files make one row per model), then queues the jobs.

A link is the one intake whose file is not here yet: :func:`create_for_link` makes its rows
(the same queued rows, written and queued the same way) and the worker, once it has fetched
the file, writes the file's facts into them with :meth:`StoredFile.columns`, as here.
"""

from __future__ import annotations

import logging
import os
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ..extensions import db
from ..models import PENDING_LINK, Detection, new_id, utcnow
from .database import BUSY_MESSAGE, dedup_lock, is_locked_error, retry_locked
from .jobs import runner
from .storage import (  # StoredFile: part of this module's interface
    STORAGE_MESSAGE,
    StoredFile,
    is_storage_error,
    link_or_copy,
    make_thumbnail,
    result_dir,
    upload_folder,
)

log = logging.getLogger(__name__)


class UploadRejected(Exception):
    """The file cannot be analysed. ``str(err)`` is shown to the user; ``code`` and
    ``status`` are the API's error code and HTTP status."""

    def __init__(self, message: str, code: str = "invalid_upload", status: int = 400):
        super().__init__(message)
        self.code = code
        self.status = status


def storage_rejection() -> UploadRejected:
    """The storage is full or not writable (507); nothing was kept."""
    return UploadRejected(STORAGE_MESSAGE, "storage_error", 507)


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


def create_for_stored_file(
    file: StoredFile, owner_id: str, versions: list[str | None]
) -> list[tuple[Detection, bool]]:
    """Queue the analysis of ``file`` by each model version of ``versions`` (checked ones;
    the one the file is about first) for ``owner_id`` (an existing Owner row).

    Returns ``(detection, reused)`` per version, in that order: ``reused`` when the owner
    already has that model's analysis of the same bytes (finished or running), which is
    returned instead of a new one. Each new detection gets its own name for the file (the
    first takes ``file.path``, the others a hard link or copy), so each job deletes its own
    after analysis (unless KEEP_UPLOADS). The jobs are queued once every row is written, in
    the versions' order. Raises :class:`UploadRejected` (storage full 507, database busy
    503); on any failure nothing is left on disk or in the database, ``file.path`` included.
    """
    versions = list(dict.fromkeys(versions))
    found: dict[str | None, Detection] = {}
    new: dict[str | None, Detection] = {}
    written: list[Path] = []  # each new row's upload and result folder, removed on failure
    try:
        for version in versions:
            existing = find_existing(file.sha256, version, owner_id)
            if existing is not None:
                found[version] = existing
        first: Path | None = None  # the first new row's file: the others link to it
        first_thumb: Path | None = None
        created = utcnow()  # one microsecond apart, in order: the queue and pages sort by it
        for version in versions:
            if version in found:
                continue
            det_id = new_id()
            stored = upload_folder() / f"{det_id}{file.suffix}"
            rdir = result_dir(det_id)
            written += [stored, rdir]
            if first is None:
                os.replace(file.path, stored)
            else:
                link_or_copy(first, stored)
            new[version] = _row(det_id, stored.name, file, owner_id, version,
                                created + timedelta(microseconds=len(new)))
            rdir.mkdir(parents=True, exist_ok=True)
            if first is None:
                if file.thumbnail is not None and file.thumbnail.is_file():
                    shutil.copyfile(file.thumbnail, rdir / "thumb.jpg")
                else:
                    make_thumbnail(stored, file.media_type, file.duration, rdir / "thumb.jpg")
                first, first_thumb = stored, rdir / "thumb.jpg"
            elif first_thumb is not None and first_thumb.is_file():
                shutil.copyfile(first_thumb, rdir / "thumb.jpg")
        file.path.unlink(missing_ok=True)  # still there: every version was known already
        # The same bytes may have arrived in another request (thread or process) meanwhile:
        # check again and insert under one lock, in one commit, so identical files make
        # one row per model.
        if new:
            with dedup_lock(f"{owner_id}:{file.sha256}"):
                for version in list(new):
                    existing = find_existing(file.sha256, version, owner_id)
                    if existing is not None:
                        found[version] = existing
                        det = new.pop(version)
                        _remove(upload_folder() / det.upload_name)
                        _remove(result_dir(det.id))
                if new:
                    retry_locked(lambda: _insert(*new.values()))
    except BaseException as err:
        db.session.rollback()
        file.path.unlink(missing_ok=True)
        for path in written:
            _remove(path)
        _raise_refusal(err)
        raise
    _queue(list(new.values()))  # dict order: the versions' order, the file's own model first
    return [(found[v], True) if v in found else (new[v], False) for v in versions]


def create_for_link(
    url: str, filename: str, owner_id: str, versions: list[str | None]
) -> list[tuple[Detection, bool]]:
    """Queue the analysis of the file at ``url`` (checked by the caller) by each model
    version, for ``owner_id``: one row per version, awaiting the worker's download (each
    fetches its own copy; ``filename`` is shown until then). Nothing is reused: the bytes
    are not known yet. Returns ``(detection, False)`` per version, in that order. Raises
    :class:`UploadRejected` as :func:`create_for_stored_file` does; nothing is left behind.
    """
    versions = list(dict.fromkeys(versions))
    created = utcnow()
    ids = [new_id() for _ in versions]
    waiting = {  # what a row says until its file is in (Detection.awaiting_download)
        "filename": filename,
        "source_url": url,
        "sha256": PENDING_LINK + ids[0],  # the link's rows together until the file is in
        "size_bytes": 0,
        "media_type": "link",
        "upload_name": None,
    }
    rows = [
        _queued(ids[i], waiting, owner_id, version, created + timedelta(microseconds=i))
        for i, version in enumerate(versions)
    ]
    try:
        retry_locked(lambda: _insert(*rows))
    except BaseException as err:
        db.session.rollback()
        _raise_refusal(err)
        raise
    _queue(rows)
    return [(det, False) for det in rows]


def _raise_refusal(err: BaseException) -> None:
    """Raise the :class:`UploadRejected` a failed write is told as (storage full 507,
    database busy 503); return for any other error, which the caller re-raises."""
    if is_storage_error(err):
        log.error("File refused: storage full or not writable (%s)", err)
        raise storage_rejection() from err
    if is_locked_error(err):
        log.error("File refused: database still locked after retries (%s)", err)
        raise UploadRejected(BUSY_MESSAGE, "busy", 503) from err


def _queue(dets: list[Detection]) -> None:
    """Submit the jobs of written rows, in order, to this process's queue."""
    for det in dets:
        try:
            runner().submit(det.id)
        except RuntimeError:  # the process is shutting down: the next start-up runs the job
            log.warning("Job queue closed; detection %s will run after the restart", det.id)


def _row(det_id: str, upload_name: str, file: StoredFile, owner_id: str,
         version: str | None, created_at: Any) -> Detection:
    """A queued detection of ``file`` by ``version``, held by this process's queue."""
    return _queued(det_id, file.columns(upload_name), owner_id, version, created_at)


def _queued(det_id: str, columns: dict[str, Any], owner_id: str, version: str | None,
            created_at: Any) -> Detection:
    """A queued detection (of a file described by ``columns``), held by this process's
    queue: every intake's rows start so."""
    return Detection(
        id=det_id,
        **columns,
        model_version=version,
        status="queued",
        stage="queued",
        progress=0.0,
        owner=runner().id,
        owner_id=owner_id,
        created_at=created_at,
    )


def _remove(path: Path) -> None:
    """Remove an upload or a result folder written for a row that is not inserted."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _insert(*dets: Detection) -> None:
    db.session.add_all(dets)
    db.session.commit()
