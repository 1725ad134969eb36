"""Faces through a clip: a few key frames searched whole, the faces found followed between them.

:func:`find_faces` finds the faces of a clip's sampled frames (one list per frame);
:func:`link_tracks` links them into tracks. Detection, landmarks and the chip function are in
``faces.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from .faces import (
    DETECT_MAX_SIDE,
    MAX_FACES_PER_FRAME,
    MIN_FACE_PX,
    SEARCH_MIN_SCORE,
    Face,
    _faces_from_boxes,
    _hog_boxes,
    enhance,
    needs_enhancing,
)

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
KEY_FRAMES = 3  # sampled frames searched whole; the others follow the faces found (tracking)
TRACK_FACE_PX = 100  # a tracked face is re-detected in a crop scaled so it is about this wide
TRACK_REACH = 1.0  # the crop reaches this many face sizes beyond the face on each side


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
