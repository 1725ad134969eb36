"""Backbone registry: the convolutional feature extractors the detector can sit on.

The main backbone is a Keras 3 re-implementation of EfficientNet-Lite0 that matches the
PyTorch reference (``efficientnet-lite-pytorch``, ``EfficientNet.from_name('efficientnet-lite0')``)
layer for layer, so the ImageNet weights converted by ``tools/convert_lite0.py`` reproduce its
logits. It is built as an ordered list of small stage models (``stem``, ``block_0`` ...
``block_15``, ``head``) so training can cache the activations of frozen lower stages and
fine-tune only the top ones (:meth:`Backbone.lower` / :meth:`Backbone.upper`).

Notes on matching the reference:

* Convolutions use TensorFlow "SAME" padding (for stride 2 the extra row/column goes at the
  bottom/right, e.g. (0, 1) for k3 and (1, 2) for k5 at even input sizes). The reference
  computes it statically for 224x224; Keras ``padding="same"`` is the same rule computed per
  input, so it agrees at 224 and stays correct at other sizes.
* BatchNorm epsilon 1e-3, momentum 0.99 (PyTorch's 0.01). Convolutions have no bias.
* ReLU6 everywhere, no squeeze-excite. A block has a residual connection iff stride 1 and
  input channels == output channels; the residual branch gets drop-connect (stochastic depth)
  at rate ``drop_connect_rate * block_index / 16`` while training.

Inputs are RGB; each registry entry's ``preprocess`` maps uint8 pixels to what its model expects.
This module imports TensorFlow/Keras (not Flask, not torch).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import keras
import numpy as np

from .errors import ModelNotFoundError

#: ``"imagenet"``, ``None`` (random init) or a path to a weights file.
WeightsArg = str | Path | None

#: Where shipped backbone weights live (``<repo>/model/backbones``).
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "model" / "backbones"
#: Environment variable naming an extra directory searched first for backbone weights.
WEIGHTS_DIR_ENV = "DEEPFAKE_BACKBONE_WEIGHTS_DIR"

LITE0_WEIGHTS_FILE = "efficientnet_lite0_imagenet.weights.npz"
LITE0_CLASSIFIER_FILE = "efficientnet_lite0_imagenet_classifier.npz"

_BN_EPSILON = 1e-3
_BN_MOMENTUM = 0.99


class _Stage(NamedTuple):
    kernel: int
    stride: int
    expand: int
    channels: int
    repeats: int


#: EfficientNet-Lite0 stages (kernel, stride, expand ratio, output channels, repeats).
LITE0_STAGES: tuple[_Stage, ...] = (
    _Stage(3, 1, 1, 16, 1),
    _Stage(3, 2, 6, 24, 2),
    _Stage(5, 2, 6, 40, 2),
    _Stage(3, 2, 6, 80, 3),
    _Stage(5, 1, 6, 112, 3),
    _Stage(5, 2, 6, 192, 4),
    _Stage(3, 1, 6, 320, 1),
)
LITE0_STEM_CHANNELS = 32
LITE0_HEAD_CHANNELS = 1280


class _BlockConfig(NamedTuple):
    kernel: int
    stride: int
    expand: int
    in_channels: int
    out_channels: int


def _lite0_block_configs() -> list[_BlockConfig]:
    """The 16 MBConv blocks of Lite0 in order (first block of a stage carries its stride)."""
    configs: list[_BlockConfig] = []
    in_ch = LITE0_STEM_CHANNELS
    for st in LITE0_STAGES:
        for r in range(st.repeats):
            configs.append(_BlockConfig(st.kernel, st.stride if r == 0 else 1, st.expand, in_ch, st.channels))
            in_ch = st.channels
    return configs


# --------------------------------------------------------------------------- wrapper


@dataclass
class Backbone:
    """A feature extractor split into an ordered list of stage models.

    ``parts[i]`` maps the output of ``parts[i-1]`` to its own output; chaining all of them maps a
    preprocessed chip ``(B, H, W, 3) float32`` to the head feature map ``(B, h, w, output_dim)``.
    For EfficientNet-Lite0 the parts are ``stem, block_0 .. block_15, head`` (18 parts); the
    ``keras.applications`` backbones have a single part and cannot be split.
    """

    name: str
    parts: list[keras.Model]
    output_dim: int
    input_size: int
    classifier: keras.layers.Dense | None = None
    _cache: dict[tuple[str, int], keras.Model] = field(default_factory=dict, repr=False)

    @property
    def part_names(self) -> list[str]:
        """Names of the parts in order, e.g. ``['stem', 'block_0', ..., 'head']``."""
        return [p.name for p in self.parts]

    @property
    def splittable(self) -> bool:
        """Whether :meth:`lower` / :meth:`upper` can split inside the network."""
        return len(self.parts) > 1

    def split_channels(self, k: int) -> int:
        """Channels of the activation at split point ``k`` (the input of ``parts[k]``)."""
        self._check_split(k, allow_ends=True)
        return int(self.parts[k].inputs[0].shape[-1])

    def lower(self, k: int) -> keras.Model:
        """Model of ``parts[:k]``: chip ``(B, H, W, 3)`` -> activation ``(B, h, w, split_channels(k))``.

        ``1 <= k <= len(parts)``. Shares weights with the backbone (no copy).
        """
        self._check_split(k, allow_ends=False, lower=True)
        return self._chain("lower", k, self.parts[:k])

    def upper(self, k: int) -> keras.Model:
        """Model of ``parts[k:]``: activation ``(B, h, w, split_channels(k))`` -> ``(B, 7, 7, 1280)`` float32 at 224.

        ``0 <= k < len(parts)``. Shares weights with the backbone (no copy).
        """
        self._check_split(k, allow_ends=False, lower=False)
        return self._chain("upper", k, self.parts[k:])

    def feature_model(self) -> keras.Model:
        """Chip ``(B, S, S, 3)`` -> ``[feature map (B, s, s, D), pooled (B, D)]`` float32.

        At 224 for Lite0 that is ``(B, 7, 7, 1280)`` and ``(B, 1280)``; the feature map is the
        Grad-CAM target, the pooled vector is what a detector head classifies.
        """
        key = ("features", 0)
        if key not in self._cache:
            inp = keras.Input(shape=(None, None, 3), name=f"{self.name}_chip")
            fmap = self._apply_parts(inp, self.parts)
            pooled = keras.layers.GlobalAveragePooling2D(name=f"{self.name}_pool")(fmap)
            self._cache[key] = keras.Model(inp, [fmap, pooled], name=f"{self.name}_features")
        return self._cache[key]

    def logits_model(self) -> keras.Model:
        """Chip ``(B, S, S, 3)`` -> ImageNet logits ``(B, 1000)`` float32 (needs ``include_top=True``)."""
        if self.classifier is None:
            raise ValueError(f"{self.name} was built without its ImageNet classifier (include_top=False)")
        key = ("logits", 0)
        if key not in self._cache:
            inp = keras.Input(shape=(None, None, 3), name=f"{self.name}_chip")
            fmap = self._apply_parts(inp, self.parts)
            pooled = keras.layers.GlobalAveragePooling2D(name=f"{self.name}_pool")(fmap)
            self._cache[key] = keras.Model(inp, self.classifier(pooled), name=f"{self.name}_logits")
        return self._cache[key]

    def freeze_below(self, k: int) -> None:
        """Make ``parts[:k]`` non-trainable (their BatchNorms then run in inference mode) and the rest trainable."""
        self._check_split(k, allow_ends=True)
        for i, part in enumerate(self.parts):
            part.trainable = i >= k

    # -- helpers

    def _check_split(self, k: int, *, allow_ends: bool, lower: bool = False) -> None:
        """Validate split point ``k``: lower needs 1..n, upper 0..n-1, others (allow_ends) 0..n."""
        n = len(self.parts)
        lo, hi = (0, n) if allow_ends else ((1, n) if lower else (0, n - 1))
        if not self.splittable and not allow_ends and k != lo:
            raise NotImplementedError(
                f"backbone {self.name!r} cannot be split at block level (activation caching is only "
                "implemented for efficientnet_lite0); use feature_model() instead"
            )
        if not lo <= k <= hi:
            raise ValueError(f"split point {k} out of range [{lo}, {hi}] for {self.name} ({n} parts)")

    def _chain(self, kind: str, k: int, parts: list[keras.Model]) -> keras.Model:
        key = (kind, k)
        if key not in self._cache:
            channels = int(parts[0].inputs[0].shape[-1])
            inp = keras.Input(shape=(None, None, channels), name=f"{self.name}_{kind}{k}_in")
            self._cache[key] = keras.Model(inp, self._apply_parts(inp, parts), name=f"{self.name}_{kind}{k}")
        return self._cache[key]

    @staticmethod
    def _apply_parts(x: keras.KerasTensor, parts: list[keras.Model]) -> keras.KerasTensor:
        for part in parts:
            x = part(x)
        return x


# --------------------------------------------------------------------------- EfficientNet-Lite0


def _conv_bn(
    x: keras.KerasTensor, filters: int, kernel: int, stride: int, name: str, act: bool = True
) -> keras.KerasTensor:
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=f"{name}_bn")(x)
    return keras.layers.ReLU(max_value=6.0, name=f"{name}_relu6")(x) if act else x


def _mbconv_part(cfg: _BlockConfig, index: int, drop_rate: float) -> keras.Model:
    """One MBConv block as a model ``(B, H, W, in) -> (B, H/stride, W/stride, out)``."""
    name = f"block_{index}"
    inp = keras.Input(shape=(None, None, cfg.in_channels), name=f"{name}_in")
    x = inp
    if cfg.expand != 1:
        x = _conv_bn(x, cfg.in_channels * cfg.expand, 1, 1, f"{name}_expand")
    x = keras.layers.DepthwiseConv2D(
        cfg.kernel, strides=cfg.stride, padding="same", use_bias=False, name=f"{name}_dw_conv"
    )(x)
    x = keras.layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=f"{name}_dw_bn")(x)
    x = keras.layers.ReLU(max_value=6.0, name=f"{name}_dw_relu6")(x)
    x = _conv_bn(x, cfg.out_channels, 1, 1, f"{name}_project", act=False)
    if cfg.stride == 1 and cfg.in_channels == cfg.out_channels:
        if drop_rate > 0:
            # Drop-connect: drop the whole residual branch per sample, scale survivors by 1/keep.
            x = keras.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(x)
        x = keras.layers.Add(name=f"{name}_add")([x, inp])
    return keras.Model(inp, x, name=name)


def build_efficientnet_lite0(include_top: bool = False, drop_connect_rate: float = 0.2) -> Backbone:
    """Build an uninitialised EfficientNet-Lite0 as 18 stage models (no weights loaded).

    Input: RGB chips scaled to [-1, 1], ``(B, H, W, 3) float32`` (any size; 224 is native).
    Parts: ``stem`` -> ``(B, H/2, W/2, 32)``, ``block_0`` .. ``block_15``, ``head`` ->
    ``(B, H/32, W/32, 1280)``, i.e. ``(B, 7, 7, 1280)`` at 224. With ``include_top`` the
    backbone also gets ``classifier = Dense(1000)`` (ImageNet logits, for checking the conversion).
    """
    parts: list[keras.Model] = []

    inp = keras.Input(shape=(None, None, 3), name="stem_in")
    parts.append(keras.Model(inp, _conv_bn(inp, LITE0_STEM_CHANNELS, 3, 2, "stem"), name="stem"))

    configs = _lite0_block_configs()
    for i, cfg in enumerate(configs):
        parts.append(_mbconv_part(cfg, i, drop_connect_rate * i / len(configs)))

    inp = keras.Input(shape=(None, None, configs[-1].out_channels), name="head_in")
    parts.append(keras.Model(inp, _conv_bn(inp, LITE0_HEAD_CHANNELS, 1, 1, "head"), name="head"))

    classifier = None
    if include_top:
        classifier = keras.layers.Dense(1000, name="classifier")
        classifier.build((None, LITE0_HEAD_CHANNELS))
    return Backbone("efficientnet_lite0", parts, LITE0_HEAD_CHANNELS, 224, classifier)


# --------------------------------------------------------------------------- npz weights


def _named_weights(backbone: Backbone, include_classifier: bool) -> dict[str, keras.Variable]:
    """Every weight of the backbone keyed ``'<layer name>/<variable name>'`` (e.g. ``block_3_dw_conv/kernel``)."""
    out: dict[str, keras.Variable] = {}
    for part in backbone.parts:
        for layer in part.layers:
            for var in layer.weights:
                out[f"{layer.name}/{var.name}"] = var
    if include_classifier and backbone.classifier is not None:
        for var in backbone.classifier.weights:
            out[f"{backbone.classifier.name}/{var.name}"] = var
    return out


def weight_names(backbone: Backbone, include_classifier: bool = False) -> dict[str, tuple[int, ...]]:
    """Keys used in ``.npz`` weight files, with the Keras shape each must have."""
    return {k: tuple(v.shape) for k, v in _named_weights(backbone, include_classifier).items()}


def save_weights_npz(
    backbone: Backbone,
    path: str | Path,
    dtype: type[np.floating] = np.float32,
    which: Literal["features", "classifier"] = "features",
) -> None:
    """Write the feature weights (or only the ImageNet classifier's) of ``backbone`` to ``path`` (npz)."""
    named = _named_weights(backbone, include_classifier=which == "classifier")
    if which == "classifier":
        if backbone.classifier is None:
            raise ValueError(f"{backbone.name} has no classifier (build it with include_top=True)")
        named = {k: v for k, v in named.items() if k.startswith("classifier/")}
    np.savez(path, **{k: np.asarray(keras.ops.convert_to_numpy(v), dtype=dtype) for k, v in named.items()})


def assign_weights(backbone: Backbone, arrays: Mapping[str, np.ndarray], strict: bool = True, source: str = "") -> None:
    """Assign ``{'<layer>/<variable>': array}`` (Keras layout, float16/32) to the backbone's weights.

    With ``strict`` every key must match a weight of the same shape, and -- unless ``arrays``
    holds only the classifier -- every feature weight must be present.
    """
    targets = _named_weights(backbone, include_classifier=True)
    keys = set(arrays)
    where = f"{source}: " if source else ""
    unknown = keys - targets.keys()
    if strict and unknown:
        raise ValueError(f"{where}weights not in {backbone.name}: {sorted(unknown)[:5]}")
    only_classifier = bool(keys) and all(k.startswith("classifier/") for k in keys)
    missing = {k for k in targets if not k.startswith("classifier/")} - keys
    if strict and missing and not only_classifier:
        raise ValueError(f"{where}missing {len(missing)} weights of {backbone.name}, e.g. {sorted(missing)[:5]}")
    for key in keys & targets.keys():
        var, value = targets[key], np.asarray(arrays[key])
        if tuple(value.shape) != tuple(var.shape):
            raise ValueError(f"{where}{key} has shape {value.shape}, expected {tuple(var.shape)}")
        var.assign(value.astype(np.float32))


def load_weights_npz(backbone: Backbone, path: str | Path, strict: bool = True) -> None:
    """Load an npz written by :func:`save_weights_npz` into ``backbone`` (see :func:`assign_weights`)."""
    with np.load(path) as data:
        assign_weights(backbone, {k: data[k] for k in data.files}, strict=strict, source=str(path))


# --------------------------------------------------------------------------- registry


def _weights_dirs() -> list[Path]:
    env = os.environ.get(WEIGHTS_DIR_ENV)
    return ([Path(env)] if env else []) + [DEFAULT_WEIGHTS_DIR]


def _find_weights(filename: str) -> Path | None:
    for d in _weights_dirs():
        if (d / filename).is_file():
            return d / filename
    return None


def _build_lite0(weights: WeightsArg, include_top: bool = False) -> Backbone:
    backbone = build_efficientnet_lite0(include_top=include_top)
    if weights is None:
        return backbone
    if weights == "imagenet":
        path = _find_weights(LITE0_WEIGHTS_FILE)
        if path is None:
            raise ModelNotFoundError(
                f"EfficientNet-Lite0 ImageNet weights ({LITE0_WEIGHTS_FILE}) not found in "
                f"{', '.join(map(str, _weights_dirs()))}. Create them with: python -m tools.convert_lite0"
            )
    else:
        path = Path(weights)
        if not path.is_file():
            raise ModelNotFoundError(f"backbone weights file not found: {path}")
    load_weights_npz(backbone, path)
    if include_top:
        cls_path = (
            path.with_name(LITE0_CLASSIFIER_FILE) if weights != "imagenet" else _find_weights(LITE0_CLASSIFIER_FILE)
        )
        if cls_path is None or not cls_path.is_file():
            raise ModelNotFoundError(
                f"EfficientNet-Lite0 classifier weights ({LITE0_CLASSIFIER_FILE}) not found. "
                "Create them with: python -m tools.convert_lite0"
            )
        load_weights_npz(backbone, cls_path)
    return backbone


def _keras_app_builder(name: str, factory: Callable[..., keras.Model], dim: int, size: int) -> Callable[..., Backbone]:
    def build(weights: WeightsArg, include_top: bool = False) -> Backbone:
        if include_top:
            raise NotImplementedError(f"include_top is only supported for efficientnet_lite0, not {name}")
        path: Path | None = None
        if weights == "imagenet":
            path = _find_weights(f"{name}.weights.h5")
            if path is None:
                raise ModelNotFoundError(
                    f"ImageNet weights for {name} not found: put {name}.weights.h5 (Keras "
                    f"include_top=False weights) in ${WEIGHTS_DIR_ENV} or {DEFAULT_WEIGHTS_DIR}"
                )
        elif weights is not None:
            path = Path(weights)
            if not path.is_file():
                raise ModelNotFoundError(f"backbone weights file not found: {path}")
        model = factory(include_top=False, weights=None, input_shape=(None, None, 3))
        if path is not None:
            model.load_weights(path)
        return Backbone(name, [model], dim, size)

    return build


def _scale_minus1_1(x: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(..., H, W, 3)`` -> float32 in [-1, 1]."""
    return np.asarray(x, dtype=np.float32) / 127.5 - 1.0


def _as_float(x: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(..., H, W, 3)`` -> float32 in [0, 255] (the model rescales internally)."""
    return np.asarray(x, dtype=np.float32)


@dataclass(frozen=True)
class BackboneSpec:
    """A registry entry: how to build a backbone and prepare its input.

    ``builder(weights, include_top=False) -> Backbone``; ``preprocess`` maps uint8 RGB chips
    ``(..., input_size, input_size, 3)`` to the float32 input the backbone expects.
    """

    name: str
    input_size: int
    preprocess: Callable[[np.ndarray], np.ndarray]
    builder: Callable[..., Backbone]
    feature_dim: int
    splittable: bool


BACKBONES: dict[str, BackboneSpec] = {
    "efficientnet_lite0": BackboneSpec("efficientnet_lite0", 224, _scale_minus1_1, _build_lite0, 1280, True),
    "efficientnetv2b0": BackboneSpec(
        "efficientnetv2b0",
        224,
        _as_float,
        _keras_app_builder("efficientnetv2b0", keras.applications.EfficientNetV2B0, 1280, 224),
        1280,
        False,
    ),
    "xception": BackboneSpec(
        "xception",
        299,
        _scale_minus1_1,
        _keras_app_builder("xception", keras.applications.Xception, 2048, 299),
        2048,
        False,
    ),
}


def get_backbone(name: str, weights: WeightsArg = "imagenet", include_top: bool = False) -> Backbone:
    """Build backbone ``name`` from :data:`BACKBONES` with its weights.

    ``weights``: ``"imagenet"`` (shipped/converted weights; raises :class:`ModelNotFoundError`
    with instructions if the file is missing), ``None`` (random init) or a path to a weights file
    (``.npz`` for efficientnet_lite0, Keras ``.weights.h5`` for the others).
    ``include_top`` adds the 1000-class ImageNet classifier (efficientnet_lite0 only).
    """
    try:
        spec = BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}") from None
    return spec.builder(weights, include_top=include_top)
