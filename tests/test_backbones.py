"""Tests of the backbone registry and the converted EfficientNet-Lite0 (no torch needed)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from webapp.detection import backbones
from webapp.detection.backbones import BACKBONES, Backbone, get_backbone
from webapp.detection.errors import ModelNotFoundError


@pytest.fixture(scope="module")
def lite0() -> Backbone:
    """Lite0 with the shipped ImageNet weights and classifier."""
    return get_backbone("efficientnet_lite0", weights="imagenet", include_top=True)


def _chip(image: np.ndarray) -> np.ndarray:
    """RGB uint8 picture -> (224, 224, 3) uint8 (cv2.INTER_AREA), as in tools/convert_lite0.py."""
    return cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA)


def test_shipped_weights_classify_imagenet(lite0: Backbone) -> None:
    spec = BACKBONES["efficientnet_lite0"]
    x = spec.preprocess(np.stack([_chip(skimage.data.chelsea()), _chip(skimage.data.coffee())]))
    assert x.dtype == np.float32 and x.min() >= -1.0 and x.max() <= 1.0
    logits = np.asarray(lite0.logits_model()(x, training=False))
    assert logits.shape == (2, 1000)
    assert logits.argmax(axis=1).tolist() == [285, 967]  # Egyptian cat, espresso


def test_feature_model_shapes(lite0: Backbone) -> None:
    x = np.random.default_rng(0).uniform(-1, 1, (2, 224, 224, 3)).astype(np.float32)
    fmap, pooled = lite0.feature_model()(x, training=False)
    assert tuple(fmap.shape) == (2, 7, 7, 1280)
    assert tuple(pooled.shape) == (2, lite0.output_dim) == (2, 1280)
    np.testing.assert_allclose(np.asarray(pooled), np.asarray(fmap).mean(axis=(1, 2)), atol=1e-5)


@pytest.mark.parametrize("k", [1, 10, 17])
def test_lower_then_upper_equals_full(lite0: Backbone, k: int) -> None:
    x = np.random.default_rng(1).uniform(-1, 1, (2, 224, 224, 3)).astype(np.float32)
    mid = np.asarray(lite0.lower(k)(x, training=False))
    assert mid.shape[-1] == lite0.split_channels(k)
    split = np.asarray(lite0.upper(k)(mid, training=False))
    full = np.asarray(lite0.feature_model()(x, training=False)[0])
    np.testing.assert_allclose(split, full, rtol=1e-5, atol=1e-5)


def test_parts_layout(lite0: Backbone) -> None:
    assert lite0.part_names == ["stem", *(f"block_{i}" for i in range(16)), "head"]
    assert lite0.split_channels(10) == 112  # input of block_9
    with pytest.raises(ValueError):
        lite0.lower(0)
    with pytest.raises(ValueError):
        lite0.upper(len(lite0.parts))


def test_freeze_below() -> None:
    bb = get_backbone("efficientnet_lite0", weights=None)
    bb.freeze_below(12)
    assert [p.trainable for p in bb.parts] == [False] * 12 + [True] * 6


def test_missing_weights_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(backbones, "DEFAULT_WEIGHTS_DIR", tmp_path)
    monkeypatch.delenv(backbones.WEIGHTS_DIR_ENV, raising=False)
    with pytest.raises(ModelNotFoundError, match=r"tools\.convert_lite0"):
        get_backbone("efficientnet_lite0", weights="imagenet")


def test_keras_app_backbone_not_splittable() -> None:
    bb = get_backbone("efficientnetv2b0", weights=None)
    fmap, pooled = bb.feature_model()(np.zeros((1, 224, 224, 3), np.float32), training=False)
    assert tuple(fmap.shape) == (1, 7, 7, 1280) and tuple(pooled.shape) == (1, 1280)
    with pytest.raises(NotImplementedError):
        bb.lower(3)


def test_unknown_backbone() -> None:
    with pytest.raises(ValueError, match="unknown backbone"):
        get_backbone("resnet9000")
