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
import dlib
import numpy as np

from .faces import (
    DETECT_MAX_SIDE,
    MAX_FACES_PER_FRAME,
    MIN_FACE_PX,
    SEARCH_MIN_SCORE,
    Face,
    _faces_from_boxes,
    _hog_boxes,
    _model,
    _rects_cnn,
    even_out,
    needs_enhancing,
)

# Key frames are searched whole with HOG passes, (longest side or 0 = as is, upsample), on a grey
# copy (evened out when the clip is dark): on one channel HOG is about 1.4x faster than on three, and
# finds as many faces (landmarks are still fitted on the colour frame, as in training). The HOG
# window is 80 px, so on a 1920x1080 frame the cheap pass (640 px copy) finds faces >= 240 px,
# the fine pass (the frame as is) faces >= 80 px: every face large enough to judge in a clip;
# on frames up to 1280 px the fine pass is a 768 px copy at 2x. The search pass, the whole
# frame at 2x (4x its pixels, about 0.4 s here), finds faces down to about 40 px; it runs on
# the middle key frame only, when no key frame so far holds a face (see ClipFaces).
CHEAP_PASS = (DETECT_MAX_SIDE, 0)
SEARCH_PASS = (0, 1)
# A whole-frame detection scoring below SURE_SCORE is kept only when dlib's CNN detector finds
# the face too, on a small crop with the face scaled to CNN_FACE_PX (about 0.1 s here; too slow
# for whole frames). Measured on the benchmark's key frames: it confirmed 30 of 31 weak true
# faces and none of 11 weak false ones (mostly large boxes on a blurred background). The search
# pass also reports HOG's near misses, down to VERIFY_FROM: a dim, low-contrast face (darker
# skin in poor light) scores just below HOG's line, where the CNN is sure of it. At most
# VERIFY_MAX candidates of a search pass are checked.
SURE_SCORE = 0.5
VERIFY_FROM, VERIFY_MAX, CNN_FACE_PX, CNN_MIN, CNN_REACH = -0.5, 4, 80, 0.5, 1.0
KEY_FRAMES = 3  # sampled frames searched whole; the others follow the faces found (tracking)
TRACK_FACE_PX = 100  # a tracked face is re-detected in a crop scaled so it is about this wide
TRACK_REACH = 1.0  # the crop reaches this many face sizes beyond the face on each side
TRACK_LINE, TRACK_MARGIN = -0.2, 0.3  # HOG score a followed face needs (see _track_line)
TRACK_SMOOTH = 1.0  # a lost face is looked for again in its crop smoothed by this (frame px)
# A followed face may come out smaller than MIN_FACE_PX: HOG's box is about 0.9x the face, so a
# face about 40 px wide (the smallest the search pass finds) gives boxes down to about 30 px.
TRACK_MIN_PX = 28
# HOG's filters (upright and slightly turned) miss heads tilted further, sooner in real footage
# than on a clean picture (the benchmark's clips turned by 20 degrees lost 5% of their faces).
# When a followed face is lost, its crop is also searched turned by these angles; when a clip
# shows no face at all, the middle key frame gets the fine pass turned by them. Found boxes and
# landmarks are turned back.
TILTS = (20.0, -20.0)
# A clip is looked at in grey, or evened out (local exposure correction, ``faces.even_out``)
# while it is dark or flat: the first frame decides, and a later frame changes that only when it is clearly on the other side (by this
# much grey level): a clip near the line would otherwise change views frame by frame.
DARK_HYSTERESIS = 8.0


def _fine_pass(shape: tuple[int, ...]) -> tuple[int, int]:
    """The pass that finds every face large enough to judge (>= about 80 px in 1080p)."""
    return (0, 0) if max(shape[:2]) > 1280 else (768, 1)


def _scan(grey: np.ndarray, view: np.ndarray, pass_: tuple[int, int]) -> list[Face]:
    """One whole-frame HOG pass on ``grey``; landmarks of what it finds fitted on ``view``."""
    found = _hog_boxes(grey, *pass_)
    return _faces_from_boxes(view, found) if found else []


def _confirmed(view: np.ndarray, box: tuple[float, float, float, float]) -> bool:
    """True when dlib's CNN detector finds a face at ``box`` (view pixels): on a crop reaching
    CNN_REACH box sizes beyond the box's centre, scaled so the face is about CNN_FACE_PX wide."""
    h, w = view.shape[:2]
    s = max(box[2] - box[0], box[3] - box[1])
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0, y0 = max(0, int(cx - CNN_REACH * s)), max(0, int(cy - CNN_REACH * s))
    x1, y1 = min(w, int(cx + CNN_REACH * s)), min(h, int(cy + CNN_REACH * s))
    k = CNN_FACE_PX / s
    crop = cv2.resize(view[y0:y1, x0:x1], (max(1, round((x1 - x0) * k)), max(1, round((y1 - y0) * k))),
                      interpolation=cv2.INTER_LINEAR if k > 1 else cv2.INTER_AREA)
    if crop.ndim == 2:
        crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2RGB)
    for rect, conf in _rects_cnn(np.ascontiguousarray(crop)):
        c = rect.center()
        d = math.dist((x0 + c.x / k, y0 + c.y / k), (cx, cy)) / s
        if conf >= CNN_MIN and d < 0.5 and 1 / 1.6 < rect.width() / k / s < 1.6:
            return True
    return False


def _sure(view: np.ndarray, faces: list[Face], followed: list[Face]) -> list[Face]:
    """``faces`` less the weak ones (score < SURE_SCORE) that are neither faces being
    ``followed`` (found and kept in an earlier frame) nor confirmed by the CNN."""
    def same(f: Face, g: Face) -> bool:
        return (math.dist(f.center, g.center) < 0.6 * min(f.size, g.size)
                and max(f.size, g.size) < 1.6 * min(f.size, g.size))

    return [f for f in faces if f.score >= SURE_SCORE or any(same(f, g) for g in followed)
            or _confirmed(view, f.box)]


def _search(grey: np.ndarray, view: np.ndarray, known: list[Face]) -> list[Face]:
    """The search pass: faces not in ``known`` that HOG finds at 2x, surely or confirmed by
    the CNN (its near misses too)."""
    faces: list[Face] = []
    checked = 0
    for box, score in sorted(_hog_boxes(grey, *SEARCH_PASS, VERIFY_FROM), key=lambda bs: -bs[1]):
        if len(known) + len(faces) >= MAX_FACES_PER_FRAME:
            break
        new = [f for f in _faces_from_boxes(view, [(box, score)]) if not _matched(f, known + faces)]
        if new and score < SURE_SCORE:
            checked += 1
            if checked > VERIFY_MAX or not _confirmed(view, box):
                continue
        faces += new
    return faces


def _scan_tilted(grey: np.ndarray, view: np.ndarray, pass_: tuple[int, int]) -> list[Face]:
    """The pass ``pass_`` on ``grey`` turned by each tilt in TILTS (about its centre)."""
    h, w = grey.shape[:2]
    k = (min(1.0, pass_[0] / max(h, w)) if pass_[0] else 1.0) * 2 ** pass_[1]
    faces: list[Face] = []
    for tilt in TILTS:
        turned, back = _turned(grey, (w / 2, h / 2), (round(w * k), round(h * k)), k, tilt)
        for (bx0, by0, bx1, by1), score in _hog_boxes(turned, 0, 0):
            if score < SEARCH_MIN_SCORE or len(faces) >= MAX_FACES_PER_FRAME:
                continue
            centre = tuple(back @ ((bx0 + bx1) / 2, (by0 + by1) / 2, 1.0))
            face = _tilted_face(view, centre, max(bx1 - bx0, by1 - by0) / k, score, tilt)
            if face is not None and not _matched(face, faces):
                faces.append(face)
    return faces


def _turned(img: np.ndarray, centre: tuple[float, float], out: tuple[int, int], k: float,
            tilt: float) -> tuple[np.ndarray, np.ndarray]:
    """``img`` scaled by ``k`` and turned by ``tilt`` degrees (counter-clockwise) about
    ``centre``, which lands in the middle of an ``out`` = (w, h) image. Returns that image and
    the (2, 3) affine map from its pixels back to ``img`` pixels."""
    m = cv2.getRotationMatrix2D(centre, tilt, k)
    m[:, 2] += (out[0] / 2 - centre[0], out[1] / 2 - centre[1])
    turned = cv2.warpAffine(img, m, out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return turned, cv2.invertAffineTransform(m)


def _tilted_face(view: np.ndarray, centre: tuple[float, float], size: float, score: float,
                 tilt: float) -> Face | None:
    """A face found ``tilt`` degrees turned: a square box of ``size`` about ``centre`` (frame
    pixels), 5-point landmarks fitted on ``view`` turned the same way, then turned back."""
    h, w = view.shape[:2]
    half = size / 2
    x0, y0 = max(0, int(centre[0] - half)), max(0, int(centre[1] - half))
    x1, y1 = min(w, int(centre[0] + half)), min(h, int(centre[1] + half))
    if min(x1 - x0, y1 - y0) < TRACK_MIN_PX:
        return None
    side = int(2 * size) + 1
    turned, back = _turned(view, centre, (side, side), 1.0, tilt)
    c = side / 2
    shape = _model("sp5")(np.ascontiguousarray(turned),
                          dlib.rectangle(int(c - half), int(c - half), int(c + half), int(c + half)))
    pts = np.array([[p.x, p.y, 1.0] for p in shape.parts()]) @ back.T
    shape = dlib.full_object_detection(dlib.rectangle(x0, y0, x1, y1),
                                       [dlib.point(round(x), round(y)) for x, y in pts])
    return Face(box=(x0, y0, x1, y1), landmarks=pts.astype(np.float32), score=score, shape=shape,
                tilt=tilt)


def _track_line(face: Face) -> float:
    """The HOG score a face followed from ``face`` needs: TRACK_LINE, or, for a face that
    scored under it (a dim one the CNN confirmed), TRACK_MARGIN below that face's score, down
    to VERIFY_FROM. The crop already pins where and how large the face must be."""
    return max(VERIFY_FROM, min(TRACK_LINE, face.score - TRACK_MARGIN))


def _near(grey: np.ndarray, view: np.ndarray, face: Face) -> Face | None:
    """Re-detect ``face`` (seen in another frame) in ``view``: HOG on a crop around where it
    was, scaled so the face is about TRACK_FACE_PX wide; when that finds nothing, the crop
    smoothed (noise in a dim frame, amplified by evening out, hides a weak face from HOG), then the
    crop turned by the tilts in TILTS (the face's own tilt first). Returns the detection nearest
    to the old centre with a similar size, landmarks fitted at full resolution, or None."""
    h, w = grey.shape[:2]
    s = face.size
    cx, cy = face.center
    half = s * (0.5 + TRACK_REACH)
    x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
    x1, y1 = min(w, int(cx + half)), min(h, int(cy + half))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    k = TRACK_FACE_PX / s
    upright = cv2.resize(grey[y0:y1, x0:x1], (max(1, round((x1 - x0) * k)), max(1, round((y1 - y0) * k))),
                         interpolation=cv2.INTER_LINEAR if k > 1 else cv2.INTER_AREA)
    tilts = sorted({0.0, face.tilt, *TILTS}, key=lambda t: (t != face.tilt, abs(t)))
    tilts.insert(tilts.index(0.0) + 1, None)  # None: upright, smoothed
    for tilt in tilts:
        if tilt is None:
            crop, tilt = cv2.GaussianBlur(upright, (0, 0), TRACK_SMOOTH * max(k, 1.0)), 0.0
            back = np.array([[1 / k, 0, x0], [0, 1 / k, y0]])
        elif tilt == 0.0:
            crop = upright
            back = np.array([[1 / k, 0, x0], [0, 1 / k, y0]])
        else:
            side = max(1, round(2 * half * k))
            crop, back = _turned(grey, (cx, cy), (side, side), k, tilt)
        best, best_d = None, math.inf
        for (bx0, by0, bx1, by1), score in _hog_boxes(crop, 0, 0, _track_line(face)):
            centre = tuple(back @ ((bx0 + bx1) / 2, (by0 + by1) / 2, 1.0))
            size = max(bx1 - bx0, by1 - by0) / k
            d = math.dist(centre, (cx, cy)) / s
            if d < TRACK_REACH and 1 / 1.6 < size / s < 1.6 and d < best_d:
                box = (x0 + bx0 / k, y0 + by0 / k, x0 + bx1 / k, y0 + by1 / k)
                best, best_d = (box, centre, size, score), d
        if best is None:
            continue
        box, centre, size, score = best
        if tilt:
            return _tilted_face(view, centre, size, score, tilt)
        faces = _faces_from_boxes(view, [(box, score)], min_px=TRACK_MIN_PX)
        return faces[0] if faces else None
    return None


def _matched(face: Face, faces: list[Face]) -> bool:
    return any(math.dist(face.center, f.center) < 0.6 * max(face.size, 1.0) for f in faces)


class ClipFaces:
    """The faces of a clip's sampled frames, found as the frames come: :meth:`add` each frame
    in order (while the next one is decoded), then :meth:`finish`.

    ``n``: how many frames will come. KEY_FRAMES of them, spread over the clip, are searched
    whole: the first with the cheap pass (large faces), the middle one with the fine pass
    (every face large enough to judge), the last with the cheap pass once a face is known,
    else the fine one. If no key frame so far holds a face, the middle one (and in a dark clip
    then the last) also gets the search pass (faces down to about 40 px) on the frame evened out (local
    exposure correction: a face in shadow or against a bright window), and if that finds none
    in the middle frame, the fine pass turned by +-20 degrees. A face found only evened out
    makes the whole clip looked at evened out. A weak detection (HOG score < SURE_SCORE) is kept only when it is a face
    already followed or the CNN confirms it. Every face found is followed into the next frame
    by re-detecting it in a small crop around where it was (a few milliseconds a frame instead
    of a whole-frame search), forwards as the frames come, then backwards. Frames are looked
    at in grey, or evened out while the clip is dark or flat (see DARK_HYSTERESIS).
    """

    def __init__(self, n: int, progress: Callable[[float], None] | None = None):
        self.n, self.progress = n, progress
        self.keys = sorted(set(np.linspace(0, n - 1, min(KEY_FRAMES, n)).round().astype(int).tolist()))
        self.mid = min(self.keys, key=lambda i: abs(i - (n - 1) / 2)) if n else 0
        self.greys: list[np.ndarray] = []  # what HOG looks at
        self.views: list[np.ndarray] = []  # what landmarks are fitted on (the frame, or the evened-out copy)
        self.per: list[list[Face]] = []
        self.ref: list[Face] = []  # the faces to look for in the next frame
        self.dark: bool | None = None
        self.evened = False  # True once a face was found only in an evened-out frame (backlit)

    def add(self, frame: np.ndarray) -> None:
        """The next sampled frame, (H, W, 3) uint8 RGB."""
        i = len(self.per)
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        margin = 0.0 if self.dark is None else DARK_HYSTERESIS if self.dark else -DARK_HYSTERESIS
        self.dark = needs_enhancing(grey, margin)
        if self.dark or self.evened:
            grey = even_out(grey)
            self.views.append(grey)
        else:
            self.views.append(frame)
        self.greys.append(grey)
        found: list[Face] = []
        if min(frame.shape[:2]) >= MIN_FACE_PX:
            if i in self.keys:
                found = self._key_frame(i)
            found = self._follow(i, found)
        self.per.append(found)
        if self.progress:
            self.progress(len(self.per) / max(self.n, 1))

    def _key_frame(self, i: int) -> list[Face]:
        grey, view = self.greys[i], self.views[i]
        fine = _fine_pass(grey.shape)
        known = [self.per[k] for k in self.keys if k < i]
        pass_ = fine if i == self.mid or (i > self.mid and not any(known)) else CHEAP_PASS
        faces = _sure(view, _scan(grey, view, pass_), self.ref)
        if (i == self.mid or (i > self.mid and self.dark)) and not any([*known, faces]):
            # No face yet: search this frame finely (evened out: a face in shadow, against a
            # bright window), then, in the middle frame, turned. A dark clip's last key frame
            # is searched too (the middle one may show a dim face turned away).
            evened = grey if self.views[i] is grey else even_out(grey)
            faces = _search(evened, evened, [])
            if faces and evened is not grey:  # found only evened out: look at the clip so
                self._even_out()
            elif not faces and i == self.mid:
                faces = _scan_tilted(grey, view, fine)
        return faces

    def _even_out(self) -> None:
        """Look at this clip evened out from now on, and at the frames already added too."""
        self.evened = True
        for k, view in enumerate(self.views):
            if view.ndim == 3:
                self.greys[k] = self.views[k] = even_out(self.greys[k])

    def _follow(self, i: int, found: list[Face]) -> list[Face]:
        """``found`` (faces seen in frame i) and the faces of ``self.ref`` seen again there."""
        found = list(found)
        for face in self.ref:
            if len(found) < MAX_FACES_PER_FRAME and not _matched(face, found):
                again = _near(self.greys[i], self.views[i], face)
                if again is not None and not _matched(again, found):
                    found.append(again)
        # Follow what this frame shows; a face missed here is looked for again next frame.
        self.ref = found + [f for f in self.ref if not _matched(f, found)]
        return found

    def finish(self) -> list[list[Face]]:
        """One list of faces per frame added, largest first."""
        self.ref = []
        for i in range(len(self.per) - 1, -1, -1):
            if min(self.greys[i].shape[:2]) >= MIN_FACE_PX:
                self.per[i] = self._follow(i, self.per[i])
        if self.progress:
            self.progress(1.0)
        return [sorted(p, key=lambda fc: fc.size, reverse=True) for p in self.per]


def find_faces(frames: list[np.ndarray], *, progress: Callable[[float], None] | None = None) -> list[list[Face]]:
    """Faces in the sampled frames of one clip: one list per frame, largest face first.

    frames: (H, W, 3) uint8 RGB each. See :class:`ClipFaces`, which this runs.
    """
    clip = ClipFaces(len(frames), progress)
    for frame in frames:
        clip.add(frame)
    return clip.finish()


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
