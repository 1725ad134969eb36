"""Post N different small photos at once to a running server and time them to the end.

    gunicorn wsgi:app -c gunicorn.conf.py &         # FLASK_UPLOAD_RATE_LIMIT="1000 per minute"
    .venv/bin/python -m scripts.load_test --url http://127.0.0.1:8000 -n 20

Each photo is the astronaut at ``--side`` px with one different pixel, so SHA-256 dedup does
not collapse them. Prints when all were accepted, when all were analysed, and the rows the
API lists for them (none lost, none duplicated). The server's rate limit must allow N uploads
(``FLASK_UPLOAD_RATE_LIMIT``). ``tests/test_load.py`` runs the same against a fresh server.
"""

from __future__ import annotations

import argparse
import io
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import requests
import skimage.data
from PIL import Image


def photo(i: int, side: int) -> bytes:
    pixels = cv2.resize(skimage.data.astronaut(), (side, side), interpolation=cv2.INTER_AREA)
    y, x = divmod(i, side)
    pixels[y, x] = 255 - pixels[y, x]
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("-n", type=int, default=20, help="uploads (default 20)")
    ap.add_argument("--side", type=int, default=256, help="photo size in px (default 256)")
    ap.add_argument("--timeout", type=float, default=900.0)
    args = ap.parse_args()
    base = args.url.rstrip("/")
    tag = f"load-{int(time.time())}"
    files = [photo(i, args.side) for i in range(args.n)]
    go = threading.Event()

    def post(i: int) -> tuple[int, dict]:
        go.wait()
        r = requests.post(
            f"{base}/api/v1/detections",
            files={"file": (f"{tag}-{i:03d}.png", files[i], "image/png")},
            timeout=300,
        )
        return r.status_code, r.json()

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.n) as pool:
        futures = [pool.submit(post, i) for i in range(args.n)]
        go.set()
        answers = [f.result() for f in futures]
    t_accepted = time.monotonic() - t0
    refused = [(s, b.get("error")) for s, b in answers if s not in (200, 202)]
    ids = {b["id"] for s, b in answers if s in (200, 202)}
    print(
        f"{args.n} uploads answered in {t_accepted:.1f} s: {len(ids)} accepted, "
        f"{len(refused)} refused {refused[:3]}"
    )
    deadline = time.monotonic() + args.timeout
    while True:
        listed = requests.get(
            f"{base}/api/v1/detections", params={"q": tag, "per_page": 100}, timeout=60
        ).json()
        items = [d for d in listed["items"] if d["id"] in ids]
        pending = [d for d in items if d["status"] in ("queued", "running")]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    t_done = time.monotonic() - t0
    done = sum(d["status"] == "done" for d in items)
    failed = [(d["filename"], d["error"]) for d in items if d["status"] == "failed"]
    print(
        f"all finished after {t_done:.1f} s wall time: {done} done, {len(failed)} failed, "
        f"{len(pending)} still pending"
    )
    print(
        f"rows listed for this run: {listed['total']} (ids unique: "
        f"{len({d['id'] for d in listed['items']})}, expected {args.n})"
    )
    for name, error in failed[:5]:
        print(f"  failed: {name}: {error}")
    ok = done == args.n and listed["total"] == args.n and not refused
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
