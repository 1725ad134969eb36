"""Tests of ``webapp.detection.faces``: detection, THE chip function, landmarks (clips and
tracks: ``test_tracking.py``).

No TensorFlow. The astronaut (``skimage.data.astronaut()``) is a real face; coffee has none.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import engine_media as em
import numpy as np
import pytest

from webapp.detection.faces import (
    Face,
    chip_from_crop,
    detect_faces,
    enhance,
    landmarks68,
    make_chip,
    needs_enhancing,
    reflect_pad,
)
from webapp.detection.media import sample_video

SIZE, PADDING = 224, 0.2  # ModelConfig's defaults (not imported: classifier imports Keras)
ASTRONAUT_BOX = (179, 83, 266, 170)  # where dlib HOG finds the face in the 512x512 original
LEFT_EYE, RIGHT_EYE, MOUTH = slice(36, 42), slice(42, 48), slice(48, 68)  # 68-point indices


def eye_centres(lm68: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return lm68[LEFT_EYE].mean(axis=0), lm68[RIGHT_EYE].mean(axis=0)


def main_face(faces: list[Face]) -> Face:
    """The surest face (the astronaut picture also holds a weak false detection on the suit)."""
    assert faces, "no face found"
    return max(faces, key=lambda f: f.score)


@pytest.fixture(scope="module")
def astronaut_face() -> Face:
    return main_face(detect_faces(em.astronaut()))


# ------------------------------------------------------------------ detection
def test_astronaut_face_found(astronaut_face: Face) -> None:
    box = np.array(astronaut_face.box)
    assert np.abs(box - ASTRONAUT_BOX).max() <= 8, box
    assert astronaut_face.score > 0.5
    lm = astronaut_face.landmarks
    assert lm.shape == (5, 2) and lm.dtype == np.float32
    x0, y0, x1, y1 = box
    assert ((lm[:, 0] > x0) & (lm[:, 0] < x1) & (lm[:, 1] > y0) & (lm[:, 1] < y1)).all()
    assert astronaut_face.shape is not None and astronaut_face.shape.num_parts == 5


def test_large_frame_boxes_in_frame_pixels() -> None:
    """Detection runs on a downscaled copy; boxes and landmarks come back in frame pixels."""
    big = cv2.resize(em.astronaut(), (1280, 1280), interpolation=cv2.INTER_CUBIC)
    face = main_face(detect_faces(big))
    np.testing.assert_allclose(face.box, np.array(ASTRONAUT_BOX) * 2.5, atol=25)
    assert face.landmarks[:, 0].min() > face.box[0] and face.landmarks[:, 0].max() < face.box[2]


def test_no_face_in_coffee() -> None:
    assert detect_faces(em.coffee()) == []
    assert detect_faces(em.coffee(), thorough=True) == []


def test_no_face_in_coffee_clip(tmp_path: Path) -> None:
    s = sample_video(em.no_face_clip(tmp_path / "coffee.mp4"), 6)
    assert len(s.frames) == 6
    assert all(detect_faces(f) == [] for f in s.frames)


def test_tiny_face_ignored() -> None:
    """Faces under MIN_FACE_PX are too small to judge and are not returned."""
    small = cv2.resize(em.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)  # face ~22 px
    assert detect_faces(small) == []


# ------------------------------------------------------------------ chips
def test_chip_shape(astronaut_face: Face) -> None:
    chip = make_chip(em.astronaut(), astronaut_face, SIZE, PADDING)
    assert chip.shape == (SIZE, SIZE, 3) and chip.dtype == np.uint8
    assert chip.std() > 20  # a picture, not a blank
    again = make_chip(em.astronaut(), astronaut_face, SIZE, PADDING)
    np.testing.assert_array_equal(chip, again)  # deterministic
    small = make_chip(em.astronaut(), astronaut_face, 64, PADDING)
    assert small.shape == (64, 64, 3)


@pytest.mark.parametrize("degrees", [0, 15, -15])
def test_eyes_level_and_centred_in_chip(degrees: float) -> None:
    """The chip is aligned: eyes level (|dy| < 3% of the size), face centred, whatever the
    head's tilt in the source picture."""
    picture = em.rotated(em.astronaut(), degrees) if degrees else em.astronaut()
    face = main_face(detect_faces(picture))
    # The 5 landmarks are (right eye outer, inner, left eye outer, inner, nose): the source
    # tilt is visible in them.
    src_dx, src_dy = face.landmarks[0] - face.landmarks[2]
    tilt = np.degrees(np.arctan2(src_dy, src_dx))
    assert abs(tilt + degrees) < 6, (tilt, degrees)  # rotating by +d (ccw) tilts the eyes by -d

    chip = make_chip(picture, face, SIZE, PADDING)
    left, right = eye_centres(landmarks68(chip))
    assert abs(left[1] - right[1]) < 0.03 * SIZE, (left, right)
    assert abs((left[0] + right[0]) / 2 - SIZE / 2) < 0.05 * SIZE
    assert right[0] - left[0] > 0.25 * SIZE  # a face, not a speck

    # The same with dlib's 5-point model run on the chip itself.
    on_chip = main_face(detect_faces(reflect_pad(chip)))
    pts = on_chip.landmarks
    eye_a, eye_b = pts[0:2].mean(axis=0), pts[2:4].mean(axis=0)
    assert abs(eye_a[1] - eye_b[1]) < 0.03 * SIZE


def test_unaligned_crop_control() -> None:
    """Control for the test above: on a plain (unaligned) crop of the tilted face, the 68-point
    model does report tilted eyes, so "level in the chip" is the alignment's doing."""
    picture = em.rotated(em.astronaut(), 15)
    x0, y0, x1, y1 = main_face(detect_faces(picture)).box
    cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2 + 10, (x1 - x0) * 1.8
    crop = picture[int(cy - side / 2) : int(cy + side / 2), int(cx - side / 2) : int(cx + side / 2)]
    left, right = eye_centres(landmarks68(cv2.resize(crop, (SIZE, SIZE))))
    assert abs(left[1] - right[1]) > 0.05 * SIZE


def test_chip_fixed_scale() -> None:
    """The same face at two source sizes gives the same chip geometry (eye distance)."""
    dists = []
    for scale in (1.0, 0.7):
        pic = cv2.resize(em.astronaut(), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        chip = make_chip(pic, main_face(detect_faces(pic)), SIZE, PADDING)
        left, right = eye_centres(landmarks68(chip))
        dists.append(right[0] - left[0])
    assert dists[1] == pytest.approx(dists[0], rel=0.06)


def test_landmarks68_layout(astronaut_face: Face) -> None:
    chip = make_chip(em.astronaut(), astronaut_face, SIZE, PADDING)
    lm = landmarks68(chip)
    assert lm.shape == (68, 2) and lm.dtype == np.float32
    left, right = eye_centres(lm)
    mouth = lm[MOUTH].mean(axis=0)
    assert left[0] < right[0]  # image left/right
    assert mouth[1] > max(left[1], right[1]) + 0.15 * SIZE  # mouth well below the eyes
    assert (lm >= -5).all() and (lm <= SIZE + 5).all()


def test_chip_from_crop() -> None:
    """A tight data-set style crop (face touching the borders) still gives a chip."""
    x0, y0, x1, y1 = ASTRONAUT_BOX
    tight = np.ascontiguousarray(em.astronaut()[y0 - 5 : y1 + 5, x0 - 5 : x1 + 5])
    chip = chip_from_crop(tight, SIZE, PADDING)
    assert chip is not None and chip.shape == (SIZE, SIZE, 3)
    left, right = eye_centres(landmarks68(chip))
    assert abs(left[1] - right[1]) < 0.03 * SIZE
    assert (
        chip_from_crop(np.ascontiguousarray(em.coffee()[100:300, 100:300]), SIZE, PADDING) is None
    )


def test_reflect_pad() -> None:
    img = np.arange(20 * 40 * 3, dtype=np.uint8).reshape(20, 40, 3)
    out = reflect_pad(img, 0.25)
    assert out.shape == (30, 60, 3)
    np.testing.assert_array_equal(out[5:25, 10:50], img)
    np.testing.assert_array_equal(out[4, 10:50], img[1])  # reflected, edge row not repeated


def test_enhance_only_when_dark_and_photos_try_as_is_first() -> None:
    """Dark frames are searched on a CLAHE copy (more contrast); a normal photo is searched as
    is first, so its face box, and chip, are the ones training saw."""
    lut = (255 * 0.3 * (np.arange(256) / 255.0) ** 1.8).clip(0, 255).astype(np.uint8)
    dark = cv2.LUT(em.astronaut(), lut)
    grey = cv2.cvtColor(dark, cv2.COLOR_RGB2GRAY)
    assert needs_enhancing(grey) and not needs_enhancing(
        cv2.cvtColor(em.astronaut(), cv2.COLOR_RGB2GRAY)
    )
    assert enhance(dark).shape == grey.shape and enhance(dark).std() > 1.5 * grey.std()
    as_is = main_face(detect_faces(em.astronaut(), thorough=True, enhanced=False))
    either = main_face(detect_faces(em.astronaut(), thorough=True, enhanced=None))
    assert either.box == as_is.box
    np.testing.assert_array_equal(either.landmarks, as_is.landmarks)
    assert main_face(detect_faces(dark, thorough=True, enhanced=True)).size > 60
