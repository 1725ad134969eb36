"""Crash recovery: jobs of dead processes, orphaned files."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from flask import current_app
from sqlalchemy import select, update

from ..extensions import db
from ..models import PENDING_LINK, Detection, as_utc, utcnow
from .database import _execute_commit, retry_locked
from .presenters import PENDING
from .storage import _listdir, results_folder, upload_folder

log = logging.getLogger(__name__)


#: Runner ids of the job queues alive in this process (crash recovery asks).
_LIVE_RUNNERS: set[str] = set()
#: ``Detection.owner`` of a job waiting in Celery's queue; a worker's claim makes it
#: ``celery:<worker>``.
CELERY_OWNER = "celery"
#: Prefix of ``Detection.owner`` while a Celery job's row is written but its task not yet
#: published: ``publish:<the web process's queue id>`` (see ``jobs.CeleryQueue``).
PUBLISHING = "publish:"


def _owner_alive(owner: str | None) -> bool:
    """Whether the process that queued a job is still alive (and so still holds it)."""
    if not owner:
        return False
    if owner == CELERY_OWNER or owner.startswith(CELERY_OWNER + ":"):
        return True  # queued with Celery: the broker re-delivers it (see fail_stale_jobs)
    try:
        host, pid_text, rid = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False
    if pid == os.getpid():  # a queue of this process (a Celery one's id has the prefix)
        return owner in _LIVE_RUNNERS or PUBLISHING + owner in _LIVE_RUNNERS
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


def _holder_alive(owner: str | None, created_at: Any) -> bool:
    """Whether the job's owner still holds it. A Celery job not yet published is held while
    its publisher lives: checked for a process of this machine, else assumed for
    CELERY_PUBLISH_GRACE_SECONDS after the row was written (publishing takes milliseconds)."""
    if not (owner or "").startswith(PUBLISHING):
        return _owner_alive(owner)
    publisher = owner[len(PUBLISHING) :]
    if publisher.split(":", 1)[0] == socket.gethostname():
        return _owner_alive(publisher)
    grace = float(current_app.config["CELERY_PUBLISH_GRACE_SECONDS"])
    written = as_utc(created_at)
    return written is not None and utcnow() - written < timedelta(seconds=grace)


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


class Queue(Protocol):
    """What recovery needs of this process's job queue (``webapp.services.jobs``)."""

    id: str

    def submit(self, detection_id: str) -> object: ...


def recover_jobs(me: Queue) -> dict[str, int]:
    """Re-queue on ``me`` (this process's queue) or fail the jobs left queued/running by a
    process that died. None is lost silently.

    Called at start-up under :func:`startup_lock`. A job is taken over with a
    compare-and-set on its owner, so two processes starting together never both run it.
    """
    max_attempts = int(current_app.config["MAX_JOB_ATTEMPTS"])
    counts = {"requeued": 0, "failed": 0}
    rows = db.session.execute(
        select(
            Detection.id,
            Detection.owner,
            Detection.upload_name,
            Detection.attempts,
            Detection.created_at,
            Detection.source_url,
            Detection.sha256,
        ).where(Detection.status.in_(PENDING))
    ).all()
    for det_id, owner, upload_name, attempts, created_at, source_url, sha256 in rows:
        if _holder_alive(owner, created_at):
            continue
        same_owner = Detection.owner.is_(None) if owner is None else Detection.owner == owner
        cas = update(Detection).where(
            Detection.id == det_id, same_owner, Detection.status.in_(PENDING)
        )
        exists = bool(upload_name) and (upload_folder() / upload_name).is_file()
        exists = exists or bool(source_url and sha256.startswith(PENDING_LINK))  # fetch again
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


def fail_stale_jobs() -> int:
    """Mark failed the Celery jobs still "running" long after every limit: started longer
    ago than the broker's re-delivery (CELERY_VISIBILITY_TIMEOUT) plus the hard time limit.
    A worker killed at its hard limit leaves such a row, and no re-delivery comes for it."""
    cfg = current_app.config
    limit = float(cfg["CELERY_TIME_LIMIT"])
    grace = max(float(cfg["CELERY_VISIBILITY_TIMEOUT"]), limit) + limit + 120
    cutoff = utcnow() - timedelta(seconds=grace)
    res = retry_locked(
        lambda: _execute_commit(
            update(Detection)
            .where(
                Detection.status == "running",
                Detection.owner.like(CELERY_OWNER + ":%"),
                Detection.started_at < cutoff,
            )
            .values(
                status="failed",
                stage="failed",
                error_code="timeout",
                error_message=(
                    "The analysis did not finish within the time this server allows, so it was "
                    "given up. Try a shorter clip or a smaller file."
                ),
                finished_at=utcnow(),
            )
        )
    )
    if res.rowcount:
        current_app.logger.warning(
            "%d Celery job(s) past every time limit marked failed", res.rowcount
        )
    return res.rowcount
