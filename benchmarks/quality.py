"""Detection quality beside a published peer: our model and MesoNet's Meso4, same items, same run.

For each data set (``dfdc_faces``, ``ffpp_faces`` in ../shared/data) it takes the items of the
**test** split (``split_of(item.group) == "test"``, never used for training or for choosing
thresholds), a fixed-seed stratified sample of ``--limit`` of them, and scores every item

* with our engine: ``Detector.analyze()`` on the crop file, the same call the website makes
  (photo path: HOG then the CNN face detector, aligned chip, backbone, temporal head,
  calibration). An item where no face is found counts as p_fake 0.5 (a coin flip, never a free
  "real"); its rate is reported;
* with Meso4 (Afchar et al., WIFS 2018) and the authors' published weights
  (../shared/peers/mesonet/Meso4_DF.h5): the same crop, RGB, resized to 256x256 with
  nearest-neighbour sampling (what Keras 2's ``flow_from_directory`` did in the authors'
  pipeline), scaled to [0, 1]. Its output is P(real), so P(fake) = 1 - output.

It prints a markdown table of AUCs side by side (with 95% paired-bootstrap intervals), and
both AUCs again on only the items where our detector found a face.

    .venv/bin/python -m benchmarks.quality [--limit 400] [--model model/] [--sets dfdc_faces ffpp_faces]
        [--data ../shared/data] [--mesonet ../shared/peers/mesonet/Meso4_DF.h5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as ``python benchmarks/quality.py``
    sys.path.insert(0, str(ROOT))

from webapp.detection.training.dataset import read_labels, split_of  # noqa: E402
from webapp.detection.training.evaluate import evaluate  # noqa: E402
from webapp.detection.training.metrics import roc_auc  # noqa: E402

SHARED = ROOT.parent / "shared"
DEFAULT_DATA = SHARED / "data"
DEFAULT_MESONET = SHARED / "peers" / "mesonet" / "Meso4_DF.h5"
MESO_SIZE = 256


# ------------------------------------------------------------------ Meso4
def build_meso4():
    """Meso4 as in the authors' ``classifiers.py``, rebuilt in Keras 3."""
    import keras
    from keras import layers

    inp = keras.Input((MESO_SIZE, MESO_SIZE, 3))
    x = inp
    for filters, kernel, pool in ((8, 3, 2), (8, 5, 2), (16, 5, 2), (16, 5, 4)):
        x = layers.Conv2D(filters, kernel, padding="same", activation="relu")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(pool_size=pool, padding="same")(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.5)(x)
    x = layers.Dense(16)(x)
    x = layers.LeakyReLU(negative_slope=0.1)(x)
    x = layers.Dropout(0.5)(x)
    out = layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inp, out, name="meso4")


def load_keras2_h5(model, path: Path) -> None:
    """Set ``model``'s weights from a Keras 2 weight file, layer by layer in order."""
    import h5py

    with h5py.File(path, "r") as f:
        g = f.get("model_weights", f)
        saved = []
        for name in g.attrs["layer_names"]:
            name = name.decode() if isinstance(name, bytes) else str(name)
            wnames = [w.decode() if isinstance(w, bytes) else str(w)
                      for w in g[name].attrs["weight_names"]]
            if wnames:
                saved.append((name, [np.asarray(g[name][w]) for w in wnames]))
    targets = [layer for layer in model.layers if layer.weights]
    if len(targets) != len(saved):
        raise ValueError(f"{path}: {len(saved)} layers with weights, the model has {len(targets)}")
    for layer, (name, arrays) in zip(targets, saved, strict=True):
        shapes = [tuple(w.shape) for w in layer.weights]
        if shapes != [a.shape for a in arrays]:
            raise ValueError(f"{name} -> {layer.name}: shapes {[a.shape for a in arrays]} vs {shapes}")
        layer.set_weights(arrays)


def meso_input(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        rgb = img.convert("RGB").resize((MESO_SIZE, MESO_SIZE), Image.NEAREST)
    return np.asarray(rgb, dtype=np.float32) / 255.0


def meso_p_fake(model, paths: list[Path], batch: int = 64) -> np.ndarray:
    out = []
    for i in range(0, len(paths), batch):
        x = np.stack([meso_input(p) for p in paths[i:i + batch]])
        out.append(1.0 - np.asarray(model(x, training=False))[:, 0])
    return np.concatenate(out) if out else np.zeros(0)


# ------------------------------------------------------------------ statistics
def bootstrap_auc(y: np.ndarray, scores: list[np.ndarray], n_boot: int = 500,
                  seed: int = 0) -> list[tuple[float, float]]:
    """95% intervals of each score's AUC over the same (paired) resamples of the items."""
    rng = np.random.default_rng(seed)
    samples: list[list[float]] = [[] for _ in scores]
    n = len(y)
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        if y[idx].min() == y[idx].max():
            continue
        for k, s in enumerate(scores):
            samples[k].append(roc_auc(y[idx], s[idx]))
    return [(float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) if v else (np.nan, np.nan)
            for v in samples]


def fmt_auc(auc: float, ci: tuple[float, float] | None = None) -> str:
    if auc is None or not np.isfinite(auc):
        return "n/a"
    return f"{auc:.3f}" + (f" ({ci[0]:.2f}–{ci[1]:.2f})" if ci and np.isfinite(ci[0]) else "")


# ------------------------------------------------------------------ one data set
def score_set(name: str, folder: Path, detector, meso, limit: int, seed: int) -> dict:
    labels = folder / "labels.csv"
    test_items = [it for it in read_labels(folder) if split_of(it.group) == "test"]
    print(f"[{name}] {len(test_items)} test-split items; scoring {min(limit, len(test_items))}",
          file=sys.stderr, flush=True)

    def progress(n: int, total: int, row) -> None:
        if n % 50 == 0 or n == total:
            print(f"[{name}] ours {n}/{total}", file=sys.stderr, flush=True)

    t = time.perf_counter()
    report = evaluate(labels, lambda p: detector.analyze(p, explain=False), limit=limit,
                      seed=seed, split="test", on_item=progress)
    ours_s = time.perf_counter() - t
    rows = [r for r in report.rows if r.verdict != "error"]  # both models on the same items
    y = np.array([r.label == "fake" for r in rows], dtype=int)
    ours = np.array([0.5 if r.p_fake is None else r.p_fake for r in rows], dtype=np.float64)
    face = np.array([r.p_fake is not None for r in rows], dtype=bool)

    t = time.perf_counter()
    meso_p = meso_p_fake(meso, [Path(r.path) for r in rows])
    meso_s = time.perf_counter() - t

    (ci_ours, ci_meso) = bootstrap_auc(y, [ours, meso_p], seed=seed)
    both_classes_face = face.any() and len(set(y[face])) == 2
    return {
        "set": name, "n": len(rows), "n_fake": int(y.sum()), "n_real": int(len(y) - y.sum()),
        "errors": report.summary["errors"],
        "ours_auc": roc_auc(y, ours), "ours_ci": ci_ours,
        "meso_auc": roc_auc(y, meso_p), "meso_ci": ci_meso,
        "no_face_rate": float(1 - face.mean()) if len(face) else None,
        "ours_auc_faces": roc_auc(y[face], ours[face]) if both_classes_face else None,
        "meso_auc_faces": roc_auc(y[face], meso_p[face]) if both_classes_face else None,
        "ours_balanced_accuracy": report.summary.get("balanced_accuracy"),
        "ours_verdict_bands": report.summary["verdict_bands"],
        "ours_seconds_per_item": ours_s / max(len(report.rows), 1),
        "meso_seconds_per_item": meso_s / max(len(rows), 1),
    }


def print_table(results: list[dict], version: str, limit: int, seed: int) -> None:
    print(f"\nTest split only, stratified sample of up to {limit} items per set (seed {seed}); "
          f"our model: {version}. AUC with 95% paired-bootstrap interval.\n")
    print("| data set | items (real / fake) | ours AUC | Meso4 AUC | ours no-face rate "
          "| ours AUC, face found | Meso4 AUC, same items | s/item ours / Meso4 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        refused = f", {r['errors']} refused" if r["errors"] else ""
        print(f"| {r['set']} | {r['n']} ({r['n_real']} / {r['n_fake']}){refused} "
              f"| {fmt_auc(r['ours_auc'], r['ours_ci'])} | {fmt_auc(r['meso_auc'], r['meso_ci'])} "
              f"| {100 * r['no_face_rate']:.1f}% "
              f"| {fmt_auc(r['ours_auc_faces'])} | {fmt_auc(r['meso_auc_faces'])} "
              f"| {r['ours_seconds_per_item']:.2f} / {r['meso_seconds_per_item']:.3f} |")
    print("\nNo face found counts as p_fake 0.5 in \"ours AUC\"; the last two AUC columns use only "
          "the items where our detector found a face, for both models.")
    for r in results:
        b = r["ours_verdict_bands"]
        print(f"- {r['set']}: our verdicts on real items {b['real']}, on fake items {b['fake']}; "
              f"balanced accuracy at p>=0.5: {r['ours_balanced_accuracy']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=400, help="items per data set (default 400)")
    ap.add_argument("--model", type=Path, default=ROOT / "model", help="our model directory")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--sets", nargs="+", default=["dfdc_faces", "ffpp_faces"])
    ap.add_argument("--mesonet", type=Path, default=DEFAULT_MESONET)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)

    missing = [s for s in args.sets if not (args.data / s / "labels.csv").is_file()]
    if missing:
        print(f"missing data: {', '.join(str(args.data / s) for s in missing)}", file=sys.stderr)
        return 2
    if not args.mesonet.is_file():
        print(f"missing Meso4 weights: {args.mesonet}", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from webapp.detection.pipeline import Detector

    t = time.perf_counter()
    detector = Detector(args.model)
    meso = build_meso4()
    load_keras2_h5(meso, args.mesonet)
    print(f"models loaded in {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)

    results = [score_set(s, args.data / s, detector, meso, args.limit, args.seed) for s in args.sets]
    print_table(results, detector.version, args.limit, args.seed)
    if args.json:
        args.json.write_text(json.dumps({"model": detector.version, "limit": args.limit,
                                         "seed": args.seed, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
