"""Landing, info and model pages, error pages, security headers and start-up configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import make_app

NO_TF_SCRIPT = """
import sys, tempfile
from pathlib import Path
import media
from conftest import StandInDetector, detection_id_from, make_app, upload, wait_for_job

tmp = Path(tempfile.mkdtemp())
detector = StandInDetector()
app = make_app(tmp, DETECTOR_LOADER=lambda _d: detector)
client = app.test_client()
det_id = detection_id_from(upload(client, media.face_clip(tmp / "clip.mp4")))
assert wait_for_job(app, det_id).status == "done"
for url in ("/", "/info", "/model", "/history", f"/results/{det_id}", "/api/v1/detections"):
    assert client.get(url).status_code == 200, url
app.extensions["detection_runner"].shutdown()
print("tensorflow" in sys.modules, "keras" in sys.modules)
"""


def test_website_never_imports_tensorflow():
    """The whole web flow (upload, probe, job, pages) in a fresh interpreter: no TensorFlow.

    A subprocess, because other test modules of the suite import TensorFlow themselves.
    """
    here = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), str(here.parent)])}
    out = subprocess.run(
        [sys.executable, "-c", NO_TF_SCRIPT],
        cwd=here,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_landing_page(client):
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Was this face manipulated?" in html
    assert 'action="/upload"' in html and 'enctype="multipart/form-data"' in html
    assert "No detections yet" in html
    # Measured accuracy from model/config.json, humanised.
    assert "held-out test data" in html and "DFDC faces" in html and "0.912" in html
    assert "Clips LSTM" in html and "0.95" not in html  # test figures, not validation ones


def test_landing_lists_recent_detections(app, client, files):
    from conftest import detection_id_from, upload, wait_for_job

    det_id = detection_id_from(upload(client, files["photo_jpg"]))
    wait_for_job(app, det_id)
    html = client.get("/").get_data(as_text=True)
    assert "astronaut.jpg" in html and f"/results/{det_id}" in html
    assert "Likely real" in html


def test_info_page_explains_pipeline_storage_and_api(client):
    html = client.get("/info").get_data(as_text=True)
    for text in (
        "What deepfakes are",
        "Frames",
        "Faces",
        "Features",
        "LSTM",
        "Verdict",
        "What the score means",
        "known limits",
        "What is stored",
        "/api/v1/detections",
        "0.912",
    ):
        assert text in html, text
    assert "<svg" in html


def test_model_card_rendered_from_markdown(client):
    html = client.get("/model").get_data(as_text=True)
    assert "<h1" in html and "Test model" in html
    assert "<table>" in html


def test_metrics_table_shapes():
    from webapp.services.modelcard import metrics_table

    assert metrics_table({}) is None and metrics_table({"metrics": {}}) is None
    flat = metrics_table({"metrics": {"auc": 0.9, "accuracy": 0.8}})
    assert flat["columns"] == ["AUC", "Accuracy"] and flat["rows"][0]["cells"] == ["0.900", "0.800"]
    per_set = metrics_table({"metrics": {"dfdc_val": {"auc": 0.87}, "celebdf": {"auc": 0.7}}})
    assert [r["name"] for r in per_set["rows"]] == ["DFDC validation", "Celeb-DF"]
    odd = metrics_table({"metrics": {"val": {"mine": {"weird_score": 3}}}})
    assert odd["columns"] == ["Weird score"] and odd["rows"][0]["cells"] == ["3"]


def test_pages_without_model_files(tmp_path):
    app = make_app(tmp_path, MODEL_DIR=str(tmp_path / "no-model"))
    try:
        client = app.test_client()
        for url in ("/", "/info", "/model"):
            page = client.get(url)
            assert page.status_code == 200
            assert "No model metrics available" in page.get_data(as_text=True)
        assert "No model card available" in client.get("/model").get_data(as_text=True)
    finally:
        app.extensions["detection_runner"].shutdown()


def test_security_headers_on_every_response(client):
    for url in ("/", "/history", "/nope", "/api/v1/detections", "/static/css/site.css"):
        response = client.get(url)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp
        assert "'unsafe-inline'" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"]


def test_no_inline_script_or_style_in_pages(client):
    for url in ("/", "/info", "/model", "/upload", "/history"):
        html = client.get(url).get_data(as_text=True)
        assert "<script>" not in html and "style=" not in html and "<style" not in html, url
        assert "http://" not in html.replace("http://localhost", ""), url  # no CDN


def test_session_cookie_flags(app, client):
    client.get("/upload")  # the CSRF token lives in the session
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"


def test_404_is_html_for_browsers_and_json_for_api(client):
    page = client.get("/no-such-page")
    assert page.status_code == 404 and "Page not found" in page.get_data(as_text=True)
    api = client.get("/api/v1/detections/does-not-exist")
    assert api.status_code == 404 and api.json["error"]["code"] == "not_found"
    assert client.get("/results/does-not-exist").status_code == 404


def test_500_page(app, client):
    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    page = client.get("/boom")
    assert page.status_code == 500
    assert "Something broke on our side" in page.get_data(as_text=True)


def test_secret_key_generated_into_instance_folder(tmp_path):
    config = {"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'a.sqlite'}"}
    from webapp import create_app

    app = create_app(config, instance_path=tmp_path / "inst")
    app2 = create_app(config, instance_path=tmp_path / "inst")
    try:
        key_file = Path(app.instance_path) / "secret_key"
        assert key_file.is_file() and (key_file.stat().st_mode & 0o777) == 0o600
        assert app.secret_key == key_file.read_text().strip() == app2.secret_key
        assert len(app.secret_key) >= 32
        assert not app.debug
    finally:
        app.extensions["detection_runner"].shutdown()
        app2.extensions["detection_runner"].shutdown()


def test_sqlite_uses_wal_and_busy_timeout(app):
    from sqlalchemy import text

    from webapp.extensions import db

    with app.app_context():
        assert db.session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert db.session.execute(text("PRAGMA busy_timeout")).scalar() >= 1000


ENTRY_POINTS_SCRIPT = """
import os
from flask import Flask
import app, wsgi
for module in (app, wsgi):
    assert isinstance(module.app, Flask), module
    assert module.app.instance_path == os.environ["DEEPFAKE_INSTANCE_PATH"]
    assert module.app.test_client().get("/").status_code == 200
    assert "/upload" in {rule.rule for rule in module.app.url_map.iter_rules()}
    module.app.extensions["detection_runner"].shutdown()
assert app.app is not wsgi.app
print("ok")
"""


def test_wsgi_and_app_modules_build_the_app(tmp_path):
    """``import app`` and ``import wsgi`` each build a working app (a fresh interpreter: the
    modules build theirs at import, in the instance folder DEEPFAKE_INSTANCE_PATH names)."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "DEEPFAKE_INSTANCE_PATH": str(tmp_path / "instance"), "PYTHONPATH": str(root)}
    env.pop("FLASK_RUN_FROM_CLI", None)
    out = subprocess.run([sys.executable, "-c", ENTRY_POINTS_SCRIPT], cwd=root, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ok"]
    assert (tmp_path / "instance" / "secret_key").is_file()  # not the checkout's instance/
    conf = {}
    exec((root / "gunicorn.conf.py").read_text(), conf)
    assert conf["preload_app"] is False and 1 <= conf["workers"] <= 2 and conf["timeout"] >= 120


def test_face_size_lines_follow_the_default_model(app, client, model_dir):
    """The upload tips and the info page's limits quote the default model's own lines: the
    engine's defaults without any in config.json, the model's judged/vouched lines with them."""
    import json

    from webapp.detection.result import face_lines

    assert face_lines({}) == {"judged": {"video": 100, "image": 60}, "vouched": {"video": 100, "image": 60},
                              "accused": {"video": 100, "image": 60}}
    lines = face_lines({"min_face_px": {"video": 60}, "vouch_face_px": {"video": 100, "image": 40}})
    assert lines == {"judged": {"video": 60, "image": 60}, "vouched": {"video": 100, "image": 60},
                     "accused": {"video": 100, "image": 60}}
    # A measured small-face line lowers "accused", never under the judged line nor over the vouch line.
    lines = face_lines({"min_face_px": {"video": 60}, "vouch_face_px": {"video": 100, "image": 150},
                        "small_face_fake_ok_from_px": {"video": 40, "image": 200}})
    assert lines["accused"] == {"video": 60, "image": 150}

    page = client.get("/upload").get_data(as_text=True)
    assert "at least 100 pixels wide in a clip (60 in a photo)" in page and "never “likely real”" not in page
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg.update(min_face_px={"video": 60, "image": 60}, vouch_face_px={"video": 100, "image": 150})
    (model_dir / "config.json").write_text(json.dumps(cfg))
    os.utime(model_dir / "config.json", (1, 1))  # a new mtime: the cached config is re-read
    page = client.get("/upload").get_data(as_text=True)
    assert "at least 60 pixels wide in a clip (60 in a photo)" in page
    assert ("Below 100 px in a clip (150 in a photo) a face is never called “likely real”, nor “likely fake” "
            "by itself: its result reads “inconclusive”.") in page
    info = client.get("/info").get_data(as_text=True)
    assert "Faces narrower than 60 pixels in a video" in info and "narrower than 100 pixels in a video (150 in a photo)" in info
    assert "has not been measured to keep false alarms at or under 2%" in info
    cfg.update(small_face_fake_ok_from_px={"video": 70})  # measured for clips only
    (model_dir / "config.json").write_text(json.dumps(cfg))
    os.utime(model_dir / "config.json", (2, 2))
    page = client.get("/upload").get_data(as_text=True)
    assert "and called “likely fake” only from 70 px (150 in a photo)" in page
    info = client.get("/info").get_data(as_text=True)
    assert "by themselves only from 70 pixels in a video (150 in a photo)" in info
