"""Self-made fakes (lip-sync, animation) and quality-symmetric views, on the astronaut's real
face cut with the engine's chip function. No TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

from webapp.detection.faces import landmarks68
from webapp.detection.training import selfmade as sm

SIZE = 224


@pytest.fixture(scope="module")
def other_frame(chip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same person in another 'frame': the chip turned 4 degrees and shifted a little."""
    import cv2

    m = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), 4.0, 1.0)
    m[:, 2] += (3, -2)
    moved = cv2.warpAffine(chip, m, (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT)
    return moved, landmarks68(moved)


def test_lipsync_fake_changes_only_the_lower_face(chip, lm):
    rng = np.random.default_rng(0)
    fake, mask = sm.lipsync_fake(chip, lm, sm.draw_lipsync(rng), mouth_scale=1.4)
    assert fake.shape == chip.shape and fake.dtype == np.uint8
    outside = mask == 0
    assert outside.mean() > 0.6  # most of the chip is untouched
    assert np.array_equal(fake[outside], chip[outside])  # bit-exact outside the mask
    inside = mask > 0.9
    assert np.abs(fake[inside].astype(int) - chip[inside]).mean() > 3  # and really changed inside
    # the mask sits on the lower face: below the eyes, round the mouth
    ys, xs = np.nonzero(mask > 0.5)
    assert ys.min() > lm[36:48, 1].mean()
    assert lm[48:68, 1].mean() == pytest.approx(ys.mean(), abs=0.15 * SIZE)


def test_lipsync_mouth_scale_opens_and_closes(chip, lm):
    params = sm.draw_lipsync(np.random.default_rng(1)) | {"colour": np.zeros(3, np.float32), "sharpen": 0.0}
    opened = sm.lipsync_fake(chip, lm, params, 1.5)[0]
    closed = sm.lipsync_fake(chip, lm, params, 0.7)[0]
    assert not np.array_equal(opened, closed)


def test_animation_fake_warps_another_frame_onto_this_one(chip, lm, other_frame):
    src, src_lm = other_frame
    rng = np.random.default_rng(2)
    fake, mask = sm.animation_fake(chip, lm, src, src_lm, sm.draw_animation(rng) | {"jitter": 0.0})
    outside = mask == 0
    assert outside.any() and np.array_equal(fake[outside], chip[outside])
    inside = mask > 0.9
    diff = np.abs(fake[inside].astype(int) - chip[inside]).mean()
    assert diff > 1.0
    # warped back onto this frame's geometry: much closer to this frame than the unwarped source is
    assert diff < np.abs(src[inside].astype(int) - chip[inside]).mean()
    # its landmarks land where this frame's are (within a few pixels)
    assert np.median(np.linalg.norm(landmarks68(fake) - lm, axis=1)) < 4.0


def test_masks_cover_what_they_say(lm):
    lower, full = sm.lower_face_mask(lm, SIZE), sm.full_face_mask(lm, SIZE)
    assert 0 < (lower > 0.5).sum() < (full > 0.5).sum()
    assert lower.min() == 0.0 and full.max() == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("op", [op for op in sm.QUALITY_OPS if op != "none"])
def test_quality_view_changes_quality_not_content(chip, op):
    out = sm.quality_view(chip, np.random.default_rng(3), op)
    assert out.shape == chip.shape and out.dtype == np.uint8
    assert not np.array_equal(out, chip)
    # the face is still the same face: a small mean change, high correlation
    a, b = chip.astype(float).ravel(), out.astype(float).ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.9


def test_quality_view_sharpen_and_smooth_move_sharpness_both_ways(chip):
    import cv2

    def sharp(x):
        return cv2.Laplacian(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()

    rng = np.random.default_rng(4)
    assert sharp(sm.quality_view(chip, rng, "sharpen")) > sharp(chip) > sharp(sm.quality_view(chip, rng, "upscale"))
