"""A feature bank: pooled backbone features of every training and validation sequence, made
once per backbone and cached, so heads (frame scorer, temporal LSTM) can be fitted many times
(k folds, ablations) in seconds.

A :class:`Seq` is one face track (a clip's track, or a photo/crop as a sequence of one) with its
label, group, method, kind and fold-unit. Sequences come from:
* footage clips (:mod:`.footage`), as they are and in a quality-symmetric view;
* self-made fakes of the real clips (:mod:`.selfmade`): lip-sync and animation families, in
  their source clip's group, so a fold never trains on a fake of a recording it validates on;
* face crops and photos (DFDC, FaceForensics++, extra real faces, photos) and self-blended
  fakes of real crops.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..faces import landmarks68
from .augment import BlendParams, self_blend
from .dataset import Item, _chip_one, cache_dir, read_labels, split_of
from .footage import ClipRecord, FootageItem
from .selfmade import animation_fake, draw_animation, draw_lipsync, lipsync_fake, quality_view

log = logging.getLogger(__name__)


@dataclass
class Seq:
    """One sequence of pooled features. ``feats`` (T, C) float16; ``logits`` (T,) the source
    model's own frame logits; ``label`` 0/1; ``view``: "clean", "quality", "selfmade"."""

    feats: np.ndarray
    logits: np.ndarray
    label: int
    group: str
    method: str
    kind: str
    media: str  # "video" | "image"
    key: str
    view: str = "clean"
    face_px: float = 0.0
    track: int = 0


class Featurizer:
    """Pooled features and frame logits of chips under one model's backbone and frame head."""

    def __init__(self, model_dir: str | Path, batch: int = 32):
        import tensorflow as tf

        from ..classifier import DetectorNets, ModelConfig

        self.cfg = ModelConfig.load(model_dir)
        self.nets = DetectorNets(self.cfg)
        self.nets.load_weights(model_dir)
        self.batch = batch
        self._fn = tf.function(lambda x: self.nets.features(x, training=False)[1], reduce_retracing=True)
        self.name = Path(model_dir).name
        self.n, self.t = 0, 0.0

    def __call__(self, chips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, S, S, 3) uint8 -> pooled (N, C) float16, frame logits (N,) float32."""
        t = time.perf_counter()
        pooled, logits = [], []
        for i in range(0, len(chips), self.batch):
            po = np.asarray(self._fn(self.nets.preprocess(np.asarray(chips[i:i + self.batch]))))
            logits.append(np.asarray(self.nets.frame_head(po, training=False))[:, 0])
            pooled.append(po.astype(np.float16))
        self.n += len(chips)
        self.t += time.perf_counter() - t
        if not len(chips):
            return np.zeros((0, self.nets.backbone.output_dim), np.float16), np.zeros(0, np.float32)
        return np.concatenate(pooled), np.concatenate(logits).astype(np.float32)


def _cached(name: str, make: Callable[[], list[Seq]]) -> list[Seq]:
    path = cache_dir() / "bank" / f"{name}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=True) as z:
            return list(z["seqs"])
    seqs = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, seqs=np.array(seqs, dtype=object))
    tmp.replace(path)
    return seqs


def _rng(*parts: str) -> np.random.Generator:
    return np.random.default_rng(int(hashlib.sha1("|".join(parts).encode()).hexdigest()[:8], 16))


def clip_seqs(fz: Featurizer, items: Iterable[FootageItem], records: dict[str, ClipRecord],
              view: str = "clean") -> list[Seq]:
    """Every decisive track of every clip (``view`` "clean" or "quality": one quality-symmetric
    draw per clip, the same operation on all its frames)."""
    out = []
    for it in items:
        rec = records.get(it.key)
        if rec is None:
            continue
        rng = _rng(it.key, view)
        op = None
        for k, (chips, px) in enumerate(zip(rec.tracks, rec.face_px, strict=True)):
            if view == "quality":
                op = op or str(rng.choice(["sharpen", "beautify", "upscale", "denoise", "reencode"]))
                chips = np.stack([quality_view(c, rng, op) for c in chips])
            f, lg = fz(chips)
            out.append(Seq(f, lg, it.label, it.group, it.method, it.kind, "video", it.key, view,
                           float(np.median(px)), k))
    return out


def selfmade_seqs(fz: Featurizer, items: Iterable[FootageItem], records: dict[str, ClipRecord]) -> list[Seq]:
    """A lip-sync and an animation fake of the main track of every real clip (its group)."""
    out = []
    for it in items:
        rec = records.get(it.key)
        if it.label != 0 or rec is None or not rec.tracks or len(rec.tracks[0]) < 4:
            continue
        chips = rec.tracks[0]
        rng = _rng(it.key, "selfmade")
        lms = [landmarks68(c) for c in chips]
        lp = draw_lipsync(rng)
        lip = np.stack([lipsync_fake(c, lm, lp, float(rng.uniform(0.7, 1.5)))[0]
                        for c, lm in zip(chips, lms, strict=True)])
        ap, n = draw_animation(rng), len(chips)
        src = int(rng.integers(n))  # one source frame drives the whole clip, as in animation
        anim = np.stack([animation_fake(c, lm, chips[src], lms[src], ap, rng)[0]
                         for c, lm in zip(chips, lms, strict=True)])
        for name, fakes in (("selfmade_lipsync", lip), ("selfmade_animation", anim)):
            f, lg = fz(fakes)
            out.append(Seq(f, lg, 1, it.group, name, "fake", "video", f"{it.key}:{name}", "selfmade",
                           float(np.median(rec.face_px[0]))))
    return out


def _chips_of(items: list[Item], size: int, padding: float) -> tuple[np.ndarray, np.ndarray]:
    with ProcessPoolExecutor(max_workers=2) as pool:
        got = list(pool.map(_chip_one, [(str(it.path), size, padding) for it in items], chunksize=32))
    found = np.array([g is not None for g in got])
    chips = np.stack([g for g in got if g is not None]) if found.any() else np.zeros((0, size, size, 3), np.uint8)
    return chips, found


def crop_items(data_root: str | Path, per_split: dict[str, dict[str, int]], seed: int = 0) -> list[tuple[Item, str]]:
    """A stratified sample of the crop/photo folders: ``per_split[folder][split]`` items per label."""
    rng = np.random.default_rng(seed)
    out = []
    for folder, caps in per_split.items():
        items = read_labels(Path(data_root) / folder)
        for split, cap in caps.items():
            for y in (0, 1):
                pool = [it for it in items if it.label == y and (split == "all" or split_of(it.group) == split)]
                pick = rng.choice(len(pool), min(cap, len(pool)), replace=False) if pool else []
                out += [(pool[i], split) for i in sorted(pick)]
    return out


def crop_seqs(fz: Featurizer, chosen: list[tuple[Item, str]], size: int, padding: float,
              kind_of: Callable[[Item], str], sbi: int = 0) -> list[Seq]:
    """Sequences of one (face crops and photos), plus ``sbi`` self-blended fakes of the real
    crops of the "train" split (their source's group)."""
    items = [it for it, _ in chosen]
    chips, found = _chips_of(items, size, padding)
    kept = [c for c, ok in zip(chosen, found, strict=True) if ok]
    f, lg = fz(chips)
    out = [Seq(f[i:i + 1], lg[i:i + 1], it.label, f"{it.source}:{it.group}", it.method or it.source,
               kind_of(it) if it.label == 0 else "fake", "image", f"{it.source}/{it.path.name}", f"crop_{split}")
           for i, (it, split) in enumerate(kept)]
    if sbi:
        rng = np.random.default_rng(7)
        reals = [i for i, (it, split) in enumerate(kept) if it.label == 0 and split == "train"]
        pick = rng.choice(reals, min(sbi, len(reals)), replace=False)
        fakes = np.stack([self_blend(chips[i], landmarks68(chips[i]), BlendParams.draw(rng))[0] for i in pick])
        f2, lg2 = fz(fakes)
        for j, i in enumerate(pick):
            s = out[i]
            out.append(replace(s, feats=f2[j:j + 1], logits=lg2[j:j + 1], label=1, method="sbi", kind="fake",
                               key=s.key + ":sbi", view="selfmade"))
    return out



# ---------------------------------------------------------------- the banks, by name
#: Crop samples per folder and split (per label): "train" ones train every fold, "test" ones
#: are the in-domain report and never train.
CROPS_TRAIN = {"dfdc_faces": {"train": 1500}, "ffpp_faces": {"train": 600}, "real_faces": {"train": 400}}
CROPS_TEST = {"dfdc_faces": {"test": 300}, "ffpp_faces": {"test": 230}}
#: Never trained on either: the image bands also keep these reals' false alarms at 2% or less.
CROPS_VAL = {"dfdc_faces": {"val": 300}, "ffpp_faces": {"val": 230}}
PARTS = ("clips", "quality", "selfmade", "photos", "crops_train", "crops_test", "crops_val")


def photo_kind(it: Item) -> str:
    g = it.group.lower()
    return ("photo_ffhq" if "ffhq" in g else "photo_utkface" if "utk" in g
            else "photo_allage" if "all-age" in g else "photo_other")


def crop_kind(it: Item) -> str:
    return {"dfdc_faces": "crops_dfdc", "ffpp_faces": "crops_ffpp", "real_faces": "crops_real"}.get(it.source, "crops")


def _make(part: str, fz: Featurizer, items: list[FootageItem], recs: dict | None, data_root: str | Path) -> list[Seq]:
    if part == "clips":
        return clip_seqs(fz, items, recs)
    if part == "quality":
        return clip_seqs(fz, items, recs, "quality")
    if part == "selfmade":
        return selfmade_seqs(fz, items, recs)
    if part == "photos":
        return crop_seqs(fz, crop_items(data_root, {"photos": {"all": 10000}}), 224, 0.2, photo_kind)
    if part == "crops_test":
        return crop_seqs(fz, crop_items(data_root, CROPS_TEST), 224, 0.2, crop_kind)
    if part == "crops_val":
        return crop_seqs(fz, crop_items(data_root, CROPS_VAL), 224, 0.2, crop_kind)
    if part == "crops_train":
        return crop_seqs(fz, crop_items(data_root, CROPS_TRAIN), 224, 0.2, crop_kind, sbi=1200)
    raise ValueError(f"unknown bank part {part!r}; known: {', '.join(PARTS)}")


def build(model_dir: str | Path, data_root: str | Path, parts: Iterable[str] = PARTS) -> dict[str, list[Seq]]:
    """The named parts of the bank under ``model_dir``'s backbone and frame head (cached)."""
    from .footage import clip_records, footage_items

    tag = Path(model_dir).name
    items = footage_items(data_root)
    state: dict = {}
    out = {}
    for part in parts:
        t = time.time()

        def make(part: str = part) -> list[Seq]:
            if "fz" not in state:
                state["fz"] = Featurizer(model_dir)
            if part in ("clips", "quality", "selfmade") and "recs" not in state:
                state["recs"] = clip_records(items)
            return _make(part, state["fz"], items, state.get("recs"), data_root)

        out[part] = _cached(f"{tag}_{part}", make)
        log.info("bank %s %s: %d sequences (%.0f s)", tag, part, len(out[part]), time.time() - t)
    return out
