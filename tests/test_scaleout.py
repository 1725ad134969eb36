"""The scaled-out deployment for real: Redis, PostgreSQL, one gunicorn (DETECTION_QUEUE=
celery) and two Celery workers with the shipped model, all on 127.0.0.1.

Twenty generated clips and photos go through the API at once; one worker is SIGKILLed (with
its pool process) in the middle of an analysis. Every detection must finish, with exactly one
result each, and the same score as the embedded engine gives for the same file. Skips, with
the reason, where redis-server or PostgreSQL is missing or cannot start.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import media
import numpy as np
import pytest
import requests
from conftest import SUMMARY, LiveServer
from PIL import Image
from stack import CeleryWorker, Postgres, Redis, Unavailable

pytestmark = pytest.mark.slow

N_CLIPS, N_PHOTOS = 12, 8


def make_media(folder: Path) -> list[Path]:
    """Twenty different files (different bytes: the site would reuse identical uploads)."""
    folder.mkdir()
    paths = [
        media.face_clip(folder / f"clip-{i:02d}.mp4", seconds=4.0 + 0.25 * i, fps=12 + i % 4)
        for i in range(N_CLIPS)
    ]
    image = media.astronaut()
    for i in range(N_PHOTOS):
        crop = image[4 * i : 460 + 4 * i, 8 * i : 460 + 8 * i]
        path = folder / f"photo-{i:02d}.jpg"
        Image.fromarray(np.ascontiguousarray(crop)).save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


@pytest.fixture
def stack(tmp_path: Path):
    """Redis + PostgreSQL + gunicorn + two workers; everything stopped afterwards."""
    started: list = []
    try:
        try:
            redis = Redis(tmp_path / "redis").start()
            started.append(redis)
            pg = Postgres(tmp_path / "pg").start()
            started.append(pg)
        except Unavailable as err:
            pytest.skip(f"scale-out services cannot run here: {err}")
        storage = tmp_path / "storage"
        env = {
            "SQLALCHEMY_DATABASE_URI": pg.url(),
            "DETECTION_QUEUE": "celery",
            "CELERY_BROKER_URL": redis.url,
            "STORAGE_ROOT": str(storage),
            "DEEPFAKE_INSTANCE_PATH": str(tmp_path / "instance"),
            "FLASK_UPLOAD_RATE_LIMIT": "1000 per minute",
            # A vanished worker's job comes back after 25 s (the hard limit is 15 s).
            "FLASK_CELERY_SOFT_TIME_LIMIT": "12",
            "FLASK_CELERY_TIME_LIMIT": "15",
            "FLASK_CELERY_VISIBILITY_TIMEOUT": "25",
            "FLASK_CELERY_RESTORE_INTERVAL": "2",
        }
        server = LiveServer(tmp_path / "instance", env=env)
        started.append(server)
        server.start()  # migrates PostgreSQL before the workers start
        workers = [CeleryWorker(name, env, tmp_path) for name in ("w1", "w2")]
        started += workers
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready()
        yield server, workers, pg
    finally:
        for service in reversed(started):
            (service.kill if isinstance(service, LiveServer) else service.stop)()


def rows(pg: Postgres) -> list[dict]:
    import psycopg

    with psycopg.connect(pg.url().replace("+psycopg", "")) as conn:
        cur = conn.execute(
            "SELECT id, filename, status, owner, attempts, p_fake, error_message FROM detection"
        )
        names = [c.name for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def test_twenty_uploads_two_workers_one_killed(stack, tmp_path, engine):
    server, (w1, w2), pg = stack
    files = make_media(tmp_path / "media")
    health = requests.get(server.url("/healthz"), timeout=10)
    assert health.status_code == 200, health.text
    assert health.json()["checks"]["broker"]["ok"]
    assert health.json()["checks"]["database"]["dialect"] == "postgresql"

    started = time.monotonic()

    def post(path: Path) -> str:
        with open(path, "rb") as fh:
            response = requests.post(
                server.url("/api/v1/detections"), files={"file": (path.name, fh)}, timeout=60
            )
        assert response.status_code in (201, 202), response.text
        return response.json()["id"]

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(post, files))
    assert len(set(ids)) == len(files)

    # Kill w1 (worker and pool process) while it is analysing something.
    deadline = time.monotonic() + 60
    victim = None
    while victim is None and time.monotonic() < deadline:
        victim = next(
            (r for r in rows(pg) if r["status"] == "running" and "w1@" in (r["owner"] or "")),
            None,
        )
        time.sleep(0.05)
    assert victim is not None, "w1 never ran a job:\n" + w1.log()[-3000:]
    w1.kill()
    killed_at = time.monotonic()

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        current = rows(pg)
        if all(r["status"] in ("done", "failed") for r in current):
            break
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    after_kill = time.monotonic() - killed_at
    current = {r["id"]: r for r in rows(pg)}
    assert sorted(current) == sorted(ids)
    failed = {r["filename"]: r["error_message"] for r in current.values() if r["status"] != "done"}
    assert not failed, f"not done: {failed}\n{w2.log()[-3000:]}"
    assert current[victim["id"]]["attempts"] == 2  # re-delivered after w1 died, run again
    assert "w2@" in current[victim["id"]]["owner"]

    # Exactly one result each: one result.json per row, nothing else in results/.
    results = tmp_path / "storage" / "results"
    assert sorted(p.name for p in results.iterdir()) == sorted(ids)
    for det_id in ids:
        data = json.loads((results / det_id / "result.json").read_text())
        assert data["detection"]["id"] == det_id
    api = requests.get(server.url("/api/v1/detections?per_page=100"), timeout=10).json()
    assert api["total"] == len(files)

    # The same score as the embedded engine (threads mode runs the same analyze()).
    by_name = {r["filename"]: r for r in current.values()}
    for path in files:
        expected = engine.analyze(str(path)).p_fake
        got = by_name[path.name]["p_fake"]
        assert got == pytest.approx(expected, abs=1e-4), path.name
    SUMMARY["Scale-out (2 Celery workers, PostgreSQL, Redis)"] = [
        f"{len(files)} uploads ({N_CLIPS} clips, {N_PHOTOS} photos) all done in {elapsed:.1f} s;",
        f"w1 SIGKILLed mid-analysis; w2 re-ran its job (re-delivered after the 25 s visibility "
        f"timeout), all done {after_kill:.1f} s after the kill; scores = embedded engine's",
    ]
