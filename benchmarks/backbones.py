"""Choose the backbone by measurement: same chips, same split, same budget, side by side.

Each backbone in ``--backbones`` gets a frame head and is trained end to end (all layers)
for the same number of steps on the same augmented training chips, then scored on the same validation chips. Weights: ``efficientnet_lite0`` starts from
the converted ImageNet weights; ``efficientnetv2b0`` and ``xception`` start from random
weights unless a weights file is in ``$DEEPFAKE_BACKBONE_WEIGHTS_DIR`` (Keras cannot
download ImageNet weights on this machine) — which is part of what is being compared.

    .venv/bin/python -m benchmarks.backbones --train 2000 --val 800 --steps 60
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import keras
import numpy as np

from webapp.detection.backbones import BACKBONES, get_backbone
from webapp.detection.classifier import build_frame_head
from webapp.detection.training.augment import augment
from webapp.detection.training.dataset import chip_folder, split_of
from webapp.detection.training.metrics import binary_metrics

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def load_split(split: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    chips, labels = [], []
    for name in ("dfdc_faces", "ffpp_faces"):
        cs = chip_folder(DATA / name, 224, 0.2)
        idx = [i for i, it in enumerate(cs.items) if cs.found[i] and split_of(it.group) == split]
        idx = sorted(rng.choice(idx, size=min(n // 2, len(idx)), replace=False).tolist())
        chips.append(np.asarray(cs.chips[idx]))
        labels.append(np.array([cs.items[i].label for i in idx], np.float32))
    return np.concatenate(chips), np.concatenate(labels)


def resize(chips: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if chips.shape[1] == size:
        return chips
    return np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_CUBIC) for c in chips])


def run(name: str, train: tuple, val: tuple, steps: int, batch: int, rng: np.random.Generator) -> dict:
    spec = BACKBONES[name]
    try:
        backbone = get_backbone(name, weights="imagenet")
        init = "imagenet"
    except Exception:  # noqa: BLE001 - no ImageNet weights file for this backbone here
        backbone = get_backbone(name, weights=None)
        init = "random (no ImageNet weights offline)"
    feats = backbone.feature_model()
    head = build_frame_head(backbone.output_dim, 0.3)
    inp = keras.Input((spec.input_size, spec.input_size, 3))
    model = keras.Model(inp, head(feats(inp)[1]))
    model.compile(optimizer=keras.optimizers.AdamW(3e-4, weight_decay=1e-4),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    x_tr, y_tr = train
    t0 = time.time()
    for _ in range(steps):
        idx = rng.choice(len(y_tr), size=batch, replace=False)
        xb = resize(np.stack([augment(c, rng) for c in x_tr[idx]]), spec.input_size)
        model.train_on_batch(spec.preprocess(xb), y_tr[idx][:, None])
    train_s = time.time() - t0
    x_va, y_va = val
    t0 = time.time()
    logits = np.concatenate([np.asarray(model(spec.preprocess(resize(x_va[i:i + 64], spec.input_size)),
                                              training=False))[:, 0] for i in range(0, len(y_va), 64)])
    infer = len(y_va) / (time.time() - t0)
    m = binary_metrics(y_va, 1 / (1 + np.exp(-logits)))
    return {"backbone": name, "init": init, "input": spec.input_size, "steps": steps, "batch": batch,
            "train_img_per_s": round(steps * batch / train_s, 1), "infer_img_per_s": round(infer, 1),
            "val_auc": m["auc"], "val_balanced_accuracy": m["balanced_accuracy"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "efficientnetv2b0"])
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--val", type=int, default=800)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    train = load_split("train", args.train, rng)
    val = load_split("val", args.val, rng)
    rows = [run(b, train, val, args.steps, args.batch, np.random.default_rng(1)) for b in args.backbones]
    print(f"same {len(train[1])} training chips pool, {args.steps} steps x {args.batch}, "
          f"{len(val[1])} validation chips (group-disjoint split)\n")
    print("| backbone | init | input | train img/s | inference img/s | val AUC | val balanced acc. |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backbone']} | {r['init']} | {r['input']} | {r['train_img_per_s']} | {r['infer_img_per_s']} | "
              f"{r['val_auc']} | {r['val_balanced_accuracy']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
