"""Train a detector's heads on a frozen backbone, with bands chosen on out-of-fold real footage.

    .venv/bin/python -m tools.train_heads --out model/VERSION [--backbone model/2026.11.22-lite0]
        [--views clean,crop_all,quality,selfmade] [--k 5] [--epochs 6]

1. The feature bank of ``--backbone`` (webapp/detection/training/bank.py; cached).
2. k folds holding out whole recordings and generator methods: every clip and photo gets an
   out-of-fold score; the temperature is fitted on them and the bands chosen by the trust rule
   (at most 2% of every kind of real footage called "likely fake"; see trust_report.choose_bands).
3. The heads fitted on everything (frame head linear, temporal LSTM on out-of-fold frame
   logits), saved with the backbone's weights as a model folder the site loads like any other,
   with the out-of-fold report in ``metrics.json`` (``trust``) and a model card.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_block(test, p_test: np.ndarray, bands: dict, clips: dict) -> dict:
    """metrics["test"] the model page's tables read: the DFDC/FF++ test crops (never trained on)
    through the final model, and the clips out of fold (``clips``: trust_report.summary)."""
    from webapp.detection.training.metrics import roc_auc

    fa = bands["image"][1]
    out = {}
    for name, prefix in (("dfdc_faces test", "dfdc_faces/"), ("ffpp_faces test", "ffpp_faces/"), ("all_crops", "")):
        idx = [i for i, s in enumerate(test) if s.key.startswith(prefix) and not np.isnan(p_test[i])]
        y, q = np.array([test[i].label for i in idx]), p_test[idx]
        out[name] = {"n": len(idx), "n_fake": int(y.sum()), "auc": round(roc_auc(y, q), 4),
                     "fakes_called_fake": round(float((q[y == 1] >= fa).mean()), 4),
                     "reals_called_fake": round(float((q[y == 0] >= fa).mean()), 4)}
    n_real = clips["reals_called_fake"][1]
    out["clips_out_of_fold"] = {"n": clips["n"], "n_fake": clips["fakes_called_fake"][1], "auc": clips["auc"],
                         "fakes_called_fake": round(clips["fakes_called_fake"][0] / max(clips["fakes_called_fake"][1], 1), 4),
                         "reals_called_fake": round(clips["reals_called_fake"][0] / max(n_real, 1), 4)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--backbone", type=Path, default=Path("model/2026.11.22-lite0"))
    ap.add_argument("--views", default="clean,crop_all,quality,selfmade")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=6)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from benchmarks.trust import in_domain, report
    from webapp.detection.classifier import DetectorNets, ModelConfig
    from webapp.detection.training import bank as B
    from webapp.detection.training import trust_report as tr
    from webapp.detection.training.card import write_card
    from webapp.detection.training.footage import clip_audits, footage_items
    from webapp.detection.training.heads import fit_heads
    from webapp.detection.training.kfold import fixed_scores, fold_numbers, oof, units_of

    t0 = time.time()
    views = tuple(args.views.split(","))
    bank = B.build(args.backbone, DATA)
    base = ModelConfig.load(args.backbone)
    foldable = bank["clips"] + bank["quality"] + bank["selfmade"] + bank["photos"]
    scored, _ = oof(base, foldable, bank["crops_train"], k=args.k, views=views, epochs=args.epochs)
    p, calibration = tr.calibrate(scored)
    folds = fold_numbers(foldable, scored, args.k)
    v = tr.cross_validated_verdicts(scored, p, folds)  # the honest false-alarm rates
    items = footage_items(DATA)
    audit = clip_audits(items)
    trust = report(f"{args.out.name} out of fold", scored, p, v, audit)

    train = [s for s in foldable if s.view in views] + bank["crops_train"]
    heads = fit_heads(base, train, units_of([s for s in foldable if s.view in views]) + [s.group for s in bank["crops_train"]],
                      epochs=args.epochs)
    # Bands: out-of-fold clips and photos, and the final model on validation crops it never saw.
    val = fixed_scores(heads, bank["crops_val"])
    bands = tr.choose_bands(scored + val, np.concatenate([p, tr.probabilities(val, *calibration["image"])]))
    test = fixed_scores(heads, bank["crops_test"])
    trust["in_domain"] = in_domain(args.out.name, test, tr.probabilities(test, *calibration["image"]), bands)

    cfg = ModelConfig(**{**asdict(base), "metrics": {}, "notes": {}})
    cfg.version = args.out.name
    # Platt scaling per media type (clips and photos apart); the per-frame score the page shows
    # uses the clips' scale as a temperature.
    cfg.calibration = calibration
    cfg.temperature = cfg.frame_temperature = round(1 / max(calibration["video"][0], 1e-3), 4)
    (cfg.clip_real_below, cfg.clip_fake_above), (cfg.real_below, cfg.fake_above) = bands["video"], bands["image"]
    cfg.min_face_px = {"video": 60, "image": 60}
    cfg.vouch_face_px = {"video": 100, "image": 150}
    cfg.trained_on = ["dfdc_faces", "ffpp_faces", "real_faces", "photos", "generators", "videos"]
    p_test = tr.probabilities(test, *calibration["image"])
    cfg.metrics = {"trust": trust, "test": test_block(test, p_test, bands, trust["clips"]),
                   "train_seconds": round(time.time() - t0)}
    cfg.notes = {
        "warm_start": f"backbone of {args.backbone.name}, frozen (trained on DFDC, FaceForensics++ and real crops only)",
        "training": f"python -m tools.train_heads --out model/{args.out.name} --backbone {args.backbone} --views {args.views} "
                    f"--k {args.k} --epochs {args.epochs}",
        "thresholds": {"rule": "chosen on out-of-fold scores (folds hold out whole recordings and generator methods): "
                               "fake_above: at most 2% of the reals of every kind of footage (kinds with fewer than 20 "
                               "pooled) called fake; real_below: at most 10% of fakes called real, methods weighted alike",
                       "video": bands["video"], "image": bands["image"]},
    }
    nets = DetectorNets(cfg)
    nets.load_weights(args.backbone)  # the backbone (its frame head and LSTM are replaced below)
    nets.frame_head.get_layer("frame_logit").set_weights([heads.coef[:, None], np.array([heads.bias], np.float32)])
    nets.temporal.set_weights(heads.temporal.get_weights())
    nets.save(args.out)
    (args.out / "metrics.json").write_text(json.dumps(cfg.metrics, indent=1, default=float) + "\n")
    write_card(args.out)
    print(f"saved {args.out} in {time.time() - t0:.0f} s; calibration {calibration}, bands {bands}")


if __name__ == "__main__":
    main()
