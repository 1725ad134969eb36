"""Tests of ``webapp.detection.tracking``: faces found through a clip, and linked into tracks.

No TensorFlow. Media are generated (``engine_media``): scikit-image's astronaut is a real face,
coffee has none.
"""

from __future__ import annotations

from pathlib import Path

import engine_media as em
import numpy as np
import pytest

from webapp.detection.faces import Face, detect_faces
from webapp.detection.media import sample_video
from webapp.detection.tracking import find_faces, link_tracks


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
