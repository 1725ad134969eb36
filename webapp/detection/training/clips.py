"""Chip sequences of labelled clips, cut by the engine's own sampling, detection and chip
function, cached on disk (one ``.npz`` per clip) so a rerun or a resumed training reads them.

A clip gives the chips of its main face track: (T, S, S, 3) uint8 RGB, T <= ``n_frames``.
Used twice in training: as sequences for the temporal model, and as frame chips for the frame
model (talking heads and lip-sync leave no blending seam; the frame model must see them).
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DetectionError
from ..faces import detect_faces, make_chip
from ..media import sample_video
from ..tracking import link_tracks
from .dataset import Item, cache_dir, read_labels

log = logging.getLogger(__name__)


@dataclass
class ClipChips:
    """One clip's main face track. ``chips``: (T, S, S, 3) uint8 RGB; ``face_px``: (T,) face
    width in source pixels (small faces are what the too-small gate and the stress test need)."""

    item: Item
    chips: np.ndarray
    face_px: np.ndarray


def track_chips(path: str | Path, n_frames: int, size: int, padding: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Chips (T, S, S, 3) and face widths (T,) of the longest face track of a clip, or None."""
    s = sample_video(path, n_frames)
    tracks = link_tracks([detect_faces(f) for f in s.frames])
    if not tracks:
        return None
    track = max(tracks, key=len)
    if len(track) < 2:
        return None
    chips = np.stack([make_chip(s.frames[tf.frame], tf.face, size, padding) for tf in track])
    widths = np.array([tf.face.box[2] - tf.face.box[0] for tf in track], np.float32)
    return chips, widths


def _cache_path(item: Item, n_frames: int, size: int, padding: float) -> Path:
    key = hashlib.sha1(f"{item.path.resolve()}|{item.path.stat().st_size}|{n_frames}|{size}|{padding}".encode()).hexdigest()[:12]
    return cache_dir() / "clips" / f"{item.path.stem}_{key}.npz"


def _one(args: tuple[Item, int, int, float]) -> tuple[Item, Path | None]:
    item, n_frames, size, padding = args
    out = _cache_path(item, n_frames, size, padding)
    if out.is_file():
        return item, out
    try:
        got = track_chips(item.path, n_frames, size, padding)
    except (DetectionError, OSError, ValueError) as err:
        log.warning("clip %s unreadable: %s", item.path.name, err)
        got = None
    out.parent.mkdir(parents=True, exist_ok=True)
    if got is None:
        np.savez(out, chips=np.zeros((0, size, size, 3), np.uint8), face_px=np.zeros(0, np.float32))
    else:
        np.savez(out, chips=got[0], face_px=got[1])
    return item, out


def clip_chips(folder: str | Path, n_frames: int, size: int, padding: float, *, workers: int = 2) -> list[ClipChips]:
    """Chip sequences of every video item of ``folder`` (clips with no usable track are left out)."""
    items = [it for it in read_labels(folder) if it.is_video]
    out: list[ClipChips] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for n, (item, path) in enumerate(pool.map(_one, [(it, n_frames, size, padding) for it in items]), 1):
            with np.load(path) as z:
                if len(z["chips"]) >= 2:
                    out.append(ClipChips(item, z["chips"], z["face_px"]))
            if n % 25 == 0:
                log.info("clips %s: %d/%d", Path(folder).name, n, len(items))
    log.info("clips %s: %d of %d with a face track", Path(folder).name, len(out), len(items))
    return out
