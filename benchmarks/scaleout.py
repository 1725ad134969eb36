"""Throughput and page latency of both deployments on this machine (README "Scaling out").

For each mode and worker count it starts the site (gunicorn), uploads N generated clips at
once through the API, and reports clips per minute (first upload to last result) and the
latency of page views (``/``, ``/history``, a result page) taken while the analyses run.

- embedded: SQLite, analyses in the web process (``DETECTION_WORKERS`` = 1 or 2 threads);
- celery: PostgreSQL, Redis, 1 or 2 ``celery -A webapp.tasks worker`` processes.

    .venv/bin/python -m benchmarks.scaleout [--clips 8] [--seconds 6] [--modes embedded celery]

Needs redis-server and PostgreSQL for the celery rows (skipped with a message otherwise).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import requests
from skimage import data

from tests.stack import PROJECT_ROOT, CeleryWorker, Postgres, Redis, Unavailable, free_port


def make_clip(path: Path, seconds: float, fps: int = 15) -> Path:
    """A 480x360 clip panning over skimage's astronaut (a face always in view)."""
    face = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (720, 720))
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (480, 360))
    for i in range(int(seconds * fps)):
        x = int(60 + 50 * np.sin(i / 20))
        out.write(face[60 + x // 3 : 420 + x // 3, x : x + 480])
    out.release()
    return path


def make_photo(path: Path) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


def start_site(instance: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    full = {
        **os.environ,
        **env,
        "DEEPFAKE_INSTANCE_PATH": str(instance),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_LOGLEVEL": "warning",
        "FLASK_PUBLIC_API": "true",
        "FLASK_UPLOAD_RATE_LIMIT": "1000 per minute",
    }
    log = open(instance.parent / "gunicorn.log", "a")  # noqa: SIM115 - the child holds it
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "wsgi:app", "-c", "gunicorn.conf.py"],
        cwd=PROJECT_ROOT, env=full, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(base + "/healthz", timeout=5).status_code == 200:
                return proc, base
        except requests.RequestException:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the site did not start; see gunicorn.log")


def run_load(base: str, clips: list[Path]) -> dict[str, float]:
    session = requests.Session()
    session.get(base + "/")  # one owner cookie for uploads and pages
    latencies: list[float] = []
    stop = threading.Event()
    first_id: list[str] = []

    def browse() -> None:
        pages = ["/", "/history"]
        while not stop.is_set():
            for page in pages + ([f"/results/{first_id[0]}"] if first_id else []):
                t = time.monotonic()
                session.get(base + page, timeout=60)
                latencies.append(time.monotonic() - t)
            time.sleep(0.2)

    def post(path: Path) -> str:
        with open(path, "rb") as fh:
            r = session.post(base + "/api/v1/detections", files={"file": (path.name, fh)}, timeout=120)
        r.raise_for_status()
        return r.json()["id"]

    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(post, clips))
    first_id.append(ids[0])
    browser = threading.Thread(target=browse, daemon=True)
    browser.start()
    pending = set(ids)
    while pending:
        for det_id in list(pending):
            status = session.get(f"{base}/api/v1/detections/{det_id}", timeout=60).json()["status"]
            if status in ("done", "failed"):
                pending.discard(det_id)
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    stop.set()
    browser.join(timeout=60)
    latencies.sort()
    return {
        "clips_per_min": len(clips) / elapsed * 60,
        "seconds": elapsed,
        "median_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
        "p95_ms": latencies[int(0.95 * (len(latencies) - 1))] * 1000 if latencies else float("nan"),
        "pages": len(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--modes", nargs="+", default=["embedded", "celery"])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="scaleout-") as tmp:
        tmp = Path(tmp)
        folder = tmp / "media"
        folder.mkdir()
        for mode in args.modes:
            for n in args.workers:
                run = tmp / f"{mode}-{n}"
                run.mkdir()
                # New bytes per run: the site would reuse an earlier identical upload.
                clips = [
                    make_clip(folder / f"{run.name}-{i}.mp4", args.seconds + 0.1 * i, 15)
                    for i in range(args.clips)
                ]
                services: list = []
                try:
                    if mode == "embedded":
                        env = {"FLASK_DETECTION_WORKERS": str(n)}
                    else:
                        try:
                            redis = Redis(run / "redis").start()
                            services.append(redis)
                            pg = Postgres(run / "pg").start()
                            services.append(pg)
                        except Unavailable as err:
                            print(f"celery x{n}: skipped ({err})")
                            continue
                        env = {
                            "SQLALCHEMY_DATABASE_URI": pg.url(),
                            "DETECTION_QUEUE": "celery",
                            "CELERY_BROKER_URL": redis.url,
                            "STORAGE_ROOT": str(run / "storage"),
                        }
                    site, base = start_site(run / "instance", env)
                    services.append(site)
                    if mode == "celery":
                        workers = [
                            CeleryWorker(f"b{i}", {**env, "DEEPFAKE_INSTANCE_PATH": str(run / "instance")}, run)
                            for i in range(n)
                        ]
                        services += workers
                        for w in workers:
                            w.start()
                        for w in workers:
                            w.wait_ready()
                    # Warm up: each worker's first analysis builds TensorFlow's graphs.
                    warm = [make_clip(run / f"warm-{i}.mp4", 2.0 + 0.1 * i) for i in range(n)]
                    run_load(base, warm)
                    result = run_load(base, clips)
                    rows.append((mode, n, result))
                    print(
                        f"{mode:8s} x{n}: {result['clips_per_min']:.1f} clips/min "
                        f"({args.clips} x {args.seconds:.0f} s clips in {result['seconds']:.1f} s); "
                        f"pages while busy: median {result['median_ms']:.0f} ms, "
                        f"p95 {result['p95_ms']:.0f} ms ({result['pages']} views)",
                        flush=True,
                    )
                finally:
                    for s in reversed(services):
                        if isinstance(s, subprocess.Popen):
                            s.kill()
                            s.wait()
                        else:
                            (s.kill if isinstance(s, CeleryWorker) else s.stop)()
    print(f"\n{os.cpu_count()} CPUs; {args.clips} clips of ~{args.seconds:.0f} s each per run")


if __name__ == "__main__":
    main()
