"""Speed of the full analyze() on a 10-second 1080p clip and on a photo, with the model loaded.

Prints a per-stage breakdown, the real-time factor (seconds of analysis per second of clip),
peak memory, and, in the same run, a seed-style baseline: the same backbone run on every
decoded frame resized whole to the input size (no face detection) — what the open projects
this replaces do. Targets on a 2-core CPU: RTF <= 0.2, photo <= 0.3 s, >= 5x the baseline.

    .venv/bin/python -m benchmarks.pipeline [--clip PATH] [--photo PATH] [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_clip(path: Path, seconds: float = 10.0, fps: float = 30.0) -> Path:
    """A 1080p clip panning over a real photo (skimage's astronaut), for machines without data."""
    from skimage import data

    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    canvas = cv2.resize(face, (2400, 2400))
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (1920, 1080))
    for i in range(int(seconds * fps)):
        x = int(200 * np.sin(i / 40)) + 240
        out.write(canvas[400 + x // 4:1480 + x // 4, x:x + 1920])
    out.release()
    return path


def baseline_all_frames(detector, clip: Path) -> tuple[float, int]:
    """Seed-style: decode every frame, resize the whole frame, run the backbone on each."""
    import av

    t = time.perf_counter()
    size = detector.cfg.chip_size
    batch, n = [], 0
    with av.open(str(clip)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for fr in c.decode(s):
            batch.append(cv2.resize(fr.to_ndarray(format="rgb24"), (size, size), interpolation=cv2.INTER_AREA))
            if len(batch) == 32:
                detector._features(np.stack(batch))
                n += len(batch)
                batch = []
    if batch:
        detector._features(np.stack(batch))
        n += len(batch)
    return time.perf_counter() - t, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path, default=None, help="default: a DFDC 1080p clip from ../shared, else generated")
    ap.add_argument("--photo", type=Path, default=None, help="default: skimage astronaut as JPEG")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from webapp.detection.pipeline import get_detector

    tmp = Path(tempfile.mkdtemp())
    clip = args.clip
    if clip is None:
        dfdc = SHARED / "abqwwspghj.mp4"
        clip = dfdc if dfdc.is_file() else make_clip(tmp / "clip1080.mp4")
    photo = args.photo
    if photo is None:
        from skimage import data

        photo = tmp / "astronaut.jpg"
        cv2.imwrite(str(photo), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))

    t = time.perf_counter()
    rss0 = peak_rss_mb()
    det = get_detector(args.model)
    load_s = time.perf_counter() - t
    rss_model = peak_rss_mb()
    det.analyze(clip)  # warm-up (first call traces graphs)
    runs = [det.analyze(clip) for _ in range(args.repeat)]
    rss_clip = peak_rss_mb()
    a = runs[-1]
    total = statistics.median(r.timings["total"] for r in runs)
    dur = a.media.duration
    photo_runs = [det.analyze(photo) for _ in range(args.repeat + 1)][1:]
    photo_s = statistics.median(r.timings["total"] for r in photo_runs)
    base_s, base_n = baseline_all_frames(det, clip)

    print(f"clip: {clip.name}  {a.media.width}x{a.media.height}  {dur:.2f} s  {a.media.frame_count} frames")
    print(f"model {det.version} loaded in {load_s:.1f} s; frames sampled {a.frames_sampled}, faces {a.faces_found}, "
          f"verdict {a.verdict} p_fake {a.p_fake}")
    print(f"\n| stage | seconds (median of {args.repeat}) |\n|---|---|")
    for k in a.timings:
        print(f"| {k} | {statistics.median(r.timings[k] for r in runs):.3f} |")
    print()
    rtf = total / dur if dur else float("nan")
    print("| figure | measured | target |\n|---|---|---|")
    print(f"| real-time factor (analysis s / clip s) | {rtf:.3f} | <= 0.2 {'met' if rtf <= 0.2 else 'MISSED'} |")
    print(f"| photo ({photo.name}) | {photo_s:.3f} s | <= 0.3 s {'met' if photo_s <= 0.3 else 'MISSED'} |")
    print(f"| baseline: backbone on all {base_n} frames, no face crop | {base_s:.2f} s | |")
    ratio = base_s / total
    print(f"| speed-up over baseline | {ratio:.1f}x | >= 5x {'met' if ratio >= 5 else 'MISSED'} |")
    print(f"| peak RSS: before model / model loaded / after clips | {rss0:.0f} / {rss_model:.0f} / {rss_clip:.0f} MB | |")


if __name__ == "__main__":
    main()
