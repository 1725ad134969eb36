"""Faults: a full or unwritable disk, a locked database, a process killed mid-upload, and the
real server (gunicorn + the real engine) killed in the middle of an analysis.

In-process tests use the stand-in detector; the ``slow`` ones start gunicorn, kill a worker
(or the whole server) while a job is running, start it again, and check that the job is
re-queued (or failed with a reason), the site comes back, and nothing else is touched.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import sqlite3
import time
from pathlib import Path

import pytest
import requests
from conftest import (
    SUMMARY,
    LiveServer,
    detection_id_from,
    make_app,
    owner_of,
    upload,
    wait_for_job,
)
from corpus import generators as g
from corpus.audit import audit_instance, rows
from sqlalchemy.exc import OperationalError

from webapp.extensions import db
from webapp.services import analysis, database, intake, recovery


def db_file(app) -> Path:
    return Path(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"))


def post_api(client, path: Path, name: str | None = None):
    owner_of(client)  # the API called from the browser (PUBLIC_API): its pages are its own
    with open(path, "rb") as fh:
        return client.post(
            "/api/v1/detections",
            data={"file": (fh, name or path.name)},
            content_type="multipart/form-data",
        )


def disk_full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FullDiskFile(io.FileIO):
    """A file that accepts ``room`` bytes, then fails like a full disk."""

    room = 4096

    def write(self, data) -> int:
        if self.tell() + len(data) > self.room:
            disk_full()
        return super().write(data)


# --------------------------------------------------------------------------- disk full


def test_disk_full_while_storing_the_upload(app, client, files, monkeypatch):
    """The upload's bytes hit ENOSPC half-way: a clear 507, nothing left behind."""
    real_open = builtins.open

    def open_on_full_disk(file, mode="r", *args, **kwargs):
        if "x" in mode and "b" in mode:  # the upload being stored
            return FullDiskFile(file, "xb")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(intake, "open", open_on_full_disk, raising=False)
    page = upload(client, files["photo_jpg"])
    assert page.status_code == 507
    html = page.get_data(as_text=True)
    assert "storage is full or not writable" in html and "Traceback" not in html
    api = post_api(client, files["photo_png"])
    assert api.status_code == 507 and api.json["error"]["code"] == "storage_error"
    assert "storage is full" in api.json["error"]["message"]
    assert client.get("/api/v1/detections").json["total"] == 0
    assert audit_instance(Path(app.instance_path), db_file(app)) == []
    assert not any(Path(app.config["UPLOAD_FOLDER"]).iterdir())
    monkeypatch.undo()  # space freed: the same upload now works
    assert upload(client, files["photo_jpg"]).status_code == 303


def test_unwritable_instance_folder(app, client, files, monkeypatch):
    """The results folder cannot be created (EACCES; root ignores chmod, so simulated)."""
    real_mkdir = Path.mkdir
    results = Path(app.config["RESULTS_FOLDER"])

    def mkdir(self, *args, **kwargs):
        if self.parent == results:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    response = post_api(client, files["clip"])
    assert response.status_code == 507 and response.json["error"]["code"] == "storage_error"
    assert str(results) not in response.get_data(as_text=True)  # no server path shown
    assert audit_instance(Path(app.instance_path), db_file(app)) == []
    assert client.get("/").status_code == 200


@pytest.mark.parametrize("where", ["chips", "result.json"])
def test_disk_full_while_saving_the_result(app, client, files, detector, monkeypatch, where):
    """The analysis ends but its result cannot be written: failed with a reason, nothing
    half-written kept (no chips, no result.json), the thumbnail and the row stay."""
    from PIL import Image

    real_save = Image.Image.save

    def save(self, fp, *args, **kwargs):
        if "/chips/" in str(fp) or "/heatmaps/" in str(fp):
            disk_full()
        return real_save(self, fp, *args, **kwargs)

    if where == "chips":
        monkeypatch.setattr(Image.Image, "save", save)
    else:
        monkeypatch.setattr(analysis.os, "fsync", disk_full)
    det = wait_for_job(app, post_api(client, files["clip"]).json["id"])
    assert det.status == "failed" and det.error_code == "storage_error"
    assert "could not be saved" in det.error_message
    rdir = Path(app.config["RESULTS_FOLDER"]) / det.id
    assert sorted(p.name for p in rdir.iterdir()) == ["thumb.jpg"]
    assert audit_instance(Path(app.instance_path), db_file(app)) == []
    page = client.get(f"/results/{det.id}").get_data(as_text=True)
    assert "could not be saved" in page


def test_request_body_spooling_on_a_full_disk_is_a_507(app, client, monkeypatch):
    """Werkzeug spools large uploads to a temporary file before the view runs; ENOSPC
    there is a 507 page too, not a 500."""
    import tempfile

    import werkzeug.wrappers.request

    class FullSpool(tempfile.SpooledTemporaryFile):
        def write(self, data):
            if self.tell() + len(data) > 100_000:
                disk_full()
            return super().write(data)

    monkeypatch.setattr(
        werkzeug.wrappers.request, "default_stream_factory", lambda *_a, **_k: FullSpool()
    )
    response = client.post(
        "/api/v1/detections",
        data={"file": (io.BytesIO(b"x" * 600_000), "big.mp4")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 507 and response.json["error"]["code"] == "storage_error"


# --------------------------------------------------------------------------- database


def test_database_locked_is_retried(app, client, files, monkeypatch):
    """SQLite's "database is locked" after its busy timeout: the write is retried."""
    owner_of(client)  # the browser's owner row exists: the upload's own writes are retried
    real_commit = db.session.commit
    failures = {"left": 2}

    def flaky_commit():
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked"))
        return real_commit()

    monkeypatch.setattr(db.session, "commit", flaky_commit)
    response = post_api(client, files["photo_jpg"])
    monkeypatch.undo()
    assert response.status_code == 202 and failures["left"] == 0
    assert wait_for_job(app, response.json["id"]).status == "done"


def test_database_locked_for_good_is_not_a_half_upload(app, client, files, monkeypatch):
    def locked():
        raise OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked"))

    owner_of(client)
    monkeypatch.setattr(db.session, "commit", locked)
    monkeypatch.setattr(database.time, "sleep", lambda _s: None)
    response = post_api(client, files["photo_jpg"])
    monkeypatch.undo()
    assert response.status_code == 503 and response.json["error"]["code"] == "busy"
    assert int(response.headers["Retry-After"]) > 0
    assert "try again" in response.json["error"]["message"]
    assert audit_instance(Path(app.instance_path), db_file(app)) == []


# --------------------------------------------------------------------------- killed mid-upload


def test_orphans_of_a_killed_upload_are_swept_at_start_up(tmp_path, model_dir, detector, files):
    app = make_app(tmp_path, MODEL_DIR=str(model_dir), DETECTOR_LOADER=lambda _d: detector)
    kept = wait_for_job(app, detection_id_from(upload(app.test_client(), files["photo_jpg"])))
    app.extensions["detection_runner"].shutdown()
    uploads, results = Path(app.config["UPLOAD_FOLDER"]), Path(app.config["RESULTS_FOLDER"])
    old = time.time() - 3600
    orphans = [uploads / ("f" * 32 + ".part"), uploads / ("e" * 32 + ".mp4"), results / ("e" * 32)]
    orphans[0].write_bytes(b"half an upload")
    orphans[1].write_bytes(b"stored, row never written")
    orphans[2].mkdir()
    (orphans[2] / "thumb.jpg").write_bytes(b"x")
    fresh = uploads / ("a" * 32 + ".part")  # another process may be writing this right now
    fresh.write_bytes(b"in flight")
    for path in orphans:
        os.utime(path, (old, old))
    app2 = make_app(tmp_path, MODEL_DIR=str(model_dir), DETECTOR_LOADER=lambda _d: detector)
    try:
        assert not any(p.exists() for p in orphans)
        assert fresh.exists()
        assert (results / kept.id / "result.json").is_file()
        fresh.unlink()
        assert audit_instance(Path(app2.instance_path), db_file(app2)) == []
    finally:
        app2.extensions["detection_runner"].shutdown()


def test_a_zombie_or_recycled_pid_does_not_hold_a_job():
    """Crash recovery asks whether a job's owner is alive: a killed worker not yet reaped
    (a zombie) is dead, and so is an owner whose pid now belongs to another process."""
    import socket
    import subprocess

    child = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 10
        while recovery._proc_stat(child.pid)[0] != "Z":  # exited, not reaped
            assert time.monotonic() < deadline
            time.sleep(0.01)
        host = socket.gethostname()
        ticks = recovery._start_ticks(child.pid)
        assert not recovery._owner_alive(f"{host}:{child.pid}:{ticks}.cafe0001")
    finally:
        child.wait()
    parent = os.getppid()
    real = recovery._start_ticks(parent)
    assert recovery._owner_alive(f"{host}:{parent}:{real}.cafe0002")
    assert not recovery._owner_alive(f"{host}:{parent}:{real + 1}.cafe0003")  # pid recycled
    assert not recovery._owner_alive(f"{host}:{child.pid}:{ticks}.cafe0004")  # gone


# --------------------------------------------------------------------------- the real server


def api_get(server: LiveServer, det_id: str) -> dict:
    return server.browser.get(server.url(f"/api/v1/detections/{det_id}"), timeout=60).json()


def post_file(server: LiveServer, path: Path) -> str:
    with open(path, "rb") as fh:
        response = server.browser.post(
            server.url("/api/v1/detections"), files={"file": (path.name, fh)}, timeout=120
        )
    assert response.status_code == 202, response.text
    return response.json()["id"]


def wait_done(server: LiveServer, det_id: str, timeout: float = 600.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            body = api_get(server, det_id)
            if body["status"] in ("done", "failed"):
                return body
        except (requests.RequestException, ValueError):
            pass  # the server is restarting
        if time.monotonic() > deadline:
            raise TimeoutError(f"{det_id} not finished")
        time.sleep(0.5)


def wait_mid_analysis(server: LiveServer, det_id: str, timeout: float = 300.0) -> str:
    """Poll until the job is running past model loading; returns the stage seen."""
    deadline = time.monotonic() + timeout
    while True:
        body = api_get(server, det_id)
        if body["status"] == "running" and body["stage"] not in ("queued", "load"):
            return body["stage"]
        assert body["status"] in ("queued", "running"), f"finished before the kill: {body}"
        assert time.monotonic() < deadline, "never started"
        time.sleep(0.05)


def snapshot(server: LiveServer, ids: list[str]) -> dict[str, tuple]:
    """What must not change: each row's fields and its result files (name, size, mtime)."""
    table = {r["id"]: r for r in rows(server.db_path)}
    out = {}
    for det_id in ids:
        rdir = server.instance / "results" / det_id
        artefacts = sorted(
            (str(p.relative_to(rdir)), p.stat().st_size, p.stat().st_mtime_ns)
            for p in rdir.rglob("*")
            if p.is_file()
        )
        out[det_id] = (table[det_id], artefacts)
    return out


def row(server: LiveServer, det_id: str) -> dict:
    return next(r for r in rows(server.db_path) if r["id"] == det_id)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("clips")
    return [
        g.long_face_clip(folder / f"interview-{i}.mp4", seconds=30 + i, size=(640, 360))
        for i in range(3)
    ]


@pytest.mark.slow
@pytest.mark.engine
def test_server_killed_mid_analysis_recovers(live_server: LiveServer, clips, tmp_path):
    server = live_server.start()
    lines = []
    # Two finished detections that a crash must not touch.
    others = []
    for i in range(2):
        photo = g.jpeg(tmp_path / f"bystander-{i}.jpg", side=200 + 8 * i)
        others.append(post_file(server, photo))
    for det_id in others:
        assert wait_done(server, det_id)["status"] == "done"
    before = snapshot(server, others)

    # 1. SIGKILL the gunicorn worker in the middle of an analysis.
    victim = post_file(server, clips[0])
    stage = wait_mid_analysis(server, victim)
    old_pid = server.kill_worker()
    t_kill = time.monotonic()
    back = server.wait_ready()
    new_pids = server.worker_pids()
    assert old_pid not in new_pids
    body = wait_done(server, victim)
    t_done = time.monotonic() - t_kill
    assert body["status"] == "done", body
    assert row(server, victim)["attempts"] == 2  # re-queued once, then finished
    lines.append(
        f"worker SIGKILLed during '{stage}': site back in {back:.1f} s, job re-queued and "
        f"done {t_done:.1f} s after the kill (attempts=2, verdict {body['verdict']})"
    )

    # 2. SIGKILL the whole server (master and workers) mid-analysis, then start it again.
    victim2 = post_file(server, clips[1])
    stage = wait_mid_analysis(server, victim2)
    server.kill()
    assert row(server, victim2)["status"] == "running"
    t0 = time.monotonic()
    server.start()
    back = time.monotonic() - t0
    body = wait_done(server, victim2)
    assert body["status"] == "done", body
    assert row(server, victim2)["attempts"] == 2
    lines.append(
        f"whole server SIGKILLed during '{stage}': restarted and answering in {back:.1f} s, "
        f"job re-queued and done (attempts=2, verdict {body['verdict']})"
    )

    # 3. Killed again with MAX_JOB_ATTEMPTS=1: the job is marked failed with a reason.
    victim3 = post_file(server, clips[2])
    stage = wait_mid_analysis(server, victim3)
    server.kill()
    server.start(FLASK_MAX_JOB_ATTEMPTS="1")
    body = wait_done(server, victim3)
    assert body["status"] == "failed" and body["error"]["code"] == "interrupted"
    assert "interrupted once" in body["error"]["message"]
    page = server.browser.get(server.url(f"/results/{victim3}"), timeout=60).text
    assert "interrupted once" in page
    lines.append(
        f"killed during '{stage}' with MAX_JOB_ATTEMPTS=1: marked failed "
        f"({body['error']['code']}): {body['error']['message'][:60]}..."
    )

    # Nothing else was touched; every file has its row and every row its files.
    assert snapshot(server, others) == before
    assert audit_instance(server.instance) == []
    listed = server.browser.get(server.url("/api/v1/detections"), timeout=60).json()
    assert listed["total"] == 5
    assert not (server.instance / "uploads").exists() or not any(
        (server.instance / "uploads").iterdir()
    )
    lines.append("the two finished detections were untouched (rows and files identical)")
    SUMMARY["crash recovery (gunicorn, real engine)"] = lines
    print("\n".join(lines))
