"""What reading a file's self-description costs (``detection.provenance.read_provenance``,
run once per analysis after the engine): on the typical 10-s 1080p clip (DFDC ``abqwwspghj``
when ../shared is there, else a generated 1080p clip), the same clip carrying signed Content
Credentials (so the C2PA library hashes the whole file to check it), and a photo with and
without them. Signing uses a throw-away certificate chain (``tests/provenance_media.py``).

    .venv/bin/python -m benchmarks.provenance [--clip PATH] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image
from skimage import data

from benchmarks.pipeline import SHARED, make_clip
from tests import provenance_media as pm
from webapp.detection.provenance import read_provenance


def timed(path: Path, media_type: str, repeat: int) -> tuple[float, float, dict]:
    """(median, max) seconds of ``repeat`` reads, and the last result."""
    times, result = [], {}
    for _ in range(repeat):
        started = time.perf_counter()
        result = read_provenance(path, media_type)
        times.append(time.perf_counter() - started)
    return statistics.median(times), max(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=SHARED / "abqwwspghj.mp4")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = args.clip if args.clip.is_file() else make_clip(tmp / "generated-1080p.mp4")
        pki = pm.make_pki()
        photo = tmp / "astronaut.jpg"
        Image.fromarray(data.astronaut()).save(photo, "JPEG", quality=92)
        cases = [
            ("typical clip, no Content Credentials", clip, "video"),
            ("the same clip, signed", pm.sign(clip, tmp / "signed.mp4", pki), "video"),
            ("photo (512 px JPEG), none", photo, "image"),
            ("the same photo, signed", pm.sign(photo, tmp / "signed.jpg", pki), "image"),
        ]
        print(f"load average {os.getloadavg()[0]:.1f}; {args.repeat} reads each")
        print("| file | size | median | max | Content Credentials | lines |\n|---|---|---|---|---|---|")
        for name, path, kind in cases:
            median, worst, result = timed(path, kind, args.repeat)
            state = result["content_credentials"]["state"]
            size = path.stat().st_size / 1e6
            print(f"| {name} | {size:.1f} MB | {median * 1000:.1f} ms | {worst * 1000:.1f} ms "
                  f"| {state} | {len(result['file_says'])} |")


if __name__ == "__main__":
    main()
