"""The result page in each state, its status endpoint, downloads and deletion."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

from conftest import detection_id_from, upload, wait_for_job


def test_result_page_for_a_fake_clip(client, done_clip):
    html = client.get(f"/results/{done_clip}").get_data(as_text=True)
    assert "Likely fake" in html and "86%" in html
    assert "at or above the 70% line" in html  # the sentence on what it means
    assert 'class="timeline"' in html and "threshold-fake" in html and "threshold-real" in html
    assert html.count('class="chip chip-') == 8
    assert "Where the model looked" in html
    for fact in (
        "Duration",
        "Resolution",
        "480 × 360",
        "Frames analysed",
        "Faces scored",
        "Processing time",
        "Model version",
        "test-model-1",
    ):
        assert fact in html, fact
    assert (
        f"/results/{done_clip}/result.json" in html and f"/results/{done_clip}/frames.csv" in html
    )
    assert 'http-equiv="refresh"' not in html and "progress.js" not in html


def test_result_page_for_a_photo_has_no_timeline(app, client, files):
    det_id = detection_id_from(upload(client, files["photo_png"]))
    wait_for_job(app, det_id)
    html = client.get(f"/results/{det_id}").get_data(as_text=True)
    assert "Likely real" in html and 'class="timeline"' not in html and "Photo" in html


def test_small_face_in_the_real_band_is_not_vouched_for(app, client, files, detector):
    """A real-band score on a face under the model's vouch line: "Inconclusive", and the
    sentence says why (the face's size), not the plain "between the lines" text."""
    detector.p_fake, detector.vouch_face_px = 0.12, 100
    det = wait_for_job(app, detection_id_from(upload(client, files["clip"])))
    assert det.verdict == "inconclusive"
    html = client.get(f"/results/{det.id}").get_data(as_text=True)
    assert "Inconclusive" in html and "Likely real" not in html
    assert "below the 30% line where we call it likely real" in html and "narrower than 100 px" in html
    assert "between the" not in html


def test_small_face_in_the_fake_band_does_not_accuse(app, client, files, detector):
    """A fake-band score on a face under the line from which the model may accuse:
    "Inconclusive" on the page and in the JSON, saying why (the size); the PDF: test_report."""
    detector.p_fake, detector.fake_ok_from_px = 0.97, 100
    det = wait_for_job(app, detection_id_from(upload(client, files["clip"])))
    assert det.verdict == "inconclusive" and det.p_fake == 0.97
    html = client.get(f"/results/{det.id}").get_data(as_text=True)
    assert "Inconclusive" in html and "Likely fake" not in html
    assert "above the 70% line where we call it likely fake" in html and "narrower than 100 px" in html
    assert "does not accuse by" in html and "between the" not in html
    data = json.loads(client.get(f"/results/{det.id}/result.json").get_data(as_text=True))
    assert data["verdict"] == "inconclusive"
    assert data["result"]["unaccused"] is True and data["result"]["fake_ok_from_px"] == 100
    assert any("fake band" in w for w in data["result"]["warnings"])


def test_result_page_for_no_face(app, client, files, detector):
    detector.no_face = True
    det_id = detection_id_from(upload(client, files["no_face_clip"]))
    det = wait_for_job(app, det_id)
    assert det.verdict == "no_face" and det.p_fake is None
    html = client.get(f"/results/{det_id}").get_data(as_text=True)
    assert "No face found" in html and "nothing to judge" in html
    assert "Why no face was found" in html and 'class="gauge"' not in html


def test_result_page_while_running_polls_and_refreshes(app, client, files, detector):
    detector.delay = 0.3
    det_id = detection_id_from(upload(client, files["clip"]))
    html = client.get(f"/results/{det_id}").get_data(as_text=True)
    assert "<progress" in html and 'data-status-url="/results/' in html
    assert '<noscript><meta http-equiv="refresh"' in html
    assert "/static/js/progress.js" in html
    seen = set()
    while True:
        status = client.get(f"/results/{det_id}/status")
        assert status.headers["Cache-Control"] == "no-store"
        body = status.json
        seen.add(body["stage"])
        assert 0 <= body["percent"] <= 100
        if body["status"] in ("done", "failed"):
            break
        time.sleep(0.05)
    assert body["status"] == "done" and body["percent"] == 100
    assert seen & {"decode", "detect", "features", "classify", "queued", "load"}
    wait_for_job(app, det_id)


def test_progress_is_monotonic_and_stage_weighted():
    from webapp.services.presenters import overall_progress

    values = [
        overall_progress(s, f)
        for s in ("load", "decode", "detect", "align", "features", "classify", "explain", "save")
        for f in (0, 0.5, 1)
    ]
    assert values == sorted(values) and values[0] == 0 and values[-1] == 1


def test_download_json(client, done_clip):
    response = client.get(f"/results/{done_clip}/result.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert "attachment" in response.headers["Content-Disposition"]
    data = json.loads(response.data)
    assert data["verdict"] == "fake" and data["result"]["thresholds"]["fake_above"] == 0.7
    assert len(data["result"]["frames"]) == 8
    assert data["result"]["chips"][0]["image_url"].endswith("/files/chips/000.jpg")
    assert "path" not in data["result"]  # the server's storage path is not published


def test_download_csv(client, done_clip):
    response = client.get(f"/results/{done_clip}/frames.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == 8 and set(rows[0]) >= {"timestamp_s", "track", "p_fake"}


def test_artefacts_served_and_traversal_refused(client, done_clip):
    chip = client.get(f"/results/{done_clip}/files/chips/000.jpg")
    assert chip.status_code == 200 and chip.mimetype == "image/jpeg"
    assert client.get(f"/results/{done_clip}/files/thumb.jpg").status_code == 200
    assert client.get(f"/results/{done_clip}/files/../../secret_key").status_code == 404
    assert client.get(f"/results/{done_clip}/files/%2e%2e/%2e%2e/secret_key").status_code == 404


def test_delete_removes_row_and_files(app, client, done_clip):
    page = client.get(f"/results/{done_clip}").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post(
        f"/results/{done_clip}/delete", data={"csrf_token": token}, follow_redirects=True
    )
    assert response.status_code == 200 and response.request.path == "/history"
    assert "Deleted the detection" in response.get_data(as_text=True)
    assert client.get(f"/results/{done_clip}").status_code == 404
    assert not (Path(app.config["RESULTS_FOLDER"]) / done_clip).exists()


def test_delete_while_running_discards_the_result(app, client, files, detector):
    detector.delay = 0.2
    det_id = detection_id_from(upload(client, files["clip"]))
    page = client.get(f"/results/{det_id}").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    client.post(f"/results/{det_id}/delete", data={"csrf_token": token})
    assert wait_for_job(app, det_id) is None
    assert not (Path(app.config["RESULTS_FOLDER"]) / det_id).exists()
    assert list(Path(app.config["UPLOAD_FOLDER"]).iterdir()) == []


def test_delete_redirect_stays_on_site(app, client, done_clip):
    page = client.get(f"/results/{done_clip}").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post(
        f"/results/{done_clip}/delete", data={"csrf_token": token, "next": "//evil.example/"}
    )
    assert response.headers["Location"] == "/history"
