"""Media generators for the engine tests, made on the fly from scikit-image pictures.

No committed blobs: every file is written into a test's temporary folder.

- :func:`pan_clip`: an MP4 (mp4v) moving/zooming a window over a picture.
- :func:`face_clip` / :func:`no_face_clip`: that over ``astronaut()`` (a face) / ``coffee()``.
- :func:`photo`: the astronaut as JPEG, PNG, WebP or BMP.
- :func:`exif_rotated_jpeg`: pixels stored on their side with EXIF orientation 6.
- :func:`png16`, :func:`cmyk_jpeg`, :func:`grey_png`: unusual pixel modes.
- :func:`png_claiming`: a tiny PNG whose header claims any size (e.g. 20000x20000).
- :func:`faststart`: an MP4 remuxed with its index first (truncating it keeps the head playable).
- :func:`audio_only`: an MP4 with sound and no picture.
- :func:`truncated`, :func:`text_file`, :func:`empty_file`: damaged or fake media.
- :func:`rotated`: a picture rotated about its centre (black corners, same size).
- :func:`two_faces`: two astronauts side by side.
- :func:`scene`: in-memory 1080p frames with astronauts of chosen face sizes and tilts drifting
  over a blurred background, optionally dim, flat, blurred and noisy, her skin optionally
  rendered darker (:func:`darker_skin`).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import av
import cv2
import numpy as np
import skimage.data
from corpus import generators
from PIL import Image


def astronaut() -> np.ndarray:
    """(512, 512, 3) uint8 RGB; dlib HOG finds the face at about (179, 83)-(266, 170)."""
    return skimage.data.astronaut()


def coffee() -> np.ndarray:
    """(400, 600, 3) uint8 RGB, no face."""
    return skimage.data.coffee()


def pan_clip(
    image: np.ndarray,
    path: Path,
    *,
    n_frames: int = 75,
    fps: int = 25,
    size: tuple[int, int] = (320, 240),
    start: tuple[float, float, float],
    end: tuple[float, float, float],
) -> Path:
    """Write ``n_frames`` at ``fps`` (mp4v) of a window moving from ``start`` to ``end``.

    ``start``/``end`` are (centre x, centre y, window height) in source pixels; ``size``
    is the output (w, h). The window keeps the output's aspect ratio.
    """
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError("cv2.VideoWriter could not open an mp4v writer")
    h, w = image.shape[:2]
    aspect = size[0] / size[1]
    for i in range(n_frames):
        a = i / max(n_frames - 1, 1)
        cx, cy, side = (s + (e - s) * a for s, e in zip(start, end, strict=True))
        cw, ch = min(side * aspect, w), min(side, h)
        x0 = int(np.clip(cx - cw / 2, 0, w - cw))
        y0 = int(np.clip(cy - ch / 2, 0, h - ch))
        crop = image[y0 : y0 + int(ch), x0 : x0 + int(cw)]
        frame = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def face_clip(path: Path, n_frames: int = 75, fps: int = 25) -> Path:
    """3 s at 25 fps, 320x240: pans and zooms in on the astronaut's face (always in view)."""
    return pan_clip(
        astronaut(), path, n_frames=n_frames, fps=fps, start=(250, 180, 330), end=(222, 130, 230)
    )


def no_face_clip(path: Path, n_frames: int = 75, fps: int = 25) -> Path:
    """3 s at 25 fps, 320x240, panning over a cup of coffee."""
    return pan_clip(
        coffee(), path, n_frames=n_frames, fps=fps, start=(240, 200, 380), end=(360, 200, 380)
    )


def photo(path: Path, fmt: str) -> Path:
    """The astronaut saved by Pillow in ``fmt`` (JPEG, PNG, WEBP, BMP)."""
    kw = {"JPEG": {"quality": 92}, "WEBP": {"quality": 90}}.get(fmt, {})
    Image.fromarray(astronaut()).save(path, fmt, **kw)
    return path


def exif_rotated_jpeg(path: Path) -> Path:
    """A JPEG whose pixels are stored turned 90 degrees counter-clockwise, with EXIF
    orientation 6 ("turn 90 degrees clockwise to display"): displayed, the astronaut is upright.

    The picture is not square (stored 512 wide x 400 high, shown 400 x 512), so a missing
    transpose shows in the dimensions too.
    """
    upright = astronaut()[:, 56:456]  # (512, 400): taller than wide, face kept
    stored = np.rot90(upright, k=1)  # turned counter-clockwise: (400, 512)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(np.ascontiguousarray(stored)).save(path, "JPEG", quality=92, exif=exif)
    return path


def png16(path: Path) -> Path:
    """A 16-bit greyscale PNG (mode I;16) of the astronaut."""
    grey = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
    img = Image.fromarray(grey)  # uint16 -> mode "I;16"
    assert img.mode.startswith("I;16"), img.mode
    img.save(path, "PNG")
    return path


def cmyk_jpeg(path: Path) -> Path:
    Image.fromarray(astronaut()).convert("CMYK").save(path, "JPEG", quality=92)
    return path


def grey_png(path: Path) -> Path:
    Image.fromarray(astronaut()).convert("L").save(path, "PNG")
    return path


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A PNG of one pixel whose header (IHDR) claims ``width`` x ``height``.

    Only the header is big: decoding it would fail (there is one pixel of data), so an error
    about the size proves the file was refused from its header, before decoding.
    """
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), (128, 128, 128)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def faststart(src: Path, path: Path) -> Path:
    """Remux an MP4 with its index (moov) first, as web-optimised MP4s are (no re-encode)."""
    with (
        av.open(str(src)) as inp,
        av.open(str(path), "w", options={"movflags": "faststart"}) as out,
    ):
        ist = inp.streams.video[0]
        ost = out.add_stream_from_template(ist)
        for pkt in inp.demux(ist):
            if pkt.dts is None:
                continue
            pkt.stream = ost
            out.mux(pkt)
    return path


def audio_only(path: Path, seconds: float = 1.0, rate: int = 16000) -> Path:
    """An MP4 with an AAC sound track and no picture."""
    return generators.audio_only(path, "aac", seconds=seconds, rate=rate)


def truncated(src: Path, path: Path, keep: float = 0.5) -> Path:
    """The first ``keep`` of ``src``'s bytes (an interrupted download)."""
    data = src.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def text_file(path: Path) -> Path:
    path.write_text("This is not a video, whatever its name says.\n" * 20, encoding="utf-8")
    return path


def empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def rotated(image: np.ndarray, degrees: float) -> np.ndarray:
    """``image`` rotated ``degrees`` counter-clockwise about its centre, same size, black
    corners (a reflected border could mirror the face into a second one)."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(
        image,
        m,
        (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )


def two_faces() -> np.ndarray:
    """(256, 512, 3): two copies of the astronaut's head side by side, well apart."""
    head = astronaut()[30:286, 96:352]  # 256x256 around the face
    return np.ascontiguousarray(np.concatenate([head, head], axis=1))


def dim_far_clip(
    path: Path, *, face_px: float = 60.0, gain: float = 0.4, gamma: float = 1.8, n_frames: int = 30
) -> Path:
    """A dim room seen from afar: 1920x1080, 3 s at 10 fps (mp4v), the astronaut shrunk so
    her face is about ``face_px`` wide (87 px in the original), drifting slowly across a
    blurred coffee-cup background, then darkened (``gamma`` then ``gain``)."""
    k = face_px / 87.0
    person = cv2.resize(astronaut(), None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    bg = cv2.GaussianBlur(cv2.resize(coffee(), (1920, 1080)), (0, 0), 15)
    lut = (255 * gain * (np.arange(256) / 255.0) ** gamma).clip(0, 255).astype(np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (1920, 1080))
    ph, pw = person.shape[:2]
    for i in range(n_frames):
        frame = bg.copy()
        x, y = _dim_far_origin(face_px, i)
        frame[y : y + ph, x : x + pw] = person
        writer.write(cv2.cvtColor(cv2.LUT(frame, lut), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def dim_far_face_box(face_px: float, frame: int) -> tuple[float, float, float, float]:
    """Where the face is in frame ``frame`` of :func:`dim_far_clip` (x0, y0, x1, y1)."""
    k = face_px / 87.0
    x, y = _dim_far_origin(face_px, frame)
    return (x + 179 * k, y + 83 * k, x + 266 * k, y + 170 * k)


def _dim_far_origin(face_px: float, frame: int) -> tuple[int, int]:
    side = round(512 * face_px / 87.0)  # the shrunk astronaut's size
    return min(1100, 1800 - side) + 4 * frame, min(380, 1040 - side) + frame


def darker_skin(rgb: np.ndarray, albedo: float = 0.35, top: int | None = None) -> np.ndarray:
    """``rgb`` with its skin rendered darker: pixels of skin colour (YCrCb: Cr 135-180, Cb
    80-130; a soft mask; only rows above ``top`` if given) get ``albedo`` times their brightness in a warmer brown (R x 1, G x
    0.82, B x 0.68); hair, clothes and background stay. On the astronaut at 0.35 the cheeks go
    from about L* 70 to L* 35 (ITA from about +40 to -25: "brown" on Chardon's scale)."""
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb).astype(np.int16)
    mask = ((ycc[..., 1] >= 135) & (ycc[..., 1] <= 180) & (ycc[..., 2] >= 80) & (ycc[..., 2] <= 130))
    if top is not None:
        mask[top:] = False
    mask = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 2.0)[..., None]
    dark = rgb.astype(np.float32) * albedo * np.array([1.0, 0.82, 0.68], np.float32)
    return np.clip(mask * dark + (1 - mask) * rgb, 0, 255).astype(np.uint8)


ASTRONAUT_FACE = (179, 83, 266, 170)  # dlib's HOG box of the face in astronaut() (87 px wide)


def scene(
    people: list[tuple[float, float, float, float]],
    *,
    n_frames: int = 16,
    gain: float = 1.0,
    gamma: float = 1.0,
    contrast: float = 1.0,
    blur: float = 0.0,
    noise: float = 0.0,
    skin: float = 1.0,
) -> tuple[list[np.ndarray], list[list[tuple[float, float, float]]]]:
    """Frames of a 1920x1080 scene: for each (face_px, tilt, x, y) of ``people``, the astronaut
    scaled so her face is ``face_px`` wide, turned ``tilt`` degrees counter-clockwise about her
    face, whose centre is at (x, y) in frame 0 and drifts 4 px right and 1 px down a frame;
    behind them a blurred coffee cup. Then, if asked: darkened (``gamma`` then ``gain``),
    contrast scaled about the mean grey level, blurred (sigma px) and given Gaussian noise
    (sigma grey levels, fixed seed). ``skin`` < 1 renders her skin darker
    (:func:`darker_skin`). Returns the (1080, 1920, 3) uint8 RGB frames and, per frame, the
    faces' (centre x, centre y, width)."""
    bg = cv2.GaussianBlur(cv2.resize(coffee(), (1920, 1080)), (0, 0), 15)
    lut = 255 * gain * (np.arange(256) / 255.0) ** gamma
    lut = ((lut - lut.mean()) * contrast + lut.mean()).clip(0, 255).astype(np.uint8)
    rng = np.random.default_rng(0)
    head = astronaut() if skin == 1.0 else darker_skin(astronaut(), skin, top=200)  # her head and neck
    fcx, fcy = (ASTRONAUT_FACE[0] + ASTRONAUT_FACE[2]) / 2, (ASTRONAUT_FACE[1] + ASTRONAUT_FACE[3]) / 2
    frames, truths = [], []
    for i in range(n_frames):
        frame, truth = bg.copy(), []
        for face_px, tilt, x, y in people:
            k = face_px / (ASTRONAUT_FACE[2] - ASTRONAUT_FACE[0])
            cx, cy = x + 4 * i, y + i
            m = cv2.getRotationMatrix2D((fcx, fcy), tilt, k)
            m[:, 2] += (cx - fcx, cy - fcy)
            flags = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
            person = cv2.warpAffine(head, m, (1920, 1080), flags=flags)
            mask = cv2.warpAffine(np.full(head.shape[:2], 255, np.uint8), m, (1920, 1080),
                                  flags=cv2.INTER_NEAREST) > 0
            frame[mask] = person[mask]
            truth.append((cx, cy, face_px))
        frame = cv2.LUT(frame, lut)
        if blur:
            frame = cv2.GaussianBlur(frame, (0, 0), blur)
        if noise:
            frame = np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8)
        frames.append(frame)
        truths.append(truth)
    return frames, truths
