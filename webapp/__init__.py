"""The website: ``create_app()`` builds it (config, extensions, blueprints, errors, CLI).

Everything Flask-related is imported inside the factory, so ``import webapp.detection...``
(the engine, used by scripts and training) does not pull in the website.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(
    test_config: dict[str, Any] | None = None, instance_path: str | os.PathLike[str] | None = None
) -> Flask:
    """Build the app. ``test_config`` replaces instance/config.py and FLASK_* variables;
    ``instance_path`` moves the instance folder (tests use a temporary one; a server reads
    it from ``DEEPFAKE_INSTANCE_PATH``, e.g. ``DEEPFAKE_INSTANCE_PATH=/srv/df gunicorn ...``)."""
    from flask import Flask

    from .config import DefaultConfig, load_environment
    from .extensions import csrf, db, limiter, migrate

    project_root = Path(__file__).resolve().parent.parent
    instance_path = instance_path or os.environ.get("DEEPFAKE_INSTANCE_PATH") or None
    app = Flask(
        __name__,
        instance_relative_config=True,
        instance_path=str(Path(instance_path).resolve()) if instance_path else None,
        template_folder=str(project_root / "templates"),
        static_folder=str(project_root / "static"),
    )
    app.config.from_object(DefaultConfig)
    if test_config is None:
        load_environment(app.config)
    else:
        app.config.from_mapping(test_config)

    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    storage = Path(app.config["STORAGE_ROOT"] or instance)
    app.config["STORAGE_ROOT"] = str(storage)
    app.config["UPLOAD_FOLDER"] = app.config["UPLOAD_FOLDER"] or str(storage / "uploads")
    app.config["RESULTS_FOLDER"] = app.config["RESULTS_FOLDER"] or str(storage / "results")
    app.config["SQLALCHEMY_DATABASE_URI"] = (
        app.config["SQLALCHEMY_DATABASE_URI"] or f"sqlite:///{instance / 'detections.sqlite'}"
    )
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _load_or_create_secret_key(instance / "secret_key")
    for folder in (app.config["UPLOAD_FOLDER"], app.config["RESULTS_FOLDER"]):
        Path(folder).mkdir(parents=True, exist_ok=True)

    if app.config["PROXY_FIX_HOPS"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = int(app.config["PROXY_FIX_HOPS"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(project_root / "migrations"), render_as_batch=True)
    from .blueprints.batches import allow_batch_bodies

    app.before_request(allow_batch_bodies)  # before the CSRF check reads a multi-file body
    csrf.init_app(app)
    limiter.init_app(app)
    with app.app_context():
        _configure_sqlite(app)

    from . import auth, owners
    from .blueprints import (
        account,
        api,
        batches,
        compare,
        health,
        history,
        pages,
        report,
        results,
        share,
        upload,
    )

    auth.init_app(app)
    owners.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(upload.bp)
    app.register_blueprint(results.bp)
    app.register_blueprint(batches.bp)
    app.register_blueprint(share.bp)
    app.register_blueprint(compare.bp)
    app.register_blueprint(history.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(report.bp)
    csrf.exempt(api.bp)

    from . import errors, templating

    errors.register(app)
    templating.register(app)

    from webapp.cli import register_cli
    from webapp.cli_accounts import register_account_cli

    register_cli(app)
    register_account_cli(app)

    from .services.database import startup_lock
    from .services.jobs import make_queue

    runner = app.extensions["detection_runner"] = make_queue(app)
    if app.config["AUTO_MIGRATE"]:
        from .schema import upgrade_database

        with app.app_context(), startup_lock(app.instance_path):
            upgrade_database()
    if _serving():
        runner.start()  # crash recovery: no job is lost silently

    @app.before_request
    def _start_jobs() -> None:
        if not runner.started:
            runner.start()

    return app


def _serving() -> bool:
    """False inside a ``flask`` command other than ``run`` (detect, train, routes, shell...):
    those must not take over the web server's queued jobs. They still would on a request."""
    if os.environ.get("FACEPROOF_CELERY_WORKER"):  # a Celery worker: the broker recovers
        return False
    if os.environ.get("FLASK_RUN_FROM_CLI") != "true":
        return True
    return "run" in sys.argv[1:]


def _load_or_create_secret_key(path: Path) -> str:
    """Read the key from ``instance/secret_key``, creating it (0600) on first run.

    Created by a hard link from a temporary file, so two server processes starting at once
    agree on one key.
    """
    try:
        key = path.read_text(encoding="ascii").strip()
        if key:
            return key
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secrets.token_hex(32))
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text(encoding="ascii").strip()


def _configure_sqlite(app: Flask) -> None:
    """WAL journal (readers never wait for the worker's writes) and a busy timeout."""
    from sqlalchemy import event

    from .extensions import db

    engine = db.engine
    if engine.dialect.name != "sqlite":
        return
    timeout_ms = int(app.config["SQLITE_BUSY_TIMEOUT_MS"])

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {timeout_ms}")
        with contextlib.suppress(sqlite3.OperationalError):  # in-memory databases have no WAL
            cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    engine.dispose()  # connections opened before the listener get the pragmas too
