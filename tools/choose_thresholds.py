"""Choose a model's verdict thresholds from what the site itself answers on validation data.

The training run picks thresholds from chip-level scores; this re-picks them from whole
``analyze()`` results (detection, tracking, the temporal model) on the validation split of
every data folder: DFDC and FaceForensics++ crops, real crops, photos (held-out diffusion
portraits and a held-out real source), generator clips (held-out methods) and real clips.
Never the test split.

Rule (:func:`webapp.detection.training.metrics.trust_thresholds`): "likely fake" is said of at
most ``--max-false-alarm`` of the reals of every source with at least ``--min-items`` reals
(smaller sources are pooled); "likely real" of at most ``--max-miss`` of the fakes, each source
weighted equally. Writes ``real_below`` / ``fake_above`` and the per-source rates into the
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
    p, y, src = [], [], []
    for folder, items in rows.items():
        for r in items:
            if r["p_fake"] is None:  # no face / error: not a score to threshold
                continue
            p.append(r["p_fake"])
            y.append(1 if r["label"] == "fake" else 0)
            src.append(source_of(folder, r))
    real_below, fake_above, rates = trust_thresholds(np.array(p), np.array(y), np.array(src),
                                                     max_false_alarm=args.max_false_alarm,
                                                     max_miss=args.max_miss, min_items=args.min_items)
    print(f"real_below {real_below}  fake_above {fake_above}  ({len(p)} validation items through analyze())")
    for k, r in rates.items():
        print(f"  {k:<34} {json.dumps(r)}")
    if args.dry_run:
        return
    cfg_path = args.model / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["real_below"], cfg["fake_above"] = real_below, fake_above
    pa, ya = np.array(p), np.array(y)
    cfg.setdefault("notes", {})["thresholds"] = {
        "rule": (f"chosen on validation through analyze(): fake_above: at most {args.max_false_alarm:.0%} of the reals "
                 f"of every source with >= {args.min_items} reals (smaller sources pooled) called fake; real_below: "
                 f"at most {args.max_miss:.0%} of validation fakes called real, each source weighted equally"),
        "val_false_alarm_rate": round(float((pa[ya == 0] >= fake_above).mean()), 4),
        "val_fake_called_real_rate": round(float((pa[ya == 1] < real_below).mean()), 4),
        "by_source": rates,
    }
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    print(f"wrote {cfg_path}")


if __name__ == "__main__":
    main()
