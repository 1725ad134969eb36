"""Test media made on the fly from pictures bundled with scikit-image (no committed blobs).

- :func:`face_photo`: the astronaut portrait (a real face) as JPEG or PNG.
- :func:`face_clip`: ~3 s MP4 (mp4v) panning and zooming over the astronaut's face.
- :func:`no_face_clip`: the same over ``coffee()``, a picture with no face.
- :func:`truncated_clip`: a face clip cut in half (a damaged download).
- :func:`truncated_photo`: a PNG cut short.
- :func:`text_as_mp4`: a text file named ``.mp4``.
"""

from __future__ import annotations

from pathlib import Path

import engine_media
import numpy as np
import skimage.data
from PIL import Image


def astronaut() -> np.ndarray:
    """(512, 512, 3) uint8 RGB; dlib finds the face at about (179, 83)-(266, 170)."""
    return skimage.data.astronaut()


def face_photo(path: Path, fmt: str = "JPEG") -> Path:
    Image.fromarray(astronaut()).save(path, fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return path


def _pan_zoom(
    image: np.ndarray,
    path: Path,
    *,
    seconds: float,
    fps: int,
    size: tuple[int, int],
    start: tuple[float, float, float],
    end: tuple[float, float, float],
) -> Path:
    """Write an MP4 (mp4v) moving a square crop window from ``start`` to ``end``.

    ``start``/``end`` are (centre x, centre y, side) in source pixels; ``size`` is (w, h).
    """
    h, w = image.shape[:2]
    aspect = size[0] / size[1]
    if max(start[2], end[2]) * aspect > w or max(start[2], end[2]) > h:
        raise ValueError("crop window larger than the picture")
    n = max(2, int(round(seconds * fps)))
    return engine_media.pan_clip(image, path, n_frames=n, fps=fps, size=size, start=start, end=end)


def face_clip(path: Path, seconds: float = 3.0, fps: int = 15) -> Path:
    """A clip that slowly pans and zooms in on the astronaut's face (always in view)."""
    return _pan_zoom(
        astronaut(),
        path,
        seconds=seconds,
        fps=fps,
        size=(480, 360),
        start=(230, 180, 360),
        end=(222, 128, 220),
    )


def no_face_clip(path: Path, seconds: float = 3.0, fps: int = 15) -> Path:
    """A clip panning over a cup of coffee: no face anywhere."""
    return _pan_zoom(
        skimage.data.coffee(),
        path,
        seconds=seconds,
        fps=fps,
        size=(480, 360),
        start=(220, 200, 380),
        end=(380, 200, 380),
    )


def truncated_clip(path: Path) -> Path:
    """A face clip with its second half cut off, like an interrupted download."""
    full = face_clip(path.with_name(path.stem + "-full.mp4"))
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    full.unlink()
    return path


def truncated_photo(path: Path) -> Path:
    """A PNG of the astronaut cut short: the header is fine, the pixels are missing."""
    face_photo(path, "PNG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def text_as_mp4(path: Path) -> Path:
    path.write_text("This is not a video, whatever its name says.\n" * 20, encoding="utf-8")
    return path
