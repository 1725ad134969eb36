"""Where a small face may call a file "likely fake" by itself: a model's false alarms per face-size
band, on real footage held out of training, shrunk and darkened.

Below a model's vouch line (config.json ``vouch_face_px``) a face is judged but never called
"likely real"; it may call a file "likely fake" by itself only from the line this measures
(``small_face_fake_ok_from_px``; without it, not at all: the result reads "inconclusive").

Items: the REAL clips and photos of ../shared/data that the training split rule puts in
validation (``--split val``: whole recordings and sources held out of training): videos/ and
generators/ clips (the first ``--seconds``), photos/ and real_faces/ photos. Each is redrawn as
issue 10's far dim case (``tools.far_dim_clip.far_dim``): shrunk into a 1920x1080 frame so the
face is each of ``--sizes`` px wide, on a blurred backdrop of its own colours, once as lit and
once darkened (gamma 1.8, gain 0.4); clips are re-encoded as H.264 CRF 23. Every one is analysed
with the model, its judged line as configured and every judged face allowed to accuse; the
width the pipeline measured for the deciding (most suspicious) face puts the analysis in a band
(``--bands`` edges, up to the vouch line). A real item called "likely fake" is a false alarm.

The line, per media type: the lowest band edge from which every band up to the vouch line has
at least ``--min-n`` analyses and at most 2% false alarms (the rate measured, its Wilson 95%
upper bound printed beside it). ``--write`` stores the line in the model's config.json as
``small_face_fake_ok_from_px`` (a media type whose bands do not qualify is left out: no small
face of it accuses) and the table in ``notes["small_face_false_alarms"]``.

    .venv/bin/python -m benchmarks.small_faces --model model/2026.11.23-lite0 [--write]
    .venv/bin/python -m benchmarks.small_faces --model model/NEW --clips 40 --photos 150 --write
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import av
import cv2

from benchmarks.false_alarms import face_width, real_items
from tools.far_dim_clip import far_dim

LIGHTS = {"as lit": (1.0, 1.0), "dark": (1.8, 0.4)}  # (gamma, gain) after shrinking
MAX_RATE = 0.02


def wilson_upper(k: int, n: int, z: float = 1.96) -> float:
    """Upper end of the Wilson score interval of k successes in n trials (95% by default)."""
    if n == 0:
        return 1.0
    p = k / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z * z / n))


def write_item(src: Path, dst: Path, kind: str, scale: float, light: tuple[float, float], seconds: float) -> Path:
    """``src`` shrunk by ``scale`` into a 1920x1080 frame under ``light`` = (gamma, gain)."""
    gamma, gain = light
    if kind == "photo":
        rgb = cv2.cvtColor(cv2.imread(str(src)), cv2.COLOR_BGR2RGB)
        out = far_dim(rgb, scale, gamma, gain)
        cv2.imwrite(str(dst), cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        return dst
    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        fps = stream.average_rate or 25
        frames = []
        for f in inp.decode(stream):
            if f.time is not None and f.time >= seconds:
                break
            frames.append(far_dim(f.to_ndarray(format="rgb24"), scale, gamma, gain))
    with av.open(str(dst), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        vs.options = {"crf": "23", "preset": "veryfast"}
        for fr in frames:
            out.mux(vs.encode(av.VideoFrame.from_ndarray(fr, format="rgb24")))
        out.mux(vs.encode(None))
    return dst


def band_of(px: float, edges: list[int]) -> int | None:
    """The lower edge of the band ``px`` falls in (None: under the first or at/over the last)."""
    for lo, hi in zip(edges, edges[1:], strict=False):
        if lo <= px < hi:
            return lo
    return None


def choose_line(rows: list[dict], min_n: int) -> int | None:
    """The lowest band edge from which every band up has >= min_n analyses and <= 2% false alarms."""
    line = None
    for r in sorted(rows, key=lambda r: -r["from_px"]):
        if r["n"] < min_n or r["false_alarms"] / r["n"] > MAX_RATE:
            break
        line = r["from_px"]
    return line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="model folder or version (default: the registry's)")
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--photos", type=int, default=150)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--split", choices=("val", "test"), default="val")
    ap.add_argument("--sizes", default="60,70,80,90", help="face widths (px) each item is shrunk to")
    ap.add_argument("--photo-sizes", default="60,75,90,110,130", help="the same for photos")
    ap.add_argument("--bands", default="60,70,80,90", help="band edges (px); the vouch line closes the last")
    ap.add_argument("--min-n", type=int, default=40, help="analyses a band needs before it may qualify")
    ap.add_argument("--scores", type=Path, default=None, help="also write every analysis as JSON lines")
    ap.add_argument("--write", action="store_true", help="store the line and the table in the model's config.json")
    args = ap.parse_args()
    from webapp.detection.pipeline import DEFAULT_MODEL_DIR, Detector

    det = Detector(args.model or DEFAULT_MODEL_DIR)
    lines = {m: (det.min_face_px(m), det.vouch_face_px(m)) for m in ("video", "image")}
    det.cfg.small_face_fake_ok_from_px = {m: judged for m, (judged, _) in lines.items()}  # every judged face accuses
    items = real_items(args.clips, args.photos, label=0, split=args.split)
    sizes = {"clip": [float(s) for s in args.sizes.split(",")], "photo": [float(s) for s in args.photo_sizes.split(",")]}
    print(f"{det.version}: judged from / vouched from {lines}; {sum(k == 'clip' for k, _, _ in items)} real clips, "
          f"{sum(k == 'photo' for k, _, _ in items)} real photos of the {args.split} split", flush=True)
    tally: dict[tuple[str, int], list] = defaultdict(lambda: [0, 0, set(), []])  # n, false, items, p
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for n, (kind, path, source) in enumerate(items, 1):
            fw = face_width(det, path, kind)
            media = "video" if kind == "clip" else "image"
            edges = [int(b) for b in args.bands.split(",")] + [lines[media][1]]
            edges = sorted({e for e in edges if lines[media][0] <= e <= lines[media][1]})
            for px in sizes[kind]:
                if fw == 0 or px >= fw or px >= lines[media][1]:
                    continue
                for light_name, light in LIGHTS.items():
                    dst = Path(tmp) / f"{n}_{px:.0f}_{light_name[:2]}{'.mp4' if kind == 'clip' else '.jpg'}"
                    write_item(path, dst, kind, px / fw, light, args.seconds)
                    a = det.analyze(dst, explain=False)
                    dst.unlink()
                    top = a.suspicious_track
                    face = top.face_px if top else a.largest_face_px
                    band = band_of(face, edges) if face else None
                    if face and face >= lines[media][1]:
                        band = lines[media][1]  # at or over the vouch line: shown, not part of the line
                    if args.scores:
                        with args.scores.open("a") as fh:
                            fh.write(json.dumps({"item": str(path), "source": source, "kind": kind, "face_px": face,
                                                 "target_px": px, "light": light_name, "p_fake": a.p_fake,
                                                 "verdict": a.verdict, "model": det.version}) + "\n")
                    if band is None or a.p_fake is None:
                        continue
                    t = tally[(media, band)]
                    t[0] += 1
                    t[1] += a.verdict == "fake"
                    t[2].add(str(path))
                    t[3].append(a.p_fake)
            if n % 10 == 0:
                print(f"  {n}/{len(items)} items, {time.time() - t0:.0f} s", flush=True)

    out: dict[str, dict] = {}
    print(f"\n{det.version}: real items called \"likely fake\" by face-size band ({args.split} split, "
          f"{time.time() - t0:.0f} s)\n")
    print("| media | face px | analyses | items | called fake | rate | 95% upper bound |\n|---|---|---|---|---|---|---|")
    for media in ("video", "image"):
        rows = []
        for (m, band), (k, false, seen, _) in sorted(tally.items()):
            if m != media:
                continue
            edges = [int(b) for b in args.bands.split(",")] + [lines[media][1]]
            if band >= lines[media][1]:
                print(f"| {media} | {band}+ (vouched: not part of the line) | {k} | {len(seen)} | {false} "
                      f"| {false / k:.1%} | {wilson_upper(false, k):.1%} |")
                continue
            hi = min([e for e in edges if e > band] or [lines[media][1]])
            rows.append({"from_px": band, "to_px": hi, "n": k, "items": len(seen), "false_alarms": false,
                         "rate": round(false / k, 4), "upper95": round(wilson_upper(false, k), 4)})
            print(f"| {media} | {band}-{hi} | {k} | {len(seen)} | {false} | {false / k:.1%} | {wilson_upper(false, k):.1%} |")
        line = choose_line(rows, args.min_n)
        out[media] = {"bands": rows, "line": line}
        print(f"\n{media}: a face under {lines[media][1]} px may accuse by itself from "
              f"{f'{line} px' if line else 'no size (not measured to <= 2% on enough analyses)'}\n")
    summary = "; ".join(
        f"{m}: " + (", ".join(f"{r['from_px']}-{r['to_px']} px {r['false_alarms']}/{r['n']}" for r in o["bands"]) or "none")
        + f" -> accuse from {o['line'] or 'no size below the vouch line'}" for m, o in out.items())
    if args.write:
        path = Path(det.model_dir) / "config.json"
        cfg = json.loads(path.read_text())
        measured = {m: o["line"] for m, o in out.items() if o["line"]}
        if measured:
            cfg["small_face_fake_ok_from_px"] = measured
        else:
            cfg.pop("small_face_fake_ok_from_px", None)
        cfg.setdefault("notes", {})["small_face_false_alarms"] = {
            "rule": f"real {args.split}-split clips and photos shrunk into 1920x1080 (as lit and gamma 1.8 gain 0.4); "
                    f"a band qualifies with >= {args.min_n} analyses and <= 2% called fake",
            "command": "python -m benchmarks.small_faces " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in (("clips", args.clips), ("photos", args.photos),
                                                             ("split", args.split), ("sizes", args.sizes))),
            "summary": summary, "video": out["video"], "image": out["image"]}
        path.write_text(json.dumps(cfg, indent=2) + "\n")
        print(f"wrote {path}: small_face_fake_ok_from_px = {measured or 'absent'}")
    print(summary)


if __name__ == "__main__":
    main()
