"""Does a Celery worker get a working pool process back after one is killed? (README
"Scaling out": what the workers do when a pool process dies.)

Starts Redis and one ``celery worker --concurrency 1`` with the model load slowed
(FACEPROOF_TEST_MODEL_LOAD_DELAY) and Celery's default 4 s liveness wait, waits for the model,
SIGKILLs the pool process, then counts for ``--watch`` seconds how often Celery killed a
replacement ("Timed out waiting for UP message") and how often the model loaded again.
``--load-in-init`` runs the worker as it was before: the model loaded inside
``worker_process_init``, i.e. inside Celery's liveness wait.

    .venv/bin/python -m benchmarks.pool_restart [--load-in-init] [--watch 90] [--delay 8]

Needs redis-server. Run it on a busy machine (that is when the difference shows).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

if os.environ.get("FACEPROOF_BENCH_LOAD_IN_INIT"):  # imported by the worker (-A ...)
    from celery import signals

    import webapp.tasks as tasks
    from webapp.tasks import celery  # noqa: F401 - the app the worker runs

    signals.worker_process_init.disconnect(tasks._start_loading)

    @signals.worker_process_init.connect
    def _load_in_init(**_: object) -> None:
        tasks._warm_up()  # as before: the model loads before the process reports up


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load-in-init", action="store_true")
    parser.add_argument("--watch", type=float, default=90.0)
    parser.add_argument("--delay", type=float, default=8.0)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from stack import Redis, kill_group

    tmp = Path(tempfile.mkdtemp(prefix="pool-restart-"))
    redis = Redis(tmp / "redis").start()
    env = {
        **os.environ,
        "CELERY_BROKER_URL": redis.url,
        "DETECTION_QUEUE": "celery",
        "DEEPFAKE_INSTANCE_PATH": str(tmp / "instance"),
        "STORAGE_ROOT": str(tmp / "storage"),
        "FACEPROOF_TEST_MODEL_LOAD_DELAY": str(args.delay),
        "FLASK_CELERY_PROC_ALIVE_TIMEOUT": "4",  # Celery's default
        "PYTHONUNBUFFERED": "1",
    }
    app = "webapp.tasks"
    if args.load_in_init:
        env["FACEPROOF_BENCH_LOAD_IN_INIT"] = "1"
        app = "benchmarks.pool_restart"
    log_path = tmp / "worker.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", app, "worker", "--concurrency", "1",
             "--loglevel", "INFO", "-Q", "faceproof"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        while "faceproof: model loaded" not in log_path.read_text():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the worker never loaded the model:\n" + log_path.read_text()[-2000:])
            time.sleep(0.5)
        pool = children(proc.pid)
        for pid in pool:
            os.kill(pid, signal.SIGKILL)
        time.sleep(args.watch)
        text = log_path.read_text()
    finally:
        kill_group(proc)
        redis.stop()
    print(
        f"{'model loaded in worker_process_init' if args.load_in_init else 'model loaded in the background'}: "
        f"pool process {pool} killed; in the next {args.watch:.0f} s Celery killed "
        f"{text.count('Timed out waiting for UP message')} replacement(s), the model loaded "
        f"{text.count('faceproof: model loaded') - 1} more time(s); "
        f"load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
