"""Choosing the model of an upload: ``model=<version>`` on the API and the form's picker.
The registry holds fake model folders (no TensorFlow); the stand-in detector answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import detection_id_from, make_app, upload, wait_for_job
from test_registry import fake_model


@pytest.fixture
def two_models(tmp_path: Path, detector):
    """An app over a two-model registry; ``app.loaded`` lists the model folder each job loaded."""
    root = tmp_path / "model"
    fake_model(root / "2026.11.22-lite0", "2026.11.22-lite0", auc=0.85)
    fake_model(root / "2026.11.23-lite0", "2026.11.23-lite0", auc=0.9)
    (root / "registry.json").write_text('{"default": "2026.11.23-lite0"}\n')
    loaded: list[str] = []

    def loader(model_dir: str):
        loaded.append(Path(model_dir).name)
        return detector

    app = make_app(tmp_path, MODEL_DIR=str(root), DETECTOR_LOADER=loader)
    app.loaded = loaded
    yield app
    app.extensions["detection_runner"].shutdown()


def test_api_takes_a_model_version_and_the_default_otherwise(two_models, files):
    from webapp.models import Detection

    client = two_models.test_client()
    with files["photo_jpg"].open("rb") as fh:
        chosen = client.post("/api/v1/detections", data={"file": (fh, "a.jpg"), "model": "2026.11.22-lite0"})
    assert chosen.status_code == 202, chosen.json
    assert chosen.json["model_version"] == "2026.11.22-lite0"
    default = client.post("/api/v1/detections", data={"file": (files["photo_png"].open("rb"), "b.png")})
    assert default.json["model_version"] == "2026.11.23-lite0"
    # the same file with the other model is a new detection, not the stored one
    with files["photo_jpg"].open("rb") as fh:
        other = client.post("/api/v1/detections", data={"file": (fh, "a.jpg")})
    assert other.status_code == 202 and other.json["id"] != chosen.json["id"] and not other.json["reused"]
    for r in (chosen, default, other):
        assert wait_for_job(two_models, r.json["id"]).status == "done"
    # each job loaded the model its upload asked for (the stand-in then answers for both)
    assert sorted(two_models.loaded) == ["2026.11.22-lite0", "2026.11.23-lite0", "2026.11.23-lite0"]
    with two_models.app_context():
        assert Detection.query.count() == 3


def test_unknown_model_is_a_clear_400_and_nothing_is_stored(two_models, files, tmp_path):
    from webapp.models import Detection

    client = two_models.test_client()
    with files["photo_jpg"].open("rb") as fh:
        r = client.post("/api/v1/detections", data={"file": (fh, "a.jpg"), "model": "2020.01.01-nope"})
    assert r.status_code == 400 and r.json["error"]["code"] == "unknown_model"
    assert "Available models: 2026.11.23-lite0, 2026.11.22-lite0" in r.json["error"]["message"]
    with two_models.app_context():
        assert Detection.query.count() == 0
    uploads = Path(two_models.instance_path) / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


def test_form_offers_the_models_and_records_the_choice(two_models, files):
    client = two_models.test_client()
    html = client.get("/upload").get_data(as_text=True)
    assert '<select id="model" name="model">' in html
    assert '<option value="2026.11.23-lite0" selected>2026.11.23-lite0 (default)</option>' in html
    assert '<option value="2026.11.22-lite0">' in html
    det_id = detection_id_from(upload(client, files["photo_jpg"], data={"model": "2026.11.22-lite0"}))
    assert wait_for_job(two_models, det_id).status == "done"
    assert two_models.loaded == ["2026.11.22-lite0"]


def test_one_model_means_no_picker(app):
    assert 'name="model"' not in app.test_client().get("/upload").get_data(as_text=True)
