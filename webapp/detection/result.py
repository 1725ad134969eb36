"""The engine's result types. Pure Python (no TensorFlow), so the website can import them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

Verdict = Literal["real", "inconclusive", "fake", "no_face"]
MediaType = Literal["video", "image"]


# Faces narrower than this (median over a track, detector box, pixels of the source) are shown
# but not judged, unless a model's config.json says otherwise ("min_face_px"). The default is
# the line measured for 2026.11.22-lite0 (`python -m benchmarks.faces --sizes`): its clips
# called real faces of 80 px fake. A model may also set "vouch_face_px": between the two lines
# a face is scored and can be called "likely fake", but never "likely real" (measured per
# model with `python -m benchmarks.false_alarms --split val --min-face-px 40,40 ...`). Below the
# vouch line a face may not call the file "likely fake" by itself either, unless the model's
# config sets "small_face_fake_ok_from_px" (written only by a measurement on real footage:
# `python -m benchmarks.small_faces --write`, at most 2% of real faces of that size called fake).
MIN_JUDGED_FACE_PX = {"video": 100, "image": 60}


def face_lines(config: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """A model's face-size lines from its config (a ``config.json`` dict):
    ``{"judged": {"video": px, "image": px}, "vouched": {...}, "accused": {...}}``:
    judged <= accused <= vouched. "accused": the narrowest face that may call a file "likely
    fake" by itself (the vouch line unless a measured ``small_face_fake_ok_from_px`` is lower)."""
    judged = {m: int((config.get("min_face_px") or {}).get(m, px)) for m, px in MIN_JUDGED_FACE_PX.items()}
    vouched = {m: max(px, int((config.get("vouch_face_px") or {}).get(m, 0))) for m, px in judged.items()}
    measured = config.get("small_face_fake_ok_from_px") or {}
    accused = {m: min(vouched[m], max(px, int(measured.get(m, vouched[m])))) for m, px in judged.items()}
    return {"judged": judged, "vouched": vouched, "accused": accused}


@dataclass
class MediaInfo:
    """What probing a file found, before any face work.

    ``duration`` is 0.0 for photos; ``fps`` is 0.0 for photos; ``frame_count`` is 1 for photos.
    """

    media_type: MediaType
    width: int
    height: int
    duration: float
    fps: float
    frame_count: int
    codec: str = ""
    rotation: int = 0


@dataclass
class FrameScore:
    """One scored face in one sampled frame. ``box`` is (x0, y0, x1, y1) in source pixels."""

    index: int
    timestamp: float
    track: int
    box: tuple[int, int, int, int]
    p_fake: float | None  # None: the face is too small to judge


@dataclass
class TrackScore:
    """A face followed across frames. ``p_fake`` is the calibrated temporal (LSTM) score; None
    (and ``judged`` False) when the face is too small to judge."""

    id: int
    n_frames: int
    p_fake: float | None
    p_fake_frame_mean: float | None
    first_timestamp: float
    last_timestamp: float
    face_px: int = 0  # median face width in source pixels
    judged: bool = True  # False: too small to judge; shown, but not part of the verdict


@dataclass
class Chip:
    """An aligned face chip that was scored. ``image``: (S, S, 3) uint8 RGB. Not serialised."""

    index: int
    timestamp: float
    track: int
    p_fake: float | None  # None: too small to judge
    image: np.ndarray = field(repr=False)
    heatmap: np.ndarray | None = field(default=None, repr=False)  # (S, S, 3) uint8 RGB overlay


@dataclass
class Analysis:
    """Everything the engine found about one file. ``to_dict()`` is JSON-serialisable.

    ``p_fake`` is None exactly when ``verdict == "no_face"``: a missing face is never "real".
    When faces were found but all were too small to judge, the verdict is still "no_face" and
    ``largest_face_px`` (source pixels) says how big the largest was; ``min_face_px`` is the
    size a face needs to be judged. A face between ``min_face_px`` and ``vouch_face_px`` is
    judged but never called "real" (``unvouched``), and called "fake" only from
    ``fake_ok_from_px`` (``unaccused``: the score was in the fake band, but every face that put
    it there was narrower, so the verdict is "inconclusive").
    """

    path: str
    media: MediaInfo
    frames_sampled: int
    faces_found: int
    tracks: list[TrackScore]
    frames: list[FrameScore]
    p_fake: float | None
    verdict: Verdict
    thresholds: dict[str, float]
    model_version: str
    timings: dict[str, float]
    chips: list[Chip] = field(default_factory=list, repr=False)
    warnings: list[str] = field(default_factory=list)
    min_face_px: int = 0
    largest_face_px: int | None = None
    #: Narrowest face the model may call "likely real" (source pixels); ``unvouched``: the score
    #: was in the real band but a deciding face was narrower, so the verdict is "inconclusive".
    vouch_face_px: int = 0
    unvouched: bool = False
    #: Narrowest face that may call the file "likely fake" by itself (source pixels).
    fake_ok_from_px: int = 0
    unaccused: bool = False

    @property
    def too_small(self) -> bool:
        """Faces were found, but none large enough to judge."""
        return self.verdict == "no_face" and self.largest_face_px is not None

    @property
    def suspicious_track(self) -> TrackScore | None:
        """The track that decided the verdict (the most suspicious judged one), if any."""
        judged = [t for t in self.tracks if t.judged]
        return max(judged, key=lambda t: t.p_fake) if judged else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("chips")
        d["chips"] = [
            {"index": c.index, "timestamp": c.timestamp, "track": c.track, "p_fake": c.p_fake,
             "has_heatmap": c.heatmap is not None}
            for c in self.chips
        ]
        return d

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)
