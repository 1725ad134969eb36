"""``/healthz``: 200 with the checks when healthy, 503 saying what is wrong otherwise."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

from conftest import PROJECT_ROOT, make_app


def test_healthy(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json
    assert body["status"] == "ok" and body["queue"] == "threads"
    assert body["model_version"] == "test-model-1"
    assert body["checks"]["database"]["ok"] and body["checks"]["database"]["dialect"] == "sqlite"
    assert body["checks"]["storage"]["ok"]
    assert "broker" not in body["checks"]
    assert response.headers["Cache-Control"] == "no-store"


def test_unwritable_storage_is_503(app, client, monkeypatch):
    real_open = os.open

    def refuse(path, *args, **kwargs):
        if ".healthz-" in str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json["status"] == "unavailable"
    assert not response.json["checks"]["storage"]["ok"]
    assert "Permission denied" in response.json["checks"]["storage"]["error"]


def test_unreachable_broker_is_503(tmp_path, model_dir, detector):
    app = make_app(
        tmp_path,
        MODEL_DIR=str(model_dir),
        DETECTOR_LOADER=lambda _d: detector,
        DETECTION_QUEUE="celery",
        CELERY_BROKER_URL="redis://127.0.0.1:9/0",  # nothing listens on the discard port
    )
    try:
        response = app.test_client().get("/healthz")
    finally:
        app.extensions["detection_runner"].shutdown()
    assert response.status_code == 503
    assert response.json["queue"] == "celery"
    assert response.json["checks"]["database"]["ok"]
    assert not response.json["checks"]["broker"]["ok"]


def test_database_down_is_503(app, client, monkeypatch):
    from webapp.extensions import db

    def broken(*_a, **_k):
        raise RuntimeError("database unreachable")

    monkeypatch.setattr(db.session, "execute", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert not response.json["checks"]["database"]["ok"]


WEB_ONLY = """
import sys, tempfile
from pathlib import Path
from PIL import Image
from webapp import create_app
tmp = Path(tempfile.mkdtemp())
app = create_app({"TESTING": True, "SECRET_KEY": "x", "PUBLIC_API": True,
                  "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp / 'db.sqlite'}",
                  "DETECTION_QUEUE": "celery", "CELERY_BROKER_URL": "memory://"},
                 instance_path=tmp / "instance")
Image.new("RGB", (64, 64), (200, 150, 120)).save(tmp / "p.jpg")
client = app.test_client()
for page in ("/", "/history", "/model", "/info", "/healthz"):
    assert client.get(page).status_code == 200, page
with open(tmp / "p.jpg", "rb") as fh:
    response = client.post("/api/v1/detections", data={"file": (fh, "p.jpg")})
assert response.status_code == 202, response.get_data(as_text=True)
det_id = response.json["id"]
assert client.get(f"/api/v1/detections/{det_id}").json["status"] == "queued"  # in the broker
print("tensorflow" in sys.modules)
"""


def test_celery_mode_web_process_never_imports_tensorflow():
    """Pages, /healthz and an upload (queued to the broker) in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", WEB_ONLY], cwd=PROJECT_ROOT, capture_output=True, text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
