"""Which item trains and which validates, and how batches are drawn.

* :func:`assign_splits`: DFDC / FaceForensics++ / real crops / whole clips keep the group-hash
  split (train / val / test). Folders with generator ``method`` names (``generators``,
  ``photos``) are split by **method**: every group that holds a fake of a held-out method (or
  a held-out real source) goes to validation whole, so validation measures generators the
  model never saw; real-only groups of those folders are split by group hash.
* :class:`BalancedSampler`: a batch is drawn from pools (data source x label) with fixed
  weights, so a few hundred generator clips are not drowned by 20,000 DFDC crops, nor the
  other way round, and every batch is half real, half fake.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .dataset import Item, split_of

#: Generator methods and real sources kept out of training: they are the validation that the
#: model is chosen and calibrated on. Talking heads (FantasyTalking, Sonic, ATVGnet, StyleTalk,
#: Hallo/JoyHallo), three Wav2Lip variants, diffusion portraits, and one real photo source.
HELD_OUT_METHODS = frozenset({
    "fantasytalking", "sonic", "atvgnet", "styletalk", "hallo", "joyhallo",
    "wav2lip_hq", "wav2lip_gfpgan", "wav2lip_288", "diffusion",
})
HELD_OUT_REAL_GROUPS = frozenset({"middleyuan/All-Age-Faces-Dataset|all-age-faces"})
METHOD_FOLDERS = frozenset({"generators", "photos"})


def assign_splits(items: Iterable[Item], held_out_methods: Iterable[str] = HELD_OUT_METHODS,
                  held_out_real_groups: Iterable[str] = HELD_OUT_REAL_GROUPS,
                  method_folders: Iterable[str] = METHOD_FOLDERS) -> dict[Item, str]:
    """Split of every item: "train", "val" or "test". Groups never straddle splits.

    In ``method_folders``, a group with any fake of a held-out method or listed in
    ``held_out_real_groups`` is "val"; a group with fakes of other methods only is "train";
    a real-only group goes to "val" when its hash says val or test, else "train". Elsewhere
    the group hash decides (:func:`split_of`).
    """
    items = list(items)
    held = set(held_out_methods)
    real_groups = set(held_out_real_groups)
    folders = set(method_folders)
    by_group: dict[tuple[str, str], list[Item]] = defaultdict(list)
    for it in items:
        by_group[(it.source, it.group)].append(it)
    out: dict[Item, str] = {}
    for (source, group), members in by_group.items():
        if source not in folders:
            split = split_of(group)
        elif group in real_groups or any(m.label == 1 and m.method in held for m in members):
            split = "val"
        elif any(m.label == 1 for m in members):
            split = "train"
        else:
            split = "val" if split_of(group) != "train" else "train"
        for m in members:
            out[m] = split
    return out


@dataclass
class BalancedSampler:
    """Draw batches of indices from pools with fixed weights.

    ``pools``: name -> indices into the training arrays; ``weights``: name -> share of each batch
    (missing or empty pools are dropped and the rest renormalised).
    """

    pools: Mapping[str, np.ndarray]
    weights: Mapping[str, float]
    seed: int = 0

    def __post_init__(self) -> None:
        names = [n for n in self.pools if len(self.pools[n]) and self.weights.get(n, 0) > 0]
        if not names:
            raise ValueError("no non-empty pool has a positive weight")
        w = np.array([self.weights[n] for n in names], np.float64)
        self.names: list[str] = names
        self.p = w / w.sum()
        self.rng = np.random.default_rng(self.seed)

    def batch(self, size: int) -> np.ndarray:
        """``size`` indices: pool counts ~ multinomial(weights), members uniform with replacement."""
        counts = self.rng.multinomial(size, self.p)
        parts = [self.rng.choice(self.pools[n], size=k, replace=True) for n, k in zip(self.names, counts, strict=True) if k]
        return np.concatenate(parts)

    def shares(self) -> dict[str, float]:
        return {n: round(float(p), 4) for n, p in zip(self.names, self.p, strict=True)}


def pool_indices(domains: Sequence[str], labels: Sequence[int]) -> dict[str, np.ndarray]:
    """Indices per ``"{domain}:{real|fake}"`` pool."""
    out: dict[str, list[int]] = defaultdict(list)
    for i, (d, y) in enumerate(zip(domains, labels, strict=True)):
        out[f"{d}:{'fake' if y else 'real'}"].append(i)
    return {k: np.array(v, np.int64) for k, v in out.items()}


def balanced_weights(pools: Mapping[str, np.ndarray], domain_share: Mapping[str, float]) -> dict[str, float]:
    """Per-pool weights: each domain gets its share, split evenly between its real and fake
    pools (a domain with only one label gives that label the whole share)."""
    out: dict[str, float] = {}
    for domain, share in domain_share.items():
        present = [k for k in (f"{domain}:real", f"{domain}:fake") if len(pools.get(k, ()))]
        for k in present:
            out[k] = share / len(present)
    return out
