"""Default settings. The SQLite file, uploads and result artefacts live in the instance folder.

Override in three ways, later wins: these defaults, ``instance/config.py`` (optional, for a
deployment), then ``FLASK_*`` environment variables (``FLASK_MAX_DURATION_SECONDS=120``;
values are parsed as JSON where possible). Tests pass a ``test_config`` mapping instead.

Paths left as ``None`` are filled in by the factory from ``app.instance_path`` (the project's
``instance/``, or ``$DEEPFAKE_INSTANCE_PATH`` when set).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Photo and video formats offered in the form. The content decides (``probe_media`` must
#: open the file); the extension is only a first, cheap filter and a hint for the decoder.
VIDEO_EXTENSIONS = ("mp4", "mov", "avi", "mkv", "webm")
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp")
ALLOWED_EXTENSIONS = VIDEO_EXTENSIONS + IMAGE_EXTENSIONS
#: Said of a file whose type is not among these (the form's first check, then intake's).
FORMATS_MESSAGE = (
    "This type of file is not supported. Upload a video (MP4, MOV, AVI, MKV, WebM) "
    "or a photo (JPEG, PNG, WebP, BMP)."
)


class DefaultConfig:
    # Security. SECRET_KEY is read from (or generated into) instance/secret_key, never set here.
    SECRET_KEY: str | None = None
    DEBUG = False
    TESTING = False
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False  # set FLASK_SESSION_COOKIE_SECURE=true behind HTTPS
    WTF_CSRF_TIME_LIMIT = 3600 * 6
    HSTS = False  # send Strict-Transport-Security (only when served over HTTPS)
    PROXY_FIX_HOPS = 0  # number of trusted reverse proxies setting X-Forwarded-For/Proto

    # Who sees what (see README "Who can see what").
    #: True: the API answers without a token (a single-user local install; ``make run`` sets
    #: it). Tokenless calls then act as the calling browser, else as one shared "public" owner.
    PUBLIC_API = False
    SIGNIN_RATE_LIMIT = "5 per minute;30 per hour"  # per client address, failed or not

    # Storage. None = under the instance folder.
    SQLALCHEMY_DATABASE_URI: str | None = None
    SQLITE_BUSY_TIMEOUT_MS = 15_000
    #: Apply the migrations (``migrations/``) at start-up. False: run ``flask --app app db
    #: upgrade`` yourself before starting the new version.
    AUTO_MIGRATE = True
    #: Uploads and result files live under this folder (None: the instance folder). With
    #: several machines (see README "Scaling out") every web and worker machine mounts it.
    STORAGE_ROOT: str | None = None
    UPLOAD_FOLDER: str | None = None  # None: STORAGE_ROOT/uploads
    RESULTS_FOLDER: str | None = None  # None: STORAGE_ROOT/results
    MODEL_DIR = str(PROJECT_ROOT / "model")

    # Upload limits.
    MAX_CONTENT_LENGTH = 200 * 1024 * 1024  # bytes; larger requests get a 413 page
    MAX_DURATION_SECONDS = 300.0
    MAX_PIXELS = 40_000_000  # photos over this many pixels are refused before decoding
    UPLOAD_RATE_LIMIT = "10 per minute;60 per hour"  # per client address, uploads only
    REPORT_RATE_LIMIT = "20 per minute;200 per hour"  # per client address, PDF reports rendered
    #: Several files sent at once (the form's multi-file upload, ``POST /api/v1/batches``):
    #: at most this many files, and this many bytes in all. Each file keeps the limits above
    #: (MAX_CONTENT_LENGTH per file). A batch counts as one upload against UPLOAD_RATE_LIMIT.
    BATCH_MAX_FILES = 20
    BATCH_MAX_BYTES = 500 * 1024 * 1024
    # Links (the form's "Check a link" field, ``url=`` on the API): fetched by the worker with
    # the limits above (MAX_CONTENT_LENGTH, MAX_DURATION_SECONDS). See README "Checking a link".
    LINKS_ENABLED = True
    #: Networks a link may point into although they are private, loopback or link-local
    #: ("10.1.0.0/16, 127.0.0.1/32"); empty: none. Only for a site that means to fetch from
    #: its own network (and the tests' local server).
    LINK_ALLOWED_NETWORKS = ""
    LINK_TIMEOUT_SECONDS = 15.0  # per connection, and per read of the server's answer
    LINK_DOWNLOAD_SECONDS = 300.0  # the whole download of one link
    LINK_MAX_REDIRECTS = 5
    RATELIMIT_ENABLED = True
    RATELIMIT_STORAGE_URI = "memory://"
    RATELIMIT_HEADERS_ENABLED = True

    # Processing. "threads": analyses run in the web process (``make run``). "celery": web
    # processes only queue them; ``celery -A webapp.tasks worker`` processes run them (see
    # README "Scaling out"); the web processes then never import TensorFlow.
    DETECTION_QUEUE = "threads"
    CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"
    #: Seconds one analysis may take: at the soft limit it is stopped and marked failed with
    #: a reason; at the hard limit its worker process is killed.
    CELERY_SOFT_TIME_LIMIT = 1800
    CELERY_TIME_LIMIT = 1900
    #: Seconds before the broker re-delivers a job whose worker vanished (machine lost).
    #: Always kept longer than CELERY_TIME_LIMIT, so a long clip is never run twice at once.
    CELERY_VISIBILITY_TIMEOUT = 3600
    CELERY_RESTORE_INTERVAL = 60  # seconds between workers' looks for such jobs
    #: Seconds a new worker pool process has to report that it is up before Celery kills it
    #: (Celery's default is 4). The model loads after that, in the background, so this only
    #: covers starting Python on a busy machine.
    CELERY_PROC_ALIVE_TIMEOUT = 60
    #: A Celery job whose row was written but whose task was never published (the web
    #: process died in between) is published by another web process's recovery: at once when
    #: that process ran on the same machine and is gone, else after this many seconds.
    CELERY_PUBLISH_GRACE_SECONDS = 60
    CELERY_TASK_ALWAYS_EAGER = False  # tests: run the task inside the request
    DETECTION_WORKERS = 1  # analyses at once per process (each uses the CPU fully)
    #: "module:function" returning a Detector for a model directory. Web tests point it at
    #: a stand-in so they never import TensorFlow; production leaves the real engine here.
    DETECTOR_LOADER = "webapp.detection.pipeline:get_detector"
    KEEP_UPLOADS = False  # keep the uploaded original after analysis (default: delete it)
    PROGRESS_INTERVAL_SECONDS = 0.5  # write engine progress to the database at most this often
    MAX_JOB_ATTEMPTS = 2  # a job interrupted by a crash this many times is marked failed
    RECOVERY_INTERVAL_SECONDS = 30  # how often a server looks for jobs of dead processes
    #: At start-up, uploads and result folders without a row (left by a process killed in the
    #: middle of an upload) are deleted once they are this old.
    ORPHAN_MIN_AGE_SECONDS = 600
    RETENTION_DAYS = 30  # detections older than this are deleted (0 = keep forever)
    #: A PEM file of root certificates whose Content Credentials signers count as trusted
    #: (e.g. the C2PA trust list). None: no trust list, and result pages say so.
    PROVENANCE_TRUST_ANCHORS: str | None = None

    # Pages.
    HISTORY_PER_PAGE = 20
    API_MAX_PER_PAGE = 100
    RECENT_ON_LANDING = 6


#: Deployment settings also read from unprefixed environment variables, as the usual names
#: of a scaled-out deployment (``FLASK_``-prefixed ones win).
PLAIN_ENV = ("SQLALCHEMY_DATABASE_URI", "DETECTION_QUEUE", "CELERY_BROKER_URL", "STORAGE_ROOT")


def load_environment(config: Any) -> None:
    """Apply ``instance/config.py``, the plain variables above, then ``FLASK_*`` variables to
    a Flask ``Config`` whose root is the instance folder."""
    config.from_pyfile("config.py", silent=True)
    for key in PLAIN_ENV:
        if os.environ.get(key):
            config[key] = os.environ[key]
    config.from_prefixed_env()
