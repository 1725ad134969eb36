"""Faces: dlib detection, 5-point landmarks and aligned chips (one frame at a time; clips:
``tracking.py``).

:func:`make_chip` is THE chip function: training (``training/dataset.py``) and serving
(``pipeline.py``) both cut faces with it, so the model never sees a different crop at
serving time than it was trained on.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
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
SEARCH_MIN_SCORE = 0.0  # a face found only by a fine (2x) pass needs this HOG score (dlib default)


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
    (x, y) in frame pixels; ``score``: detector confidence (higher is surer); ``tilt``: degrees
    the frame was turned (counter-clockwise) for the detector to find it (0: upright)."""

    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    score: float
    shape: dlib.full_object_detection = field(repr=False, default=None)
    tilt: float = 0.0

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


def needs_enhancing(grey: np.ndarray, margin: float = 0.0) -> bool:
    """True when a (H, W) uint8 frame is dark or flat enough for HOG to miss faces in it.
    ``margin`` moves both lines: > 0 says True more readily, < 0 less."""
    small = grey[::4, ::4]
    return float(small.mean()) < DARK_MEAN + margin or float(small.std()) < FLAT_STD + margin


def enhance(rgb: np.ndarray) -> np.ndarray:
    """Contrast-normalised luminance: (H, W, 3) uint8 RGB -> (H, W) uint8 grey after CLAHE
    (8x8 tiles, clip limit 2). HOG and the landmark model both run on grey images."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(grey)


# Local exposure correction (:func:`even_out`): the light level around each pixel is the
# luminance averaged over cells of 1/EXPOSURE_CELLS of the frame's long side (about 20 px in
# 1080p, a fifth of a small face), and each pixel is scaled towards EXPOSURE_TARGET by at most
# EXPOSURE_MAX_GAIN. Measured on a darker-skinned face in a dim room (widuwuoiur, face 110 px,
# grey mean 30): HOG's score on it goes from -0.69 on the CLAHE copy (missed) to +0.23.
EXPOSURE_CELLS, EXPOSURE_TARGET, EXPOSURE_MAX_GAIN = 96, 120.0, 8.0


def even_out(img: np.ndarray) -> np.ndarray:
    """Local exposure correction of the luminance: (H, W, 3) uint8 RGB or (H, W) grey -> (H, W)
    uint8 grey where every region is brought towards the same light level (a dark face in a
    dim room, or in front of a bright window, as bright as the rest). About 10 ms in 1080p."""
    grey = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    k = EXPOSURE_CELLS / max(h, w)
    small = cv2.resize(grey, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
    level = cv2.resize(cv2.GaussianBlur(small.astype(np.float32), (0, 0), 1.0), (w, h),
                       interpolation=cv2.INTER_LINEAR)
    gain = np.clip(EXPOSURE_TARGET / np.maximum(level, 1.0), 1.0, EXPOSURE_MAX_GAIN)
    return cv2.multiply(grey, gain, dtype=cv2.CV_8U)


def _hog_boxes(view: np.ndarray, max_side: int, upsample: int,
               adjust: float = 0.0) -> list[tuple[tuple[float, float, float, float], float]]:
    """HOG on ``view`` downscaled to ``max_side`` (0: as is). Returns ((x0, y0, x1, y1) in view
    pixels, score) pairs."""
    small, f = _downscale(view, max_side) if max_side else (view, 1.0)
    rects, scores, _ = _model("hog").run(small, upsample, adjust)
    return [((r.left() * f, r.top() * f, r.right() * f, r.bottom() * f), float(sc))
            for r, sc in zip(rects, scores, strict=False)]


def _faces_from_boxes(view: np.ndarray, found, min_extra: float = MIN_EXTRA_SCORE,
                      min_px: int = MIN_FACE_PX) -> list[Face]:
    """Faces (largest first) from (box, score) pairs in ``view`` pixels: the surest box, the
    others with score >= ``min_extra``, none under ``min_px``; 5-point landmarks fitted on
    ``view`` at full resolution."""
    found = sorted(found, key=lambda bs: bs[1], reverse=True)
    found = found[:1] + [bs for bs in found[1:] if bs[1] >= min_extra]
    h, w = view.shape[:2]
    sp5 = _model("sp5")
    faces: list[Face] = []
    for (bx0, by0, bx1, by1), score in found:
        x0, y0, x1, y1 = max(0, int(bx0)), max(0, int(by0)), min(w, int(bx1)), min(h, int(by1))
        if min(x1 - x0, y1 - y0) < min_px:
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
