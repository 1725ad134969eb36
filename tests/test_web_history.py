"""History: the client's past detections, with search, verdict and model filters, sort,
pagination and delete. (That it shows no one else's is in test_privacy.py.)"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from conftest import detection_id_from, owner_of, upload, wait_for_job
from test_compare import NEW, OLD, two_model_app

from webapp.extensions import db
from webapp.models import Detection

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def add(app, **fields) -> str:
    row = {
        "filename": "clip.mp4",
        "sha256": "0" * 64,
        "size_bytes": 1000,
        "media_type": "video",
        "status": "done",
        "stage": "done",
        "progress": 1.0,
        "model_version": "test-model-1",
        **fields,
    }
    with app.app_context():
        det = Detection(**row)
        db.session.add(det)
        db.session.commit()
        return det.id


@pytest.fixture
def seeded(app, client):
    """25 detections of ``client``: 10 real, 6 fake, 4 inconclusive, 3 no face, 1 failed, 1
    queued."""
    ids = {}
    owner = owner_of(client)
    plan = (
        [("real", 0.05 + i * 0.02) for i in range(10)]
        + [("fake", 0.75 + i * 0.04) for i in range(6)]
        + [("inconclusive", 0.4 + i * 0.05) for i in range(4)]
        + [("no_face", None)] * 3
    )
    for i, (verdict, p) in enumerate(plan):
        ids[i] = add(
            app,
            filename=f"{verdict}-{i:02d}.mp4",
            owner_id=owner,
            verdict=verdict,
            p_fake=p,
            created_at=T0 + timedelta(minutes=i),
        )
    ids["failed"] = add(
        app,
        filename="broken_upload.mov",
        owner_id=owner,
        status="failed",
        stage="failed",
        error_message="damaged",
        created_at=T0 + timedelta(hours=2),
    )
    ids["queued"] = add(
        app,
        filename="waiting.webm",
        owner_id=owner,
        status="queued",
        stage="queued",
        progress=0.0,
        owner=app.extensions["detection_runner"].id,
        created_at=T0 + timedelta(hours=3),
    )
    return ids


def rows(html: str) -> int:
    return html.count('class="file-link"')


def test_empty_history(client):
    html = client.get("/history").get_data(as_text=True)
    assert "No detections yet" in html


def test_history_lists_thumbnail_name_verdict_score_date(app, client, files):
    det_id = detection_id_from(upload(client, files["clip"]))
    wait_for_job(app, det_id)
    html = client.get("/history").get_data(as_text=True)
    assert f"/results/{det_id}/files/thumb.jpg" in html
    assert "astronaut-pan.mp4" in html and "Likely real" in html and "12%" in html
    assert "UTC" in html


def test_pagination(client, seeded):
    first = client.get("/history").get_data(as_text=True)
    assert rows(first) == 20 and "Page 1 of 2" in first and 'rel="next"' in first
    second = client.get("/history?page=2").get_data(as_text=True)
    assert rows(second) == 5 and 'rel="prev"' in second
    assert "real-00.mp4" in second  # oldest last
    assert client.get("/history?page=99").status_code == 200


def test_filter_by_verdict(client, seeded):
    for verdict, n in (
        ("real", 10),
        ("fake", 6),
        ("inconclusive", 4),
        ("no_face", 3),
        ("failed", 1),
        ("pending", 1),
    ):
        html = client.get(f"/history?verdict={verdict}").get_data(as_text=True)
        assert rows(html) == n, verdict
    html = client.get("/history?verdict=fake").get_data(as_text=True)
    assert "real-" not in html


def test_search_by_file_name(client, seeded):
    html = client.get("/history?q=BROKEN").get_data(as_text=True)
    assert rows(html) == 1 and "broken_upload.mov" in html
    assert rows(client.get("/history?q=%25").get_data(as_text=True)) == 0  # % is literal
    html = client.get("/history?q=nothing-like-this").get_data(as_text=True)
    assert "No detection matches these filters" in html


def test_sort_by_score(client, seeded):
    html = client.get("/history?sort=score_desc&verdict=fake").get_data(as_text=True)
    assert html.index("fake-15.mp4") < html.index("fake-10.mp4")
    html = client.get("/history?sort=score_asc").get_data(as_text=True)
    assert html.index("real-00.mp4") < html.index("real-09.mp4")
    html = client.get("/history?sort=oldest").get_data(as_text=True)
    assert html.index("real-00.mp4") < html.index("real-01.mp4")


def test_filters_are_kept_in_pagination_links(client, seeded):
    html = client.get("/history?q=-&sort=oldest").get_data(as_text=True)
    assert "q=-" in html and "sort=oldest" in html


def test_delete_from_history_returns_to_the_same_view(app, client, seeded):
    html = client.get("/history?verdict=fake").get_data(as_text=True)
    token = html.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post(
        f"/results/{seeded[10]}/delete", data={"csrf_token": token, "next": "/history?verdict=fake"}
    )
    assert response.status_code == 303 and response.headers["Location"] == "/history?verdict=fake"
    html = client.get("/history?verdict=fake").get_data(as_text=True)
    assert rows(html) == 5 and f"/results/{seeded[10]}" not in html
    assert "Deleted the detection of “fake-10.mp4”" in html  # the flash message


# --------------------------------------------------------------------------- by model


def test_history_filters_by_model_and_keeps_the_other_filters(tmp_path):
    app = two_model_app(tmp_path, HISTORY_PER_PAGE=3)
    try:
        client = app.test_client()
        owner = owner_of(client)
        for i in range(5):
            add(app, owner_id=owner, filename=f"new-{i}.mp4", model_version=NEW, verdict="real")
        for i in range(4):
            add(app, owner_id=owner, filename=f"old-{i}.mp4", model_version=OLD,
                verdict="fake" if i % 2 else "real", p_fake=0.9 if i % 2 else 0.1)
        add(app, owner_id=owner, filename="retired.mp4", model_version="2025.01.01-lite0")
        stranger = owner_of(app.test_client())
        add(app, owner_id=stranger, filename="theirs.mp4", model_version="2024.01.01-x")

        page = client.get("/history").get_data(as_text=True)
        assert '<select name="model">' in page and '<option value="">All models</option>' in page
        assert f"{NEW} (default)" in page and "2025.01.01-lite0 (no longer installed)" in page
        assert "2024.01.01-x" not in page  # another owner's model version is not listed

        page = client.get(f"/history?model={OLD}&verdict=fake").get_data(as_text=True)
        assert "old-1.mp4" in page and "old-3.mp4" in page and "new-" not in page
        assert "2 detections match" in page and f'<option value="{OLD}" selected>' in page
        page = client.get(f"/history?model={NEW}").get_data(as_text=True)
        assert "5 detections match" in page
        next_url = re.search(r'href="([^"]+)" rel="next"', page).group(1)
        assert f"model={NEW}" in next_url
        assert "new-" in client.get(next_url.replace("&amp;", "&")).get_data(as_text=True)
        retired = client.get("/history?model=2025.01.01-lite0").get_data(as_text=True)
        assert "1 detection matches" in retired and "retired.mp4" in retired

        unknown = client.get("/history?model=nope&verdict=real&q=old")
        html = unknown.get_data(as_text=True)
        assert unknown.status_code == 200 and "There is no model called “nope”" in html
        assert "old-0.mp4" in html and "new-" not in html  # the other filters still apply
        theirs = client.get("/history?model=2024.01.01-x").get_data(as_text=True)
        assert "There is no model called “2024.01.01-x”" in theirs and "theirs.mp4" not in theirs

        api = client.get(f"/api/v1/detections?model={OLD}&per_page=2").json
        assert api["total"] == 4 and f"model={OLD}" in api["next"]
        refused = client.get("/api/v1/detections?model=nope")
        assert refused.status_code == 400 and refused.json["error"]["code"] == "unknown_model"
    finally:
        app.extensions["detection_runner"].shutdown()


def test_one_model_and_no_other_versions_means_no_model_filter(client):
    assert 'name="model"' not in client.get("/history").get_data(as_text=True)
