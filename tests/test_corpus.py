"""Every hostile or odd upload in the corpus, through the form AND the API.

Each must end in exactly one of: a clear 4xx page or JSON error saying what is wrong
("rejected"), a result marked failed with a reason ("failed"), or a real result ("result").
Never a 500 or a stack trace, never a file in the instance folder without its row or a row
without its files, and the site keeps answering.

The many cases use the fast stand-in detector; the ``engine`` subset (odd but valid media)
goes through the real engine and the shipped model. The outcome table is printed at the end.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import SUMMARY, make_app, owner_of, wait_for_job
from corpus import CASES, ENGINE_CASES, Case, Corpus
from corpus.audit import audit_instance

from webapp.extensions import db
from webapp.models import Detection

#: (case key, channel) -> outcome, for the table printed at the end of the module.
SEEN: dict[tuple[str, str], str] = {}

#: Engine cases that fail because of an engine bug, with the bug (see the report).
ENGINE_BUGS: dict[str, str] = {}  # case key -> known engine bug (xfail strict)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return Corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module", autouse=True)
def outcome_table():
    """Print input -> outcome per channel after the run (conftest's terminal summary)."""
    yield
    by_case: dict[str, dict[str, str]] = {}
    for (key, channel), outcome in SEEN.items():
        by_case.setdefault(key, {})[channel] = outcome
    if not by_case:
        return
    labels = {c.key: c.label for c in CASES}
    lines = [f"{'input':<62} {'form':<16} {'api':<16} {'engine':<24}"]
    for key, seen in by_case.items():
        cols = [seen.get(ch, "-") for ch in ("form", "api", "engine")]
        lines.append(f"{labels[key][:62]:<62} {cols[0]:<16} {cols[1]:<16} {cols[2]:<24}")
    counts: dict[str, int] = {}
    for outcome in SEEN.values():
        counts[outcome.split()[0]] = counts.get(outcome.split()[0], 0) + 1
    lines.append(
        f"{len(by_case)} inputs, {len(SEEN)} requests: "
        + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    )
    SUMMARY[f"corpus outcomes ({len(by_case)} inputs)"] = lines


# --------------------------------------------------------------------------- sending


def csrf_token(client) -> str:
    page = client.get("/upload").get_data(as_text=True)
    return page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]


def send(client, case: Case, channel: str, path: Path | None):
    """Post the case's request through the form or the API; returns the response."""
    data: dict[str, Any] = {}
    handles = []

    def part(name: str):
        fh = open(path, "rb")  # noqa: SIM115 - closed below
        handles.append(fh)
        return (fh, name)

    if channel == "form" and case.request != "csrf_missing":
        data["csrf_token"] = "not-the-token" if case.request == "csrf_wrong" else csrf_token(client)
    if case.request == "two_files":
        data["file"] = [part(case.filename), part("two-" + case.filename)]
    elif case.request == "empty_filename":
        data["file"] = part("")
    elif case.request != "missing_field":
        data["file"] = part(case.filename)
    url = "/upload" if channel == "form" else "/api/v1/detections"
    if channel == "api":  # the API called from the browser (PUBLIC_API): its pages are its own
        owner_of(client)
    try:
        return client.post(url, data=data, content_type="multipart/form-data")
    finally:
        for fh in handles:
            fh.close()


def db_file(app) -> Path:
    return Path(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"))


def user_message(response, channel: str) -> str:
    """The error the user is shown: the JSON message, or the page's alert / error text."""
    if channel == "api":
        return response.json["error"]["message"]
    page = response.get_data(as_text=True)
    found = re.search(r'role="alert"[^>]*>(.*?)</div>', page, re.S) or re.search(
        r'<p class="lede">(.*?)</p>', page, re.S
    )
    assert found, "the page shows no error message"
    return html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).strip()


def settle(app, response, channel: str) -> tuple[str, Detection | None]:
    """Outcome of one request: ("rejected", None) or the finished job's outcome and row."""
    body = response.get_data(as_text=True)
    assert response.status_code < 500, f"{response.status_code}: {body[:500]}"
    assert "Traceback" not in body and 'File "' not in body
    if channel == "form" and response.status_code == 303:
        det_id = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    elif channel == "api" and response.status_code in (200, 202):
        det_id = response.json["id"]
    else:
        assert 400 <= response.status_code < 500, response.status_code
        return "rejected", None
    det = wait_for_job(app, det_id, timeout=600)
    assert det is not None, "the row vanished"
    if det.status == "done":
        assert det.verdict in ("real", "inconclusive", "fake", "no_face")
        return "result", det
    assert det.status == "failed", det.status
    assert det.error_code and det.error_message, "failed without a reason"
    return "failed", det


def check_outcome(app, client, case: Case, channel: str, response, outcome, det) -> None:
    """The rules every case obeys, whatever its outcome."""
    assert str(Path(app.instance_path).parent) not in response.get_data(as_text=True)  # no paths
    if outcome == "rejected":
        assert response.status_code == case.expected_status(channel), (
            response.status_code,
            response.get_data(as_text=True)[:300],
        )
        message = user_message(response, channel)
        assert case.message.lower() in message.lower(), message
        if channel == "api" and case.code:
            assert response.json["error"]["code"] == case.code
        with app.app_context():
            assert db.session.query(Detection).count() == 0, "a refused upload left a row"
    else:
        page = client.get(f"/results/{det.id}")
        assert page.status_code == 200
        # The client's name is for display only: no path, no control character, escaped.
        assert not set(det.filename) & {"/", "\\", "\x00"}, det.filename
        assert html.escape(det.filename, quote=False) in page.get_data(as_text=True)
        if case.shown_name is not None:  # the end: a Windows path loses its backslashes in
            assert det.filename.endswith(case.shown_name)  # multipart quoting ("C:Windows...")
        api = client.get(f"/api/v1/detections/{det.id}").json
        assert api["status"] == det.status
        if outcome == "failed":
            assert api["error"]["message"] == det.error_message
            assert det.error_code != "internal_error", det.error_message  # a crash, not a reason
    assert audit_instance(Path(app.instance_path), db_file(app)) == []
    # The site keeps answering.
    assert client.get("/").status_code == 200
    assert client.get("/api/v1/detections").status_code == 200


# --------------------------------------------------------------------------- the tests


WEB_PARAMS = [
    pytest.param(case, channel, id=f"{case.key}-{channel}")
    for case in CASES
    for channel in case.channels
]


@pytest.mark.parametrize("case,channel", WEB_PARAMS)
def test_corpus_web(case: Case, channel: str, corpus, tmp_path, model_dir, detector):
    app = make_app(
        tmp_path,
        MODEL_DIR=str(model_dir),
        DETECTOR_LOADER=lambda _dir: detector,
        **case.config,
    )
    try:
        client = app.test_client()
        response = send(client, case, channel, corpus.path(case))
        outcome, det = settle(app, response, channel)
        SEEN[(case.key, channel)] = outcome + (f" {response.status_code}" if det is None else "")
        check_outcome(app, client, case, channel, response, outcome, det)
        assert outcome == case.expect
    finally:
        app.extensions["detection_runner"].shutdown()


ENGINE_PARAMS = [
    pytest.param(
        case,
        id=case.key,
        marks=[pytest.mark.xfail(reason=ENGINE_BUGS[case.key], strict=True)]
        if case.key in ENGINE_BUGS
        else [],
    )
    for case in ENGINE_CASES
]


@pytest.mark.engine
@pytest.mark.slow
@pytest.mark.parametrize("case", ENGINE_PARAMS)
def test_corpus_engine(case: Case, corpus, engine_app):
    """Odd but valid media through the real engine: a real result or failed with a reason."""
    client = engine_app.test_client()
    response = send(client, case, "form", corpus.path(case))
    outcome, det = settle(engine_app, response, "form")
    detail = f" {response.status_code}" if det is None else ""
    if det is not None and det.status == "done":
        detail = f" ({det.verdict})"
    elif det is not None:
        detail = f" ({det.error_code})"
    SEEN[(case.key, "engine")] = outcome + detail
    check_outcome(engine_app, client, case, "form", response, outcome, det)
    assert outcome == case.expect
