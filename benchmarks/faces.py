"""Face finding under hard conditions: the clip detector before and after, side by side.

Sources (from ../shared/data): the DFDC 1080p clips and a few other real clips in videos/, and
still pictures from photos/, dfdc_faces/ and ffpp_faces/ turned into 16-frame clips drifting
slowly across a 1920x1080 canvas. Each source is shown under every condition:

- ``as is``: the clip's own frames (pictures: the face about 200 px wide in the canvas);
- ``dark``: gamma 1.8 then gain 0.4 (a dim room);
- ``far N``: shrunk into a 1920x1080 canvas so the face is N px wide (40, 70, 120);
- ``far 70 dark``: both (the issue's DFDC case: a dark room, a face about 70 px);
- ``tilted``: rotated by +20 or -20 degrees (alternating by source);
- ``two faces``: a second face (another source, shrunk) pasted beside the first.

The canvas behind a shrunk frame is the frame's colours smeared over it (no face left in it). The ground
truth is where the old detector finds the face in the source frame (frames where it finds
none are left out: nothing to compare), moved with the same transform. A face counts as found
when a detection's centre is within half a face width of it; any other detection is false,
except one where a frame up to two away has a true face the old detector missed here (a head
turned away, still a face: neither found nor false).
"Seconds per clip" is face finding on the 16 sampled frames of one clip (what
``analyze()`` detects on), decoding excluded.

    .venv/bin/python -m benchmarks.faces [--clips 8] [--pictures 2] [--crops 500]
    .venv/bin/python -m benchmarks.faces --sizes      # the too-small-to-judge measurement

``--crops`` also reports the no-face rate of the photo path on DFDC and FF++ face crops.
``--sizes`` shrinks real and fake faces to 30..160 px, chips them again and scores them with
the shipped model (clips through the temporal model, crops through the frame head): below the
size where real faces drift towards "fake", the pipeline marks faces "too small to judge".
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from webapp.detection.faces import Face, detect_faces
from webapp.detection.media import sample_video
from webapp.detection.tracking import find_faces

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
W, H = 1920, 1080
N_FRAMES = 16
CONDITIONS = ("as is", "dark", "far 40", "far 70", "far 120", "far 70 dark", "tilted", "two faces")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- the old detector, kept callable
def old_find_faces(frames: list[np.ndarray]) -> list[list[Face]]:
    """The clip detection before issue 10: HOG at 640 px on every frame (2x when nothing), and
    when no frame had a face, the CNN detector on four frames, then on all if that found one."""
    per_frame = [detect_faces(f, enhanced=False) for f in frames]
    if not any(per_frame):
        probe = np.linspace(0, len(frames) - 1, min(4, len(frames))).round().astype(int)
        if any(detect_faces(frames[i], thorough=True, enhanced=False) for i in probe):
            per_frame = [detect_faces(f, thorough=True, enhanced=False) for f in frames]
    return per_frame


# ---------------------------------------------------------------- making the conditions
class Scene:
    """A source: frames (RGB) and, per frame, the face box found by the old detector (or None)."""

    def __init__(self, name: str, frames: list[np.ndarray], boxes: list[tuple | None]):
        self.name, self.frames, self.boxes = name, frames, boxes

    @property
    def face_px(self) -> float:
        sizes = [max(b[2] - b[0], b[3] - b[1]) for b in self.boxes if b]
        return float(np.median(sizes)) if sizes else 0.0


def _box(faces: list[Face]) -> tuple | None:
    return max(faces, key=lambda f: f.score).box if faces else None


def clip_scene(path: Path) -> Scene:
    s = sample_video(path, N_FRAMES)
    return Scene(path.name, s.frames, [_box(detect_faces(f, enhanced=False)) for f in s.frames])


def picture_scene(path: Path, face_px: float = 200.0) -> Scene | None:
    """A still picture drifting across a 1080p canvas for 16 frames, face about ``face_px``."""
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    pad = int(0.25 * max(img.shape[:2]))  # found on a reflect-padded copy (tight crops)
    faces = detect_faces(cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REFLECT_101),
                         thorough=True, enhanced=False)
    if not faces:
        return None
    # The crop continues into a blurred copy of its reflection: no hard edge at the face, and no
    # mirrored eyes for the detector to find.
    padded = cv2.GaussianBlur(cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REFLECT_101), (0, 0), 12)
    padded[pad:pad + img.shape[0], pad:pad + img.shape[1]] = img
    img, pad = padded, 0
    k = face_px / faces[0].size
    img = cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
    img = img[: H - 60, : W - 200]
    frames, boxes = [], []
    bg = _backdrop(img)
    b = [(v - pad) * k for v in faces[0].box]
    for i in range(N_FRAMES):
        x, y = 700 - img.shape[1] // 2 + 8 * i, (H - img.shape[0]) // 2 + 3 * (i - N_FRAMES // 2)
        canvas = bg.copy()
        canvas[y:y + img.shape[0], x:x + img.shape[1]] = img
        frames.append(canvas)
        boxes.append((b[0] + x, b[1] + y, b[2] + x, b[3] + y))
    return Scene(path.name, frames, boxes)


def _backdrop(frame: np.ndarray) -> np.ndarray:
    """The frame's colours, smeared over 1920x1080 (16x9 cells, smoothly interpolated): a
    background with no face left in it, however much the frame is enlarged."""
    tiny = cv2.resize(frame, (16, 9), interpolation=cv2.INTER_AREA)
    return cv2.resize(tiny, (W, H), interpolation=cv2.INTER_CUBIC)


def _affine(frame: np.ndarray, m: np.ndarray, bg: np.ndarray) -> np.ndarray:
    out = cv2.warpAffine(frame, m, (W, H), flags=cv2.INTER_AREA if m[0, 0] < 1 else cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    mask = cv2.warpAffine(np.full(frame.shape[:2], 255, np.uint8), m, (W, H), flags=cv2.INTER_NEAREST)
    out[mask == 0] = bg[mask == 0]
    return out


def _move(box: tuple | None, m: np.ndarray) -> tuple | None:
    """The box's centre and width after affine ``m`` (rotation keeps the width)."""
    if box is None:
        return None
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    nx, ny = m @ np.array([cx, cy, 1.0])
    half = max(box[2] - box[0], box[3] - box[1]) * math.hypot(m[0, 0], m[0, 1]) / 2
    return (nx - half, ny - half, nx + half, ny + half)


def dim(frame: np.ndarray, gamma: float = 1.8, gain: float = 0.4) -> np.ndarray:
    lut = (255 * gain * (np.arange(256) / 255.0) ** gamma).clip(0, 255).astype(np.uint8)
    return cv2.LUT(frame, lut)


def condition(scene: Scene, cond: str, other: Scene, k: int) -> tuple[list[np.ndarray], list[list[tuple]]]:
    """Frames (1920x1080 or the source size for "as is"/"dark") and the true face boxes per frame."""
    frames, truths = [], []
    for i, (fr, box) in enumerate(zip(scene.frames, scene.boxes, strict=True)):
        if cond in ("as is", "dark"):
            frames.append(dim(fr) if cond == "dark" else fr)
            truths.append([box] if box else [])
            continue
        bg = _backdrop(fr)
        h, w = fr.shape[:2]
        if cond.startswith("far"):
            s = int(cond.split()[1]) / max(scene.face_px, 1.0)
            m = np.array([[s, 0, (W - w * s) * 0.6], [0, s, (H - h * s) * 0.4]])
        elif cond == "tilted":
            s = min(W / w, H / h, 1.0)
            m = cv2.getRotationMatrix2D((w / 2, h / 2), 20 if k % 2 else -20, s)
            m[:, 2] += [(W - w) / 2, (H - h) / 2]
        else:  # two faces: this source on the left, the other one shrunk on the right
            s = min(0.5 * W / w, H / h, 1.0)
            m = np.array([[s, 0, 0.0], [0, s, (H - h * s) / 2]])
        out = _affine(fr, m, bg)
        truth = [_move(box, m)] if box else []
        if cond == "two faces":
            j = i % len(other.frames)
            ofr, obox = other.frames[j], other.boxes[j]
            if obox:
                s2 = min(150.0 / max(other.face_px, 1.0), 0.45 * W / ofr.shape[1], H / ofr.shape[0])
                m2 = np.array([[s2, 0, W * 0.52], [0, s2, (H - ofr.shape[0] * s2) / 2]])
                out = _affine(ofr, m2, out)
                truth.append(_move(obox, m2))
        if cond.endswith("dark"):
            out = dim(out)
        frames.append(out)
        truths.append(truth)
    return frames, truths


# ---------------------------------------------------------------- scoring
def score(found: list[list[Face]], truths: list[list[tuple]]) -> tuple[int, int, int]:
    """(faces found, faces there, false detections) over all frames.

    The truth is the old detector on the source frame, and it misses some (a head turned away):
    in a frame with fewer true faces than a frame up to two away, a detection where that frame
    had one is left out (neither found nor false)."""
    hit = total = false = 0
    for i, (faces, truth) in enumerate(zip(found, truths, strict=True)):
        used = set()
        for t in truth:
            total += 1
            tc = ((t[0] + t[2]) / 2, (t[1] + t[3]) / 2)
            tw = t[2] - t[0]
            for j, f in enumerate(faces):
                if j not in used and math.dist(f.center, tc) < 0.5 * tw:
                    used.add(j)
                    hit += 1
                    break
        near = [t for k in range(max(0, i - 2), min(len(truths), i + 3)) for t in truths[k]]
        if any(len(truths[k]) > len(truth) for k in range(max(0, i - 2), min(len(truths), i + 3))):
            used |= {j for j, f in enumerate(faces) if j not in used and any(
                math.dist(f.center, ((t[0] + t[2]) / 2, (t[1] + t[3]) / 2)) < 0.5 * (t[2] - t[0]) for t in near)}
        false += len(faces) - len(used)
    return hit, total, false


def run_table(scenes: list[Scene], conditions: tuple[str, ...]) -> None:
    detectors: dict[str, Callable] = {"old": old_find_faces, "new": find_faces}
    print(f"\n{len(scenes)} sources x {N_FRAMES} frames: "
          + ", ".join(f"{s.name[:24]} ({s.face_px:.0f} px)" for s in scenes) + "\n")
    print("| condition | faces | recall old | recall new | false old | false new "
          "| s/clip old (median, max) | s/clip new (median, max) |")
    print("|---|---|---|---|---|---|---|---|")
    for cond in conditions:
        agg = {d: [0, 0, 0, []] for d in detectors}
        for k, scene in enumerate(scenes):
            frames, truths = condition(scene, cond, scenes[(k + 1) % len(scenes)], k)
            for name, fn in detectors.items():
                t = time.perf_counter()
                found = fn(frames)
                agg[name][3].append(time.perf_counter() - t)
                h, n, f = score(found, truths)
                agg[name][0] += h
                agg[name][1] += n
                agg[name][2] += f
        o, n = agg["old"], agg["new"]
        print(f"| {cond} | {n[1]} | {o[0] / max(o[1], 1):.1%} | {n[0] / max(n[1], 1):.1%} | {o[2]} | {n[2]} "
              f"| {statistics.median(o[3]):.2f}, {max(o[3]):.2f} | {statistics.median(n[3]):.2f}, {max(n[3]):.2f} |",
              flush=True)


def crops_no_face(limit: int, seed: int = 1) -> None:
    """No-face rate of the photo path (``analyze`` on a crop) before and after."""
    print("\n| crops | n | no face old | no face new | s/crop old / new |\n|---|---|---|---|---|")
    for name in ("dfdc_faces", "ffpp_faces"):
        rows = list(_rows(DATA / name / "labels.csv"))
        random.Random(seed).shuffle(rows)
        miss = {"old": 0, "new": 0}
        secs = {"old": 0.0, "new": 0.0}
        for r in rows[:limit]:
            img = cv2.cvtColor(cv2.imread(str(DATA / name / r["path"])), cv2.COLOR_BGR2RGB)
            for key, enhanced in (("old", False), ("new", None)):
                t = time.perf_counter()
                miss[key] += not detect_faces(img, thorough=True, enhanced=enhanced)
                secs[key] += time.perf_counter() - t
        n = min(limit, len(rows))
        print(f"| {name} | {n} | {miss['old'] / n:.1%} ({miss['old']}) | {miss['new'] / n:.1%} ({miss['new']}) "
              f"| {secs['old'] / n:.3f} / {secs['new'] / n:.3f} |", flush=True)


# ---------------------------------------------------------------- size sweep (too small to judge)
def size_sweep(n_crops: int, seed: int = 0) -> None:
    import dlib

    from webapp.detection.faces import make_chip, reflect_pad
    from webapp.detection.pipeline import get_detector, sigmoid
    from webapp.detection.training.metrics import roc_auc

    det = get_detector()
    cfg = det.cfg
    widths = [30, 40, 50, 60, 70, 80, 100, 120, 160, 0]

    def shrunk_chip(img: np.ndarray, face: Face, w: int) -> np.ndarray:
        if w == 0:
            return make_chip(img, face, cfg.chip_size, cfg.chip_padding)
        s = w / face.size
        small = cv2.resize(img, (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))),
                           interpolation=cv2.INTER_AREA)
        r = face.shape.rect
        shape = dlib.full_object_detection(
            dlib.rectangle(int(r.left() * s), int(r.top() * s), int(r.right() * s), int(r.bottom() * s)),
            [dlib.point(round(p.x * s), round(p.y * s)) for p in face.shape.parts()])
        small_face = Face(box=tuple(int(v * s) for v in face.box), landmarks=face.landmarks * s,
                          score=face.score, shape=shape)
        return make_chip(small, small_face, cfg.chip_size, cfg.chip_padding)

    rng = random.Random(seed)
    rows = list(_rows(DATA / "dfdc_faces" / "labels.csv"))
    picked = (rng.sample([r for r in rows if r["label"] == "real"], n_crops)
              + rng.sample([r for r in rows if r["label"] == "fake"], n_crops))
    res = {w: {"real": [], "fake": []} for w in widths}
    for r in picked:
        img = reflect_pad(cv2.cvtColor(cv2.imread(str(DATA / "dfdc_faces" / r["path"])), cv2.COLOR_BGR2RGB))
        faces = detect_faces(img)
        if not faces:
            continue
        _, _, logits = det._features(np.stack([shrunk_chip(img, faces[0], w) for w in widths]))
        for w, p in zip(widths, sigmoid(logits / cfg.frame_temperature), strict=True):
            res[w][r["label"]].append(float(p))
    print(f"\nDFDC crops ({n_crops} real, {n_crops} fake), frame head: face width -> scores\n")
    print("| face px | mean p real | mean p fake | AUC | reals above fake line | reals below real line |")
    print("|---|---|---|---|---|---|")
    for w in widths:
        rr, ff = np.array(res[w]["real"]), np.array(res[w]["fake"])
        auc = roc_auc(np.r_[np.zeros(len(rr)), np.ones(len(ff))].astype(int), np.r_[rr, ff])
        print(f"| {w or 'original'} | {rr.mean():.3f} | {ff.mean():.3f} | {auc:.3f} "
              f"| {(rr > cfg.fake_above).mean():.1%} | {(rr < cfg.real_below).mean():.1%} |", flush=True)

    labels = {r["path"]: r["label"] for r in _rows(DATA / "videos" / "labels.csv")}
    print(f"\nClips, temporal model: clip score at face width (fake line {cfg.fake_above})\n")
    print("| clip | label | face px | " + " | ".join(str(w or "original") for w in widths) + " |")
    print("|---|---|---|" + "---|" * len(widths))
    worst = {w: 0.0 for w in widths}
    for name in sorted(labels):
        s = sample_video(DATA / "videos" / name, 16)
        per = [detect_faces(f) for f in s.frames]
        idx = [i for i, f in enumerate(per) if f]
        if len(idx) < 4:
            continue
        px = float(np.mean([per[i][0].size for i in idx]))
        cells = []
        for w in widths:
            if w and w > px:
                cells.append("-")
                continue
            _, pooled, logits = det._features(np.stack([shrunk_chip(s.frames[i], per[i][0], w) for i in idx]))
            p = float(sigmoid(det.track_logit(pooled, logits) / cfg.temperature))
            cells.append(f"{p:.2f}")
            if labels[name] == "real":
                worst[w] = max(worst[w], p)
        print(f"| {name[:36]} | {labels[name]} | {px:.0f} | " + " | ".join(cells) + " |", flush=True)
    print("\nHighest real clip score per width: "
          + ", ".join(f"{w or 'original'}: {worst[w]:.2f}" for w in widths))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=8, help="clips from videos/ (DFDC first)")
    ap.add_argument("--pictures", type=int, default=2, help="pictures per photo set")
    ap.add_argument("--crops", type=int, default=500, help="crops per set for the no-face rate (0: skip)")
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--sizes", action="store_true", help="run the too-small-to-judge measurement instead")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} not found: this benchmark needs ../shared/data")
    if args.sizes:
        size_sweep(150, args.seed)
        return

    detect_faces(np.zeros((64, 64, 3), np.uint8))  # load the dlib models before timing
    rows = list(_rows(DATA / "videos" / "labels.csv"))
    dfdc = [r["path"] for r in rows if r["source"] == "DFDC"]
    others = sorted((r["path"] for r in rows if r["source"] != "DFDC"), key=lambda p: random.Random(p).random())
    scenes: list[Scene] = []
    for name in (dfdc + others)[: args.clips]:
        sc = clip_scene(DATA / "videos" / name)
        if sum(b is not None for b in sc.boxes) >= N_FRAMES // 2:
            scenes.append(sc)
    rng = random.Random(args.seed)
    for folder in ("photos", "dfdc_faces", "ffpp_faces"):
        items = list(_rows(DATA / folder / "labels.csv"))
        rng.shuffle(items)
        added = 0
        for r in items:
            if added >= args.pictures:
                break
            sc = picture_scene(DATA / folder / r["path"])
            if sc is not None:
                sc.name = f"{folder}/{sc.name}"
                scenes.append(sc)
                added += 1
    run_table(scenes, tuple(c for c in args.conditions.split(",") if c))
    if args.crops:
        crops_no_face(args.crops)


if __name__ == "__main__":
    main()
