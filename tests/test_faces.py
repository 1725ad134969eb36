"""Tests of ``webapp.detection.faces``: detection, THE chip function, landmarks, tracks.

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
    find_faces,
    landmarks68,
    link_tracks,
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


# ------------------------------------------------------------------ tracks
def _face(cx: float, cy: float, size: float) -> Face:
    h = size / 2
    return Face(
        box=(int(cx - h), int(cy - h), int(cx + h), int(cy + h)),
        landmarks=np.zeros((5, 2), np.float32),
        score=1.0,
    )


def test_link_tracks_panned_clip(tmp_path: Path) -> None:
    """A face that moves and grows smoothly through a clip is one track."""
    s = sample_video(em.face_clip(tmp_path / "pan.mp4"), 12)
    per_frame = [detect_faces(f) for f in s.frames]
    assert all(len(f) == 1 for f in per_frame)
    tracks = link_tracks(per_frame)
    assert len(tracks) == 1
    assert [tf.frame for tf in tracks[0]] == list(range(12))
    assert all(tf.track == 0 for tf in tracks[0])
    first, last = tracks[0][0].face, tracks[0][-1].face
    assert last.size > first.size * 1.15  # the clip zooms in: the face did change


def test_link_tracks_two_faces() -> None:
    """Two faces well apart, both drifting: two tracks, each with one face per frame."""
    base = em.two_faces()
    per_frame = []
    for dx in range(0, 24, 4):
        frame = np.ascontiguousarray(np.roll(base, dx, axis=1))
        faces = detect_faces(frame)
        assert len(faces) == 2
        per_frame.append(faces)
    tracks = link_tracks(per_frame)
    assert len(tracks) == 2
    for ti, tr in enumerate(tracks):
        assert [tf.frame for tf in tr] == list(range(len(per_frame)))
        assert {tf.track for tf in tr} == {ti}
        xs = [tf.face.center[0] for tf in tr]
        assert max(xs) - min(xs) < 40  # each track stays on its own face
    assert abs(tracks[0][0].face.center[0] - tracks[1][0].face.center[0]) > 150


def test_link_tracks_rules() -> None:
    """Centres within 0.6 face sizes and sizes within x1.8 link; anything else starts a track."""
    tracks = link_tracks([[_face(100, 100, 50)], [_face(120, 100, 50)], [_face(140, 100, 55)]])
    assert [len(t) for t in tracks] == [3]
    # A jump of 0.8 face sizes starts a new track.
    tracks = link_tracks([[_face(100, 100, 50)], [_face(140, 100, 50)]])
    assert [len(t) for t in tracks] == [1, 1]
    # Same place, twice the size: a different face.
    tracks = link_tracks([[_face(100, 100, 50)], [_face(100, 100, 100)]])
    assert [len(t) for t in tracks] == [1, 1]
    # A face missing for a frame rejoins its track; tracks come longest first.
    seq = [
        [_face(100, 100, 50), _face(400, 100, 50)],
        [_face(105, 100, 50)],
        [_face(110, 100, 50), _face(402, 100, 50)],
        [_face(115, 100, 50)],
    ]
    tracks = link_tracks(seq)
    assert [len(t) for t in tracks] == [4, 2]
    assert [tf.frame for tf in tracks[1]] == [0, 2]
    assert [tf.track for tf in tracks[0]] == [0] * 4 and [tf.track for tf in tracks[1]] == [1, 1]
    # Two faces in one frame never join the same track.
    tracks = link_tracks([[_face(100, 100, 50)], [_face(105, 100, 50), _face(110, 100, 50)]])
    assert sorted(len(t) for t in tracks) == [1, 2]
    assert link_tracks([]) == [] and link_tracks([[], []]) == []


# ------------------------------------------------------------------ dim rooms, far away
@pytest.fixture(scope="module")
def dim_far(tmp_path_factory) -> tuple[list[np.ndarray], list[int]]:
    """The sampled frames (and their source indices) of a dark 1080p clip, face about 60 px."""
    s = sample_video(em.dim_far_clip(tmp_path_factory.mktemp("dim") / "far.mp4", face_px=60), 16)
    return s.frames, s.indices


def test_dim_far_face_found_in_every_frame(dim_far) -> None:
    """A face about 60 px wide in a dark 1080p frame: found and followed in all 16 sampled
    frames, where it is, with no other detection."""
    frames, indices = dim_far
    assert len(frames) == 16 and frames[0].shape == (1080, 1920, 3)
    assert float(np.mean(frames[8])) < 60  # it is dark
    per_frame = find_faces(frames)
    for faces, index in zip(per_frame, indices, strict=True):
        assert len(faces) == 1, (index, faces)
        x0, y0, x1, y1 = em.dim_far_face_box(60, index)
        cx, cy = faces[0].center
        assert abs(cx - (x0 + x1) / 2) < 15 and abs(cy - (y0 + y1) / 2) < 15, (index, faces[0].box)
        assert 40 < faces[0].size < 85
    tracks = link_tracks(per_frame)
    assert [len(t) for t in tracks] == [16]


def test_dim_far_control_old_detector_misses_it(dim_far) -> None:
    """Control: HOG on the 640-px copy, as every frame got before, finds nothing here."""
    frames, _ = dim_far
    assert all(detect_faces(f, enhanced=False) == [] for f in frames[::5])


def test_find_faces_follows_two_faces_and_ignores_coffee(tmp_path: Path) -> None:
    base = em.two_faces()
    frames = [np.ascontiguousarray(np.roll(base, dx, axis=1)) for dx in range(0, 48, 4)]
    per_frame = find_faces(frames)
    assert all(len(f) == 2 for f in per_frame)
    assert [len(t) for t in link_tracks(per_frame)] == [12, 12]
    s = sample_video(em.no_face_clip(tmp_path / "coffee.mp4"), 8)
    assert find_faces(s.frames) == [[] for _ in range(8)]
    assert find_faces([]) == []


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
