"""Tests of ``webapp.detection.training.augment``: ordinary augmentations and self-blended
images (SBI). The chip is the astronaut's, cut with the engine's chip function. No TensorFlow."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from webapp.detection.training import augment as aug
from webapp.detection.training.augment import BlendParams, face_mask, self_blend

SIZE = 224


def _params(**kw) -> BlendParams:
    base = dict(
        scale=1.03,
        dx=0.01,
        dy=-0.01,
        brightness=0.04,
        contrast=1.05,
        saturation=0.9,
        hue_shift=4.0,
        sharpen=0.6,
        hull="full",
        dilate=0.01,
        soften=0.03,
        ratio=1.0,
    )
    return BlendParams(**{**base, **kw})


# ------------------------------------------------------------------ ordinary augmentations
@pytest.mark.parametrize(
    "name,fn",
    [
        ("jpeg", lambda x, r: aug.jpeg(x, 40)),
        ("rescale", lambda x, r: aug.rescale(x, 0.4)),
        ("rescale_tiny", lambda x, r: aug.rescale(x, 0.01)),
        ("shift", lambda x, r: aug.shift(x, 0.05, -0.03, 1.05)),
        ("colour", lambda x, r: aug.colour(x, 0.1, 1.2, 0.7)),
        ("colour_extreme", lambda x, r: aug.colour(x, 1.0, 3.0, 3.0)),
        ("augment", lambda x, r: aug.augment(x, r)),
        ("augment_strong", lambda x, r: aug.augment(x, r, strength=1.4)),
        ("augment_none", lambda x, r: aug.augment(x, r, strength=0.0)),
    ],
)
def test_augmentation_keeps_shape_and_dtype(chip: np.ndarray, name: str, fn) -> None:
    rng = np.random.default_rng(0)
    for _ in range(10 if name.startswith("augment") else 1):
        out = fn(chip, rng)
        assert out.shape == chip.shape and out.dtype == np.uint8, name
        assert out.flags["C_CONTIGUOUS"] or not name.startswith("augment")
    before = chip.copy()
    fn(chip, np.random.default_rng(1))
    np.testing.assert_array_equal(chip, before)  # the input is never modified in place


def test_jpeg_quality_40_changes_the_image(chip: np.ndarray) -> None:
    q40 = aug.jpeg(chip, 40)
    q95 = aug.jpeg(chip, 95)
    err40 = np.abs(q40.astype(int) - chip.astype(int)).mean()
    err95 = np.abs(q95.astype(int) - chip.astype(int)).mean()
    assert err40 > 1.0 and err40 > err95 > 0
    assert err40 < 15  # changed, still the same picture


def test_shift_and_colour_do_what_they_say(chip: np.ndarray) -> None:
    moved = aug.shift(chip, 0.125, 0.0)  # 28 px: a whole number, no interpolation
    k = 28
    np.testing.assert_allclose(
        moved[:, k + 5 : -5].astype(int), chip[:, 5 : -k - 5].astype(int), atol=2
    )
    np.testing.assert_array_equal(aug.shift(chip, 0.0, 0.0, 1.0), chip)
    np.testing.assert_array_equal(aug.colour(chip, 0.0, 1.0, 1.0), chip)
    assert aug.colour(chip, 0.1, 1.0, 1.0).mean() > chip.mean() + 15
    grey = aug.colour(chip, 0.0, 1.0, 0.0).astype(int)
    assert np.abs(grey[..., 0] - grey[..., 1]).max() <= 1  # saturation 0: grey


def test_augment_is_seeded(chip: np.ndarray) -> None:
    a = aug.augment(chip, np.random.default_rng(7))
    b = aug.augment(chip, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ self-blended images
def test_self_blend_output(chip: np.ndarray, lm: np.ndarray) -> None:
    fake, mask = self_blend(chip, lm, _params())
    assert fake.shape == chip.shape and fake.dtype == np.uint8
    assert mask.shape == (SIZE, SIZE) and mask.dtype == np.float32
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    assert mask.max() > 0.99  # a full-opacity blend reaches 1 inside the face
    assert np.abs(fake.astype(int) - chip.astype(int)).mean() > 1  # something was blended


@pytest.mark.parametrize("seed", range(3))
def test_self_blend_mask_is_the_face(chip: np.ndarray, lm: np.ndarray, seed: int) -> None:
    """Over many random draws: the mask is ~0 at the corners and top edge, its centroid lies
    between the eyes and the mouth, and pixels change only where the mask is > 0."""
    rng = np.random.default_rng(seed)
    eyes_y = lm[36:48, 1].mean()
    mouth_y = lm[48:68, 1].mean()
    eyes_x = lm[36:48, 0].mean()
    ys, xs = np.mgrid[:SIZE, :SIZE]
    c = 16
    for _ in range(40):
        p = BlendParams.draw(rng)
        fake, mask = self_blend(chip, lm, p)
        assert mask.min() >= 0.0 and mask.max() <= 1.0
        corners = [mask[:c, :c], mask[:c, -c:], mask[-c:, :c], mask[-c:, -c:]]
        assert max(float(m.max()) for m in corners) < 0.01, p
        assert float(mask[:4].max()) < 0.1, p  # the top edge: at most a faint forehead
        total = mask.sum()
        cy, cx = (mask * ys).sum() / total, (mask * xs).sum() / total
        assert eyes_y < cy < mouth_y, (p, cy, eyes_y, mouth_y)
        assert abs(cx - eyes_x) < 0.06 * SIZE, (p, cx, eyes_x)
        changed = (fake != chip).any(axis=2)
        assert not (changed & (mask <= 0)).any(), p
        # Where the mask is 0 the pixels are exactly the original's.
        np.testing.assert_array_equal(fake[mask == 0], chip[mask == 0])


def test_inner_hull_is_smaller(chip: np.ndarray, lm: np.ndarray) -> None:
    full = face_mask(lm, SIZE, _params(hull="full", dilate=0.0, soften=0.01))
    inner = face_mask(lm, SIZE, _params(hull="inner", dilate=0.0, soften=0.01))
    assert 0 < (inner > 0.5).sum() < (full > 0.5).sum()
    # The jaw (chin) is outside the inner hull.
    chin = lm[8].astype(int)
    assert full[chin[1] - 3, chin[0]] > 0.5 and inner[chin[1] - 3, chin[0]] < 0.5


def test_dilate_grows_and_ratio_scales_the_mask(chip: np.ndarray, lm: np.ndarray) -> None:
    grown = face_mask(lm, SIZE, _params(dilate=0.03))
    shrunk = face_mask(lm, SIZE, _params(dilate=-0.03))
    assert (shrunk > 0.5).sum() < (grown > 0.5).sum()
    _, m1 = self_blend(chip, lm, _params(ratio=1.0))
    _, m5 = self_blend(chip, lm, _params(ratio=0.5))
    np.testing.assert_allclose(m5, m1 * 0.5, atol=1e-6)


def test_identity_source_blends_to_the_original(chip: np.ndarray, lm: np.ndarray) -> None:
    """With no transform the "source" is the chip itself: blending changes nothing. This
    pins that SBI's artefacts come from the transform, inside the mask."""
    p = _params(
        scale=1.0,
        dx=0.0,
        dy=0.0,
        brightness=0.0,
        contrast=1.0,
        saturation=1.0,
        hue_shift=0.0,
        sharpen=0.0,
    )
    fake, mask = self_blend(chip, lm, p)
    assert mask.max() > 0.99
    assert np.abs(fake.astype(int) - chip.astype(int)).max() <= 1


def test_blend_params_draw_is_seeded_and_in_range() -> None:
    a = BlendParams.draw(np.random.default_rng(5))
    assert a == BlendParams.draw(np.random.default_rng(5))
    rng = np.random.default_rng(6)
    for _ in range(200):
        p = BlendParams.draw(rng)
        assert 0.95 <= p.scale <= 1.05 and abs(p.dx) <= 0.02 and abs(p.dy) <= 0.02
        assert p.hull in ("full", "inner") and p.ratio in (0.5, 0.75, 1.0)
        assert 0.01 <= p.soften <= 0.05 and -1.0 <= p.sharpen <= 1.0


def test_drift_stays_close() -> None:
    """Frame-to-frame drift is a small wobble around the clip's draw, never a new draw."""
    spans = dict(
        scale=0.05,
        dx=0.02,
        dy=0.02,
        brightness=0.06,
        contrast=0.1,
        saturation=0.15,
        hue_shift=6,
        sharpen=0.5,
        dilate=0.02,
        soften=0.02,
    )
    rng = np.random.default_rng(8)
    base = BlendParams.draw(rng)
    devs: dict[str, list[float]] = {k: [] for k in spans}
    for _ in range(500):
        d = base.drift(rng)
        assert d.hull == base.hull and d.ratio == base.ratio
        assert d.soften >= 0.005
        for k, span in spans.items():
            dev = abs(getattr(d, k) - getattr(base, k)) / span
            assert dev < 0.15 * 5, (k, dev)  # within 5 sigma of amount 0.15
            devs[k].append(dev)
    for k, v in devs.items():
        # mean |N(0, 0.15)| = 0.15 * sqrt(2 / pi) ~= 0.12 of the span
        assert 0.08 < float(np.mean(v)) < 0.16, (k, np.mean(v))
    small = base.drift(rng, amount=0.01)
    assert abs(small.scale - base.scale) < 0.01 * 0.05 * 6
    assert dataclasses.fields(small) == dataclasses.fields(base)
