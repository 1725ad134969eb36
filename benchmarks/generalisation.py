"""Models side by side on validation that holds out whole generator methods, through the same
``analyze()`` as the site. This is what a new model is chosen on.

Sets (the training split rule, :func:`webapp.detection.training.sampling.assign_splits`):
  generators val   clips of generator methods no model was trained on, and real footage
  photos val       diffusion portraits (held out) and a held-out real photo source
  videos val+test  real talking-face clips and DFDC clips never trained on
  dfdc test, ffpp test   in-domain held-out crops (``--limit`` sampled, fixed seed)

Prints per set: AUC, share of fakes called "likely fake", share of reals called "likely fake",
then per method. ``--json`` keeps the rows (and every item) for the model card.

    .venv/bin/python -m benchmarks.generalisation --model model/ --model /path/new_model [--limit 600]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = (("generators", "val"), ("photos", "val"), ("videos", "val"), ("videos", "test"),
        ("dfdc_faces", "test"), ("ffpp_faces", "test"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=600, help="items sampled from each in-domain crop set")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--write-metrics", action="store_true",
                    help="store the per-set figures as 'analyze' in each model's metrics.json (the model page shows them)")
    args = ap.parse_args()
    from webapp.detection.pipeline import Detector
    from webapp.detection.training.evaluate import GROUPINGS, by_key, evaluate

    out: dict = {}
    for model_dir in args.model:
        det = Detector(model_dir)
        res = out.setdefault(det.version, {"thresholds": det.cfg.thresholds, "sets": {}, "dir": str(det.model_dir)})
        for folder, split in SETS:
            if not (DATA / folder).is_dir():
                continue
            t = time.time()
            limit = args.limit if folder.endswith("_faces") else None
            rep = evaluate(DATA / folder, det.analyze, split=split, limit=limit)
            s = rep.summary
            res["sets"][f"{folder} {split}"] = {
                "summary": s, "by_method": by_key(rep.rows, GROUPINGS["method"]),
                "items": [asdict(r) for r in rep.rows]}
            bands = s["verdict_bands"]
            nf, nr = sum(bands["fake"].values()), sum(bands["real"].values())
            print(f"{det.version:<22} {folder + ' ' + split:<18} n={s['n']:<4} AUC {s.get('auc') or float('nan'):.3f}  "
                  f"fakes called fake {bands['fake']['fake']}/{nf}  reals called fake {bands['real']['fake']}/{nr}  "
                  f"({time.time() - t:.0f} s)", flush=True)
    print("\n| set | method | n | " + " | ".join(f"{v}: AUC / called fake" for v in out) + " |")
    print("|---|---|---|" + "---|" * len(out))
    first = next(iter(out.values()))["sets"]
    for name in first:
        for method, row in first[name]["by_method"].items():
            cells = []
            for v in out:
                r = out[v]["sets"].get(name, {}).get("by_method", {}).get(method, {})
                auc = "–" if r.get("auc") is None else f"{r['auc']:.3f}"
                rate = r.get("detected", r.get("false_alarm"))
                cells.append(f"{auc} / {'–' if rate is None else f'{rate:.0%}'}")
            print(f"| {name} | {method} | {row['n']} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    if args.write_metrics:
        for res in out.values():
            path = Path(res["dir"]) / "metrics.json"
            metrics = json.loads(path.read_text()) if path.is_file() else {}
            metrics["analyze"] = {name: headline(st) for name, st in res["sets"].items()
                                  if 0 < st["summary"]["n_fake"] < st["summary"]["n"]}  # both labels: an AUC
            path.write_text(json.dumps(metrics, indent=2) + "\n")
            cfg_path = Path(res["dir"]) / "config.json"  # the site reads config.json's copy
            cfg = json.loads(cfg_path.read_text())
            cfg.setdefault("metrics", {})["analyze"] = metrics["analyze"]
            cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
            print(f"wrote {path} and {cfg_path}")


def headline(st: dict) -> dict:
    """One set's figures for the model page: AUC, and the shares called "likely fake"."""
    s, bands = st["summary"], st["summary"]["verdict_bands"]
    nf, nr = sum(bands["fake"].values()), sum(bands["real"].values())
    return {"n": s["n"], "n_fake": s["n_fake"], "auc": s.get("auc"),
            "fakes_called_fake": round(bands["fake"]["fake"] / nf, 4) if nf else None,
            "reals_called_fake": round(bands["real"]["fake"] / nr, 4) if nr else None,
            "by_method": st["by_method"]}


if __name__ == "__main__":
    main()
