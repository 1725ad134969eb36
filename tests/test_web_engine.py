"""Upload -> job -> result through the real engine and the shipped model (imports TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import detection_id_from, make_app, shipped_model, upload, wait_for_job

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def check_done_with_faces(app, client, det_id: str, media_type: str) -> dict:
    det = wait_for_job(app, det_id, timeout=600)
    assert det.status == "done", det.error_message
    assert det.media_type == media_type
    assert det.verdict in ("real", "inconclusive", "fake")
    assert 0.0 <= det.p_fake <= 1.0 and det.faces_found >= 1
    assert det.model_version == json.loads((shipped_model() / "config.json").read_text())["version"]
    rdir = Path(app.config["RESULTS_FOLDER"]) / det_id
    result = json.loads((rdir / "result.json").read_text())
    assert result["verdict"] == det.verdict and result["chips"]
    assert all((rdir / c["image"]).is_file() for c in result["chips"])
    assert any(c["heatmap"] for c in result["chips"])  # Grad-CAM of the suspicious frames
    html = client.get(f"/results/{det_id}").get_data(as_text=True)
    assert f'data-verdict="{det.verdict}"' in html and "Where the model looked" in html
    assert not list(Path(app.config["UPLOAD_FOLDER"]).iterdir())  # original deleted
    return result


def test_clip_flow(engine_app, files):
    client = engine_app.test_client()
    det_id = detection_id_from(upload(client, files["clip"]))
    result = check_done_with_faces(engine_app, client, det_id, "video")
    assert len(result["frames"]) >= 8 and result["media"]["duration"] == pytest.approx(3.0, abs=0.2)
    html = client.get(f"/results/{det_id}").get_data(as_text=True)
    assert 'class="timeline"' in html
    api = client.get(f"/api/v1/detections/{det_id}").json
    assert api["status"] == "done" and api["result"]["tracks"]


def test_photo_flow(engine_app, files):
    client = engine_app.test_client()
    det_id = detection_id_from(upload(client, files["photo_jpg"]))
    result = check_done_with_faces(engine_app, client, det_id, "image")
    assert result["frames_sampled"] == 1


def test_no_face_clip_ends_no_face(engine_app, files):
    client = engine_app.test_client()
    det_id = detection_id_from(upload(client, files["no_face_clip"]))
    det = wait_for_job(engine_app, det_id, timeout=600)
    assert det.status == "done" and det.verdict == "no_face" and det.p_fake is None
    html = client.get(f"/results/{det_id}").get_data(as_text=True)
    assert "No face found" in html and "Why no face was found" in html


def test_nan_model_fails_the_job_with_a_reason(tmp_path, broken_detector, files):
    """The real engine with NaN in its frame head: the job fails with the engine's reason; the
    row never holds a verdict with a NULL score, and no JSON answer contains NaN."""
    nan_detector = broken_detector("nan_frames")
    app = make_app(tmp_path, DETECTOR_LOADER=lambda _dir: nan_detector)
    try:
        client = app.test_client()
        det_id = detection_id_from(upload(client, files["photo_jpg"]))
        det = wait_for_job(app, det_id, timeout=600)
        assert det.status == "failed" and det.error_code == "model_output_error"
        assert "invalid frame scores (NaN or infinite)" in det.error_message
        assert det.verdict is None and det.p_fake is None

        def no_nan(token: str):
            raise AssertionError(f"JSON contains {token}")

        raw = client.get(f"/api/v1/detections/{det_id}").get_data(as_text=True)
        body = json.loads(raw, parse_constant=no_nan)
        assert body["status"] == "failed" and body["verdict"] is None and body["p_fake"] is None
        assert body["error"]["code"] == "model_output_error"
        html = client.get(f"/results/{det_id}").get_data(as_text=True)
        assert "invalid frame scores" in html
    finally:
        app.extensions["detection_runner"].shutdown()


def test_face_too_small_page(engine_app, tmp_path):
    """A face found but too small to judge: the page says so, with the sizes."""
    import engine_media as em

    client = engine_app.test_client()
    clip = em.dim_far_clip(tmp_path / "far.mp4", face_px=45)
    det_id = detection_id_from(upload(client, clip))
    det = wait_for_job(engine_app, det_id, timeout=600)
    assert det.status == "done" and det.verdict == "no_face" and det.p_fake is None
    html = client.get(f"/results/{det_id}").get_data(as_text=True)
    assert "Face too small to judge (" in html and "px wide; needs ≥ 60 px)" in html
    assert "Why no face was found" not in html
