"""Migrations 0003_batches, 0004_batch_models and 0005_source_url: a database from before
batches (0002_owners) upgrades at start-up, keeps its rows, and downgrades again; on SQLite and on PostgreSQL, where
deleting a detection or a batch must also do what the foreign keys say."""

from __future__ import annotations

import io

import flask_migrate
import pytest
from conftest import make_app, owner_of, skip_or_fail_in_ci, wait_for_job
from sqlalchemy import inspect, text

from webapp.extensions import db
from webapp.models import Batch, BatchItem, Detection
from webapp.schema import current_revision

PREVIOUS = "0002_owners"
HEAD = "0005_source_url"


def database_at_previous_head(tmp_path, settings, monkeypatch) -> None:
    """A database migrated to 0002_owners only, with two detections of the legacy owner."""
    with monkeypatch.context() as patch:  # as a `flask` command: no job recovery at start
        patch.setattr("webapp._serving", lambda: False)
        app = make_app(tmp_path / "old", AUTO_MIGRATE=False, **settings)
    try:
        with app.app_context():
            flask_migrate.upgrade(revision=PREVIOUS)
            assert current_revision() == PREVIOUS
            for n in (1, 2):
                db.session.execute(
                    text(
                        "INSERT INTO detection (id, filename, sha256, size_bytes, media_type,"
                        " created_at, status, stage, progress, attempts, owner_id, verdict, p_fake)"
                        " VALUES (:id, :name, :sha, 10, 'video', CURRENT_TIMESTAMP, 'done',"
                        " 'done', 1.0, 1, 'legacy', 'real', 0.1)"
                    ),
                    {"id": f"{n:032x}", "name": f"old-{n}.mp4", "sha": f"{n:064x}"},
                )
            db.session.commit()
            assert "batch" not in inspect(db.engine).get_table_names()
    finally:
        app.extensions["detection_runner"].shutdown()


def check_upgrade_and_downgrade(app) -> None:
    with app.app_context():
        assert current_revision() == HEAD
        tables = set(inspect(db.engine).get_table_names())
        assert {"batch", "batch_item"} <= tables
        assert "models" in {c["name"] for c in inspect(db.engine).get_columns("batch")}  # 0004
        columns = {c["name"] for c in inspect(db.engine).get_columns("detection")}
        assert "source_url" in columns  # 0005
        assert sorted(d.filename for d in db.session.query(Detection)) == ["old-1.mp4", "old-2.mp4"]
        assert {d.source_url for d in db.session.query(Detection)} == {None}  # uploads, not links
        db.session.remove()  # end the read: PostgreSQL's DROP TABLE waits for open readers
        flask_migrate.downgrade(revision=PREVIOUS)
        assert current_revision() == PREVIOUS
        assert not {"batch", "batch_item"} & set(inspect(db.engine).get_table_names())
        assert "source_url" not in {c["name"] for c in inspect(db.engine).get_columns("detection")}
        assert db.session.execute(text("SELECT count(*) FROM detection")).scalar() == 2
        db.session.remove()
        flask_migrate.upgrade()
        assert current_revision() == HEAD
        db.session.remove()


def use_a_batch(app, files) -> None:
    """A batch through the API, then the foreign keys at work: a deleted detection leaves its
    item (detection_id NULL); a deleted batch takes its items and detections."""
    client = app.test_client()
    owner_of(client)
    with open(files["photo_jpg"], "rb") as a, open(files["clip"], "rb") as b:
        response = client.post(
            "/api/v1/batches",
            data={"file": [(a, "a.jpg"), (b, "b.mp4"), (io.BytesIO(b"x"), "c.txt")]},
        )
    assert response.status_code == 202, response.get_data(as_text=True)
    body = response.json
    ids = [i["detection_id"] for i in body["items"] if i["detection_id"]]
    for det_id in ids:
        assert wait_for_job(app, det_id).status == "done"
    assert client.delete(f"/api/v1/detections/{ids[0]}").status_code == 204
    after = client.get(f"/api/v1/batches/{body['id']}").json
    assert [i["status"] for i in after["items"]] == ["deleted", "done", "rejected"]
    assert client.delete(f"/api/v1/batches/{body['id']}").status_code == 204
    with app.app_context():
        assert db.session.query(Batch).count() == 0 and db.session.query(BatchItem).count() == 0
        assert sorted(d.filename for d in db.session.query(Detection)) == ["old-1.mp4", "old-2.mp4"]


def test_sqlite_database_at_the_previous_head_upgrades(
    tmp_path, model_dir, detector, files, monkeypatch
):
    settings = dict(
        MODEL_DIR=str(model_dir),
        DETECTOR_LOADER=lambda _d: detector,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'old.sqlite'}",
    )
    database_at_previous_head(tmp_path, settings, monkeypatch)
    app = make_app(tmp_path, **settings)  # AUTO_MIGRATE: upgraded at start-up
    try:
        check_upgrade_and_downgrade(app)
        use_a_batch(app, files)
    finally:
        app.extensions["detection_runner"].shutdown()


@pytest.mark.slow
def test_postgresql_database_at_the_previous_head_upgrades(
    tmp_path, model_dir, detector, files, monkeypatch
):
    from stack import Postgres, Unavailable

    pg = Postgres(tmp_path / "pg")
    try:
        pg.start()
    except Unavailable as err:
        skip_or_fail_in_ci(f"PostgreSQL cannot run here: {err}")
    try:
        settings = dict(
            MODEL_DIR=str(model_dir),
            DETECTOR_LOADER=lambda _d: detector,
            SQLALCHEMY_DATABASE_URI=pg.url(),
        )
        database_at_previous_head(tmp_path, settings, monkeypatch)
        app = make_app(tmp_path, **settings)
        try:
            check_upgrade_and_downgrade(app)
            use_a_batch(app, files)
        finally:
            app.extensions["detection_runner"].shutdown()
            with app.app_context():
                db.engine.dispose()
    finally:
        pg.stop()
