"""Typed errors of the detection engine.

Every error carries a message a person can act on. The engine never returns a
made-up score: when it cannot analyse a file it raises one of these.
"""

from __future__ import annotations


class DetectionError(Exception):
    """Base class: the media could not be analysed. ``str(err)`` is user-facing."""

    code = "detection_error"


class UnsupportedMediaError(DetectionError):
    """The file is not a photo or video format we can read (checked by content)."""

    code = "unsupported_media"


class CorruptMediaError(DetectionError):
    """The file claims to be media but cannot be decoded."""

    code = "corrupt_media"


class NoFramesError(DetectionError):
    """The video has no decodable picture frames (empty, zero-frame or audio-only)."""

    code = "no_frames"


class MediaTooLargeError(DetectionError):
    """The picture is too large to decode safely (pixel count over the limit)."""

    code = "media_too_large"


class MediaTooLongError(DetectionError):
    """The video is longer than the configured maximum duration."""

    code = "media_too_long"


class ModelNotFoundError(DetectionError):
    """No trained model could be loaded from the model directory."""

    code = "model_not_found"


class ModelOutputError(DetectionError):
    """The network answered a non-finite score (NaN or infinity): a broken model, never a verdict."""

    code = "model_output_error"
