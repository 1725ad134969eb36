"""Database helpers that differ by dialect: retrying a write SQLite calls locked, the
locks that serialise start-up and duplicate uploads."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from ..extensions import db
from ..models import Detection

log = logging.getLogger(__name__)


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


@contextlib.contextmanager
def dedup_lock() -> Iterator[None]:
    """Serialise "is this file already known? no: insert it" across threads and processes."""
    with open(Path(current_app.instance_path) / ".upload.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _set_values(detection_id: str, **values: Any) -> int:
    res = db.session.execute(update(Detection).where(Detection.id == detection_id).values(**values))
    db.session.commit()
    return res.rowcount


def _execute_commit(stmt):
    res = db.session.execute(stmt)
    db.session.commit()
    return res
