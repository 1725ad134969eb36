"""One upload judged by every installed model at once: the form's "Judge with every installed
model" checkbox, ``models=all`` (or a list) on ``POST /api/v1/detections`` and
``POST /api/v1/batches``; one detection per model from one stored file, the per-owner dedup
per model, uploads deleted after each job, the side-by-side panel filling in, the "Analysing
with …" notice turning to "finished", batches with a column per model, and owners kept apart.

The registry holds two fake model folders; each model's stand-in detector answers with a
score of its own (no TensorFlow), see test_compare.two_model_app. The last test runs the real
engine with both shipped models.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from conftest import QUEUE_MODES, detection_id_from, make_app, owner_of, upload, wait_for_job
from test_compare import NEW, OLD, panel, rows, two_model_app
from test_privacy import csrf

from webapp.extensions import db
from webapp.models import Batch, Detection

#: Every test using ``queue_mode`` runs with threads and with Celery (see conftest.QUEUE_MODES).
BOTH_QUEUE_MODES = True


@pytest.fixture
def models_app(tmp_path, queue_mode):
    """Two models (NEW the default, answering "likely fake"; OLD "inconclusive"), uploads
    deleted after analysis (the default), in each queue mode."""
    app = two_model_app(tmp_path, **QUEUE_MODES[queue_mode])
    yield app
    app.extensions["detection_runner"].shutdown()


@pytest.fixture
def threads_app(tmp_path):
    """Jobs in threads only, to watch a page while a job still runs (eager Celery finishes
    every job inside the upload request)."""
    app = two_model_app(tmp_path)
    yield app
    app.extensions["detection_runner"].shutdown()


def uploads(app) -> list[str]:
    folder = Path(app.config["UPLOAD_FOLDER"])
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def api_upload(client, path: Path, **fields):
    owner_of(client)  # the browser's own owner (PUBLIC_API): its pages are its own
    with path.open("rb") as fh:
        return client.post("/api/v1/detections", data={"file": (fh, path.name), **fields})


def finish_all(app) -> list[Detection]:
    return [wait_for_job(app, row.id) for row in rows(app)]


# --------------------------------------------------------------------------- the form


def test_the_checkbox_is_offered_with_several_models(models_app):
    html = models_app.test_client().get("/upload").get_data(as_text=True)
    assert 'type="checkbox" id="models-all" name="models" value="all"' in html
    assert "Judge with every installed model (2), side by side" in html
    assert 'value="all" checked' not in html
    # "/upload?models=all" opens the form with it ticked
    ticked = models_app.test_client().get("/upload?models=all").get_data(as_text=True)
    assert 'value="all" checked' in ticked


def test_one_model_means_no_checkbox_and_models_all_is_that_one(app, client, files):
    assert 'name="models"' not in client.get("/upload").get_data(as_text=True)
    body = api_upload(client, files["photo_jpg"], models="all").json
    assert len(body["analyses"]) == 1 and body["analyses"][0]["id"] == body["id"]


def test_form_checkbox_makes_one_detection_per_model_and_opens_the_default(models_app, files):
    client = models_app.test_client()
    response = upload(client, files["clip"], data={"models": "all"})
    assert response.status_code == 303
    first, second = rows(models_app)
    assert response.headers["Location"].endswith(f"/results/{first.id}")
    assert (first.model_version, second.model_version) == (NEW, OLD)
    assert first.sha256 == second.sha256 and first.owner_id == second.owner_id
    assert first.filename == second.filename == files["clip"].name
    done = finish_all(models_app)
    # each job read its own name for the file (and deleted it after)
    paths = [Path(models_app.detectors[v].calls[-1]) for v in (NEW, OLD)]
    assert paths[0] != paths[1] and {p.parent for p in paths} == {Path(models_app.config["UPLOAD_FOLDER"])}
    assert [d.status for d in done] == ["done", "done"]
    assert sorted(models_app.loaded) == sorted([NEW, OLD])
    assert [d.verdict for d in done] == ["fake", "inconclusive"]
    # KEEP_UPLOADS=False: every copy is gone once its own job has finished
    assert uploads(models_app) == [] and [d.upload_name for d in done] == [None, None]
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    side = panel(html)
    assert "The same file, judged by 2 models" in side and "The models disagree" in side
    assert side.index(NEW) < side.index(OLD) and side.count('class="timeline"') == 2
    assert "Analyse again with" not in html and "Upload again with" not in html
    # both thumbnails exist (the second is a copy of the first's)
    for det in done:
        assert client.get(f"/results/{det.id}/files/thumb.jpg").status_code == 200


def test_form_checkbox_with_a_chosen_model_opens_that_one(models_app, files):
    client = models_app.test_client()
    response = upload(client, files["photo_jpg"], data={"models": "all", "model": OLD})
    by_model = {r.model_version: r for r in rows(models_app)}
    assert set(by_model) == {NEW, OLD}
    assert response.headers["Location"].endswith(f"/results/{by_model[OLD].id}")
    finish_all(models_app)
    side = panel(client.get(response.headers["Location"]).get_data(as_text=True))
    assert "judged by 2 models" in side and "one frame, so no timeline" in side


def test_pending_page_names_the_other_model_and_the_panel_fills_in(threads_app, files):
    app, client = threads_app, threads_app.test_client()
    app.detectors[NEW].delay = 0.2
    app.detectors[OLD].delay = 0.4
    response = upload(client, files["clip"], data={"models": "all"})
    first, second = rows(app)
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="job"' in html  # this model's own progress
    assert f"This page: <strong>{NEW}</strong>. Also judged by <strong>{OLD}</strong> (" in html
    assert "the verdicts appear side by side on this page" in html
    notice = re.search(r'<p class="flash [^"]*" data-analysing="([^"]*)"[^>]*>([^<]*)</p>', html)
    assert notice and notice.group(1) == OLD
    assert notice.group(2) == (
        f"Also judging the file with {OLD}: its verdict appears beside this one as soon as it "
        "is ready."
    )
    wait_for_job(app, first.id)
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    if rows(app)[1].is_pending:  # usually: OLD is slower and queued behind NEW
        side = panel(html)
        assert 'data-pending="1"' in side and "/static/js/compare.js" in html
        assert f'data-model="{OLD}" data-status="' in side
    wait_for_job(app, second.id)
    done = client.get(f"/results/{first.id}/compare").get_data(as_text=True)
    assert 'data-pending="0"' in done and "Inconclusive" in done and "Likely fake" in done


def test_the_upload_and_its_models_count_once_against_the_rate_limit(tmp_path, files):
    app = two_model_app(tmp_path, UPLOAD_RATE_LIMIT="2 per minute")
    try:
        client = app.test_client()
        assert api_upload(client, files["photo_jpg"], models="all").status_code == 202
        assert api_upload(client, files["photo_png"], models="all").status_code == 202
        assert len(rows(app)) == 4  # four analyses from two uploads
        third = api_upload(client, files["clip"], models="all")
        assert third.status_code == 429 and len(rows(app)) == 4
        finish_all(app)
    finally:
        app.extensions["detection_runner"].shutdown()


# --------------------------------------------------------------------------- the API


def test_api_models_all_answers_the_default_with_every_analysis(models_app, files):
    client = models_app.test_client()
    response = api_upload(client, files["clip"], models="all")
    assert response.status_code == 202, response.json
    body = response.json
    assert body["model_version"] == NEW and body["reused"] is False
    assert [a["model_version"] for a in body["analyses"]] == [NEW, OLD]
    assert body["analyses"][0]["id"] == body["id"]
    assert [a["reused"] for a in body["analyses"]] == [False, False]
    assert response.headers["Location"] == body["status_url"]
    for a in body["analyses"]:
        assert wait_for_job(models_app, a["id"]).status == "done"
    listed = client.get(body["links"]["analyses"]).json
    assert [i["model_version"] for i in listed["items"]] == [NEW, OLD]
    assert [i["verdict"] for i in listed["items"]] == ["fake", "inconclusive"]
    assert listed["models_not_run"] == [] and listed["file_kept"] is False
    assert uploads(models_app) == []


def test_api_models_list_and_which_one_the_answer_is_about(models_app, files):
    client = models_app.test_client()
    # a list of one: that model, as model= would do
    only = api_upload(client, files["photo_jpg"], models=OLD).json
    assert only["model_version"] == OLD and [a["model_version"] for a in only["analyses"]] == [OLD]
    # a list with the default: the default is the answer, the list's others follow
    both = api_upload(client, files["photo_png"], models=f" {OLD} , {NEW} ").json
    assert [a["model_version"] for a in both["analyses"]] == [NEW, OLD]
    # model= picks the answer; models= adds the rest
    picked = api_upload(client, files["clip"], models=f"{NEW},{OLD}", model=OLD).json
    assert [a["model_version"] for a in picked["analyses"]] == [OLD, NEW]
    assert picked["model_version"] == OLD
    finish_all(models_app)
    assert len(rows(models_app)) == 5 and uploads(models_app) == []


@pytest.mark.parametrize("models", ["all,2020.01.01-nope", "2020.01.01-nope", f"{OLD},nope"])
def test_api_unknown_model_in_the_list_is_a_400_and_nothing_is_stored(models_app, files, models):
    response = api_upload(models_app.test_client(), files["photo_jpg"], models=models)
    assert response.status_code == 400 and response.json["error"]["code"] == "unknown_model"
    assert f"Available models: {NEW}, {OLD}" in response.json["error"]["message"]
    assert rows(models_app) == [] and uploads(models_app) == []


def test_models_already_judged_are_reused_not_run_again(models_app, files):
    client = models_app.test_client()
    old = api_upload(client, files["clip"], model=OLD).json
    wait_for_job(models_app, old["id"])
    calls = len(models_app.detectors[OLD].calls)
    both = api_upload(client, files["clip"], models="all")
    assert both.status_code == 202
    new_entry, old_entry = both.json["analyses"]
    assert old_entry["id"] == old["id"] and old_entry["reused"] is True
    assert new_entry["model_version"] == NEW and new_entry["reused"] is False
    wait_for_job(models_app, new_entry["id"])
    assert len(models_app.detectors[OLD].calls) == calls  # OLD did not run again
    assert len(rows(models_app)) == 2 and uploads(models_app) == []
    # everything already judged: nothing stored, 200 with the finished results
    again = api_upload(client, files["clip"], models="all")
    assert again.status_code == 200 and [a["reused"] for a in again.json["analyses"]] == [True, True]
    assert len(rows(models_app)) == 2 and uploads(models_app) == []
    # the form says which one it reused
    response = upload(client, files["clip"], data={"models": "all"}, follow=True)
    assert "You already analysed this exact file with " + NEW in response.get_data(as_text=True)
    assert len(rows(models_app)) == 2


def test_kept_uploads_keep_one_file_per_detection(tmp_path, files, queue_mode):
    app = two_model_app(tmp_path, KEEP_UPLOADS=True, **QUEUE_MODES[queue_mode])
    try:
        client = app.test_client()
        api_upload(client, files["photo_jpg"], models="all")
        done = finish_all(app)
        assert sorted(d.upload_name for d in done) == uploads(app) and len(uploads(app)) == 2
        folder = Path(app.config["UPLOAD_FOLDER"])
        data = {(folder / d.upload_name).read_bytes() for d in done}
        assert data == {files["photo_jpg"].read_bytes()}
        # deleting one detection leaves the other's file
        assert client.delete(f"/api/v1/detections/{done[0].id}").status_code == 204
        assert uploads(app) == [done[1].upload_name]
    finally:
        app.extensions["detection_runner"].shutdown()


# --------------------------------------------------------------------------- the notice


def test_analysing_notice_turns_to_finished_when_the_column_fills_in(tmp_path, files):
    app = two_model_app(tmp_path, KEEP_UPLOADS=True)
    try:
        client = app.test_client()
        first = wait_for_job(app, detection_id_from(upload(client, files["photo_jpg"])))
        app.detectors[OLD].delay = 0.3
        token = csrf(client, f"/results/{first.id}")
        client.post(f"/results/{first.id}/analyses", data={"csrf_token": token, "model": OLD})
        second = rows(app)[1]
        html = client.get(f"/results/{first.id}").get_data(as_text=True)
        note = re.search(r'<p class="flash ([^"]*)" data-analysing="([^"]*)"([^>]*)>([^<]*)</p>', html)
        assert note and note.group(2) == OLD and "flash-success" in note.group(1)
        assert note.group(4).startswith(f"Analysing the same file with {OLD}.")
        assert f'data-done="{OLD} has finished: its verdict is in the comparison below."' in note.group(3)
        assert "/static/js/compare.js" in html  # which swaps the text once the column is done

        # A notice drawn after the column has finished says so at once (no script needed).
        wait_for_job(app, second.id)
        client.post(f"/results/{first.id}/analyses", data={"csrf_token": token, "model": OLD})
        with client.session_transaction() as session:  # as if it had still been running
            session["_flashes"] = [(f"analysing:{OLD}", f"Analysing the same file with {OLD}.")]
        html = client.get(f"/results/{first.id}").get_data(as_text=True)
        assert f"{OLD} has finished: its verdict is in the comparison below." in html
        assert f"Analysing the same file with {OLD}." not in html
        assert "/static/js/compare.js" not in html

        # A failed model: the notice says so.
        app.detectors[NEW].error = RuntimeError("boom")
        again = wait_for_job(app, api_upload(client, files["photo_png"], model=OLD).json["id"])
        api_upload(client, files["photo_png"], models="all")
        failed = wait_for_job(app, rows(app)[-1].id)
        assert failed.status == "failed" and failed.model_version == NEW
        with client.session_transaction() as session:
            session["_flashes"] = [(f"analysing:{NEW}", "Also judging the file with …")]
        html = client.get(f"/results/{again.id}").get_data(as_text=True)
        assert f"{NEW} could not judge the file: see why in the comparison below." in html
    finally:
        app.extensions["detection_runner"].shutdown()


# --------------------------------------------------------------------------- batches


def batch_post(client, files: list[tuple[Path | bytes, str]], **fields):
    owner_of(client)
    data = [(io.BytesIO(src if isinstance(src, bytes) else src.read_bytes()), name)
            for src, name in files]
    return client.post("/api/v1/batches", data={"file": data, **fields})


def finish_batch(app, client, batch_id: str) -> dict:
    body = client.get(f"/api/v1/batches/{batch_id}").json
    for item in body["items"]:
        for a in item["analyses"]:
            wait_for_job(app, a["detection_id"])
    return client.get(f"/api/v1/batches/{batch_id}").json


def test_api_batch_with_every_model(models_app, files):
    client = models_app.test_client()
    sent = [(files["clip"], "a.mp4"), (b"not a picture", "notes.txt"), (files["photo_jpg"], "b.jpg")]
    response = batch_post(client, sent, models="all", name="Rally")
    assert response.status_code == 202, response.json
    assert response.json["models"] == [NEW, OLD]
    assert len(rows(models_app)) == 4  # two accepted files, two models each
    body = finish_batch(models_app, client, response.json["id"])
    assert body["finished"] and body["file_count"] == 3 and len(body["items"]) == 3
    clip, notes, photo = body["items"]
    assert notes["status"] == "rejected" and notes["analyses"] == [] and notes["agreement"] is None
    for item in (clip, photo):
        assert item["model_version"] == NEW and item["status"] == "done"  # the item: the default
        assert [a["model_version"] for a in item["analyses"]] == [NEW, OLD]
        assert item["analyses"][0]["detection_id"] == item["detection_id"]
        assert [a["verdict"] for a in item["analyses"]] == ["fake", "inconclusive"]
        assert [a["score_label"] for a in item["analyses"]] == ["86%", "45%"]
        assert item["agreement"] == "disagree"
        assert item["analyses"][1]["links"]["html"].endswith(f"/results/{item['analyses'][1]['detection_id']}")
    t = body["totals"]
    assert (t["files"], t["done"], t["rejected"], t["pending"]) == (3, 2, 1, 0)
    assert t["verdicts"]["fake"] == 2  # by the batch's own (first) model
    assert t["analyses"] == {"total": 4, "queued": 0, "running": 0, "done": 4, "failed": 0,
                             "deleted": 0, "pending": 0}
    assert t["disagreements"] == 2
    assert uploads(models_app) == []

    # CSV: one row per file and model (a refused file: one row), the same columns as ever
    text = client.get(f"/batches/{body['id']}/export.csv").get_data(as_text=True)
    table = list(csv.DictReader(io.StringIO(text)))
    assert [(r["position"], r["model_version"], r["verdict"]) for r in table] == [
        ("1", NEW, "fake"), ("1", OLD, "inconclusive"), ("2", "", ""),
        ("3", NEW, "fake"), ("3", OLD, "inconclusive"),
    ]
    assert table[2]["status"] == "rejected" and table[2]["error_code"] == "unsupported_media"
    assert table[1]["sha256"] == table[0]["sha256"] and table[1]["detection_id"] != table[0]["detection_id"]
    assert table[1]["result_url"].endswith(f"/results/{table[1]['detection_id']}")
    assert list(table[0]) == list(csv.reader(io.StringIO(text)))[0]
    exported = client.get(f"/batches/{body['id']}/export.json").json
    assert [i["analyses"] for i in exported["items"]] == [i["analyses"] for i in body["items"]]

    # the page: a column per model, whether they agree
    html = client.get(f"/batches/{body['id']}").get_data(as_text=True)
    assert 'data-multi="true"' in html and "batch-multi" in html
    assert f'<th scope="col" class="col-model">{NEW} <span class="model-default">default</span></th>' in html
    assert f'<th scope="col" class="col-model">{OLD}</th>' in html
    assert html.count('<span class="disagree">Disagree</span>') == 2
    assert '4</span> of 4 <span class="progress-unit">analyses</span>' in html
    assert "files on which the models disagree" in html

    # deleting the batch deletes every model's detection of its files
    assert client.delete(f"/api/v1/batches/{body['id']}").status_code == 204
    assert rows(models_app) == []


def test_form_batch_with_the_checkbox(models_app, files):
    client = models_app.test_client()
    data = {
        "csrf_token": csrf(client),
        "models": "all",
        "file": [(files["photo_jpg"].open("rb"), "a.jpg"), (files["photo_png"].open("rb"), "b.png")],
    }
    response = client.post("/upload", data=data)
    assert response.status_code == 303 and "/batches/" in response.headers["Location"]
    batch_id = response.headers["Location"].rsplit("/", 1)[-1]
    with models_app.app_context():
        assert db.session.get(Batch, batch_id).model_versions == [NEW, OLD]
    body = finish_batch(models_app, client, batch_id)
    assert [len(i["analyses"]) for i in body["items"]] == [2, 2]
    assert len(rows(models_app)) == 4
    # the history links every model's detection to the batch
    html = client.get("/history").get_data(as_text=True)
    assert html.count(f'class="batch-link" href="/batches/{batch_id}"') == 4


def test_batch_pending_until_every_model_has_finished(threads_app, files):
    app, client = threads_app, threads_app.test_client()
    app.detectors[OLD].delay = 0.3
    batch_id = batch_post(client, [(files["photo_jpg"], "a.jpg")], models="all").json["id"]
    new_row = next(r for r in rows(app) if r.model_version == NEW)
    wait_for_job(app, new_row.id)
    body = client.get(f"/batches/{batch_id}/status").json
    if body["items"][0]["analyses"][1]["status"] != "done":  # OLD still queued or running
        assert body["totals"]["pending"] == 0 and body["totals"]["analyses"]["pending"] == 1
        assert body["finished"] is False
        html = client.get(f"/batches/{batch_id}").get_data(as_text=True)
        assert "js/batch.js" in html and 'data-finished="false"' in html
    body = finish_batch(app, client, batch_id)
    assert body["finished"] and body["totals"]["analyses"]["done"] == 2


def test_batch_reuses_what_was_judged_and_unknown_models_refuse_it_whole(models_app, files):
    client = models_app.test_client()
    old = api_upload(client, files["photo_jpg"], model=OLD).json
    wait_for_job(models_app, old["id"])
    refused = batch_post(client, [(files["photo_jpg"], "a.jpg")], models=f"{OLD},nope")
    assert refused.status_code == 400 and refused.json["error"]["code"] == "unknown_model"
    with models_app.app_context():
        assert db.session.query(Batch).count() == 0
    body = batch_post(client, [(files["photo_jpg"], "a.jpg")], models="all").json
    body = finish_batch(models_app, client, body["id"])
    (item,) = body["items"]
    assert item["analyses"][1]["detection_id"] == old["id"]  # reused, not run again
    assert len(rows(models_app)) == 2 and len(models_app.detectors[OLD].calls) == 1


def test_a_batch_of_one_model_is_exported_as_before(models_app, files):
    client = models_app.test_client()
    body = batch_post(client, [(files["photo_jpg"], "a.jpg")]).json
    body = finish_batch(models_app, client, body["id"])
    assert body["models"] == [NEW] and len(body["items"][0]["analyses"]) == 1
    table = list(csv.DictReader(io.StringIO(
        client.get(f"/batches/{body['id']}/export.csv").get_data(as_text=True))))
    assert len(table) == 1 and table[0]["model_version"] == NEW
    html = client.get(f"/batches/{body['id']}").get_data(as_text=True)
    assert 'data-multi="false"' in html and "col-model" not in html


# --------------------------------------------------------------------------- who sees what


def test_every_models_analysis_is_the_uploaders_own(models_app, files):
    alice, bob = models_app.test_client(), models_app.test_client()
    # Bob judged the same file with OLD before: that tells Alice nothing and serves her nothing
    bobs = api_upload(bob, files["clip"], model=OLD).json
    wait_for_job(models_app, bobs["id"])
    mine = api_upload(alice, files["clip"], models="all").json
    assert [a["reused"] for a in mine["analyses"]] == [False, False]
    assert bobs["id"] not in [a["id"] for a in mine["analyses"]]
    batch = batch_post(alice, [(files["clip"], "c.mp4")], models="all").json
    batch = finish_batch(models_app, alice, batch["id"])
    ids = {a["detection_id"] for a in batch["items"][0]["analyses"]}
    assert ids == {a["id"] for a in mine["analyses"]} and bobs["id"] not in ids
    for a in mine["analyses"]:
        wait_for_job(models_app, a["id"])
        for url in (f"/results/{a['id']}", f"/api/v1/detections/{a['id']}",
                    f"/results/{a['id']}/compare", f"/api/v1/detections/{a['id']}/analyses"):
            assert bob.get(url).status_code == 404, url
    for url in (f"/batches/{batch['id']}", f"/api/v1/batches/{batch['id']}",
                f"/batches/{batch['id']}/export.csv"):
        assert bob.get(url).status_code == 404, url
    # Bob's page of his own analysis shows only his own
    side = panel(bob.get(f"/results/{bobs['id']}").get_data(as_text=True))
    assert not side
    # Bob deleting his own leaves Alice's analyses alone
    assert bob.delete(f"/api/v1/detections/{bobs['id']}").status_code == 204
    assert [r.owner_id for r in rows(models_app)] == [owner_of(alice)] * 2


# --------------------------------------------------------------------------- the real engine


@pytest.mark.engine
@pytest.mark.slow
def test_both_shipped_models_from_one_upload(tmp_path, files):
    """The real engine and both shipped models on a generated clip, from one upload with
    models=all and KEEP_UPLOADS off: two finished analyses from one stored file, both copies
    deleted, the side-by-side panel with each model's own timeline."""
    from webapp.detection.registry import Registry

    entries = Registry().entries
    assert len(entries) >= 2, "the registry ships two models"
    app = make_app(tmp_path)
    try:
        client = app.test_client()
        response = upload(client, files["clip"], data={"models": "all"})
        dets = [wait_for_job(app, r.id, timeout=600) for r in rows(app)]
        assert [d.status for d in dets] == ["done"] * len(entries), [d.error_message for d in dets]
        assert [d.model_version for d in dets] == [e.version for e in sorted(entries, key=lambda e: not e.default)]
        assert response.headers["Location"].endswith(f"/results/{dets[0].id}")
        assert uploads(app) == []
        assert all(d.faces_found >= 1 for d in dets)
        side = panel(client.get(f"/results/{dets[0].id}").get_data(as_text=True))
        assert f"judged by {len(entries)} models" in side
        assert side.count('class="timeline"') == len(entries)
    finally:
        app.extensions["detection_runner"].shutdown()
