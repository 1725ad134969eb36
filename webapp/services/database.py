"""The database helpers that differ by dialect (SQLite for ``make run``, PostgreSQL when
scaled out): retrying a write the database refused for now (and the message saying so), the
two locks (start-up, duplicate uploads), and writing a requester's Owner row on their first
upload. Nothing else in the website writes SQL of one dialect."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from ..extensions import db
from ..models import Detection, Owner
from ..owners import Identity, current_identity

log = logging.getLogger(__name__)

T = TypeVar("T")

#: What a user is told when the database still refuses a write after the retries (503).
BUSY_MESSAGE = (
    "The server is too busy to take this right now and nothing was saved. Please try again "
    "in a minute."
)

#: PostgreSQL errors worth retrying: serialization failure, deadlock, lock not available.
RETRY_SQLSTATES = {"40001", "40P01", "55P03"}


def dialect() -> str:
    """``"sqlite"``, ``"postgresql"``, ... of the app's database."""
    return db.engine.dialect.name


def sqlstate(err: BaseException) -> str | None:
    """The SQLSTATE of a PostgreSQL error (psycopg 3 or 2), None for SQLite's."""
    orig = getattr(err, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def is_locked_error(err: BaseException) -> bool:
    """A write refused for now: SQLite's "database is locked", PostgreSQL's deadlock or
    serialization failure. Retrying it may work."""
    if not isinstance(err, OperationalError):
        return False
    code = sqlstate(err)
    if code:
        return code in RETRY_SQLSTATES
    text_ = str(getattr(err, "orig", None) or err).lower()
    return "locked" in text_ or "busy" in text_


def retry_locked(action: Callable[[], T], attempts: int = 5) -> T:
    """Run ``action`` (a database write ending in a commit), retrying when the database
    refused it for now (:func:`is_locked_error`: SQLite locked even after its busy timeout,
    a PostgreSQL deadlock). ``action`` must be repeatable: the session is rolled back
    between attempts, which forgets pending changes."""
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


def _lock_key(name: str) -> int:
    """A signed 64-bit key for PostgreSQL's advisory locks."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def startup_lock(instance_path: str) -> Iterator[None]:
    """Serialise migrations and crash recovery between server processes: a file lock in
    the instance folder with SQLite (one machine), an advisory lock with PostgreSQL (any
    number of machines). Needs an app context."""
    if dialect() != "postgresql":
        with _file_lock(Path(instance_path) / ".startup.lock"):
            yield
        return
    with db.engine.connect() as conn:
        key = _lock_key("faceproof:startup")
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()


@contextlib.contextmanager
def dedup_lock(key: str) -> Iterator[None]:
    """Serialise "is this file already known? no: insert it" for one ``key`` (owner and
    file hash) across threads, processes and, with PostgreSQL, machines.

    SQLite: a file lock in the instance folder. PostgreSQL: a transaction advisory lock
    in the session's transaction, released by the insert's commit (or by the commit here).
    """
    if dialect() != "postgresql":
        with _file_lock(Path(current_app.instance_path) / ".upload.lock"):
            yield
        return
    db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(key)})
    try:
        yield
    finally:
        db.session.commit()


def _set_values(detection_id: str, owner: str | None = None, **values: Any) -> int:
    """Update one row and commit; with ``owner``, only while that job holds it (a job taken
    over by another worker must not write its outcome). Returns the rows changed (0/1)."""
    stmt = update(Detection).where(Detection.id == detection_id)
    if owner is not None:
        stmt = stmt.where(Detection.owner == owner)
    res = db.session.execute(stmt.values(**values))
    db.session.commit()
    return res.rowcount


def _execute_commit(stmt):
    res = db.session.execute(stmt)
    db.session.commit()
    return res


def ensure_owner(identity: Identity | None = None) -> str:
    """Write the identity's Owner row if it is not there yet (first upload); its id."""
    identity = identity or current_identity()
    if db.session.get(Owner, identity.owner_id) is None:

        def insert() -> None:
            db.session.add(Owner(id=identity.owner_id, kind=identity.kind))
            db.session.commit()

        try:
            retry_locked(insert)  # SQLite busy: retried like every other write
        except IntegrityError:  # made by a parallel request of the same browser
            db.session.rollback()
    return identity.owner_id
