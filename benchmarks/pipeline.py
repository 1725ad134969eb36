"""Speed of the full analyze() on a 10-second 1080p clip and on a photo, with the model loaded.

Prints a per-stage breakdown, the real-time factor (seconds of analysis per second of clip),
peak memory, and, in the same run, a seed-style baseline: the same backbone run on every
decoded frame resized whole to the input size (no face detection) — what the open projects
this replaces do. Every clip figure is taken with the face finding before issue 10
(``benchmarks.faces.old_find_faces``, run after decoding, as it was) and the current one
(each frame searched while the next decodes), interleaved; the typical clip also with the
current one run after decoding, which shows what the overlap gains. ``--against REF`` adds the
face finding of git revision REF (its ``faces.py`` and ``tracking.py``, loaded as a package of
their own) to every interleaved round, with the ratio current / REF per clip. The worst cases
are a dim room seen from afar (the DFDC clip darkened to 1/3 and shrunk into a 1920x1080 canvas
so the face is about 70 px, ``--far-px``, where the first pass finds nothing), a darker-skinned
face in a dim room (``--dim-source``, widuwuoiur, face 110 px, grey mean about 30:
``tools.far_dim_clip``) and clips with no face at all, lit and dim (every search runs). The
load average is printed: the cores are shared. Targets on a 2-core CPU: a typical clip <= 1.5 s
(RTF <= 0.15), the worst case <= 3 s, a photo <= 0.3 s, >= 6x the baseline.

    .venv/bin/python -m benchmarks.pipeline [--clip PATH] [--photo PATH] [--repeat 3] [--against main]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
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


def no_face_clip(path: Path, seconds: float = 10.0, fps: float = 30.0, dim: bool = False) -> Path:
    """A 1080p H.264 clip panning over a cup of coffee (skimage): no face anywhere, so every
    search the face finder has runs (the slowest case for it); ``dim``: gamma 1.8, gain 0.4."""
    import av
    from skimage import data

    canvas = cv2.resize(data.coffee(), (2400, 1600))
    if dim:
        canvas = (255 * 0.4 * (canvas / 255.0) ** 1.8).astype(np.uint8)
    with av.open(str(path), "w") as o:
        vs = o.add_stream("h264", rate=int(fps))
        vs.width, vs.height, vs.pix_fmt = 1920, 1080, "yuv420p"
        for i in range(int(seconds * fps)):
            x = int(200 * np.sin(i / 40)) + 240
            frame = np.ascontiguousarray(canvas[200 + x // 4:1280 + x // 4, x:x + 1920])
            for pkt in vs.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                o.mux(pkt)
        for pkt in vs.encode():
            o.mux(pkt)
    return path


def dim_far_clip(src: Path, out: Path, face_px: float, gain: float = 1 / 3) -> Path:
    """``src`` darkened to ``gain`` and shrunk into a 1920x1080 canvas (the rest black) so its
    face (found in the first frame) is about ``face_px`` wide; H.264 like the source."""
    import av

    from webapp.detection.faces import detect_faces

    with av.open(str(src)) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24")
    k = face_px / detect_faces(first)[0].size
    with av.open(str(src)) as c, av.open(str(out), "w") as o:
        s = c.streams.video[0]
        vs = o.add_stream("h264", rate=s.average_rate)
        vs.width, vs.height, vs.pix_fmt = 1920, 1080, "yuv420p"
        for fr in c.decode(s):
            rgb = fr.to_ndarray(format="rgb24")
            small = cv2.resize(rgb, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
            canvas = np.zeros((1080, 1920, 3), np.uint8)
            h, w = small.shape[:2]
            y, x = (1080 - h) // 2, int((1920 - w) * 0.6)
            canvas[y:y + h, x:x + w] = (small * gain).astype(np.uint8)
            for pkt in vs.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                o.mux(pkt)
        for pkt in vs.encode():
            o.mux(pkt)
    return out


class _AfterDecoding:
    """A ClipFaces stand-in that runs a whole-clip face finder once all frames are decoded (what
    the pipeline did before frames were searched as they came)."""

    def __init__(self, finder, n: int, progress=None):
        self.finder, self.frames = finder, []

    def add(self, frame: np.ndarray) -> None:
        self.frames.append(frame)

    def finish(self) -> list:
        return self.finder(self.frames)


def tracking_at(ref: str):
    """The ``tracking`` module (with its ``faces``) of git revision ``ref``, imported as a package
    of its own (``faces_at_<ref>``) from a temporary folder, beside the current one."""
    root = Path(__file__).resolve().parents[1]
    name = "faces_at_" + "".join(c if c.isalnum() else "_" for c in ref)
    pkg = Path(tempfile.mkdtemp()) / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for f in ("faces.py", "tracking.py"):
        src = subprocess.run(["git", "show", f"{ref}:webapp/detection/{f}"], cwd=root, check=True,
                             capture_output=True, text=True).stdout
        (pkg / f).write_text(src)
    spec = importlib.util.spec_from_file_location(name, pkg / "__init__.py", submodule_search_locations=[str(pkg)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return importlib.import_module(f"{name}.tracking")


def timed_runs(det, clip: Path, repeat: int, serial: bool = False, ref=None) -> dict[str, list]:
    """analyze() ``repeat`` times with each face finder, interleaved (old, new, old, new...):
    "old" the face finding before issue 10, "new" the current one, searching each frame while
    the next decodes; with ``serial`` also "serial", the current one run after decoding; with
    ``ref`` (a tracking module, :func:`tracking_at`) also "ref", that one while decoding."""
    import webapp.detection.pipeline as pl
    from benchmarks.faces import old_find_faces

    new, new_find = pl.ClipFaces, pl.find_faces
    keys = ("old", "new", "serial") if serial else ("old", "new")
    keys += ("ref",) if ref is not None else ()
    runs: dict[str, list] = {k: [] for k in keys}
    try:
        for _ in range(repeat):
            for key in keys:
                if key == "old":
                    pl.ClipFaces = lambda n, progress=None: _AfterDecoding(old_find_faces, n)
                    pl.find_faces = lambda frames, progress=None: old_find_faces(frames)
                elif key == "ref":
                    pl.ClipFaces, pl.find_faces = ref.ClipFaces, ref.find_faces
                elif key == "serial":
                    pl.ClipFaces, pl.find_faces = (lambda n, progress=None: _AfterDecoding(new_find, n)), new_find
                else:
                    pl.ClipFaces, pl.find_faces = new, new_find
                runs[key].append(det.analyze(clip))
    finally:
        pl.ClipFaces, pl.find_faces = new, new_find
    return runs


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
    ap.add_argument("--far-source", type=Path, default=SHARED / "lynaeydofd.mp4",
                    help="the clip made dim and far for the worst case (a real DFDC clip)")
    ap.add_argument("--far-px", type=float, default=70.0)
    ap.add_argument("--dim-source", type=Path, default=SHARED / "widuwuoiur.mp4",
                    help="a darker-skinned face made dim at 110 px (tools.far_dim_clip): issue 20's case")
    ap.add_argument("--against", default=None, metavar="REF",
                    help="also time the face finding of this git revision (e.g. main), interleaved")
    ap.add_argument("--photo", type=Path, default=None, help="default: skimage astronaut as JPEG")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    load_before = os.getloadavg()

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
    ref = tracking_at(args.against) if args.against else None
    runs = timed_runs(det, clip, args.repeat, serial=True, ref=ref)
    rss_clip = peak_rss_mb()
    a = runs["new"][-1]
    dur = a.media.duration
    photo_runs = [det.analyze(photo) for _ in range(args.repeat + 1)][1:]
    photo_s = statistics.median(r.timings["total"] for r in photo_runs)
    worst: dict[str, dict[str, list]] = {}
    if args.far_source.is_file():
        clip_far = dim_far_clip(args.far_source, tmp / "dim_far.mp4", args.far_px)
        worst[f"{args.far_source.name} at 1/3 light, face {args.far_px:.0f} px"] = timed_runs(
            det, clip_far, args.repeat, ref=ref)
    if args.dim_source.is_file():
        dst = tmp / "dim110.mp4"
        subprocess.run([sys.executable, "-m", "tools.far_dim_clip", str(args.dim_source), str(dst), "--face-px", "110"],
                       check=True, capture_output=True, cwd=Path(__file__).resolve().parents[1])
        worst[f"{args.dim_source.name} dim, face 110 px (darker skin)"] = timed_runs(det, dst, args.repeat, ref=ref)
    worst["no face: coffee cup, 10 s 1080p"] = timed_runs(det, no_face_clip(tmp / "coffee.mp4"), args.repeat, ref=ref)
    worst["no face, dim: coffee cup, 10 s 1080p"] = timed_runs(
        det, no_face_clip(tmp / "coffee_dim.mp4", dim=True), args.repeat, ref=ref)
    base_s, base_n = baseline_all_frames(det, clip)

    def med(rs: list) -> float:
        return statistics.median(r.timings["total"] for r in rs)

    def says(r) -> str:
        if r.too_small:
            return f"too small to judge ({r.largest_face_px} px)"
        return r.verdict if r.p_fake is None else f"{r.verdict} {r.p_fake:.2f}"

    total = {k: med(v) for k, v in runs.items()}
    print(f"clip: {clip.name}  {a.media.width}x{a.media.height}  {dur:.2f} s  {a.media.frame_count} frames")
    print(f"model {det.version} loaded in {load_s:.1f} s; frames sampled {a.frames_sampled}, faces {a.faces_found}, "
          f"verdict {a.verdict} p_fake {a.p_fake}")
    print(f"\n| stage (median of {args.repeat}, seconds) | old face finding | new, after decoding "
          "| new, while decoding |\n|---|---|---|---|")
    for k in a.timings:
        print(f"| {k} | " + " | ".join(f"{statistics.median(r.timings.get(k, 0.0) for r in runs[key]):.3f}"
                                       for key in ("old", "serial", "new")) + " |")
    cols = ["old"] + (["ref"] if ref else []) + ["new"]
    head = {"old": "before issue 10", "ref": f"at {args.against}", "new": "now"}
    print(f"\nSeconds per analysis (median of {args.repeat}, interleaved), what the page says"
          + (f", and now / {args.against}" if ref else "") + "\n")
    print("| clip | " + " | ".join(head[c] for c in cols) + (" | now / ref (each round) " if ref else "")
          + " | target |\n|---|" + "---|" * (len(cols) + 1 + bool(ref)))

    def row(name: str, rs: dict[str, list], target: float) -> None:
        ratios = ", ".join(f"{n.timings['total'] / r.timings['total']:.2f}" for n, r in zip(rs["new"], rs["ref"],
                                                                                           strict=True)) if ref else ""
        cells = " | ".join(f"{med(rs[c]):.2f} ({says(rs[c][-1])})" for c in cols)
        print(f"| {name} | {cells} |" + (f" {med(rs['new']) / med(rs['ref']):.2f} ({ratios}) |" if ref else "")
              + f" <= {target:g} s {'met' if med(rs['new']) <= target else 'MISSED'} |")

    row(f"typical: {clip.name}", runs, 1.5)
    for name, rs in worst.items():
        row(f"worst case: {name}", rs, 3.0)
    print("\n| figure | value | target |\n|---|---|---|")
    print(f"| typical clip RTF | {total['new'] / dur:.3f} | <= 0.15 |")
    print(f"| photo ({photo.name}) | {photo_s:.3f} s | <= 0.3 s {'met' if photo_s <= 0.3 else 'MISSED'} |")
    print(f"| baseline: backbone on all {base_n} frames, no face crop | {base_s:.2f} s | |")
    print(f"| speed-up over baseline (before issue 10 / now) | {base_s / total['old']:.1f}x / {base_s / total['new']:.1f}x "
          f"| >= 6x {'met' if base_s / total['new'] >= 6 else 'MISSED'} |")
    print(f"| peak RSS: before model / model loaded / after clips | {rss0:.0f} / {rss_model:.0f} / {rss_clip:.0f} MB | |")
    print(f"\nload average (1, 5, 15 min) before: {', '.join(f'{v:.2f}' for v in load_before)}; after: "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())} (2 cores)")


if __name__ == "__main__":
    main()
