"""Out-of-fold scores: every clip and photo scored by heads that never trained on its recording
(or its photo source), nor on any fake of its generator method.

Folds are dealt by unit (:func:`.footage.fold_units`: a recording, joined with every recording
that holds a fake of the same generator method). Quality-symmetric views and self-made fakes of
a recording follow its unit; face crops of the training splits (DFDC, FaceForensics++, extra
real faces, self-blended) train every fold and are never scored here.

An item's score mirrors the site: every decisive track with a face of at least ``min_face_px``
is scored, the item's logit is its most suspicious track's.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .bank import Seq
from .footage import fold_units, grouped_folds
from .heads import Heads, fit_heads

log = logging.getLogger(__name__)


@dataclass
class Scored:
    """One item's out-of-fold (or a fixed model's) score. ``logit``: its most suspicious judged
    track, uncalibrated; None when no face was large enough to judge."""

    key: str
    label: int
    kind: str
    method: str
    media: str
    group: str
    logit: float | None
    face_px: float


def units_of(seqs: Sequence[Seq], photos_by_source: bool = False) -> list[str]:
    """Fold unit of every sequence: computed on the clean ("clean", "crop_*") sequences, where
    methods are real generators, and inherited by views and self-made fakes through the group.

    Photos are one unit each unless ``photos_by_source``: held out by source (a photo data set
    and every source sharing a generator with it), the frozen features score the held-out
    source by what its photos look like, not by synthesis (measured: photo AUC 0.16, inverted)."""
    def unit_key(s: Seq) -> str:
        return s.key if s.key.startswith("photos/") and not photos_by_source else s.group

    base = [s for s in seqs if s.view != "selfmade" and s.view != "quality"]
    methods = [s.method if not s.key.startswith("photos/") or photos_by_source else "" for s in base]
    u = fold_units([unit_key(s) for s in base], methods, [s.label for s in base])
    by_key = dict(zip((unit_key(s) for s in base), u, strict=True))
    return [by_key.get(unit_key(s), unit_key(s)) for s in seqs]


def item_scores(seqs: Sequence[Seq], logits: np.ndarray, min_face_px: dict[str, int]) -> list[Scored]:
    """Tracks -> items: the max logit over an item's tracks whose face is wide enough."""
    by_key: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(seqs):
        by_key[s.key].append(i)
    out = []
    for key, idx in by_key.items():
        s0 = seqs[idx[0]]
        judged = [i for i in idx if seqs[i].media == "image" or seqs[i].face_px >= min_face_px["video"]]
        lg = max(float(logits[i]) for i in judged) if judged else None
        out.append(Scored(key, s0.label, s0.kind, s0.method, s0.media, s0.group, lg,
                          max(seqs[i].face_px for i in idx)))
    return out


#: The engine's default judged line (a track narrower than this is not scored) and the views
#: that are scored out of fold (the rest only train).
MIN_FACE_PX = {"video": 60, "image": 60}
SCORED_VIEWS = ("clean", "crop_all")


def deal(foldable: Sequence[Seq], k: int = 5, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """(unit of every sequence, its fold): units of the scored views dealt to k folds
    (:func:`.footage.grouped_folds`); views and self-made fakes follow their unit."""
    units = units_of(foldable)
    clean = [i for i, s in enumerate(foldable) if s.view in SCORED_VIEWS]
    fold_of_unit = dict(zip((units[i] for i in clean), grouped_folds([units[i] for i in clean], k, seed), strict=True))
    return units, np.array([fold_of_unit.get(u, -1) for u in units])


def oof(cfg, foldable: Sequence[Seq], always: Sequence[Seq], *, k: int = 5, seed: int = 0,
        min_face_px: dict[str, int] | None = None, views: Sequence[str] = ("clean", "quality", "selfmade", "crop_all"),
        **fit_kw) -> tuple[list[Scored], list[int]]:
    """Out-of-fold scores of the clean clips and photos of ``foldable`` (k folds by unit).

    ``views``: which of ``foldable``'s views train (ablations leave "quality" or "selfmade" out).
    Returns the scored items and, per fold, how many training sequences it had."""
    min_face_px = min_face_px or MIN_FACE_PX
    units, folds = deal(foldable, k, seed)
    clean = [i for i, s in enumerate(foldable) if s.view in SCORED_VIEWS]
    scored: list[Scored] = []
    sizes = []
    for f in range(k):
        tr = [foldable[i] for i in range(len(foldable)) if folds[i] != f and foldable[i].view in views]
        tr_units = [units[i] for i in range(len(foldable)) if folds[i] != f and foldable[i].view in views]
        train = tr + list(always)
        heads = fit_heads(cfg, train, tr_units + [s.group for s in always], **fit_kw)
        ev = [foldable[i] for i in clean if folds[i] == f]
        scored += item_scores(ev, heads.track_logits(ev), min_face_px)
        sizes.append(len(train))
        log.info("fold %d: %d training sequences, %d scored", f, len(train), len(ev))
    return scored, sizes


def fixed_scores(heads: Heads, seqs: Sequence[Seq], min_face_px: dict[str, int] | None = None) -> list[Scored]:
    """Scores of one fitted model (no folds): the in-domain test crops, or a shipped model."""
    return item_scores(seqs, heads.track_logits(seqs), min_face_px or MIN_FACE_PX)


def fold_numbers(foldable: Sequence[Seq], scored: Sequence[Scored], k: int = 5, seed: int = 0) -> list[int]:
    """The fold each item of :func:`oof` was scored in (the same :func:`deal`)."""
    _, folds = deal(foldable, k, seed)
    fold_of_key = {s.key: int(f) for s, f in zip(foldable, folds, strict=True) if s.view in SCORED_VIEWS}
    return [fold_of_key[s.key] for s in scored]
