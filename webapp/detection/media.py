"""Reading media: probe a file by its content, load a photo, sample frames from a clip.

No TensorFlow here: the website calls :func:`probe_media` inside the upload request.

Decoding is the floor of the engine's speed, so clips are decoded with PyAV (threaded FFmpeg)
and, for long clips, with non-reference frames skipped (they are never a decoder dependency,
so skipping them halves the work and leaves evenly spread frames to sample from). Only the
frames chosen for analysis are converted to RGB arrays, so memory stays bounded whatever the
clip's length.
"""

from __future__ import annotations

import math
import queue
import struct
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import (
    CorruptMediaError,
    MediaTooLargeError,
    MediaTooLongError,
    NoFramesError,
    UnsupportedMediaError,
)
from .result import MediaInfo

#: Pillow format names we accept as photos.
IMAGE_FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "MPO"}
#: File name extensions the website offers (content decides; this is only for messages/forms).
VIDEO_EXTENSIONS = ("mp4", "mov", "avi", "mkv", "webm", "mpg", "mpeg", "m4v")
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp")
#: Containers FFmpeg may report for the videos we accept (demuxer names, comma lists split).
VIDEO_CONTAINERS = {"mov", "mp4", "m4a", "3gp", "3g2", "mj2", "avi", "matroska", "webm", "mpeg",
                    "mpegts", "mpegvideo", "m4v", "h264", "hevc"}
#: FFmpeg demuxers chosen from the file name alone (a non-picture named .jpg opens as "image2").
GUESSED_FROM_NAME = {"image2", "image2pipe"}

#: What Pillow's decoders raise on damaged or hostile pictures.
IMAGE_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error)

DEFAULT_MAX_PIXELS = 40_000_000  # a photo larger than this is refused before decoding
MAX_VIDEO_PIXELS = 7680 * 4320  # 8K; larger video frames are refused
MIN_FPS = 1 / 60  # slower than a frame a minute: the header's timing is broken
WORK_MAX_SIDE = 1920  # sampled frames are downscaled to this longest side (bounded memory)

ProgressFn = Callable[[float], None]


@dataclass
class SampledFrames:
    """Frames chosen for analysis.

    ``frames``: list of (H, W, 3) uint8 RGB arrays, at most ``WORK_MAX_SIDE`` on the long side.
    ``timestamps``: seconds from the start of the clip, one per frame (0.0 for a photo).
    ``indices``: index of each frame among the decoded stream (0 for a photo).
    ``scale``: factor from work-frame pixels back to source pixels (>= 1).
    """

    info: MediaInfo
    frames: list[np.ndarray]
    timestamps: list[float]
    indices: list[int]
    scale: float = 1.0
    warnings: list[str] | None = None


def _open_image(path: Path) -> Image.Image | None:
    """Open a file as a Pillow image (header only), or None if it is not an image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except UnidentifiedImageError:
        return None
    except Image.DecompressionBombError as err:
        raise MediaTooLargeError(
            "This picture has too many pixels to analyse safely. Please upload a smaller image."
        ) from err
    except OSError:
        return None
    return img


def _check_image(img: Image.Image, max_pixels: int) -> None:
    if img.format == "GIF":
        raise UnsupportedMediaError(
            "GIF files are not supported. Please upload a photo (JPEG, PNG, WebP, BMP) or a video "
            "(MP4, MOV, AVI, MKV, WebM)."
        )
    if img.format not in IMAGE_FORMATS:
        raise UnsupportedMediaError(
            f"{img.format or 'This'} images are not supported. Please upload JPEG, PNG, WebP or BMP."
        )
    w, h = img.size
    if w < 1 or h < 1:
        raise CorruptMediaError("This picture has no pixels.")
    if w * h > max_pixels:
        raise MediaTooLargeError(
            f"This picture is {w}x{h} pixels; the limit is {max_pixels / 1e6:.3g} megapixels. "
            "Please upload a smaller image."
        )


def _image_info(img: Image.Image) -> MediaInfo:
    w, h = img.size
    orientation = img.getexif().get(0x0112, 1) if hasattr(img, "getexif") else 1
    if orientation in (5, 6, 7, 8):  # rotated by 90 degrees: width and height swap
        w, h = h, w
    return MediaInfo(media_type="image", width=w, height=h, duration=0.0, fps=0.0, frame_count=1,
                     codec=(img.format or "").lower())


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    if not container.streams.video:
        if container.streams.audio:
            raise NoFramesError("This file has sound but no picture. Please upload a video with a visible face.")
        raise NoFramesError("This file has no video stream.")
    return container.streams.video[0]


def _video_info(container: av.container.InputContainer, stream) -> MediaInfo:
    ctx = stream.codec_context
    fps = float(stream.average_rate or stream.guessed_rate or 0.0)
    if not math.isfinite(fps) or fps <= 0 or fps > 1000:
        fps = 0.0
    if 0 < fps < MIN_FPS:  # e.g. a time scale of 0 in the MP4 header: 10 frames "last" 5120 s
        raise CorruptMediaError(
            f"This video's header is damaged: its timing says one frame every {1 / fps:.0f} s, "
            "so its frames cannot be read in order. Please re-export or re-encode the video."
        )
    duration = 0.0
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / 1_000_000
    if not math.isfinite(duration) or duration < 0:
        duration = 0.0
    frames = int(stream.frames or 0)
    if frames <= 0 and duration > 0 and fps > 0:
        frames = int(round(duration * fps))
    if duration <= 0 and frames > 0 and fps > 0:
        duration = frames / fps
    return MediaInfo(media_type="video", width=int(ctx.width or 0), height=int(ctx.height or 0),
                     duration=round(duration, 3), fps=round(fps, 3), frame_count=frames,
                     codec=ctx.name or "")


def _looks_like_video(path: Path) -> bool:
    """True when the first bytes carry a video container signature (MP4/MOV, AVI, MKV/WebM, MPEG)."""
    with path.open("rb") as fh:
        head = fh.read(16)
    return (head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free")
            or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
            or head[:4] == b"\x1a\x45\xdf\xa3"
            or head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"))


def _open_video(path: Path):
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as err:
        if _looks_like_video(path):
            raise CorruptMediaError(
                "This video file is damaged or incomplete (was the upload or download cut short?). "
                "Please upload the complete file."
            ) from err
        raise UnsupportedMediaError(
            "This file is neither a photo nor a video we can read. Supported: JPEG, PNG, WebP, BMP "
            "photos and MP4, MOV, AVI, MKV, WebM videos."
        ) from err
    fmt = set((container.format.name or "").split(","))
    if not fmt & VIDEO_CONTAINERS:
        container.close()
        if fmt & GUESSED_FROM_NAME:  # FFmpeg only trusted the file name (HTML named .jpg...)
            raise UnsupportedMediaError(
                "This file is neither a photo nor a video we can read. Supported: JPEG, PNG, "
                "WebP, BMP photos and MP4, MOV, AVI, MKV, WebM videos."
            )
        raise UnsupportedMediaError(
            f"This file's format ({container.format.long_name or container.format.name}) is not a "
            "supported video or photo format."
        )
    return container


def _check_video(info: MediaInfo, max_duration: float | None) -> None:
    if info.width <= 0 or info.height <= 0:
        raise CorruptMediaError("This video's picture size is missing or zero; the file looks damaged.")
    if info.width * info.height > MAX_VIDEO_PIXELS:
        raise MediaTooLargeError(
            f"This video is {info.width}x{info.height}; the largest supported is 8K (7680x4320)."
        )
    if max_duration is not None and info.duration > max_duration:
        raise MediaTooLongError(
            f"This video lasts {info.duration:.0f} s; the limit is {max_duration:.0f} s. "
            "Please trim it to the part with the face you want checked."
        )


def probe_media(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                max_duration: float | None = None) -> MediaInfo:
    """Check that ``path`` is a photo or video we can analyse, by content, and describe it.

    Cheap: reads headers and decodes at most one picture. Raises a :class:`DetectionError`
    subclass with a user-facing message when the file cannot be analysed.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise CorruptMediaError("The file is empty.")
    img = _open_image(path)
    if img is not None:
        with img:
            _check_image(img, max_pixels)
            try:
                img.load()
                return _image_info(img)
            except IMAGE_DECODE_ERRORS as err:
                raise CorruptMediaError("This picture is damaged and cannot be decoded.") from err
    container = _open_video(path)
    with container:
        stream = _video_stream(container)
        info = _video_info(container, stream)
        _check_video(info, max_duration)
        try:
            for frame in container.decode(stream):
                if frame.width > 0:
                    break
            else:
                raise NoFramesError("This video contains no picture frames.")
        except av.error.FFmpegError as err:
            raise CorruptMediaError("This video is damaged: its first frame cannot be decoded.") from err
    return info


def load_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> SampledFrames:
    """Load a photo as one RGB frame, EXIF orientation applied. Any mode (CMYK, 16-bit, grey)."""
    path = Path(path)
    img = _open_image(path)
    if img is None:
        raise UnsupportedMediaError("This file is not a picture we can read.")
    with img:
        _check_image(img, max_pixels)
        fmt = (img.format or "").lower()
        try:
            img = ImageOps.exif_transpose(img)
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.float64)
                top = 65535.0 if arr.max() > 255 else 255.0
                grey = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
                rgb = np.repeat(grey[..., None], 3, axis=2)
            else:
                rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
        except IMAGE_DECODE_ERRORS as err:
            raise CorruptMediaError("This picture is damaged and cannot be decoded.") from err
    h, w = rgb.shape[:2]
    info = MediaInfo(media_type="image", width=w, height=h, duration=0.0, fps=0.0, frame_count=1,
                     codec=fmt)
    return SampledFrames(info=info, frames=[np.ascontiguousarray(rgb)], timestamps=[0.0],
                         indices=[0], warnings=[])


def _rotate(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a display-matrix rotation (degrees counter-clockwise, as FFmpeg reports it)."""
    k = (int(round(rotation / 90)) % 4)
    return np.ascontiguousarray(np.rot90(rgb, k=k)) if k else rgb


def sample_video(path: str | Path, n_frames: int, *, max_duration: float | None = None,
                 progress: ProgressFn | None = None,
                 on_frame: Callable[[np.ndarray], None] | None = None) -> SampledFrames:
    """Decode a clip once and keep ``n_frames`` frames spread evenly over its whole length.

    Returns fewer frames when the clip has fewer. A damaged tail ends decoding early with a
    warning (the frames before it are still analysed); no decodable frame at all raises.
    ``on_frame`` is called with each kept frame, in order, as soon as it is decoded.
    """
    path = Path(path)
    container = _open_video(path)
    with container:
        stream = _video_stream(container)
        info = _video_info(container, stream)
        _check_video(info, max_duration)
        scale = max(1.0, max(info.width, info.height) / WORK_MAX_SIDE)
        out_w = int(round(info.width / scale)) // 2 * 2 or info.width
        out_h = int(round(info.height / scale)) // 2 * 2 or info.height
        stream.thread_type = "AUTO"
        # Long clips: skip non-reference frames (B-frames) — about half the decode work.
        if info.frame_count >= 6 * n_frames:
            stream.codec_context.skip_frame = "NONREF"
        expected = info.duration if info.duration > 0 else None
        targets = (np.linspace(0.0, expected * (1 - 1 / max(info.frame_count, 1)), n_frames)
                   if expected else None)
        frames: list[np.ndarray] = []
        stamps: list[float] = []
        indices: list[int] = []
        notes: list[str] = []
        # Without a known duration, keep every ``stride``-th frame and thin out when full.
        stride = 1
        buffer: list[tuple[int, float, av.VideoFrame]] = []
        t0: float | None = None
        prev_t = -math.inf
        index = -1
        rotation = 0

        def to_rgb(fr: av.VideoFrame) -> np.ndarray:
            rgb = fr.to_ndarray(format="rgb24", width=out_w, height=out_h)
            return _rotate(rgb, rotation)

        try:
            for fr in container.decode(stream):
                index += 1
                if index == 0:
                    rotation = int(getattr(fr, "rotation", 0) or 0)
                t = float(fr.time) if fr.time is not None else (index / info.fps if info.fps else float(index))
                if t0 is None:
                    t0 = t
                t -= t0
                if t <= prev_t and info.fps:  # stuck or backwards (0-fps header): step on
                    t = prev_t + 1 / info.fps
                prev_t = t
                if targets is not None:
                    k = len(frames)
                    if k < n_frames and t + 1e-6 >= targets[k]:
                        frames.append(to_rgb(fr))
                        stamps.append(round(t, 3))
                        indices.append(index)
                        if on_frame:
                            on_frame(frames[-1])
                        if progress:
                            progress(len(frames) / n_frames)
                    if len(frames) >= n_frames:
                        break
                else:
                    if index % stride == 0:
                        buffer.append((index, t, to_rgb(fr)))
                        if len(buffer) >= 2 * n_frames:
                            buffer = buffer[::2]
                            stride *= 2
        except av.error.FFmpegError:
            notes.append(f"The file is damaged after {max(stamps[-1] if stamps else 0.0, 0.0):.1f} s; "
                         "only the readable part was analysed.")
        last_t = stamps[-1] if stamps else 0.0
        if (expected and not notes and len(frames) < n_frames
                and last_t < expected - max(2 / info.fps if info.fps else 0.0, 0.5)):
            notes.append(f"The file ends after {last_t:.1f} s though it says it lasts {expected:.1f} s "
                         "(damaged or cut short); only the readable part was analysed.")
        if targets is None and buffer:
            pick = np.unique(np.linspace(0, len(buffer) - 1, min(n_frames, len(buffer))).round().astype(int))
            for i in pick:
                indices.append(buffer[i][0])
                stamps.append(round(buffer[i][1], 3))
                frames.append(buffer[i][2])
                if on_frame:
                    on_frame(frames[-1])
    if not frames:
        if notes:
            raise CorruptMediaError("This video is damaged: no frame could be decoded.")
        raise NoFramesError("This video contains no picture frames.")
    if info.duration <= 0 and stamps:
        info.duration = stamps[-1]
    if rotation % 180:
        info.width, info.height = info.height, info.width
    info.rotation = rotation
    return SampledFrames(info=info, frames=frames, timestamps=stamps, indices=indices, scale=scale,
                         warnings=notes)


def is_photo(path: str | Path) -> bool:
    """True when ``path`` opens as a picture (header only): what :func:`load_media` decides by."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return False
    img = _open_image(path)
    if img is None:
        return False
    img.close()
    return True


def load_media(path: str | Path, n_frames: int, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               max_duration: float | None = None, progress: ProgressFn | None = None,
               on_frame: Callable[[np.ndarray], None] | None = None) -> SampledFrames:
    """Load a photo (one frame) or sample ``n_frames`` from a clip, deciding by content."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise CorruptMediaError("The file is empty.")
    if is_photo(path):
        sampled = load_image(path, max_pixels=max_pixels)
        if on_frame:
            on_frame(sampled.frames[0])
        return sampled
    return sample_video(path, n_frames, max_duration=max_duration, progress=progress,
                        on_frame=on_frame)


class FrameStream:
    """:func:`load_media` in a background thread: iterate to get the frames as they are
    decoded, then :meth:`result` for the :class:`SampledFrames` (or the error it raised).

    The caller can find faces in one frame while the next is decoded: FFmpeg and dlib both
    release the GIL, so the two overlap on a second core.
    """

    _END = object()

    def __init__(self, path: str | Path, n_frames: int, **kwargs):
        self._frames: queue.Queue = queue.Queue()
        self._result: SampledFrames | None = None
        self._error: BaseException | None = None
        self.finished_at: float | None = None  # time.perf_counter() when decoding ended
        self._thread = threading.Thread(target=self._run, args=(path, n_frames), kwargs=kwargs,
                                        name="decode", daemon=True)
        self._thread.start()

    def _run(self, path, n_frames: int, **kwargs) -> None:
        try:
            self._result = load_media(path, n_frames, on_frame=self._frames.put, **kwargs)
        except BaseException as err:  # handed to the caller by result()
            self._error = err
        finally:
            self.finished_at = time.perf_counter()
            self._frames.put(self._END)

    def __iter__(self) -> Iterator[np.ndarray]:
        """(H, W, 3) uint8 RGB frames, in order, as they are decoded (once)."""
        while (frame := self._frames.get()) is not self._END:
            yield frame

    def result(self) -> SampledFrames:
        """Wait for the decoding to end; its :class:`SampledFrames`, or the error it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result
