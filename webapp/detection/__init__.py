"""The detection engine (the design's "model_utils"). Never imports Flask.

Light modules (errors, result, media) import without TensorFlow; ``pipeline`` loads it.
"""

from .errors import DetectionError
from .result import Analysis, MediaInfo

__all__ = ["Analysis", "DetectionError", "MediaInfo"]
