"""Trust first: models side by side on the real-footage validation (issue 19).

Every real clip we have (../shared/data generators/ and videos/, grouped by recording, with a
kind of footage) and every photo, scored by a model that never trained on it:
* candidates ("heads:*") are fitted on a frozen backbone in k folds that hold out whole
  recordings AND whole generator methods (webapp/detection/training/kfold.py); their bands are
  chosen on the other folds' scores only (trust_report.cross_validated_verdicts);
* shipped models are scored as they are, with their own bands; 2026.11.23-lite0 trained on part
  of these clips, so its rows are also given on the clips it never saw ("unseen").

Prints, per model: real clips and photos called "likely fake" per kind (with n), method-held-out
generator clips (AUC, TPR at 2% FPR, per family and per method), in-domain DFDC/FF++ test crops
(AUC, detection at the model's band and at 2% FPR), calibration (ECE) per kind, and the shortcut
audit (Spearman of real clips' scores with frame height, sharpness, face size, mouth opening,
head motion, background flatness, brightness).

    .venv/bin/python -m benchmarks.trust [--k 5] [--json trust.json]
      [--shipped model/2026.11.22-lite0 --shipped model/2026.11.23-lite0]
      [--candidate clips --candidate quality --candidate selfmade --candidate all]

Caches (features, chips) live under $DEEPFAKE_CACHE (default instance/cache): ~2 GB; the first run
takes ~10 min here, later runs ~1 min per candidate.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BACKBONE = Path("model/2026.11.22-lite0")  # trained on DFDC/FF++/real crops only: clean for every clip
#: Which views of the folded data train each candidate (crops of the training splits always do).
CANDIDATES = {
    "clips": ("clean", "crop_all"),
    "quality": ("clean", "crop_all", "quality"),
    "selfmade": ("clean", "crop_all", "selfmade"),
    "all": ("clean", "crop_all", "quality", "selfmade"),
}


def seen_by_23(key: str, data: Path) -> bool:
    """Whether 2026.11.23-lite0 trained on this clip: its training split of the data as it was
    (generators rows before 2026-12-02's additions, videos by group hash)."""
    import csv

    from webapp.detection.training.dataset import read_labels
    from webapp.detection.training.sampling import assign_splits

    if not hasattr(seen_by_23, "_train"):
        train = set()
        for folder, rows in (("generators", 168), ("videos", None)):
            if not (data / folder).is_dir():
                continue
            items = read_labels(data / folder)
            with (data / folder / "labels.csv").open(newline="", encoding="utf-8") as fh:
                n = sum(1 for _ in csv.DictReader(fh))
            items = items[:rows] if rows else items[:n]
            for it, split in assign_splits(items).items():
                if split == "train":
                    train.add(f"{folder}/{it.path.name}")
        seen_by_23._train = train
    return key.split(":")[0] in seen_by_23._train


def report(name: str, items, p, v, audit) -> dict:
    from webapp.detection.training import trust_report as tr

    out = {"false_alarms": tr.false_alarm_rows(items, p, v),
           "clips": tr.summary([s for s in items if s.key.startswith(("generators/", "videos/"))],
                               p[[i for i, s in enumerate(items) if s.key.startswith(("generators/", "videos/"))]],
                               [v[i] for i, s in enumerate(items) if s.key.startswith(("generators/", "videos/"))], "video"),
           "photos": tr.summary([s for s in items if s.key.startswith("photos/")],
                                p[[i for i, s in enumerate(items) if s.key.startswith("photos/")]],
                                [v[i] for i, s in enumerate(items) if s.key.startswith("photos/")], "image"),
           "families": tr.detection_rows(items, p, v, "video", lambda s: tr.family(s.method)),
           "methods": tr.detection_rows(items, p, v, "video", lambda s: s.method),
           "photo_methods": tr.detection_rows(items, p, v, "image", lambda s: s.method),
           "ece_by_kind": tr.ece_by_kind(items, p),
           "audit_real": tr.shortcut_audit(items, p, audit, 0),
           "audit_fake": tr.shortcut_audit(items, p, audit, 1)}
    print(f"\n## {name}")
    print(f"clips: {out['clips']}\nphotos: {out['photos']}")
    print("| real footage kind | n | judged | called likely fake | called likely real | mean p |")
    print("|---|---|---|---|---|---|")
    for k, r in out["false_alarms"].items():
        print(f"| {k} | {r['n']} | {r['judged']} | {tr._rate(r['fake'], r['n'])} | {tr._rate(r['real'], r['n'])} | {r['mean_p']} |")
    print("| generator family | n | AUC vs real clips | called likely fake | called likely real |")
    print("|---|---|---|---|---|")
    for k, r in out["families"].items():
        print(f"| {k} | {r['n']} | {r['auc']} | {tr._rate(r['fake'], r['n'])} | {tr._rate(r['real'], r['n'])} |")
    print("ECE by kind:", out["ece_by_kind"])
    print("shortcut audit, real clips (Spearman):", out["audit_real"])
    print("shortcut audit, fake clips (Spearman):", out["audit_fake"])
    return out


def in_domain(name: str, items, p, bands) -> dict:
    from webapp.detection.training import trust_report as tr

    rows = {}
    for src in ("crops_dfdc", "crops_ffpp"):
        idx = [i for i, s in enumerate(items) if s.key.split("/")[0] == src.replace("crops_", "") + "_faces" and not np.isnan(p[i])]
        y = np.array([items[i].label for i in idx])
        q = p[idx]
        fa = bands["image"][1]
        rows[src] = {"n": len(idx), "auc": round(tr.roc_auc(y, q), 3), "tpr_at_2pct_fpr": round(tr.tpr_at_fpr(y, q), 3),
                     "fakes_called_fake": round(float((q[y == 1] >= fa).mean()), 3),
                     "reals_called_fake": round(float((q[y == 0] >= fa).mean()), 3)}
    print(f"in-domain test crops ({name}):", rows)
    return rows


def side_by_side(out: dict) -> None:
    """One table, a column per model: the figures the default is chosen on."""
    names = list(out)
    kinds = sorted({k for r in out.values() for k in r.get("false_alarms", {})})

    def cell(r: dict, path: tuple) -> str:
        for p in path:
            r = r.get(p) if isinstance(r, dict) else None
        return "–" if r is None else str(r)

    print("\n## Side by side")
    print("| | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for k in kinds:
        cells = []
        for n in names:
            r = out[n].get("false_alarms", {}).get(k)
            cells.append(f"{r['fake']}/{r['n']}" if r else "–")
        print(f"| {k}: called likely fake | " + " | ".join(cells) + " |")
    rows = [("generator clips AUC", ("clips", "auc")), ("generator clips TPR at 2% FPR", ("clips", "tpr_at_2pct_fpr")),
            ("clips ECE", ("clips", "ece")), ("fake clips called likely fake", ("clips", "fakes_called_fake")),
            ("photos AUC", ("photos", "auc")), ("photos ECE", ("photos", "ece")),
            ("fake photos called likely fake", ("photos", "fakes_called_fake")),
            ("talking heads AUC", ("families", "talking head", "auc")), ("lip-sync AUC", ("families", "lip-sync", "auc")),
            ("animation/other AUC", ("families", "animation/other", "auc")),
            ("DFDC test: fakes called fake", ("in_domain", "crops_dfdc", "fakes_called_fake")),
            ("DFDC test: at 2% FPR", ("in_domain", "crops_dfdc", "tpr_at_2pct_fpr")),
            ("FF++ test: fakes called fake", ("in_domain", "crops_ffpp", "fakes_called_fake")),
            ("FF++ test: at 2% FPR", ("in_domain", "crops_ffpp", "tpr_at_2pct_fpr")),
            ("real clips' score ~ sharpness", ("audit_real", "sharpness")),
            ("~ frame height", ("audit_real", "frame_height")), ("~ face size", ("audit_real", "face_px")),
            ("~ mouth opening", ("audit_real", "mouth_open")), ("~ head motion", ("audit_real", "head_motion")),
            ("~ background flatness", ("audit_real", "background_flatness"))]
    for label, path in rows:
        print(f"| {label} | " + " | ".join(cell(out[n], path) for n in names) + " |")


def write_metrics(model_dir: Path, trust: dict) -> None:
    """Store a model's trust block in its metrics.json and config.json (the model page reads them)."""
    for name in ("metrics.json", "config.json"):
        path = model_dir / name
        data = json.loads(path.read_text()) if path.is_file() else {}
        (data.setdefault("metrics", {}) if name == "config.json" else data)["trust"] = trust
        path.write_text(json.dumps(data, indent=2, default=float) + "\n")
    print(f"wrote the trust block of {model_dir}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--shipped", action="append", type=Path, default=None)
    ap.add_argument("--candidate", action="append", choices=sorted(CANDIDATES), default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--write-metrics", action="store_true",
                    help="store each shipped model's block as 'trust' in its metrics.json and config.json (the model page shows it)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from webapp.detection.classifier import ModelConfig
    from webapp.detection.training import bank as B
    from webapp.detection.training import trust_report as tr
    from webapp.detection.training.footage import clip_audits, footage_items
    from webapp.detection.training.heads import fit_heads, shipped_heads
    from webapp.detection.training.kfold import fixed_scores, fold_numbers, oof, units_of

    items = footage_items(DATA)
    audit = clip_audits(items)
    out: dict = {}
    shipped = args.shipped if args.shipped is not None else [Path("model/2026.11.22-lite0"), Path("model/2026.11.23-lite0")]
    for model_dir in shipped:
        bank = B.build(model_dir, DATA, ("clips", "photos", "crops_test"))
        fz = B.Featurizer(model_dir)
        heads, cfg = shipped_heads(fz), fz.cfg
        mpx = {"video": 60, "image": 60} | (cfg.min_face_px or {})
        scored = fixed_scores(heads, bank["clips"] + bank["photos"], mpx)
        p = tr.probabilities(scored, 1 / cfg.temperature)
        bands = {"video": (cfg.thresholds_for("video")["real_below"], cfg.thresholds_for("video")["fake_above"]),
                 "image": (cfg.real_below, cfg.fake_above)}
        v = tr.verdicts(scored, p, bands)
        res = out[cfg.version] = report(cfg.version, scored, p, v, audit)
        res["how"] = ("Every real clip and photo of the real-footage validation, scored by this model as shipped, with "
                      "its own bands (`python -m benchmarks.trust`); rows of items it trained on flatter it.")
        if cfg.version == "2026.11.23-lite0":
            unseen = [i for i, s in enumerate(scored) if not seen_by_23(s.key, DATA)]
            res["unseen"] = report(cfg.version + " (clips it never trained on)", [scored[i] for i in unseen],
                                   p[unseen], [v[i] for i in unseen], audit)
        test = fixed_scores(heads, bank["crops_test"], mpx)
        res["in_domain"] = in_domain(cfg.version, test, tr.probabilities(test, 1 / cfg.temperature), bands)

    bank = B.build(BACKBONE, DATA)
    cfg = ModelConfig.load(BACKBONE)
    foldable = bank["clips"] + bank["quality"] + bank["selfmade"] + bank["photos"]
    for cand in args.candidate if args.candidate is not None else ["all"]:
        t = time.time()
        scored, sizes = oof(cfg, foldable, bank["crops_train"], k=args.k, views=CANDIDATES[cand], epochs=args.epochs)
        p, cal = tr.calibrate(scored)
        v = tr.cross_validated_verdicts(scored, p, fold_numbers(foldable, scored, args.k))
        name = f"heads:{cand}"
        res = out[name] = report(f"{name} (out of fold, calibration {cal}, {time.time() - t:.0f} s)", scored, p, v, audit)
        res["calibration"] = cal
        res["items"] = [[s.key, s.label, s.kind, s.method, s.media, s.logit] for s in scored]
        res["bands_all_folds"] = tr.choose_bands(scored, p)
        heads = fit_heads(cfg, [s for s in foldable if s.view in CANDIDATES[cand]] + bank["crops_train"],
                          units_of([s for s in foldable if s.view in CANDIDATES[cand]]) + [s.group for s in bank["crops_train"]],
                          epochs=args.epochs)
        test = fixed_scores(heads, bank["crops_test"])
        res["in_domain"] = in_domain(name, test, tr.probabilities(test, *cal["image"]), res["bands_all_folds"])
        if args.json:  # after each candidate: a long run keeps what it measured
            args.json.write_text(json.dumps(out, indent=1, default=float) + "\n")
    side_by_side(out)
    if args.write_metrics:
        for model_dir in shipped:
            write_metrics(model_dir, out[model_dir.name])
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
