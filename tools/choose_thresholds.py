"""Choose a model's verdict thresholds from what the site itself answers on validation data.

The training run picks thresholds from chip-level scores; this re-picks them from whole
``analyze()`` results (detection, tracking, the temporal model) on the validation split of
every data folder: DFDC and FaceForensics++ crops, real crops, photos (held-out diffusion
portraits and a held-out real source), generator clips (held-out methods) and real clips.
Never the test split.

Rule (:func:`webapp.detection.training.metrics.trust_thresholds`): "likely fake" is said of at
most ``--max-false-alarm`` of the reals of every source with at least ``--min-items`` reals
(smaller sources are pooled); "likely real" of at most ``--max-miss`` of the fakes, each source
weighted equally. Photos and clips get bands of their own (``real_below`` / ``fake_above`` and
``clip_real_below`` / ``clip_fake_above``). Writes them and the per-source rates into the
model's config.json (``notes.thresholds``) unless ``--dry-run``.

    .venv/bin/python -m tools.choose_thresholds --model model/VERSION [--scores cached.json] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FOLDERS = (("dfdc_faces", 800), ("ffpp_faces", None), ("real_faces", None), ("photos", None),
           ("generators", None), ("videos", None))


def validation_scores(model_dir: Path) -> dict[str, list[dict]]:
    from webapp.detection.pipeline import Detector
    from webapp.detection.training.evaluate import evaluate

    det = Detector(model_dir)
    out = {}
    for folder, limit in FOLDERS:
        if (DATA / folder).is_dir():
            out[folder] = [asdict(r) for r in evaluate(DATA / folder, det.analyze, split="val", limit=limit).rows]
    return out


def source_of(folder: str, row: dict) -> str:
    from webapp.detection.media import IMAGE_EXTENSIONS

    kind = "image" if Path(row["path"]).suffix.lower().lstrip(".") in IMAGE_EXTENSIONS else "clip"
    if folder in ("photos", "generators", "ffpp_faces"):
        return f"{folder}:{row['method'] or row['label']}"
    return f"{folder}:{kind}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="a model folder (its config.json is updated)")
    ap.add_argument("--scores", type=Path, default=None, help="reuse validation rows saved by an earlier run")
    ap.add_argument("--max-false-alarm", type=float, default=0.02)
    ap.add_argument("--max-miss", type=float, default=0.10)
    ap.add_argument("--min-items", type=int, default=50)
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    from webapp.detection.training.metrics import trust_thresholds

    if args.scores and args.scores.is_file():
        rows = json.loads(args.scores.read_text())
    else:
        rows = validation_scores(args.model)
        if args.scores:
            args.scores.write_text(json.dumps(rows))
    cfg_path = args.model / "config.json"
    cfg = json.loads(cfg_path.read_text())
    notes = cfg.setdefault("notes", {})
    notes["thresholds"] = {"rule": (
        f"chosen on validation through analyze(), photos and clips apart: fake_above: at most "
        f"{args.max_false_alarm:.0%} of the reals of every source with >= {args.min_items} reals (smaller "
        f"sources pooled) called fake; real_below: at most {args.max_miss:.0%} of validation fakes called "
        "real, each source weighted equally")}
    for kind, prefix in (("image", ""), ("clip", "clip_")):
        p, y, src = [], [], []
        for folder, items in rows.items():
            for r in items:
                s = source_of(folder, r)
                is_clip = s.endswith(":clip") or folder == "generators"
                if r["p_fake"] is None or is_clip != (kind == "clip"):
                    continue  # no face / error: not a score to threshold
                p.append(r["p_fake"])
                y.append(1 if r["label"] == "fake" else 0)
                src.append(s)
        pa, ya = np.array(p), np.array(y)
        real_below, fake_above, rates = trust_thresholds(pa, ya, np.array(src), max_false_alarm=args.max_false_alarm,
                                                         max_miss=args.max_miss, min_items=args.min_items)
        print(f"{kind}: real_below {real_below}  fake_above {fake_above}  ({len(p)} validation items through analyze())")
        for k, r in rates.items():
            print(f"  {k:<34} {json.dumps(r)}")
        cfg[f"{prefix}real_below"], cfg[f"{prefix}fake_above"] = real_below, fake_above
        notes["thresholds"][kind] = {
            "val_false_alarm_rate": round(float((pa[ya == 0] >= fake_above).mean()), 4),
            "val_fake_called_real_rate": round(float((pa[ya == 1] < real_below).mean()), 4),
            "by_source": rates}
    if args.dry_run:
        return
    notes["thresholds"]["val_false_alarm_rate"] = notes["thresholds"]["image"]["val_false_alarm_rate"]
    notes["thresholds"]["val_fake_called_real_rate"] = notes["thresholds"]["image"]["val_fake_called_real_rate"]
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    print(f"wrote {cfg_path}")


if __name__ == "__main__":
    main()
