"""The database schema is changed by migrations only (Flask-Migrate / Alembic, ``migrations/``).

:func:`upgrade_database` runs at start-up (``AUTO_MIGRATE``, under the start-up lock), or by
hand with ``flask --app app db upgrade``. It handles three kinds of database file:

- a new one: every migration runs, from an empty file to the current schema;
- one made before migrations existed (by ``db.create_all()``; it has a ``detection`` table but
  no ``alembic_version``): it is stamped with the baseline revision, which is exactly that
  old schema, then upgraded; its rows go to the "legacy" owner, shown to admins only;
- a current one: nothing happens.
"""

from __future__ import annotations

import flask_migrate
from alembic.migration import MigrationContext
from flask import current_app
from sqlalchemy import inspect

from .extensions import db

#: The first migration: the ``detection`` table as ``db.create_all()`` made it before owners.
BASELINE = "0001_baseline"


def current_revision() -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_database() -> None:
    """Bring the database to the newest migration (see the module's docstring)."""
    tables = set(inspect(db.engine).get_table_names())
    if "detection" in tables and "alembic_version" not in tables:
        current_app.logger.warning(
            "Database made before migrations: stamping it %s, then upgrading", BASELINE
        )
        flask_migrate.stamp(revision=BASELINE)
    before = current_revision()
    flask_migrate.upgrade()
    after = current_revision()
    if before != after and before is not None:
        current_app.logger.warning("Database schema upgraded: %s -> %s", before, after)
    db.session.remove()
