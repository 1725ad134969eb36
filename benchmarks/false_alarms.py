"""False alarms under what real uploads go through: how often a REAL face is called "likely fake".

Every real clip of ../shared/data/videos and ../shared/data/generators (first ``--seconds`` of
each; ``--clips`` caps how many, spread over sources) and a sample of real photos
(../shared/data/photos, real_faces) are analysed as they are and after each transformation:

  face120 / face80 / face70 / face60 / face50
                              the whole picture downscaled so the face is that wide
  face70dark                  downscaled to a 70-px face and darkened (far away in a dim room)
  crf35 / jpeg30              H.264 at CRF 35 (clips), JPEG quality 30 (photos)
  dark                        gamma 1.8 and gain 0.45 (a dim room)
  blur                        Gaussian blur, sigma 2
  noise                       sensor noise, sigma 12
  portrait                    cropped to a phone's 9:16 portrait frame around the centre

The table gives, per transformation and model, the share of reals called "likely fake" (target
<= 2% each), "inconclusive", "likely real", and how many had no judgeable face.

``--min-face-px VIDEO,IMAGE`` overrides the models' "too small to judge" line, which is how that
line is measured: run the small-face conditions with the line lowered and see where reals start
being called fake. ``--label fake`` runs the same on the fake clips and photos (how many small or
dim fakes are still caught).

    .venv/bin/python -m benchmarks.false_alarms [--model model/ --model other/] [--clips 40] [--photos 120]
    .venv/bin/python -m benchmarks.false_alarms --min-face-px 40,40 --conditions face100,face80,face70,face60,face70dark
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import av
import cv2
import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CONDITIONS = ("original", "face120", "face80", "face50", "compressed", "dark", "blur", "noise", "portrait")
MORE_CONDITIONS = ("face100", "face70", "face60", "face70dark")  # measuring the small-face line


def transform(rgb: np.ndarray, cond: str, face_px: float, rng: np.random.Generator) -> np.ndarray:
    """One frame (H, W, 3) uint8 RGB under ``cond`` (``face_px``: the face's width in it)."""
    if cond.startswith("face") and cond.endswith("dark"):
        return transform(transform(rgb, cond[:-4], face_px, rng), "dark", face_px, rng)
    if cond.startswith("face"):
        f = face_target(cond) / max(face_px, 1.0)
        if f >= 1.0:
            return rgb
        h, w = rgb.shape[:2]
        return cv2.resize(rgb, (max(2, round(w * f) // 2 * 2), max(2, round(h * f) // 2 * 2)), interpolation=cv2.INTER_AREA)
    if cond == "dark":
        return np.clip((rgb / 255.0) ** 1.8 * 0.45 * 255, 0, 255).astype(np.uint8)
    if cond == "blur":
        return cv2.GaussianBlur(rgb, (0, 0), 2.0)
    if cond == "noise":
        return np.clip(rgb + rng.normal(0, 12, rgb.shape), 0, 255).astype(np.uint8)
    if cond == "portrait":
        h, w = rgb.shape[:2]
        cw = min(w, round(h * 9 / 16)) // 2 * 2
        x0 = (w - cw) // 2
        return np.ascontiguousarray(rgb[:, x0:x0 + cw])
    return rgb


def write_clip(src: Path, dst: Path, cond: str, face_px: float, seconds: float, seed: int) -> Path:
    """Re-encode the first ``seconds`` of ``src`` under ``cond`` as H.264 (CRF 35 for "compressed", else 18)."""
    rng = np.random.default_rng(seed)
    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        fps = float(stream.average_rate or 25)
        frames = []
        for frame in inp.decode(stream):
            if frame.time is not None and frame.time > seconds:
                break
            frames.append(transform(frame.to_ndarray(format="rgb24"), cond, face_px, rng))
    h, w = frames[0].shape[:2]
    with av.open(str(dst), "w") as out:
        vs = out.add_stream("libx264", rate=round(fps))
        vs.width, vs.height, vs.pix_fmt = w // 2 * 2, h // 2 * 2, "yuv420p"
        vs.options = {"crf": "35" if cond == "compressed" else "18", "preset": "veryfast"}
        for f in frames:
            out.mux(vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f[:vs.height, :vs.width]), format="rgb24")))
        out.mux(vs.encode(None))
    return dst


def write_photo(src: Path, dst: Path, cond: str, face_px: float, seed: int) -> Path:
    rgb = cv2.cvtColor(cv2.imread(str(src)), cv2.COLOR_BGR2RGB)
    out = transform(rgb, cond, face_px, np.random.default_rng(seed))
    q = 30 if cond == "compressed" else 92
    cv2.imwrite(str(dst), cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
    return dst


def face_target(cond: str) -> float:
    """The face width a "face…" condition shrinks to (face70dark -> 70)."""
    return float(cond[4:].removesuffix("dark"))


def real_items(n_clips: int, n_photos: int, seed: int = 0, label: int = 0,
               split: str = "all") -> list[tuple[str, Path, str]]:
    """(kind, path, source) of clips and photos of ``label`` (0 real), spread evenly over sources;
    ``split`` keeps only the training rule's "val" (or "train", "test") items."""
    from webapp.detection.training.dataset import read_labels
    from webapp.detection.training.sampling import assign_splits

    def of_split(items: list) -> list:
        if split == "all":
            return items
        splits = assign_splits(items)
        return [it for it in items if splits[it] == split]

    rng = np.random.default_rng(seed)

    def spread(items: list, n: int) -> list:
        by: dict[str, list] = defaultdict(list)
        for it in items:
            by[it.group.split("|")[-1] if it.source == "photos" else it.source].append(it)
        out, k = [], 0
        pools = [list(rng.permutation(v)) for v in by.values()]
        while len(out) < min(n, len(items)):
            if pools[k % len(pools)]:
                out.append(pools[k % len(pools)].pop())
            k += 1
        return out

    clips = [it for f in ("videos", "generators") if (DATA / f).is_dir() for it in of_split(read_labels(DATA / f)) if it.label == label]
    photos = [it for f in ("photos", "real_faces") if (DATA / f).is_dir() for it in of_split(read_labels(DATA / f)) if it.label == label]
    out = [("clip", it.path, it.source) for it in spread(clips, n_clips)]
    out += [("photo", it.path, it.group.split("|")[-1] if it.source == "photos" else it.source) for it in spread(photos, n_photos)]
    return out


def face_width(detector, path: Path, kind: str) -> float:
    from webapp.detection.faces import detect_faces
    from webapp.detection.media import load_media

    s = load_media(path, 4 if kind == "clip" else 1)
    widths = [f.box[2] - f.box[0] for fr in s.frames for f in detect_faces(fr)[:1]]
    return float(np.median(widths)) if widths else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", type=Path, help="model folder (repeat to compare); default model/")
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--photos", type=int, default=120)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--scores", type=Path, default=None,
                    help="also write every analysis (item, condition, model, p_fake, verdict, face px) as JSON lines")
    ap.add_argument("--label", choices=("real", "fake"), default="real")
    ap.add_argument("--split", choices=("all", "train", "val", "test"), default="all",
                    help="only items the training split rule puts here (choose lines on val)")
    ap.add_argument("--min-face-px", default=None, metavar="VIDEO,IMAGE",
                    help="judge faces down to these widths (overrides each model's line; for measuring it)")
    ap.add_argument("--write-metrics", action="store_true",
                    help="store each model's rows as 'false_alarms' in its metrics.json and config.json (the card shows them)")
    args = ap.parse_args()
    from webapp.detection.pipeline import Detector

    detectors = [Detector(m) for m in (args.model or [Path("model")])]
    if args.min_face_px:
        video_px, image_px = (int(v) for v in args.min_face_px.split(","))
        for d in detectors:
            d.cfg.min_face_px = {"video": video_px, "image": image_px}
    conds = args.conditions.split(",")
    unknown = set(conds) - set(CONDITIONS) - set(MORE_CONDITIONS)
    if unknown:
        ap.error(f"unknown condition(s) {', '.join(sorted(unknown))}; known: {', '.join(CONDITIONS + MORE_CONDITIONS)}")
    items = real_items(args.clips, args.photos, label=int(args.label == "fake"), split=args.split)
    lines = ", ".join(f"{d.version}: clips {d.min_face_px('video')} px, photos {d.min_face_px('image')} px" for d in detectors)
    print(f"{sum(k == 'clip' for k, _, _ in items)} {args.label} clips, {sum(k == 'photo' for k, _, _ in items)} "
          f"{args.label} photos; faces judged from ({lines})", flush=True)
    tally: dict[tuple[str, str, str], Counter] = defaultdict(Counter)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for n, (kind, path, _source) in enumerate(items, 1):
            fw = face_width(detectors[0], path, kind)
            for c in conds:
                if c.startswith("face") and (fw == 0 or face_target(c) >= fw):
                    continue  # the face is already that small (or none found): nothing to shrink
                dst = Path(tmp) / f"{n}_{c}{'.mp4' if kind == 'clip' else '.jpg'}"
                if kind == "clip":
                    write_clip(path, dst, c, fw, args.seconds, n)
                else:
                    write_photo(path, dst, c, fw, n)
                for d in detectors:
                    a = d.analyze(dst)
                    if args.scores:
                        with args.scores.open("a") as fh:
                            fh.write(json.dumps({"item": str(path), "source": _source, "kind": kind, "condition": c,
                                                 "model": d.version, "p_fake": a.p_fake, "verdict": a.verdict,
                                                 "face_px": a.largest_face_px}) + "\n")
                    verdict = a.verdict if a.verdict in ("real", "inconclusive", "fake") else "no_face"
                    tally[(d.version, c, kind)][verdict] += 1
                dst.unlink()
            if n % 10 == 0:
                print(f"  {n}/{len(items)} items, {time.time() - t0:.0f} s", flush=True)
    print(f"\n{args.label.capitalize()} faces called 'likely fake' per transformation ({time.time() - t0:.0f} s):")
    print("| transformation | kind | n | " + " | ".join(f"{d.version}: fake / inconcl. / real / no face" for d in detectors) + " |")
    print("|---|---|---|" + "---|" * len(detectors))
    rows = []
    for c in conds:
        for kind in ("clip", "photo"):
            cells, n = [], 0
            for d in detectors:
                t = tally[(d.version, c, kind)]
                n = sum(t.values())
                if n:
                    cells.append(f"**{t['fake'] / n:.1%}** / {t['inconclusive'] / n:.0%} / {t['real'] / n:.0%} / {t['no_face']}")
                rows.append({"model": d.version, "condition": c, "kind": kind, "n": n, **t})
            if n:
                print(f"| {c} | {kind} | {n} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if args.write_metrics:
        for d in detectors:
            mine = [r for r in rows if r["model"] == d.version and r["n"]]
            for name in ("metrics.json", "config.json"):
                path = Path(d.model_dir) / name
                data = json.loads(path.read_text())
                (data if name == "metrics.json" else data.setdefault("metrics", {}))["false_alarms"] = mine
                path.write_text(json.dumps(data, indent=2) + "\n")
            print(f"wrote false_alarms into {d.model_dir}")


if __name__ == "__main__":
    main()
