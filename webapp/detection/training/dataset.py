"""Labelled data: ``labels.csv`` readers, the group-disjoint split, and the chip cache.

A data folder holds ``labels.csv`` with columns ``path,label`` (``real``/``fake``) and
optionally ``group`` (items that must stay on one side of the split: a fake and its original,
clips of one recording), ``method``, ``video``, ``original``. ``path`` is relative to the
folder and may be a photo, a face crop or a video. This is the ../shared/data layout and the
one a user writes for FaceForensics++, Celeb-DF or DFDC.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..faces import chip_from_crop
from ..media import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

LABELS = {"real": 0, "fake": 1}
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Item:
    """One labelled file. ``label``: 0 real, 1 fake. ``group`` keeps related items together."""

    path: Path
    label: int
    group: str
    source: str
    method: str = ""

    @property
    def is_video(self) -> bool:
        return self.path.suffix.lower().lstrip(".") not in IMAGE_EXTENSIONS


def read_labels(folder: str | Path) -> list[Item]:
    """Read ``folder/labels.csv``. Rows without a group get their own (split by row)."""
    folder = Path(folder)
    csv_path = folder / "labels.csv"
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path} not found: a data folder needs a labels.csv with columns path,label")
    items: list[Item] = []
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"path", "label"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{csv_path} lacks column(s) {', '.join(sorted(missing))}")
        for n, row in enumerate(reader, start=2):
            label = (row.get("label") or "").strip().lower()
            if label not in LABELS:
                raise ValueError(f"{csv_path}:{n}: label must be 'real' or 'fake', not {label!r}")
            rel = (row.get("path") or "").strip()
            group = (row.get("group") or "").strip() or f"{folder.name}:{rel}"
            items.append(Item(path=folder / rel, label=LABELS[label], group=group,
                              source=folder.name, method=(row.get("method") or "").strip()))
    return items


def split_of(group: str, val_frac: float = 0.125, test_frac: float = 0.125) -> str:
    """Deterministic split of a group by hash: the same group always lands on the same side."""
    h = int(hashlib.sha1(group.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    if h < test_frac:
        return "test"
    if h < test_frac + val_frac:
        return "val"
    return "train"


def split_items(items: Iterable[Item]) -> dict[str, list[Item]]:
    """Group-disjoint train/val/test split (75/12.5/12.5 by group hash)."""
    out: dict[str, list[Item]] = {s: [] for s in SPLITS}
    for it in items:
        out[split_of(it.group)].append(it)
    return out


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB (raises if unreadable)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _chip_one(args: tuple[str, int, float]) -> np.ndarray | None:
    path, size, padding = args
    try:
        return chip_from_crop(read_rgb(path), size, padding)
    except OSError:
        return None


def cache_dir() -> Path:
    """Where chips are cached (outside git): $DEEPFAKE_CACHE or instance/cache."""
    return Path(os.environ.get("DEEPFAKE_CACHE", "instance/cache"))


@dataclass
class ChipSet:
    """Chips of the image items of one folder. ``chips``: (N, S, S, 3) uint8 RGB (memmap);
    ``found``: (N,) bool, False where no face was found (its chip is all zeros)."""

    items: list[Item]
    chips: np.ndarray
    found: np.ndarray

    @property
    def face_found_rate(self) -> float:
        return float(self.found.mean()) if len(self.found) else 0.0


def chip_folder(folder: str | Path, size: int, padding: float, *, workers: int = 2,
                limit: int | None = None) -> ChipSet:
    """Chip every image item of ``folder`` with the engine's chip function, cached on disk.

    A rerun with the same folder, size and padding reads the cache instead of redoing it.
    """
    items = [it for it in read_labels(folder) if not it.is_video]
    if limit:
        items = items[:limit]
    csv_sha = hashlib.sha1((Path(folder) / "labels.csv").read_bytes()).hexdigest()
    key = hashlib.sha1(f"{Path(folder).resolve()}|{size}|{padding}|{len(items)}|{csv_sha}".encode()).hexdigest()[:10]
    base = cache_dir() / f"{Path(folder).name}_{size}_{key}"
    chips_f, found_f = base.with_suffix(".chips.npy"), base.with_suffix(".found.npy")
    if chips_f.is_file() and found_f.is_file():
        return ChipSet(items, np.load(chips_f, mmap_mode="r"), np.load(found_f))
    base.parent.mkdir(parents=True, exist_ok=True)
    tmp = chips_f.with_suffix(".partial.npy")
    chips = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(items), size, size, 3))
    found = np.zeros(len(items), dtype=bool)
    args = [(str(it.path), size, padding) for it in items]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for i, chip in enumerate(pool.map(_chip_one, args, chunksize=64)):
            if chip is not None:
                chips[i] = chip
                found[i] = True
            if (i + 1) % 2000 == 0:
                log.info("chipped %d/%d from %s (faces found %.1f%%)", i + 1, len(items), folder,
                         100 * found[: i + 1].mean())
    chips.flush()
    del chips
    os.replace(tmp, chips_f)
    np.save(found_f, found)
    return ChipSet(items, np.load(chips_f, mmap_mode="r"), found)
