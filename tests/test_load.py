"""Many uploads at once through the real server (gunicorn, two workers) and the real engine.

20 different small photos are posted at the same moment, half through the form and half
through the API; all 20 must end with a result, and the API list must hold exactly those 20
rows. Identical files uploaded at the same moment must collapse into one row (SHA-256 dedup
across threads and processes). Prints the wall time.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from conftest import SUMMARY, LiveServer
from corpus import generators as g
from corpus.audit import audit_instance, rows
from PIL import Image

pytestmark = [pytest.mark.slow, pytest.mark.engine]

N_UPLOADS = 20


def photo_bytes(i: int, side: int = 256) -> bytes:
    """The astronaut at ``side`` px with one pixel changed per ``i``: 20 different files."""
    pixels = g.astronaut(side).copy()
    pixels[i // side, i % side] = (255 - pixels[i // side, i % side]) // 2
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")  # lossless: the changed pixel survives
    return buf.getvalue()


def upload_api(server: LiveServer, data: bytes, name: str) -> tuple[int, dict]:
    response = server.browser.post(
        server.url("/api/v1/detections"), files={"file": (name, data, "image/png")}, timeout=120
    )
    return response.status_code, response.json()


def upload_form(server: LiveServer, data: bytes, name: str) -> tuple[int, str]:
    """Through the HTML form, as a browser does: get the page (session + token), post. The
    same browser as the API calls (one owner), so the API lists what the form made."""
    browser = server.browser
    page = browser.get(server.url("/upload"), timeout=60).text
    token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    response = browser.post(
        server.url("/upload"),
        data={"csrf_token": token},
        files={"file": (name, data, "image/png")},
        allow_redirects=False,
        timeout=120,
    )
    location = response.headers.get("Location", "")
    return response.status_code, location.rstrip("/").rsplit("/", 1)[-1]


def all_detections(server: LiveServer) -> list[dict]:
    body = server.browser.get(server.url("/api/v1/detections?per_page=100"), timeout=60).json()
    assert body["total"] == len(body["items"]), "more than one page"
    return body["items"]


def wait_all(server: LiveServer, ids: set[str], timeout: float = 900.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        items = [d for d in all_detections(server) if d["id"] in ids]
        if len(items) == len(ids) and all(d["status"] in ("done", "failed") for d in items):
            return items
        if time.monotonic() > deadline:
            pending = [(d["id"], d["status"], d["stage"]) for d in items]
            raise TimeoutError(f"still pending: {pending}")
        time.sleep(1.0)


@pytest.fixture
def server(tmp_path: Path):
    server = LiveServer(
        tmp_path / "instance", workers=2, env={"FLASK_UPLOAD_RATE_LIMIT": "1000 per minute"}
    )
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_twenty_parallel_uploads(server: LiveServer):
    files = [photo_bytes(i) for i in range(N_UPLOADS)]
    assert len(set(files)) == N_UPLOADS
    start = threading.Event()

    def one(i: int) -> tuple[str, int, str]:
        start.wait()
        name = f"astronaut-{i:02d}.png"
        if i % 2:
            status, body = upload_api(server, files[i], name)
            return "api", status, body.get("id", str(body))
        status, det_id = upload_form(server, files[i], name)
        return "form", status, det_id

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=N_UPLOADS) as pool:
        futures = [pool.submit(one, i) for i in range(N_UPLOADS)]
        start.set()
        answers = [f.result() for f in futures]
    t_uploaded = time.monotonic() - t0
    for channel, status, _ in answers:
        assert status == (202 if channel == "api" else 303), answers
    ids = {det_id for _, _, det_id in answers}
    assert len(ids) == N_UPLOADS, "an upload was lost or merged with another"

    items = wait_all(server, ids)
    t_done = time.monotonic() - t0
    failed = [(d["filename"], d["error"]) for d in items if d["status"] != "done"]
    assert not failed
    assert all(d["verdict"] in ("real", "inconclusive", "fake", "no_face") for d in items)

    # The list shows exactly these 20 rows: none lost, none duplicated.
    listed = all_detections(server)
    assert len(listed) == N_UPLOADS
    assert {d["id"] for d in listed} == ids
    assert len({d["sha256"] for d in listed}) == N_UPLOADS
    assert sorted(d["filename"] for d in listed) == [
        f"astronaut-{i:02d}.png" for i in range(N_UPLOADS)
    ]
    history = server.browser.get(server.url("/history"), timeout=60).text
    assert sum(f"astronaut-{i:02d}.png" in history for i in range(N_UPLOADS)) == N_UPLOADS
    assert audit_instance(server.instance) == []
    log = server.log()
    assert "database is locked" not in log and "Traceback" not in log, log[-3000:]

    seconds = sorted(r["processing_seconds"] for r in rows(server.db_path))
    SUMMARY["parallel uploads (gunicorn, 2 workers, real engine)"] = [
        f"{N_UPLOADS} different 256 px photos posted at once (10 form, 10 API)",
        f"all answered in {t_uploaded:.1f} s; all {N_UPLOADS} analysed in {t_done:.1f} s wall time",
        f"rows listed: {len(listed)} (unique ids {len(ids)}, unique sha256 "
        f"{len({d['sha256'] for d in listed})}); failed: {len(failed)}",
        f"engine seconds per photo: median {seconds[len(seconds) // 2]:.2f}, "
        f"max {seconds[-1]:.2f} (includes the model load of each worker's first job)",
    ]
    print(SUMMARY["parallel uploads (gunicorn, 2 workers, real engine)"])


def test_identical_uploads_collapse_into_one_row(server: LiveServer):
    data = photo_bytes(999)
    start = threading.Event()

    def one(i: int) -> tuple[int, dict]:
        start.wait()
        return upload_api(server, data, f"same-{i}.png")

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(one, i) for i in range(6)]
        start.set()
        answers = [f.result() for f in futures]
    assert all(status in (200, 202) for status, _ in answers), answers
    ids = {body["id"] for _, body in answers}
    assert len(ids) == 1, f"identical uploads made {len(ids)} rows"
    assert sum(not body["reused"] for _, body in answers) == 1
    wait_all(server, ids)
    again_status, again = upload_api(server, data, "later.png")
    assert again_status == 200 and again["reused"] and again["id"] in ids
    # A different file is not collapsed.
    other_status, other = upload_api(server, photo_bytes(998), "other.png")
    assert other_status == 202 and other["id"] not in ids
    wait_all(server, {other["id"]})
    assert len(all_detections(server)) == 2
    assert audit_instance(server.instance) == []
    SUMMARY["dedup under concurrency"] = [
        f"6 identical uploads at once -> {len(ids)} row; a later identical upload reused it; "
        "a different file made a second row"
    ]


def test_oversize_body_refused_before_it_is_read(server: LiveServer):
    """A Content-Length over MAX_CONTENT_LENGTH gets 413 at once, without sending the body."""
    claimed = 10 * 1024**3  # 10 GB announced, a few bytes sent
    for path in ("/api/v1/detections", "/upload"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
            t0 = time.monotonic()
            sock.sendall(
                (
                    f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Content-Type: multipart/form-data; boundary=xyz\r\n"
                    f"Content-Length: {claimed}\r\nAccept: text/html\r\n\r\n"
                ).encode()
                + b"--xyz\r\n"
            )
            head = sock.recv(4096).decode(errors="replace")
            elapsed = time.monotonic() - t0
        assert head.startswith("HTTP/1.1 413"), head[:200]
        assert "Content-Security-Policy" in head
        assert elapsed < 10


def test_no_debugger_and_headers_on_the_real_server(server: LiveServer):
    assert requests.get(server.url("/console"), timeout=30).status_code == 404
    for path in ("/", "/static/css/site.css", "/nope", "/api/v1/detections/nope"):
        response = requests.get(server.url(path), timeout=30)
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], path
        assert "Traceback" not in response.text
