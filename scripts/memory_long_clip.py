"""Peak memory of decoding a short and a long clip: frames are sampled, never all held.

Writes a 10 s and a 2 min clip (640x360, 25 fps, the astronaut drifting), then, each in a
fresh subprocess, measures the peak RSS (``resource.getrusage``) of ``sample_video`` and of
the full ``analyze`` with the shipped model. If memory grew with the clip, the 2 min rows
would be far above the 10 s rows.

    .venv/bin/python -m scripts.memory_long_clip [--minutes 2] [--no-engine]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time
mode, path = sys.argv[1], sys.argv[2]
t = time.perf_counter()
if mode == "import":
    import webapp.detection.media  # noqa: F401
    out = {}
elif mode == "sample":
    from webapp.detection.media import sample_video
    s = sample_video(path, 16)
    out = {"frames": len(s.frames), "duration": s.info.duration}
else:
    from webapp.detection.pipeline import get_detector
    d = get_detector()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    a = d.analyze(path)
    out = {"frames": a.frames_sampled, "verdict": a.verdict, "after_model_load_mb": base / 1024}
out["seconds"] = round(time.perf_counter() - t, 2)
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def write_clip(path: Path, seconds: float, fps: int = 25, size=(640, 360)) -> Path:
    from skimage import data

    w, h = size
    src = data.astronaut()[:288]  # 512 x 288: 16:9 around the face
    base = cv2.resize(src, (w, h), interpolation=cv2.INTER_AREA)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(int(seconds * fps)):
            img = np.roll(base, int(12 * np.sin(i / 20)), axis=1)
            for pkt in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in stream.encode(None):
            out.mux(pkt)
    return path


def measure(mode: str, clip: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(clip)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--no-engine", action="store_true", help="skip the full analyze (no TF)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clips = {}
        for label, seconds in (("10 s", 10.0), (f"{args.minutes:g} min", args.minutes * 60)):
            t = time.perf_counter()
            clips[label] = write_clip(Path(tmp) / f"{seconds:.0f}s.mp4", seconds)
            mb = clips[label].stat().st_size / 1e6
            print(
                f"wrote {label} clip 640x360 25 fps ({mb:.1f} MB) in {time.perf_counter() - t:.1f} s"
            )
        base = measure("import", next(iter(clips.values())))
        print(f"baseline (python + media module): peak RSS {base['peak_rss_mb']:.0f} MB")
        modes = ["sample"] + ([] if args.no_engine else ["analyze"])
        for mode in modes:
            for label, clip in clips.items():
                r = measure(mode, clip)
                extra = (
                    f", {r['after_model_load_mb']:.0f} MB after loading the model"
                    if "after_model_load_mb" in r
                    else ""
                )
                print(
                    f"{mode:8s} {label:>6s}: peak RSS {r['peak_rss_mb']:.0f} MB{extra}; "
                    f"{r['frames']} frames kept, {r['seconds']:.1f} s"
                )


if __name__ == "__main__":
    main()
