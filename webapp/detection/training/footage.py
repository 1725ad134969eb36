"""The real-footage validation: every clip we have, grouped by recording, with a source kind,
cut into face tracks by the engine's own frame sampling, face finding and chip function.

* :func:`footage_items`: the clips of ``generators/`` and ``videos/`` (reals and fakes), each
  with its ``group`` (one recording, or a fake with its source footage) and, for reals, a
  ``kind`` of footage (:data:`KINDS`) read from the folder's own ``evidence``/``source``
  columns by :func:`footage_kind`.
* :func:`grouped_folds`: k folds over groups, so a recording is never on both sides.
* :func:`clip_record`: one clip's decisive face tracks (chips, face sizes, boxes) and the
  measurements the shortcut audit correlates scores with (:data:`AUDIT_KEYS`), cached on disk.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import DetectionError
from ..faces import landmarks68, make_chip
from ..media import sample_video
from ..tracking import ClipFaces, find_faces, link_tracks
from .dataset import LABELS, cache_dir

log = logging.getLogger(__name__)

#: Kinds of real footage, in the order a clip is assigned (the first rule that matches wins:
#: what the footage *looks like* before what a project used it for).
KINDS = ("webcam", "phone", "corpus", "expressive", "interview", "source_clip", "dfdc", "other")
_RULES: tuple[tuple[str, re.Pattern], ...] = tuple((k, re.compile(p, re.I)) for k, p in (
    ("webcam", r"webcam|video[- ]call|\bteams\b|zoom|stream|exit-camera|liveness|anti-?spoof|rppg|"
               r"heart ?rate|ekyc|live selfie|drowsiness|driver"),
    ("phone", r"\bphone|selfie"),
    ("corpus", r"(?<![a-z])(LRS[23]|MEAD|GRID)(?![a-z])|IEMOCAP|VidTIMIT|VoxCeleb|\(vox\)|vox\b|lip-?read"),
    ("expressive", r"emotion|expression|laugh|smil|angry|furious|surprise|grimac|shout|happy|"
                   r"\bsad\b|fear"),
    ("interview", r"interview|press|\bTED\b|TEDx|lecture|news|\bTV\b|anchor|presenter|vlog|"
                  r"speech|talk show|C-SPAN|Obama|Trump|Reagan|podcast"),
    ("source_clip", r"driving|source|input|template|target|reference|\bGT\b|ground[- ]truth|"
                    r"demo|example"),
))


def footage_kind(text: str, folder_source: str = "") -> str:
    """The kind of a real clip from what its labels say about it (``evidence``, path, source)."""
    if folder_source.upper() == "DFDC":
        return "dfdc"
    for kind, rule in _RULES:
        if rule.search(text):
            return kind
    return "other"


@dataclass(frozen=True)
class FootageItem:
    """One clip. ``label`` 0 real / 1 fake; ``kind``: a :data:`KINDS` entry for reals, "fake"
    for fakes; ``group``: the recording (a fake shares its source footage's group)."""

    path: Path
    label: int
    group: str
    method: str
    kind: str
    folder: str

    @property
    def key(self) -> str:
        return f"{self.folder}/{self.path.name}"


def footage_items(data_root: str | Path, folders: Sequence[str] = ("generators", "videos")) -> list[FootageItem]:
    """Every clip of ``folders`` under ``data_root`` (``../shared/data``), reals and fakes."""
    out: list[FootageItem] = []
    for name in folders:
        folder = Path(data_root) / name
        csv_path = folder / "labels.csv"
        if not csv_path.is_file():
            continue
        with csv_path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                rel = row["path"].strip()
                if Path(rel).suffix.lower() not in {".mp4", ".mov", ".avi", ".mkv", ".webm", ".mpg"}:
                    continue
                label = LABELS[row["label"].strip().lower()]
                text = " ".join(row.get(k, "") or "" for k in ("evidence", "source", "path", "source_path"))
                kind = "fake" if label else footage_kind(text, row.get("source", ""))
                group = (row.get("group") or "").strip() or rel
                out.append(FootageItem(folder / rel, label, f"{name}:{group}",
                                       (row.get("method") or "").strip() or "original", kind, name))
    return out


def fold_units(groups: Sequence[str], methods: Sequence[str], labels: Sequence[int],
               hold_out_methods: bool = True) -> list[str]:
    """The unit each item is dealt to a fold with: its group (recording), and with
    ``hold_out_methods`` every group holding a fake of the same generator method joined into one
    unit (union-find), so a fold holds out whole recordings AND whole methods."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for g, m, y in zip(groups, methods, labels, strict=True):
        find(g)
        if hold_out_methods and y == 1 and m:
            ra, rb = find(g), find("method:" + m)
            if ra != rb:
                parent[ra] = rb
    return [find(g) for g in groups]


def grouped_folds(units: Sequence[str], k: int = 5, seed: int = 0) -> list[int]:
    """A fold number (0..k-1) per item; every unit (see :func:`fold_units`) lies in one fold.

    Units are dealt largest first to the fold with the fewest items so far (ties broken by a
    seeded shuffle), which keeps folds of about equal size even with one big unit."""
    by_unit: dict[str, list[int]] = defaultdict(list)
    for i, u in enumerate(units):
        by_unit[u].append(i)
    rng = np.random.default_rng(seed)
    order = list(by_unit)
    rng.shuffle(order)
    order.sort(key=lambda u: -len(by_unit[u]))
    sizes = [0] * k
    fold = [0] * len(units)
    for u in order:
        f = int(np.argmin(sizes))
        for i in by_unit[u]:
            fold[i] = f
        sizes[f] += len(by_unit[u])
    return fold


# ---------------------------------------------------------------- one clip's tracks
#: Per-clip measurements the shortcut audit correlates real clips' scores with.
AUDIT_KEYS = ("frame_height", "sharpness", "face_px", "mouth_open", "head_motion",
              "background_flatness", "brightness")


@dataclass
class ClipRecord:
    """One clip's decisive face tracks. ``tracks``: list of (T, S, S, 3) uint8 RGB chips;
    ``face_px``: list of (T,) face widths in source pixels; ``audit``: :data:`AUDIT_KEYS`
    measured on the main (longest) track."""

    tracks: list[np.ndarray]
    face_px: list[np.ndarray]
    audit: dict[str, float] = field(default_factory=dict)


def _sharpness(chip: np.ndarray) -> float:
    """Variance of the Laplacian of the central face of a chip (grey)."""
    s = chip.shape[0]
    grey = cv2.cvtColor(chip[s // 4: 3 * s // 4, s // 4: 3 * s // 4], cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _mouth_open(chip: np.ndarray) -> float:
    """Inner-lip gap over the eye-to-mouth distance, from 68 landmarks (0 = closed)."""
    p = landmarks68(chip)
    gap = float(np.mean(np.linalg.norm(p[[61, 62, 63]] - p[[67, 66, 65]], axis=1)))
    eyes = (p[36:42].mean(0) + p[42:48].mean(0)) / 2
    return gap / max(float(np.linalg.norm(p[48:68].mean(0) - eyes)), 1.0)


def _background_flatness(frame: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """1 / (1 + mean gradient magnitude) of the frame outside the face's surroundings:
    near 1 for a plain wall, lower for a busy room."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    g = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    x0, y0, x1, y1 = box
    m = int(1.0 * (x1 - x0))
    mask = np.ones(g.shape, bool)
    mask[max(0, y0 - m): y1 + 2 * m, max(0, x0 - m): x1 + m] = False  # face, hair, shoulders
    return float(1.0 / (1.0 + g[mask].mean())) if mask.any() else float("nan")


def extract_tracks(path: str | Path, n_frames: int, size: int, padding: float,
                   min_track_fraction: float = 0.25) -> ClipRecord:
    """The engine's view of a clip: ``n_frames`` sampled as the site samples them, faces found
    and followed as the site does (:class:`ClipFaces`), tracks linked, chips made by THE chip
    function. Tracks shorter than ``min_track_fraction`` of the longest are left out (they do
    not count towards a clip's verdict either). Raises DetectionError for unreadable media."""
    clip = ClipFaces(n_frames)
    sampled = sample_video(path, n_frames, on_frame=clip.add)
    per = clip.finish() if len(sampled.frames) == n_frames else find_faces(sampled.frames)
    tracks = link_tracks(per)
    if not tracks:
        return ClipRecord([], [])
    longest = max(len(t) for t in tracks)
    keep = [t for t in tracks if len(t) >= max(2, int(np.ceil(min_track_fraction * longest)))]
    keep.sort(key=len, reverse=True)
    chips = [np.stack([make_chip(sampled.frames[tf.frame], tf.face, size, padding) for tf in t]) for t in keep]
    px = [np.array([tf.face.size * sampled.scale for tf in t], np.float32) for t in keep]
    if not keep:
        return ClipRecord([], [])
    main = keep[0]
    centres = np.array([tf.face.center for tf in main]) / max(np.median([tf.face.size for tf in main]), 1.0)
    mid = main[len(main) // 2]
    frame = sampled.frames[mid.frame]
    audit = {
        "frame_height": float(sampled.info.height),
        "sharpness": float(np.median([_sharpness(c) for c in chips[0]])),
        "face_px": float(np.median(px[0])),
        "mouth_open": float(np.mean([_mouth_open(c) for c in chips[0][:: max(1, len(chips[0]) // 6)]])),
        "head_motion": float(np.mean(np.linalg.norm(np.diff(centres, axis=0), axis=1))) if len(main) > 1 else 0.0,
        "background_flatness": _background_flatness(frame, mid.face.box),
        "brightness": float(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).mean()),
    }
    return ClipRecord(chips, px, audit)


def _cache_path(item: FootageItem, n_frames: int, size: int, padding: float) -> Path:
    st = item.path.stat()
    key = hashlib.sha1(f"{item.path.resolve()}|{st.st_size}|{n_frames}|{size}|{padding}|v1".encode()).hexdigest()[:12]
    return cache_dir() / "footage" / f"{item.path.stem[:60]}_{key}.npz"


def _load(path: Path) -> ClipRecord:
    with np.load(path) as z:
        n = int(z["n_tracks"])
        audit = {k: float(z["audit_" + k]) for k in AUDIT_KEYS if "audit_" + k in z}
        return ClipRecord([z[f"chips_{i}"] for i in range(n)], [z[f"px_{i}"] for i in range(n)], audit)


def _one(args: tuple[FootageItem, int, int, float]) -> Path:
    item, n_frames, size, padding = args
    out = _cache_path(item, n_frames, size, padding)
    if out.is_file():
        return out
    try:
        rec = extract_tracks(item.path, n_frames, size, padding)
    except (DetectionError, OSError, ValueError) as err:
        log.warning("clip %s unreadable: %s", item.path.name, err)
        rec = ClipRecord([], [])
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"n_tracks": np.array(len(rec.tracks))}
    for i, (c, p) in enumerate(zip(rec.tracks, rec.face_px, strict=True)):
        arrays[f"chips_{i}"], arrays[f"px_{i}"] = c, p
    for k, v in rec.audit.items():
        arrays["audit_" + k] = np.array(v)
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(out)
    return out


def clip_records(items: Iterable[FootageItem], n_frames: int = 16, size: int = 224, padding: float = 0.2,
                 *, workers: int = 2) -> dict[str, ClipRecord]:
    """:class:`ClipRecord` of every item (cached), by :attr:`FootageItem.key`."""
    items = list(items)
    out: dict[str, ClipRecord] = {}
    jobs = [(it, n_frames, size, padding) for it in items]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for n, (it, path) in enumerate(zip(items, pool.map(_one, jobs), strict=True), 1):
            out[it.key] = _load(path)
            if n % 25 == 0:
                log.info("footage: %d/%d clips", n, len(items))
    return out


def clip_audits(items: Iterable[FootageItem]) -> dict[str, dict[str, float]]:
    """The shortcut-audit measurements (:data:`AUDIT_KEYS`) of every clip, by key (cached)."""
    return {key: rec.audit for key, rec in clip_records(items).items()}
