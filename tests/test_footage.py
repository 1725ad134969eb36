"""The real-footage validation: kinds of footage, folds that never split a recording or a
generator method, and the engine's own tracks and audit measurements of a clip. No TensorFlow."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import engine_media as em
import numpy as np
import pytest

from webapp.detection.training.footage import (
    AUDIT_KEYS,
    KINDS,
    extract_tracks,
    fold_units,
    footage_items,
    footage_kind,
    grouped_folds,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.parametrize("text, kind", [
    ("webcam recording of a person used as rPPG input", "webcam"),
    ("the author's phone selfie video", "phone"),
    ("a microphone test clip of a TV news interview", "interview"),
    ("samples/ holds LRS3 (TED/TEDx) and MEAD (studio emotional speech) test clips", "corpus"),
    ("lipnet_grid__evaluation__samples__GRID__bbaf2n.mpg", "corpus"),
    ("style_clips: furious_talk reference clip", "expressive"),
    ("Obama weekly address", "interview"),
    ("driving video input for the demo", "source_clip"),
    ("a clip", "other"),
])
def test_footage_kind(text, kind):
    assert footage_kind(text) == kind
    assert kind in KINDS


def test_dfdc_is_its_own_kind():
    assert footage_kind("anything at all", "DFDC") == "dfdc"


def test_fold_units_join_recordings_that_share_a_generator_method():
    groups = ["a", "b", "c", "d", "e"]
    methods = ["original", "wav2lip", "wav2lip", "original", "sonic"]
    labels = [0, 1, 1, 0, 1]
    u = fold_units(groups, methods, labels)
    assert u[1] == u[2]  # two recordings with wav2lip fakes: one unit (the method held out whole)
    assert len({u[0], u[1], u[3], u[4]}) == 4
    assert fold_units(groups, methods, labels, hold_out_methods=False) == groups


def test_grouped_folds_keep_every_unit_on_one_side_and_balance():
    rng = np.random.default_rng(0)
    units = [f"u{int(i)}" for i in rng.integers(0, 40, 400)] + ["big"] * 60
    folds = grouped_folds(units, k=5, seed=3)
    seen = defaultdict(set)
    for u, f in zip(units, folds, strict=True):
        seen[u].add(f)
    assert all(len(s) == 1 for s in seen.values())
    sizes = np.bincount(folds, minlength=5)
    assert sizes.min() > 0.6 * sizes.max()
    assert grouped_folds(units, k=5, seed=3) == folds  # deterministic


@pytest.mark.shared
def test_shared_footage_folds_never_split_a_recording_or_a_method():
    if not (DATA / "generators").is_dir():
        pytest.skip("../shared/data is not here")
    items = footage_items(DATA)
    assert sum(it.label == 0 for it in items) >= 200  # every real clip we have
    u = fold_units([it.group for it in items], [it.method for it in items], [it.label for it in items])
    folds = grouped_folds(u, k=5)
    by_group, by_method = defaultdict(set), defaultdict(set)
    for it, f in zip(items, folds, strict=True):
        by_group[it.group].add(f)
        if it.label:
            by_method[it.method].add(f)
    assert all(len(s) == 1 for s in by_group.values())
    assert all(len(s) == 1 for s in by_method.values())
    kinds = {it.kind for it in items if it.label == 0}
    assert {"webcam", "phone", "interview", "expressive", "source_clip", "corpus"} <= kinds


def test_extract_tracks_follows_the_face_of_a_clip(tmp_path):
    clip = em.face_clip(tmp_path / "face.mp4", n_frames=50)
    rec = extract_tracks(clip, n_frames=16, size=224, padding=0.2)
    assert len(rec.tracks) == 1
    chips = rec.tracks[0]
    assert chips.shape[1:] == (224, 224, 3) and chips.dtype == np.uint8 and len(chips) >= 12
    assert set(rec.audit) == set(AUDIT_KEYS)
    assert rec.audit["face_px"] == pytest.approx(float(np.median(rec.face_px[0])))
    assert 0 < rec.audit["background_flatness"] <= 1 and rec.audit["head_motion"] > 0  # a panned clip moves


def test_extract_tracks_of_a_clip_without_faces(tmp_path):
    rec = extract_tracks(em.no_face_clip(tmp_path / "none.mp4", n_frames=30), 16, 224, 0.2)
    assert rec.tracks == [] and rec.audit == {}
