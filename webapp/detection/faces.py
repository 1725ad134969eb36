"""Faces: dlib detection, 5-point landmarks, aligned chips, and tracks across frames.

:func:`make_chip` is THE chip function: training (``training/dataset.py``) and serving
(``pipeline.py``) both cut faces with it, so the model never sees a different crop at
serving time than it was trained on.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import dlib
import numpy as np

DETECT_MAX_SIDE = 640  # frames are downscaled to this longest side for the HOG detector
MAX_FACES_PER_FRAME = 4
MIN_FACE_PX = 32  # smaller detections are dropped (HOG's smallest face at 2x upsampling is ~40)
MIN_EXTRA_SCORE = 0.3  # a second, third... face needs this HOG score (weak ones are mostly false)
# A frame this dark or flat (grey mean / standard deviation) is searched on a CLAHE copy.
DARK_MEAN, FLAT_STD = 90.0, 40.0
# Clip search: full-frame HOG passes, (longest side or 0 = full frame, upsample). The HOG window
# is 80 px, so on a 1920x1080 frame the cheap passes find faces of about >= 240 px (640 px copy)
# and >= 100 px (768 px copy at 2x: every face large enough to judge in a clip); the search
# passes find faces >= 60 px (1280 px copy at 2x) and down to about 40 px (the full frame at 2x,
# 4x its pixels: about 1 s here). Key frames get the cheap passes in order until one finds a
# face, except the middle key frame, which gets the finer one first (it finds every judgeable
# face); when that found faces, the other key frames only look for large new ones. The search
# passes run on that middle frame only, and only when the cheap passes found nothing sure.
CHEAP_PASSES = ((DETECT_MAX_SIDE, 0), (768, 1))
SEARCH_PASSES = ((1280, 1), (0, 1))
SURE_SCORE = 0.5  # a key frame detection this sure spares the search passes
SEARCH_MIN_SCORE = 0.0  # a face found only by a search pass needs this HOG score (dlib default)
KEY_FRAMES = 3  # sampled frames searched whole; the others follow the faces found (tracking)
TRACK_FACE_PX = 100  # a tracked face is re-detected in a crop scaled so it is about this wide
TRACK_REACH = 1.0  # the crop reaches this many face sizes beyond the face on each side


def _models_dir() -> Path:
    """The model folder of the PyPI package ``face-recognition-models`` (not imported:
    its ``__init__`` needs pkg_resources, which recent setuptools no longer ship)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("The package face-recognition-models is not installed (pip install face-recognition-models).")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


@dataclass
class Face:
    """A detected face. ``box``: (x0, y0, x1, y1) in frame pixels; ``landmarks``: (5, 2) float32
    (x, y) in frame pixels; ``score``: detector confidence (higher is surer)."""

    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    score: float
    shape: dlib.full_object_detection = field(repr=False, default=None)

    @property
    def size(self) -> float:
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)


_MODEL_FILES = {
    "cnn": ("mmod_human_face_detector.dat", dlib.cnn_face_detection_model_v1),
    "sp5": ("shape_predictor_5_face_landmarks.dat", dlib.shape_predictor),
    "sp68": ("shape_predictor_68_face_landmarks.dat", dlib.shape_predictor),
}
_models_lock = threading.Lock()


@functools.cache
def _model(kind: str):
    """A dlib model, loaded once per process: "hog", "cnn", "sp5" or "sp68"."""
    with _models_lock:
        if kind == "hog":
            return dlib.get_frontal_face_detector()
        filename, load = _MODEL_FILES[kind]
        return load(str(_models_dir() / filename))


def _downscale(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Return (small, factor) with small = rgb resized so its long side <= max_side;
    factor maps small pixels back to ``rgb`` pixels."""
    h, w = rgb.shape[:2]
    f = max(h, w) / max_side
    if f <= 1.0:
        return rgb, 1.0
    small = cv2.resize(rgb, (int(round(w / f)), int(round(h / f))), interpolation=cv2.INTER_AREA)
    return small, f


def _rects_hog(img: np.ndarray, upsample: int) -> list[tuple[dlib.rectangle, float]]:
    rects, scores, _ = _model("hog").run(img, upsample, 0.0)
    return list(zip(rects, scores, strict=False))


def _rects_cnn(img: np.ndarray) -> list[tuple[dlib.rectangle, float]]:
    return [(d.rect, float(d.confidence)) for d in _model("cnn")(img, 0)]


def _shift_shape(shape: dlib.full_object_detection, dx: int, dy: int) -> dlib.full_object_detection:
    """The same landmarks moved by (dx, dy) pixels."""
    r = shape.rect
    return dlib.full_object_detection(
        dlib.rectangle(r.left() + dx, r.top() + dy, r.right() + dx, r.bottom() + dy),
        [dlib.point(p.x + dx, p.y + dy) for p in shape.parts()])


def needs_enhancing(grey: np.ndarray) -> bool:
    """True when a (H, W) uint8 frame is dark or flat enough for HOG to miss faces in it."""
    small = grey[::4, ::4]
    return float(small.mean()) < DARK_MEAN or float(small.std()) < FLAT_STD


def enhance(rgb: np.ndarray) -> np.ndarray:
    """Contrast-normalised luminance: (H, W, 3) uint8 RGB -> (H, W) uint8 grey after CLAHE
    (8x8 tiles, clip limit 2). HOG and the landmark model both run on grey images."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(grey)


def _hog_boxes(view: np.ndarray, max_side: int, upsample: int,
               adjust: float = 0.0) -> list[tuple[tuple[float, float, float, float], float]]:
    """HOG on ``view`` downscaled to ``max_side`` (0: as is). Returns ((x0, y0, x1, y1) in view
    pixels, score) pairs."""
    small, f = _downscale(view, max_side) if max_side else (view, 1.0)
    rects, scores, _ = _model("hog").run(small, upsample, adjust)
    return [((r.left() * f, r.top() * f, r.right() * f, r.bottom() * f), float(sc))
            for r, sc in zip(rects, scores, strict=False)]


def _faces_from_boxes(view: np.ndarray, found, min_extra: float = MIN_EXTRA_SCORE) -> list[Face]:
    """Faces (largest first) from (box, score) pairs in ``view`` pixels: the surest box, the
    others with score >= ``min_extra``; 5-point landmarks fitted on ``view`` at full resolution."""
    found = sorted(found, key=lambda bs: bs[1], reverse=True)
    found = found[:1] + [bs for bs in found[1:] if bs[1] >= min_extra]
    h, w = view.shape[:2]
    sp5 = _model("sp5")
    faces: list[Face] = []
    for (bx0, by0, bx1, by1), score in found:
        x0, y0, x1, y1 = max(0, int(bx0)), max(0, int(by0)), min(w, int(bx1)), min(h, int(by1))
        if min(x1 - x0, y1 - y0) < MIN_FACE_PX:
            continue
        if any(_overlaps(fc.box, (x0, y0, x1, y1)) for fc in faces):
            continue
        shape = sp5(view, dlib.rectangle(x0, y0, x1, y1))
        pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
        faces.append(Face(box=(x0, y0, x1, y1), landmarks=pts, score=float(score), shape=shape))
    faces.sort(key=lambda fc: fc.size, reverse=True)
    return faces[:MAX_FACES_PER_FRAME]


def _overlaps(a: tuple, b: tuple) -> bool:
    """True when two boxes overlap by more than half of the smaller one."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return False
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih > 0.5 * small


def detect_faces(rgb: np.ndarray, *, thorough: bool = False,
                 max_side: int = DETECT_MAX_SIDE, enhanced: bool | None = False) -> list[Face]:
    """Find faces in one frame, largest first.

    rgb: (H, W, 3) uint8 RGB. HOG runs on a copy downscaled to ``max_side``; when it finds
    nothing it retries with 2x upsampling (small faces). With ``thorough`` (photos) it then
    retries on a reflect-padded copy (faces cut by the border, as in tight face crops), on the
    whole frame at 2x for large photos (small faces), and with dlib's CNN detector. Landmarks
    are fitted on the full-resolution frame. ``enhanced``: look at a CLAHE copy of the frame
    (True) or the frame as is (False, as training does); None: as is, then, if that finds
    nothing, at the CLAHE copy (with ``thorough``, the 2x pass for large photos runs there).
    """
    if min(rgb.shape[:2]) < MIN_FACE_PX:  # too small to hold a face we could judge
        return []
    if enhanced is None:
        return (detect_faces(rgb, thorough=thorough, max_side=max_side, enhanced=False)
                or detect_faces(rgb, thorough=thorough, max_side=max_side, enhanced=True))
    view = enhance(rgb) if enhanced else rgb
    small, f = _downscale(view, max_side)
    found = _rects_hog(small, 0)
    if not found:
        found = _rects_hog(small, 1)
    off = 0  # offset of the image the rectangles refer to (padded copy) in small pixels
    if not found and thorough:
        ph = int(max(small.shape[:2]) * 0.25)
        padded = cv2.copyMakeBorder(small, ph, ph, ph, ph, cv2.BORDER_REFLECT_101)
        hs, ws = small.shape[:2]
        found = [(r, sc) for r, sc in _rects_hog(padded, 0)
                 if 0 <= r.center().x - ph < ws and 0 <= r.center().y - ph < hs]
        off = ph if found else 0
        if not found and f > 1.5 and enhanced:  # a large photo: small faces at 2x
            boxes = [bs for bs in _hog_boxes(view, 0, 1) if bs[1] >= SEARCH_MIN_SCORE]
            if boxes:
                return _faces_from_boxes(view, boxes)
        if not found:
            found = _rects_cnn(small if small.ndim == 3 else cv2.cvtColor(small, cv2.COLOR_GRAY2RGB))
    found.sort(key=lambda rs: rs[1], reverse=True)
    found = found[:1] + [rs for rs in found[1:] if rs[1] >= MIN_EXTRA_SCORE]
    faces: list[Face] = []
    sp5 = _model("sp5")
    h, w = rgb.shape[:2]
    for rect, score in found:
        rx0, ry0 = int((rect.left() - off) * f), int((rect.top() - off) * f)
        rx1, ry1 = int((rect.right() - off) * f), int((rect.bottom() - off) * f)
        x0, y0, x1, y1 = max(0, rx0), max(0, ry0), min(w, rx1), min(h, ry1)
        if min(x1 - x0, y1 - y0) < MIN_FACE_PX:
            continue
        if off:  # fit landmarks with the whole face in view, then move them back
            big = int(off * f)
            pad = cv2.copyMakeBorder(view, big, big, big, big, cv2.BORDER_REFLECT_101)
            shape = _shift_shape(sp5(pad, dlib.rectangle(rx0 + big, ry0 + big, rx1 + big, ry1 + big)), -big, -big)
        else:
            shape = sp5(view, dlib.rectangle(x0, y0, x1, y1))
        pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
        faces.append(Face(box=(x0, y0, x1, y1), landmarks=pts, score=float(score), shape=shape))
    faces.sort(key=lambda fc: fc.size, reverse=True)
    return faces[:MAX_FACES_PER_FRAME]


def _search(view: np.ndarray, passes) -> list[Face]:
    """Full-frame passes in order until one finds a face. Search passes (finer than the cheap
    ones) need a surer score: they scan many more windows."""
    for max_side, upsample in passes:
        min_score = SEARCH_MIN_SCORE if (max_side, upsample) in SEARCH_PASSES else -math.inf
        found = [bs for bs in _hog_boxes(view, max_side, upsample) if bs[1] >= min_score]
        if found:
            return _faces_from_boxes(view, found)
    return []


def _near(view: np.ndarray, face: Face) -> Face | None:
    """Re-detect ``face`` (seen in another frame) in ``view``: HOG on a crop around where it
    was, scaled so the face is about TRACK_FACE_PX wide. Returns the detection nearest to the
    old centre with a similar size, landmarks fitted at full resolution, or None."""
    h, w = view.shape[:2]
    s = face.size
    cx, cy = face.center
    half = s * (0.5 + TRACK_REACH)
    x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
    x1, y1 = min(w, int(cx + half)), min(h, int(cy + half))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    k = TRACK_FACE_PX / s
    crop = view[y0:y1, x0:x1]
    if crop.ndim == 3:  # grey: HOG on one channel is about 1.6x faster on these small crops
        crop = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    crop = cv2.resize(crop, (max(1, round((x1 - x0) * k)), max(1, round((y1 - y0) * k))),
                      interpolation=cv2.INTER_LINEAR if k > 1 else cv2.INTER_AREA)
    best, best_d = None, math.inf
    for (bx0, by0, bx1, by1), score in _hog_boxes(crop, 0, 0, -0.2):
        box = (x0 + bx0 / k, y0 + by0 / k, x0 + bx1 / k, y0 + by1 / k)
        size = max(box[2] - box[0], box[3] - box[1])
        d = math.dist(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), (cx, cy)) / s
        if d < TRACK_REACH and 1 / 1.6 < size / s < 1.6 and d < best_d:
            best, best_d = (box, score), d
    if best is None:
        return None
    faces = _faces_from_boxes(view, [best])
    return faces[0] if faces else None


def _matched(face: Face, faces: list[Face]) -> bool:
    return any(math.dist(face.center, f.center) < 0.6 * max(face.size, 1.0) for f in faces)


def find_faces(frames: list[np.ndarray], *, progress: Callable[[float], None] | None = None) -> list[list[Face]]:
    """Faces in the sampled frames of one clip: one list per frame, largest face first.

    frames: (H, W, 3) uint8 RGB each. KEY_FRAMES frames spread over the clip are searched whole
    with the cheap passes (a CLAHE copy when the clip is dark or flat); if they find nothing
    (or nothing sure), the middle one gets the search passes, down to faces about 40 px wide. Every face found is
    then followed through the other frames by re-detecting it in a small crop around where it
    was (forwards, then backwards), which costs a few milliseconds a frame instead of a
    whole-frame search.
    """
    n = len(frames)
    if n == 0:
        return []
    grey0 = cv2.cvtColor(frames[n // 2], cv2.COLOR_RGB2GRAY)
    dark = needs_enhancing(grey0)
    views: dict[int, np.ndarray] = {}

    def view(i: int) -> np.ndarray:
        if i not in views:
            views[i] = enhance(frames[i]) if dark else frames[i]
        return views[i]

    per: list[list[Face] | None] = [None] * n
    keys = sorted(set(np.linspace(0, n - 1, min(KEY_FRAMES, n)).round().astype(int).tolist()))
    mid = min(keys, key=lambda i: abs(i - (n - 1) / 2))
    if min(frames[0].shape[:2]) < MIN_FACE_PX:
        return [[] for _ in frames]
    per[mid] = _search(view(mid), CHEAP_PASSES[-1:])
    for i in keys:
        if i != mid:  # faces seen in the middle are followed there; look for large new ones
            per[i] = _search(view(i), CHEAP_PASSES[:1] if per[mid] else CHEAP_PASSES)
    if not any(f.score >= SURE_SCORE for i in keys for f in per[i]):
        # Nothing, or only weak detections (often a large false one): search the middle frame
        # finely too, and keep what is new.
        found = per[mid]
        for f in _search(view(mid), SEARCH_PASSES):
            if len(found) < MAX_FACES_PER_FRAME and not _matched(f, found):
                found.append(f)
    done = 0

    def follow(order) -> None:
        nonlocal done
        ref: list[Face] = []
        for i in order:
            found = list(per[i] or [])
            for face in ref:
                if len(found) < MAX_FACES_PER_FRAME and not _matched(face, found):
                    again = _near(view(i), face)
                    if again is not None and not _matched(again, found):
                        found.append(again)
            if per[i] is None and progress:
                done += 1
                progress(done / n)
            per[i] = found
            # Follow what this frame shows; a face missed here is looked for again next frame.
            ref = found + [f for f in ref if not _matched(f, found)]

    follow(range(n))
    follow(range(n - 1, -1, -1))
    out = [sorted(p or [], key=lambda fc: fc.size, reverse=True) for p in per]
    if progress:
        progress(1.0)
    return out


def warm_up() -> None:
    """Load the dlib models now (the first detection otherwise pays ~0.6 s for it)."""
    detect_faces(np.zeros((64, 64, 3), np.uint8))


def make_chip(rgb: np.ndarray, face: Face, size: int, padding: float) -> np.ndarray:
    """THE chip function: an aligned face chip (eyes level, face centred, fixed scale).

    rgb: (H, W, 3) uint8 RGB frame; returns (size, size, 3) uint8 RGB. ``padding`` is dlib's
    margin around the canonical face as a fraction of its size (0.2 = 20% each side). Where
    the chip reaches past the frame, the frame is extended by reflection (never black), so a
    face at the border or a tight crop looks as it did in training.
    """
    h, w = rgb.shape[:2]
    m = int(face.size * (0.7 + padding)) + 2
    x0, y0, x1, y1 = face.box
    cx0, cy0, cx1, cy1 = x0 - m, y0 - m, x1 + m, y1 + m
    shape, src = face.shape, rgb
    if cx0 < 0 or cy0 < 0 or cx1 > w or cy1 > h:
        rx0, ry0, rx1, ry1 = max(0, cx0), max(0, cy0), min(w, cx1), min(h, cy1)
        crop = rgb[ry0:ry1, rx0:rx1]
        border = (ry0 - cy0, cy1 - ry1, rx0 - cx0, cx1 - rx1)
        kind = cv2.BORDER_REFLECT_101 if max(border) < min(crop.shape[:2]) else cv2.BORDER_REPLICATE
        src = cv2.copyMakeBorder(crop, *border, kind)
        shape = _shift_shape(face.shape, -cx0, -cy0)
    chip = dlib.get_face_chip(np.ascontiguousarray(src), shape, size=size, padding=padding)
    return np.asarray(chip, dtype=np.uint8)


def reflect_pad(rgb: np.ndarray, frac: float = 0.25) -> np.ndarray:
    """Pad a tight face crop by reflection (``frac`` of its size each side) so the detector
    sees the whole head. (H, W, 3) -> (H + 2*ph, W + 2*pw, 3)."""
    h, w = rgb.shape[:2]
    ph, pw = int(h * frac), int(w * frac)
    return cv2.copyMakeBorder(rgb, ph, ph, pw, pw, cv2.BORDER_REFLECT_101)


def chip_from_crop(rgb: np.ndarray, size: int, padding: float) -> np.ndarray | None:
    """Chip the main face of a face crop (a training image or a photo); None if no face.

    The crop is reflect-padded first: data-set crops are tight, and dlib misses faces that
    touch the border.
    """
    padded = reflect_pad(rgb)
    faces = detect_faces(padded, thorough=False)
    if not faces:
        return None
    return make_chip(padded, faces[0], size, padding)


def landmarks68(chip: np.ndarray) -> np.ndarray:
    """68 dlib landmarks of the face in an aligned chip. Returns (68, 2) float32 (x, y).

    Chips are aligned, so the face sits in a known square; the predictor is started there.
    """
    s = chip.shape[0]
    rect = dlib.rectangle(int(0.18 * s), int(0.22 * s), int(0.82 * s), int(0.9 * s))
    shape = _model("sp68")(np.ascontiguousarray(chip), rect)
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


@dataclass
class TrackedFace:
    """One face in one sampled frame, assigned to a track."""

    frame: int  # position in the sampled-frame list
    face: Face
    track: int = -1


def link_tracks(per_frame: list[list[Face]]) -> list[list[TrackedFace]]:
    """Link faces of successive sampled frames into tracks (greedy, nearest centre).

    A face joins the track whose last face is nearest, if the centres are within 0.6 face
    sizes and the sizes within a factor 1.8; otherwise it starts a new track. Returns tracks
    ordered by length (longest first), each a list of TrackedFace in frame order.
    """
    tracks: list[list[TrackedFace]] = []
    for fi, faces in enumerate(per_frame):
        taken: set[int] = set()
        for face in faces:
            best, best_d = -1, math.inf
            for ti, tr in enumerate(tracks):
                if ti in taken:
                    continue
                last = tr[-1].face
                ratio = face.size / max(last.size, 1.0)
                d = math.dist(face.center, last.center) / max(last.size, 1.0)
                if d < 0.6 and 1 / 1.8 < ratio < 1.8 and d < best_d:
                    best, best_d = ti, d
            if best >= 0:
                tracks[best].append(TrackedFace(fi, face))
                taken.add(best)
            else:
                tracks.append([TrackedFace(fi, face)])
                taken.add(len(tracks) - 1)
    tracks.sort(key=len, reverse=True)
    for ti, tr in enumerate(tracks):
        for tf in tr:
            tf.track = ti
    return tracks
