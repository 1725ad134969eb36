"""Fixtures for the website tests, after flaskr: ``app`` (temporary instance folder and SQLite
file), ``client`` and ``runner``; media files are generated (see ``media.py``).

Web tests use :class:`StandInDetector` (no TensorFlow) so they stay fast and test the
website; tests marked ``engine`` use ``engine_app``, which runs the real engine and the shipped
model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import media
import numpy as np
import pytest
import stack
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from webapp import create_app
from webapp.detection.media import probe_media
from webapp.detection.result import Analysis, Chip, FrameScore, TrackScore
from webapp.extensions import db
from webapp.models import Detection, Owner
from webapp.owners import COOKIE_NAME, cookie_owner

PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: The model registry root; the shipped default model is ``registry.resolve(root=MODEL_ROOT)``.
MODEL_ROOT = PROJECT_ROOT / "model"


def shipped_model() -> Path:
    """The folder of the registry's default model (model/<version>/)."""
    from webapp.detection.registry import resolve

    return resolve(root=MODEL_ROOT).path
#: The data shared between checkouts (../shared/data): present in CI, maybe not on a laptop.
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
#: CI sets CI=true: there a test that cannot run is a failure, never a silent skip.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail_in_ci(reason: str) -> None:
    """Skip on a developer's machine; fail in CI (``CI=true``), where everything must run."""
    if IN_CI:
        pytest.fail(f"{reason}; CI=true, so this is a failure, not a skip", pytrace=False)
    pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``shared`` need ../shared/data: skipped without it, failed in CI."""
    if item.get_closest_marker("shared") and not SHARED_DATA.is_dir():
        skip_or_fail_in_ci(f"{SHARED_DATA} is absent")

#: Measurements tests want shown after the run (title -> lines): the corpus outcome table,
#: the parallel-upload wall time, the crash-recovery result.
SUMMARY: dict[str, list[str]] = {}


def pytest_terminal_summary(terminalreporter) -> None:
    for title, lines in SUMMARY.items():
        terminalreporter.write_sep("-", title)
        for line in lines:
            terminalreporter.write_line(line)


class StandInDetector:
    """Answers like the engine's Detector without TensorFlow: a fixed score for every face.

    ``p_fake`` decides the verdict; ``no_face=True`` answers "no_face"; ``error`` is raised
    from ``analyze``; ``delay`` seconds pass per stage (to watch progress).
    """

    version = "test-model-1"
    config: dict[str, Any] = {}

    def __init__(self) -> None:
        self.p_fake = 0.12
        self.no_face = False
        self.error: Exception | None = None
        self.delay = 0.0
        #: When set: the face is narrower than this vouch line, so a real-band score reads
        #: "inconclusive" (the engine's rule, see Detector.vouch_face_px).
        self.vouch_face_px: int | None = None
        #: When set: the face is narrower than this line, so a fake-band score reads
        #: "inconclusive" (the engine's rule, see Detector.fake_ok_from_px).
        self.fake_ok_from_px: int | None = None
        self.calls: list[str] = []

    def analyze(self, path, *, progress=None, max_duration=None, max_pixels=40_000_000, **_):
        self.calls.append(str(path))
        info = probe_media(path, max_pixels=max_pixels, max_duration=max_duration)
        for stage in ("decode", "detect", "align", "features", "classify"):
            if progress:
                progress(stage, 0.5)
            time.sleep(self.delay)
            if progress:
                progress(stage, 1.0)
        if self.error is not None:
            raise self.error
        thresholds = {"real_below": 0.3, "fake_above": 0.7}
        n = 1 if info.media_type == "image" else 8
        stamps = [round(i * max(info.duration, 0.1) / n, 3) for i in range(n)]
        base = dict(
            path=str(path),
            media=info,
            frames_sampled=n,
            thresholds=thresholds,
            model_version=self.version,
            timings={"total": 0.01},
        )
        if self.no_face:
            return Analysis(
                faces_found=0, tracks=[], frames=[], p_fake=None, verdict="no_face", **base
            )
        scores = [round(min(1.0, max(0.0, self.p_fake + 0.04 * np.sin(i))), 4) for i in range(n)]
        frames = [
            FrameScore(index=i, timestamp=t, track=0, box=(10, 10, 60, 60), p_fake=p)
            for i, (t, p) in enumerate(zip(stamps, scores, strict=True))
        ]
        chip = np.zeros((64, 64, 3), np.uint8)
        chip[16:48, 16:48] = (200, 150, 120)
        heat = chip.copy()
        heat[..., 0] = 255
        chips = [
            Chip(
                index=i,
                timestamp=t,
                track=0,
                p_fake=p,
                image=chip,
                heatmap=heat if i == 0 else None,
            )
            for i, (t, p) in enumerate(zip(stamps, scores, strict=True))
        ]
        track = TrackScore(
            id=0,
            n_frames=n,
            p_fake=self.p_fake,
            p_fake_frame_mean=float(np.mean(scores)),
            first_timestamp=stamps[0],
            last_timestamp=stamps[-1],
        )
        verdict = "fake" if self.p_fake >= 0.7 else "real" if self.p_fake < 0.3 else "inconclusive"
        unvouched = verdict == "real" and self.vouch_face_px is not None
        unaccused = verdict == "fake" and self.fake_ok_from_px is not None
        if unvouched or unaccused:
            verdict = "inconclusive"
        return Analysis(
            unvouched=unvouched,
            vouch_face_px=self.vouch_face_px or 0,
            unaccused=unaccused,
            fake_ok_from_px=self.fake_ok_from_px or 0,
            warnings=["The most suspicious face scored in the fake band, but ..."] if unaccused else [],
            faces_found=n,
            tracks=[track],
            frames=frames,
            p_fake=self.p_fake,
            verdict=verdict,
            chips=chips,
            **base,
        )


@pytest.fixture
def detector() -> StandInDetector:
    return StandInDetector()


@pytest.fixture(scope="session")
def engine():
    """The engine's Detector with the shipped model, loaded once per session (TensorFlow)."""
    from webapp.detection.pipeline import get_detector

    return get_detector(shipped_model())


def patch_model_copy(dst: Path, how: str) -> Path:
    """Copy the shipped model's config and weights to ``dst`` with its output layers broken.

    ``how``: ``"constant"`` zeroes the last Dense layer of the frame head and of the temporal
    net (every score becomes exactly 0.5); ``"inverted"`` negates the temporal net's last layer
    (every verdict score p becomes 1 - p); ``"nan_frames"`` / ``"nan_tracks"`` put NaN in the
    frame head's / the temporal net's last layer.
    """
    import shutil

    import h5py

    from webapp.detection.classifier import CONFIG_FILE, FRAME_WEIGHTS, TEMPORAL_WEIGHTS

    dst.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_FILE, FRAME_WEIGHTS, TEMPORAL_WEIGHTS):
        shutil.copy(shipped_model() / name, dst / name)
    edits = {
        "constant": {FRAME_WEIGHTS: lambda w: w * 0, TEMPORAL_WEIGHTS: lambda w: w * 0},
        "inverted": {TEMPORAL_WEIGHTS: lambda w: -w},
        "nan_frames": {FRAME_WEIGHTS: lambda w: w * np.nan},
        "nan_tracks": {TEMPORAL_WEIGHTS: lambda w: w * np.nan},
    }[how]

    def output_kernels(h5: h5py.File) -> list[h5py.Dataset]:
        """The last Dense layer is the one whose kernel has one output: (C, 1), bias (1,)."""
        found: list[h5py.Dataset] = []
        h5.visititems(lambda key, obj: found.append(obj) if isinstance(obj, h5py.Dataset)
                      and key.endswith("vars/0") and obj.ndim == 2 and obj.shape[1] == 1
                      else None)
        return found

    for name, edit in edits.items():
        with h5py.File(dst / name, "r+") as h5:
            heads = output_kernels(h5)
            assert len(heads) == 1, f"expected one output layer in {name}, found {len(heads)}"
            for var in heads[0].parent.values():
                var[...] = edit(var[...])
    return dst


@pytest.fixture(scope="session")
def broken_detector(tmp_path_factory):
    """``broken_detector(how)``: a Detector loaded from :func:`patch_model_copy` (cached)."""
    from webapp.detection.pipeline import Detector

    loaded: dict[str, Any] = {}

    def load(how: str):
        if how not in loaded:
            loaded[how] = Detector(patch_model_copy(tmp_path_factory.mktemp(f"model-{how}"), how))
        return loaded[how]

    return load


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A model folder with a config.json and a model card, as the shipped one has."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps(
            {
                "version": StandInDetector.version,
                "real_below": 0.3,
                "fake_above": 0.7,
                "frames": 16,
                "metrics": {
                    "val": {"dfdc_faces": {"n": 100, "auc": 0.95}},
                    "test": {
                        "dfdc_faces": {
                            "n": 400,
                            "n_fake": 200,
                            "auc": 0.912,
                            "balanced_accuracy": 0.84,
                            "bands": {"real": {"real": 1}},
                        },
                        "clips_lstm": {"n": 15, "n_fake": 10, "auc": None, "accuracy": 0.6},
                    },
                    "train_seconds": 495,
                },
            }
        )
    )
    (folder / "MODEL_CARD.md").write_text(
        "# Test model\n\nA card for tests.\n\n| set | AUC |\n|---|---|\n| dfdc_val | 0.912 |\n"
    )
    return folder


def base_config(tmp_path: Path) -> dict[str, Any]:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'test.sqlite'}",
        "UPLOAD_RATE_LIMIT": "1000 per minute",
        # The single-user set-up of `make run`: the API answers without a token, as the
        # calling browser (the test client's cookies). test_privacy.py tests PUBLIC_API=False.
        "PUBLIC_API": True,
    }


def make_app(tmp_path: Path, **overrides: Any) -> Flask:
    return create_app({**base_config(tmp_path), **overrides}, instance_path=tmp_path / "instance")


#: Settings of each queue mode for web tests: threads in the web process (``make run``) and
#: Celery, here run eagerly (inside the request, no broker); tests/test_scaleout.py runs the
#: real thing with Redis, PostgreSQL and worker processes.
QUEUE_MODES: dict[str, dict[str, Any]] = {
    "threads": {},
    "celery": {
        "DETECTION_QUEUE": "celery",
        "CELERY_BROKER_URL": "memory://",
        "CELERY_TASK_ALWAYS_EAGER": True,
    },
}


@pytest.fixture
def queue_mode(request) -> str:
    """"threads", or each mode in turn in modules that set ``BOTH_QUEUE_MODES = True``."""
    return getattr(request, "param", "threads")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Modules with ``BOTH_QUEUE_MODES = True`` run each test using ``app`` in both modes."""
    if getattr(metafunc.module, "BOTH_QUEUE_MODES", False) and (
        "queue_mode" in metafunc.fixturenames
    ):
        metafunc.parametrize("queue_mode", list(QUEUE_MODES), indirect=True)


@pytest.fixture
def app(
    tmp_path: Path, model_dir: Path, detector: StandInDetector, queue_mode: str
) -> Iterator[Flask]:
    app = make_app(
        tmp_path,
        MODEL_DIR=str(model_dir),
        DETECTOR_LOADER=lambda _dir: detector,
        **QUEUE_MODES[queue_mode],
    )
    yield app
    app.extensions["detection_runner"].shutdown()


@pytest.fixture
def engine_app(tmp_path: Path) -> Iterator[Flask]:
    """The app with the real engine and the shipped model (imports TensorFlow)."""
    if not (shipped_model() / "config.json").is_file():
        pytest.fail("The shipped default model (model/<version>/config.json) is missing.")
    app = make_app(tmp_path)
    yield app
    app.extensions["detection_runner"].shutdown()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Generated media, made once per test in its temporary folder (about 0.3 s)."""
    folder = tmp_path / "media"
    folder.mkdir()
    return {
        "photo_jpg": media.face_photo(folder / "astronaut.jpg"),
        "photo_png": media.face_photo(folder / "astronaut.png", "PNG"),
        "clip": media.face_clip(folder / "astronaut-pan.mp4"),
        "no_face_clip": media.no_face_clip(folder / "coffee-pan.mp4"),
        "truncated": media.truncated_clip(folder / "truncated.mp4"),
        "truncated_png": media.truncated_photo(folder / "truncated.png"),
        "text_mp4": media.text_as_mp4(folder / "notes.mp4"),
    }


def wait_for_job(app: Flask, detection_id: str, timeout: float = 300.0) -> Detection:
    """Wait for the background job (its future, then the row) and return the finished row."""
    app.extensions["detection_runner"].wait(detection_id, timeout=timeout)
    deadline = time.monotonic() + timeout
    with app.app_context():
        while True:
            db.session.expire_all()
            det = db.session.get(Detection, detection_id)
            if det is None or det.status in ("done", "failed"):
                return det
            if time.monotonic() > deadline:
                raise TimeoutError(f"detection {detection_id} still {det.status}")
            time.sleep(0.1)


@pytest.fixture
def done_clip(app: Flask, client: FlaskClient, files: dict[str, Path], detector) -> str:
    """The id of the test client's clip, analysed (the stand-in scores it 0.86: fake)."""
    detector.p_fake = 0.86
    det_id = detection_id_from(upload(client, files["clip"]))
    wait_for_job(app, det_id)
    return det_id


def upload(client: FlaskClient, path: Path, *, name: str | None = None, follow: bool = False,
           data: dict[str, Any] | None = None):
    """Post a file through the HTML form (with its CSRF token when CSRF is on); ``data``: more
    form fields (e.g. ``model``)."""
    data = dict(data or {})
    if client.application.config.get("WTF_CSRF_ENABLED", True):
        page = client.get("/upload")
        token = page.get_data(as_text=True).split('name="csrf_token" type="hidden" value="')[1]
        data["csrf_token"] = token.split('"')[0]
    with open(path, "rb") as fh:
        data["file"] = (fh, name or path.name)
        return client.post(
            "/upload", data=data, content_type="multipart/form-data", follow_redirects=follow
        )


def owner_of(client: FlaskClient) -> str:
    """The anonymous owner a test client's cookie names (its first page sets the cookie),
    with the Owner row written as its first upload would. Rows made with this ``owner_id``
    are that client's."""
    app = client.application
    if client.get_cookie(COOKIE_NAME) is None:
        client.get("/info")
    with app.test_request_context():
        owner_id = cookie_owner(client.get_cookie(COOKIE_NAME).value)
    assert owner_id, "the site set no owner cookie"
    with app.app_context():
        if db.session.get(Owner, owner_id) is None:
            db.session.add(Owner(id=owner_id, kind="anonymous"))
            db.session.commit()
    return owner_id


def detection_id_from(response) -> str:
    location = response.headers["Location"]
    return location.rstrip("/").rsplit("/", 1)[-1]


# --------------------------------------------------------------------------- a real server


class LiveServer:
    """``gunicorn wsgi:app -c gunicorn.conf.py`` on 127.0.0.1 and a free port, with its own
    instance folder (``DEEPFAKE_INSTANCE_PATH``) and the real engine. Its output goes to
    ``instance/../gunicorn.log``. ``env`` adds variables (``FLASK_*`` settings, ``GUNICORN_*``).

    It runs as ``make run`` does, with ``PUBLIC_API`` on; ``browser`` is one ``requests``
    session (one cookie jar: one owner) for tests that mix pages, forms and the API.
    """

    def __init__(self, instance: Path, *, workers: int = 1, env: dict[str, str] | None = None):
        self.instance = Path(instance)
        self.workers = workers
        self.env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log_path = self.instance.parent / "gunicorn.log"
        self._browser = None
        self._browser_lock = threading.Lock()

    @property
    def browser(self):
        """A ``requests.Session`` that has visited the site (it holds an owner cookie and a
        CSRF token). Made once, under a lock: threads that share it share one owner."""
        with self._browser_lock:
            if self._browser is None:
                import requests

                session = requests.Session()
                session.get(self.url("/"), timeout=60).raise_for_status()
                self._browser = session
        return self._browser

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.instance / "detections.sqlite"

    def url(self, path: str) -> str:
        return self.base + path

    def start(self, timeout: float = 120.0, **extra_env: str) -> LiveServer:
        self.port = stack.free_port()
        env = {
            **os.environ,
            "DEEPFAKE_INSTANCE_PATH": str(self.instance),
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_WORKERS": str(self.workers),
            "GUNICORN_LOGLEVEL": "warning",
            "PYTHONUNBUFFERED": "1",
            "FLASK_PUBLIC_API": "true",
            **self.env,
            **extra_env,
        }
        env.pop("FLASK_RUN_FROM_CLI", None)
        log = open(self.log_path, "a")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "wsgi:app", "-c", "gunicorn.conf.py"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill() takes the workers too
        )
        log.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Wait until the site answers ``/`` with 200; returns the seconds waited."""
        start = time.monotonic()
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.proc.returncode}):\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url("/"), timeout=5) as resp:
                    if resp.status == 200:
                        return time.monotonic() - start
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"gunicorn not ready after {timeout} s:\n{self.log()}")
            time.sleep(0.2)

    def worker_pids(self) -> list[int]:
        """The master's child processes (the workers)."""
        assert self.proc is not None
        pids = []
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            children = (task / "children").read_text().split()
            pids += [int(pid) for pid in children]
        return sorted(pids)

    def kill_worker(self) -> int:
        """SIGKILL one worker (the master starts a new one). Returns its pid."""
        pid = self.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill(self) -> None:
        """SIGKILL the whole server, master and workers: a power cut."""
        stack.kill_group(self.proc)

    def stop(self) -> None:
        stack.stop_group(self.proc)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A not yet started :class:`LiveServer` in ``tmp_path/instance``; stopped afterwards."""
    server = LiveServer(tmp_path / "instance")
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def chip() -> np.ndarray:
    """The astronaut's face, cut by the engine's chip function: (224, 224, 3) uint8 RGB."""
    import engine_media as em

    from webapp.detection.faces import detect_faces, make_chip

    face = max(detect_faces(em.astronaut()), key=lambda f: f.score)
    return make_chip(em.astronaut(), face, 224, 0.2)


@pytest.fixture(scope="session")
def lm(chip: np.ndarray) -> np.ndarray:
    """The 68 dlib landmarks of :func:`chip`, (68, 2) float32 in chip pixels."""
    from webapp.detection.faces import landmarks68

    return landmarks68(chip)
