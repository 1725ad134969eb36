"""One file, several models: "Analyse again with …" (page and API) and the side-by-side panel
on the result page. (The history's model filter is in test_web_history.py.)

The registry holds two fake model folders; each model's stand-in detector answers with a
score of its own (no TensorFlow). The last test runs the real engine with both shipped models.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import (
    QUEUE_MODES,
    StandInDetector,
    detection_id_from,
    make_app,
    upload,
    wait_for_job,
)
from test_privacy import csrf, make_user, share, sign_in
from test_registry import fake_model

from webapp.extensions import db
from webapp.models import Detection

NEW, OLD = "2026.11.23-lite0", "2026.11.22-lite0"
#: Analysing again (and the upload it starts from) in both queue modes: threads and Celery.
BOTH_QUEUE_MODES = True


def two_model_app(tmp_path: Path, **config):
    """An app over a two-model registry (NEW the default). ``app.detectors[version]`` answers
    for that model (its own score and version); ``app.loaded`` lists each job's model."""
    root = tmp_path / "model"
    fake_model(root / OLD, OLD, auc=0.85)
    fake_model(root / NEW, NEW, auc=0.9)
    (root / "registry.json").write_text(f'{{"default": "{NEW}"}}\n')
    detectors = {}
    for version, p_fake in ((NEW, 0.86), (OLD, 0.45)):
        det = StandInDetector()
        det.version, det.p_fake = version, p_fake
        detectors[version] = det
    loaded: list[str] = []

    def loader(model_dir: str):
        loaded.append(Path(model_dir).name)
        return detectors[Path(model_dir).name]

    app = make_app(tmp_path, MODEL_DIR=str(root), DETECTOR_LOADER=loader, **config)
    app.detectors, app.loaded = detectors, loaded
    return app


@pytest.fixture
def kept(tmp_path, queue_mode):
    """Uploads kept after analysis (KEEP_UPLOADS): analyses can start from the stored file."""
    app = two_model_app(tmp_path, KEEP_UPLOADS=True, **QUEUE_MODES[queue_mode])
    yield app
    app.extensions["detection_runner"].shutdown()


@pytest.fixture
def deleted(tmp_path, queue_mode):
    """The default: each upload is deleted once analysed."""
    app = two_model_app(tmp_path, **QUEUE_MODES[queue_mode])
    yield app
    app.extensions["detection_runner"].shutdown()


def analyse_again(client, det_id: str, model: str, **kw):
    token = csrf(client, f"/results/{det_id}")
    return client.post(
        f"/results/{det_id}/analyses", data={"csrf_token": token, "model": model}, **kw
    )


def rows(app) -> list[Detection]:
    with app.app_context():
        return db.session.scalars(db.select(Detection).order_by(Detection.created_at)).all()


def panel(html: str) -> str:
    """The side-by-side section of a result page ("" when there is none)."""
    match = re.search(r'<section class="card compare" id="compare".*?</section>', html, re.S)
    return match.group(0) if match else ""


# --------------------------------------------------------------------------- the page


def test_analyse_again_then_both_verdicts_side_by_side(kept, files):
    client = kept.test_client()
    first = wait_for_job(kept, detection_id_from(upload(client, files["clip"])))
    assert first.model_version == NEW and first.verdict == "fake"
    html = client.get(f"/results/{first.id}").get_data(as_text=True)
    assert not panel(html) and "Other models" in html
    assert f"Analyse again with {OLD}</button>" in html and f"Analyse again with {NEW}" not in html

    response = analyse_again(client, first.id, OLD)
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/results/{first.id}#compare")
    first_row, second = rows(kept)
    assert first_row.id == first.id and second.model_version == OLD
    assert (second.sha256, second.owner_id, second.filename) == (
        first.sha256, first.owner_id, first.filename)
    assert second.upload_name != first.upload_name  # its own copy: deleting one keeps the other
    second = wait_for_job(kept, second.id)
    assert second.status == "done" and second.verdict == "inconclusive"
    assert kept.loaded == [NEW, OLD]

    for page_id in (first.id, second.id):  # the same panel on both results
        html = client.get(f"/results/{page_id}").get_data(as_text=True)
        side = panel(html)
        assert "The same file, judged by 2 models" in side
        assert side.index(NEW) < side.index(OLD)  # registry order, whichever page this is
        assert "Likely fake" in side and "Inconclusive" in side
        assert "86%" in side and "45%" in side
        assert side.count('class="timeline"') == 2 and side.count('class="gauge"') == 2
        assert html.count('class="timeline"') == 2  # this model's chart is drawn once, there
        assert "The models disagree" in side
        assert "this result" in side and "Open its result" in side
        assert "Analyse again with" not in html  # both installed models have judged it
        assert 'data-pending="0"' in side and "compare.js" not in html

    # The same model again: the stored result, never a duplicate analysis.
    again = analyse_again(client, first.id, OLD)
    assert again.status_code == 303 and again.headers["Location"].endswith(f"/results/{second.id}")
    assert "here is that result" in client.get(again.headers["Location"]).get_data(as_text=True)
    assert len(rows(kept)) == 2 and kept.loaded == [NEW, OLD]


def test_unknown_model_is_refused_with_the_list_and_nothing_is_queued(kept, files):
    client = kept.test_client()
    first = wait_for_job(kept, detection_id_from(upload(client, files["photo_jpg"])))
    response = analyse_again(client, first.id, "2020.01.01-nope", follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "Unknown model" in html and f"Available models: {NEW}, {OLD}" in html
    assert len(rows(kept)) == 1


def test_deleted_upload_says_to_upload_again_and_loses_nothing(deleted, files):
    client = deleted.test_client()
    first = wait_for_job(deleted, detection_id_from(upload(client, files["clip"])))
    assert first.upload_name is None  # deleted after analysis (the default)
    html = client.get(f"/results/{first.id}").get_data(as_text=True)
    assert "no longer on the server" in html and "Analyse again with" not in html
    link = f'href="/upload?model={OLD}"'
    assert link in html and f"Upload again with {OLD}" in html
    # A stale page (or a hand-made post) gets the same explanation; nothing changes.
    response = analyse_again(client, first.id, OLD, follow_redirects=True)
    text = response.get_data(as_text=True)
    assert response.status_code == 200 and "cannot be analysed again" in text
    assert "Nothing was changed" in text and "Likely fake" in text
    assert [r.id for r in rows(deleted)] == [first.id]
    # The link opens the form with that model chosen; uploading the file again compares.
    form = client.get(f"/upload?model={OLD}").get_data(as_text=True)
    assert f'<option value="{OLD}" selected>' in form
    second = detection_id_from(upload(client, files["clip"], data={"model": OLD}))
    assert wait_for_job(deleted, second).model_version == OLD
    side = panel(client.get(f"/results/{second}").get_data(as_text=True))
    assert "judged by 2 models" in side and side.count('class="timeline"') == 2


def test_another_analysis_still_running_fills_in(kept, files, queue_mode):
    if queue_mode == "celery":
        pytest.skip("eager Celery runs the job inside the request: nothing is ever seen running")
    client = kept.test_client()
    first = wait_for_job(kept, detection_id_from(upload(client, files["clip"])))
    kept.detectors[OLD].delay = 0.4
    analyse_again(client, first.id, OLD)
    html = client.get(f"/results/{first.id}").get_data(as_text=True)
    side = panel(html)
    assert 'data-pending="1"' in side and "<progress" in side and "fills in by itself" in side
    assert "Waiting for the other model to finish" in side
    assert "/static/js/compare.js" in html and 'http-equiv="refresh"' in html
    fragment = client.get(f"/results/{first.id}/compare")
    assert fragment.status_code == 200 and fragment.headers["Cache-Control"] == "no-store"
    assert fragment.get_data(as_text=True).lstrip().startswith('<section class="card compare"')
    wait_for_job(kept, rows(kept)[1].id)
    done = client.get(f"/results/{first.id}/compare").get_data(as_text=True)
    assert 'data-pending="0"' in done and "Inconclusive" in done and "<progress" not in done


def test_photos_compare_without_timelines(kept, files):
    client = kept.test_client()
    first = wait_for_job(kept, detection_id_from(upload(client, files["photo_png"])))
    kept.detectors[OLD].p_fake = 0.9
    analyse_again(client, first.id, OLD)
    wait_for_job(kept, rows(kept)[1].id)
    side = panel(client.get(f"/results/{first.id}").get_data(as_text=True))
    assert 'class="timeline"' not in side and side.count("one frame, so no timeline") == 2
    assert side.count('class="gauge"') == 2 and "Both models agree: likely fake." in side


def test_a_failed_model_shows_its_reason_and_can_be_tried_again(kept, files):
    client = kept.test_client()
    first = wait_for_job(kept, detection_id_from(upload(client, files["photo_jpg"])))
    kept.detectors[OLD].error = RuntimeError("boom")
    analyse_again(client, first.id, OLD)
    failed = wait_for_job(kept, rows(kept)[1].id)
    assert failed.status == "failed"
    html = client.get(f"/results/{first.id}").get_data(as_text=True)
    side = panel(html)
    assert "Failed" in side and "Something went wrong inside the detector" in side
    assert f"Analyse again with {OLD}" in side  # a failure is not an answer: retry offered
    kept.detectors[OLD].error = None
    analyse_again(client, first.id, OLD)
    retried = wait_for_job(kept, rows(kept)[2].id)
    assert retried.status == "done"
    side = panel(client.get(f"/results/{first.id}").get_data(as_text=True))
    assert "Failed" not in side and "Analyse again with" not in side  # the finished one counts


# --------------------------------------------------------------------------- who sees what


def test_only_the_owner_compares_and_shared_links_show_one_result(kept, files):
    alice, bob = kept.test_client(), kept.test_client()
    mine = wait_for_job(kept, detection_id_from(upload(alice, files["clip"])))
    analyse_again(alice, mine.id, OLD)
    other = wait_for_job(kept, rows(kept)[1].id)
    # Bob uploads the same bytes: his result compares nothing of Alice's.
    bobs = wait_for_job(kept, detection_id_from(upload(bob, files["clip"])))
    bob_html = bob.get(f"/results/{bobs.id}").get_data(as_text=True)
    assert not panel(bob_html) and mine.id not in bob_html and other.id not in bob_html
    assert f"Analyse again with {OLD}" in bob_html
    for url in (f"/results/{mine.id}/compare", f"/api/v1/detections/{mine.id}/analyses"):
        assert bob.get(url).status_code == 404, url
    assert analyse_again(bob, bobs.id, OLD).status_code == 303  # his own: fine
    refused = bob.post(f"/results/{mine.id}/analyses", data={"csrf_token": csrf(bob), "model": OLD})
    assert refused.status_code == 404
    assert bob.post(f"/api/v1/detections/{mine.id}/analyses", data={"model": OLD}).status_code == 404
    # A share link is this one result: no panel, no other detection's id, no buttons.
    link = share(kept, alice, mine.id)
    shared = kept.test_client().get(f"/shared/{link.token}").get_data(as_text=True)
    assert "Likely fake" in shared and not panel(shared) and other.id not in shared
    assert "Analyse again" not in shared and "/compare" not in shared
    # An admin sees the comparison but does not start analyses of someone else's file.
    make_user(kept, "root", "admin")
    admin = kept.test_client()
    sign_in(admin, "root")
    admin_html = admin.get(f"/results/{mine.id}").get_data(as_text=True)
    assert "judged by 2 models" in panel(admin_html)
    forbidden = admin.post(
        f"/results/{bobs.id}/analyses", data={"csrf_token": csrf(admin), "model": OLD}
    )
    assert forbidden.status_code == 403 and "Only the owner" in forbidden.get_data(as_text=True)


def test_analyse_again_needs_the_csrf_token(kept, files):
    client = kept.test_client()
    first = wait_for_job(kept, detection_id_from(upload(client, files["photo_jpg"])))
    assert client.post(f"/results/{first.id}/analyses", data={"model": OLD}).status_code == 400
    assert len(rows(kept)) == 1


# --------------------------------------------------------------------------- the API


def test_api_analyses(kept, files):
    client = kept.test_client()
    with files["clip"].open("rb") as fh:
        created = client.post("/api/v1/detections", data={"file": (fh, "clip.mp4")}).json
    url = f"/api/v1/detections/{created['id']}/analyses"
    assert created["links"]["analyses"].endswith(url)
    # Right after the upload, while the first analysis runs: queue the other model (JSON body).
    queued = client.post(url, json={"model": OLD})
    assert queued.status_code == 202, queued.json
    body = queued.json
    assert body["model_version"] == OLD and body["reused"] is False and body["id"] != created["id"]
    assert queued.headers["Location"] == body["status_url"]
    wait_for_job(kept, created["id"])
    wait_for_job(kept, body["id"])
    again = client.post(url, data={"model": OLD})
    assert again.status_code == 200 and again.json["reused"] is True and again.json["id"] == body["id"]
    listed = client.get(url).json
    assert [i["model_version"] for i in listed["items"]] == [NEW, OLD]
    assert [i["verdict"] for i in listed["items"]] == ["fake", "inconclusive"]
    assert listed["models_not_run"] == [] and listed["file_kept"] is True
    unknown = client.post(url, data={"model": "nope"})
    assert unknown.status_code == 400 and unknown.json["error"]["code"] == "unknown_model"
    assert client.post("/api/v1/detections/" + "0" * 32 + "/analyses").status_code == 404
    assert len(rows(kept)) == 2


def test_api_analyses_without_the_upload_is_a_409_with_what_to_do(deleted, files):
    other = deleted.test_client()
    with files["photo_jpg"].open("rb") as fh:
        made = other.post("/api/v1/detections", data={"file": (fh, "a.jpg")}).json
    wait_for_job(deleted, made["id"])
    gone = other.post(f"/api/v1/detections/{made['id']}/analyses", data={"model": OLD})
    assert gone.status_code == 409 and gone.json["error"]["code"] == "upload_gone"
    assert "Upload the same file again" in gone.json["error"]["message"]
    listed = other.get(f"/api/v1/detections/{made['id']}/analyses").json
    assert listed["models_not_run"] == [OLD] and listed["file_kept"] is False
    assert len(rows(deleted)) == 1


# --------------------------------------------------------------------------- the real engine


@pytest.mark.engine
@pytest.mark.slow
def test_two_shipped_models_side_by_side_on_a_generated_clip(tmp_path, files):
    """The real engine runs the clip with the default model, then "Analyse again" with the
    other shipped one: the panel shows each model's own verdict, bands and timeline."""
    from webapp.detection.registry import Registry

    entries = Registry().entries
    assert len(entries) >= 2, "the registry ships two models"
    default = next(e for e in entries if e.default)
    other = next(e for e in entries if not e.default)
    app = make_app(tmp_path, KEEP_UPLOADS=True)
    try:
        client = app.test_client()
        first = wait_for_job(app, detection_id_from(upload(client, files["clip"])), timeout=600)
        assert first.status == "done" and first.model_version == default.version, first.error_message
        assert analyse_again(client, first.id, other.version).status_code == 303
        second = wait_for_job(app, rows(app)[1].id, timeout=600)
        assert second.status == "done" and second.model_version == other.version, second.error_message
        assert first.faces_found >= 1 and second.faces_found >= 1

        listed = client.get(f"/api/v1/detections/{first.id}/analyses").json
        assert [i["model_version"] for i in listed["items"]] == [e.version for e in entries[:2]]
        assert all(0 <= i["p_fake"] <= 1 for i in listed["items"])

        with app.test_request_context():
            from webapp.services import compare, storage

            cmp = compare.comparison(first, storage.load_result(first))
        assert cmp["side_by_side"] and not cmp["pending"] and cmp["others"] == []
        by_version = {c["version"]: c for c in cmp["columns"]}
        for det, entry in ((first, default), (second, other)):
            col = by_version[det.model_version]
            assert col["verdict"] == det.verdict and col["score"]
            bands = (entry.config.get("clip_real_below") or entry.config["real_below"],
                     entry.config.get("clip_fake_above") or entry.config["fake_above"])
            assert (col["thresholds"]["real_below"], col["thresholds"]["fake_above"]) == pytest.approx(bands)
            tl = col["timeline"]
            assert tl and tl["series"] and len(tl["series"][0]["points"]) >= 8
        assert by_version[default.version]["current"] and not by_version[other.version]["current"]
        # the same frames, scored by two different networks
        points = [[p["p"] for p in by_version[v]["timeline"]["series"][0]["points"]]
                  for v in (default.version, other.version)]
        assert points[0] != points[1]

        side = panel(client.get(f"/results/{first.id}").get_data(as_text=True))
        assert side.count('class="timeline"') == 2 and (cmp["agreement"] or "") in side
    finally:
        app.extensions["detection_runner"].shutdown()
