"""Gunicorn settings fitted to a TensorFlow model: ``gunicorn wsgi:app``.

Each worker process loads the model once (a few hundred MB) and runs analyses in its own
background thread pool (DETECTION_WORKERS, default 1), so keep workers at 1-2 on a small
machine. Threads serve pages, status polls and uploads while an analysis runs.
The app is not preloaded: TensorFlow must not be imported before the fork.
Every setting can be overridden with an environment variable named here; the app's own
settings with FLASK_* variables, and its instance folder (database, uploads, results) with
DEEPFAKE_INSTANCE_PATH.

A worker killed in the middle of an analysis (OOM killer, SIGKILL, power cut) loses nothing:
the job is re-queued by the next worker that starts (or marked failed with a reason after
MAX_JOB_ATTEMPTS interruptions); see webapp.services.recovery.recover_jobs.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "1"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
preload_app = False
# Slow clients uploading up to 200 MB, and a first request that may wait on model loading.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "180"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "60"))
keepalive = 5
# Recycling workers would interrupt analyses (they are re-queued at start-up, but slower).
max_requests = 0
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
