"""JSON API v1: create (CSRF-exempt, 202), status and result, list, delete, JSON errors."""

from __future__ import annotations

import io

from conftest import make_app, wait_for_job

#: Every test using ``app`` runs with threads and with Celery (see conftest.QUEUE_MODES).
BOTH_QUEUE_MODES = True


def post(client, path, name=None):
    with open(path, "rb") as fh:
        return client.post(
            "/api/v1/detections",
            data={"file": (fh, name or path.name)},
            content_type="multipart/form-data",
        )


def test_create_returns_202_with_status_url(app, client, files):
    response = post(client, files["clip"])
    assert response.status_code == 202
    body = response.json
    assert body["status"] == "queued" and body["reused"] is False
    assert response.headers["Location"] == body["status_url"]
    assert body["status_url"].endswith(f"/api/v1/detections/{body['id']}")
    wait_for_job(app, body["id"])


def test_get_returns_status_then_full_result(app, client, files, detector):
    detector.p_fake = 0.9
    det_id = post(client, files["clip"]).json["id"]
    wait_for_job(app, det_id)
    body = client.get(f"/api/v1/detections/{det_id}").json
    assert body["status"] == "done" and body["progress"] == 1.0
    assert body["verdict"] == "fake" and body["p_fake"] == 0.9
    result = body["result"]
    assert result["media"]["media_type"] == "video" and len(result["frames"]) == 8
    assert result["thresholds"] == {"real_below": 0.3, "fake_above": 0.7}
    assert result["chips"][0]["image_url"].startswith("http://localhost/results/")
    assert body["links"]["csv"].endswith("/frames.csv")


def test_failed_detection_reports_error(app, client, files, detector):
    from webapp.detection.errors import NoFramesError

    detector.error = NoFramesError("This video contains no picture frames.")
    det_id = post(client, files["clip"]).json["id"]
    wait_for_job(app, det_id)
    body = client.get(f"/api/v1/detections/{det_id}").json
    assert body["status"] == "failed" and body["verdict"] is None
    assert body["error"] == {
        "code": "no_frames",
        "message": "This video contains no picture frames.",
    }


def test_same_validation_as_the_form(app, client, files, tmp_path):
    bad = post(client, files["text_mp4"])
    assert bad.status_code == 400 and bad.json["error"]["code"] == "unsupported_media"
    assert "neither a photo nor a video" in bad.json["error"]["message"]
    assert post(client, files["truncated"]).status_code == 400
    txt = tmp_path / "a.txt"
    txt.write_text("x")
    assert post(client, txt).json["error"]["code"] == "unsupported_media"
    missing = client.post("/api/v1/detections", data={}, content_type="multipart/form-data")
    assert missing.status_code == 400 and missing.json["error"]["code"] == "no_file"
    assert client.get("/api/v1/detections").json["total"] == 0


def test_oversize_is_json_413(tmp_path, model_dir, detector):
    app = make_app(
        tmp_path,
        MODEL_DIR=str(model_dir),
        DETECTOR_LOADER=lambda _d: detector,
        MAX_CONTENT_LENGTH=50_000,
    )
    try:
        response = app.test_client().post(
            "/api/v1/detections",
            data={"file": (io.BytesIO(b"\0" * 100_000), "big.mp4")},
            content_type="multipart/form-data",
        )
        assert response.status_code == 413 and response.json["error"]["code"] == "too_large"
    finally:
        app.extensions["detection_runner"].shutdown()


def test_reuse_of_an_analysed_file(app, client, files):
    first = post(client, files["photo_jpg"]).json["id"]
    wait_for_job(app, first)
    again = post(client, files["photo_jpg"])
    assert again.status_code == 200 and again.json["reused"] is True and again.json["id"] == first


def test_list_is_paginated_and_filterable(app, client, files, detector):
    ids = []
    for key in ("clip", "photo_jpg", "photo_png"):
        ids.append(post(client, files[key]).json["id"])
        wait_for_job(app, ids[-1])
    body = client.get("/api/v1/detections?per_page=2").json
    assert body["total"] == 3 and body["pages"] == 2 and len(body["items"]) == 2
    assert body["items"][0]["id"] == ids[-1]  # newest first
    assert body["next"] and body["prev"] is None
    page2 = client.get(body["next"]).json
    assert [i["id"] for i in page2["items"]] == [ids[0]]
    assert client.get("/api/v1/detections?q=.png").json["total"] == 1
    assert client.get("/api/v1/detections?verdict=fake").json["total"] == 0
    assert client.get("/api/v1/detections?per_page=1000").json["per_page"] == 100


def test_delete(app, client, files):
    det_id = post(client, files["photo_jpg"]).json["id"]
    wait_for_job(app, det_id)
    assert client.delete(f"/api/v1/detections/{det_id}").status_code == 204
    assert client.get(f"/api/v1/detections/{det_id}").status_code == 404


def test_api_errors_are_json(client):
    response = client.put("/api/v1/detections")
    assert response.status_code == 405 and response.json["error"]["code"] == "method_not_allowed"
