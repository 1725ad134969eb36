"""Hostile and odd files, written by code into a folder (no committed blobs).

Every generator takes the destination path and returns it. Pictures come from scikit-image
(the astronaut has a face dlib finds); videos are written with PyAV or OpenCV, and MP4 boxes
are patched in place where a header must lie (0 fps, a broken time scale).
"""

from __future__ import annotations

import fractions
import io
import struct
import zipfile
import zlib
from pathlib import Path

import av
import cv2
import numpy as np
import skimage.data
from PIL import Image

SEED = 20240601


def rng() -> np.random.Generator:
    return np.random.default_rng(SEED)


def astronaut(side: int = 256) -> np.ndarray:
    """(side, side, 3) uint8 RGB: the astronaut's portrait, face well in view."""
    return cv2.resize(skimage.data.astronaut(), (side, side), interpolation=cv2.INTER_AREA)


def astronaut_frame(width: int = 320, height: int = 240) -> np.ndarray:
    """(height, width, 3) uint8 RGB: the astronaut's head and shoulders at ``width:height``
    (cropped, never stretched: dlib's HOG misses a stretched face)."""
    src = skimage.data.astronaut()  # 512 x 512, face at about x 179-266, y 83-170
    if width >= height:
        crop_h = round(512 * height / width)
        top = int(np.clip(127 - crop_h // 2, 0, 512 - crop_h))
        src = src[top : top + crop_h]
    else:
        crop_w = round(512 * width / height)
        left = int(np.clip(222 - crop_w // 2, 0, 512 - crop_w))
        src = src[:, left : left + crop_w]
    return cv2.resize(src, (width, height), interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------- not media at all


def empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def random_bytes(path: Path, size: int = 64 * 1024) -> Path:
    path.write_bytes(rng().bytes(size))
    return path


def text(path: Path) -> Path:
    path.write_text("This is not a video, whatever its name says.\n" * 40, encoding="utf-8")
    return path


def html(path: Path) -> Path:
    path.write_text(
        "<!DOCTYPE html><html><head><title>x</title></head><body>"
        "<script>alert(document.cookie)</script><img src=x onerror=alert(1)></body></html>\n",
        encoding="utf-8",
    )
    return path


def svg(path: Path) -> Path:
    path.write_text(
        '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        "<script>alert(1)</script><rect width='10' height='10'/></svg>\n",
        encoding="utf-8",
    )
    return path


def pdf(path: Path) -> Path:
    """A small but well-formed one-page PDF."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>",
        b"<< /Length 35 >>\nstream\nBT /F1 12 Tf 20 100 Td (hi) Tj ET\nendstream",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    path.write_bytes(out.getvalue())
    return path


def zip_archive(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("readme.txt", "Not a video.\n" * 50)
        zf.writestr("data.bin", rng().bytes(4096))
    return path


def elf(path: Path) -> Path:
    """An ELF64 executable header (x86-64, ET_EXEC) followed by padding and random code."""
    header = (
        b"\x7fELF"
        + bytes([2, 1, 1, 0])  # 64-bit, little endian, version 1, System V ABI
        + bytes(8)
        + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, 0x401000, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    )
    path.write_bytes(header + bytes(120 - len(header) % 120) + rng().bytes(4096))
    return path


def tiff(path: Path) -> Path:
    Image.fromarray(astronaut(64)).save(path, "TIFF")
    return path


# --------------------------------------------------------------------------- photos


def jpeg(path: Path, side: int = 256, quality: int = 90) -> Path:
    Image.fromarray(astronaut(side)).save(path, "JPEG", quality=quality)
    return path


def png(path: Path, side: int = 256) -> Path:
    Image.fromarray(astronaut(side)).save(path, "PNG")
    return path


def one_pixel(path: Path) -> Path:
    Image.new("RGB", (1, 1), (200, 160, 140)).save(path, "PNG")
    return path


def grey_png(path: Path) -> Path:
    Image.fromarray(astronaut()).convert("L").save(path, "PNG")
    return path


def png16(path: Path) -> Path:
    """16-bit greyscale (mode I;16) PNG."""
    grey = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
    Image.fromarray(grey).save(path, "PNG")
    return path


def cmyk_jpeg(path: Path) -> Path:
    Image.fromarray(astronaut()).convert("CMYK").save(path, "JPEG", quality=90)
    return path


def exif_rotated(path: Path, orientation: int = 6) -> Path:
    """A JPEG stored on its side (or upside down) with the EXIF orientation that rights it."""
    upright = astronaut(256)[:, 28:228]  # 256 high x 200 wide: the transpose shows in the size
    undo = {3: 2, 6: 1, 8: 3}[orientation]  # counter-clockwise quarter turns that store it
    stored = np.ascontiguousarray(np.rot90(upright, k=undo))
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(path, "JPEG", quality=90, exif=exif)
    return path


def animated_gif(path: Path) -> Path:
    frames = [Image.fromarray(np.roll(astronaut(96), 8 * i, axis=1)) for i in range(4)]
    frames[0].save(path, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def truncated_jpeg(path: Path) -> Path:
    data = jpeg(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def bomb_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A genuine 1-bit PNG of ``width`` x ``height`` (400 megapixels), all black.

    Every row is there, compressed: about 50 KB on disk, 50 MB of bits, and 400 MB (or 1.2 GB
    as RGB) if a decoder expanded it. Written row by row, never held whole in memory.
    """
    row = b"\x00" + bytes((width + 7) // 8)  # filter byte "none" + the packed bits
    comp = zlib.compressobj(9)
    chunks = [comp.compress(row) for _ in range(height)]
    idat = b"".join(chunks) + comp.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def png_claiming(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A one-pixel PNG whose header claims ``width`` x ``height``."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), (128, 128, 128)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def polyglot(path: Path) -> Path:
    """A JPEG that is also a valid zip: the photo's bytes with a zip archive appended
    (zip readers find the archive from its end)."""
    photo = jpeg(path.with_name(path.name + ".part.jpg")).read_bytes()
    path.with_name(path.name + ".part.jpg").unlink()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("payload.txt", "I am hiding in a JPEG.\n")
    path.write_bytes(photo + buf.getvalue())
    assert zipfile.is_zipfile(path)
    return path


# --------------------------------------------------------------------------- videos


def video(
    path: Path,
    frames: list[np.ndarray],
    *,
    codec: str = "libx264",
    rate: int | fractions.Fraction = 25,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode ``frames`` ((H, W, 3) uint8 RGB, all one size) to an MP4 with PyAV."""
    h, w = frames[0].shape[:2]
    if codec == "libx264":
        options = {"preset": "ultrafast", **(options or {})}
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for img in frames:
            for pkt in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in stream.encode(None):
            out.mux(pkt)
    return path


def face_frames(n: int, width: int = 320, height: int = 240) -> list[np.ndarray]:
    """``n`` frames of the astronaut drifting a few pixels (a face in every frame)."""
    base = astronaut_frame(width, height)
    return [np.roll(base, (i % 8) - 4, axis=1) for i in range(n)]


def face_video(path: Path, seconds: float = 1.0, fps: int = 25, size=(320, 240)) -> Path:
    return video(path, face_frames(max(1, int(round(seconds * fps))), *size), rate=fps)


def one_frame_video(path: Path) -> Path:
    return video(path, face_frames(1))


def empty_video(path: Path) -> Path:
    """An MP4 with a video track that holds no frames at all."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()  # write the header although no frame follows
    return path


def audio_only(path: Path, codec: str = "aac", seconds: float = 1.0, rate: int = 16000) -> Path:
    """An MP4 with a sound track (AAC or MP2) and no picture."""
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        n = 1024 if codec == "aac" else 1152
        fmt = "fltp" if codec == "aac" else "s16"
        t = np.arange(n) / rate
        for i in range(int(seconds * rate / n)):
            wave = 0.3 * np.sin(2 * np.pi * 440 * (t + i * n / rate))
            data = wave.astype(np.float32) if fmt == "fltp" else (wave * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(data[None], format=fmt, layout="mono")
            frame.sample_rate = rate
            frame.pts = i * n
            for pkt in stream.encode(frame):
                out.mux(pkt)
        for pkt in stream.encode(None):
            out.mux(pkt)
    return path


def _box(data: bytes | bytearray, fourcc: bytes, start: int = 0) -> tuple[int, int]:
    """(offset, size) of the first MP4 box of type ``fourcc`` at or after ``start``."""
    i = data.find(fourcc, start)
    if i < 4:
        raise ValueError(f"no {fourcc!r} box")
    return i - 4, struct.unpack(">I", data[i - 4 : i])[0]


def sample_sizes(data: bytes | bytearray) -> list[int]:
    off, _ = _box(data, b"stsz")
    uniform, count = struct.unpack(">II", data[off + 12 : off + 20])
    if uniform:
        return [uniform] * count
    return list(struct.unpack(f">{count}I", data[off + 20 : off + 20 + 4 * count]))


def truncated(src: Path, path: Path, keep: float = 0.5) -> Path:
    data = src.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def header_only_mp4(path: Path) -> Path:
    """Only the first box (``ftyp``) of a real MP4: a header and nothing else."""
    full = face_video(path.with_name(path.name + ".full.mp4"))
    data = full.read_bytes()
    full.unlink()
    _, size = _box(data, b"ftyp")
    path.write_bytes(data[:size])
    return path


def truncated_mp4(path: Path) -> Path:
    """The first half of an MP4 whose index (``moov``) is at the end: the index is lost."""
    full = face_video(path.with_name(path.name + ".full.mp4"))
    truncated(full, path)
    full.unlink()
    return path


def truncated_faststart_mp4(path: Path) -> Path:
    """The first half of a web-optimised MP4 (index first): the head is still playable."""
    plain = face_video(path.with_name(path.name + ".plain.mp4"), seconds=2.0)
    fast = path.with_name(path.name + ".fast.mp4")
    with (
        av.open(str(plain)) as inp,
        av.open(str(fast), "w", options={"movflags": "faststart"}) as out,
    ):
        ist = inp.streams.video[0]
        ost = out.add_stream_from_template(ist)
        for pkt in inp.demux(ist):
            if pkt.dts is not None:
                pkt.stream = ost
                out.mux(pkt)
    truncated(fast, path)
    plain.unlink()
    fast.unlink()
    return path


def garbage_frames_mp4(path: Path, keep_first: bool = False) -> Path:
    """A valid MP4 header and index (H.264, SPS/PPS in ``avcC``) over frames of random bytes.

    ``keep_first`` leaves the first frame (the key frame) intact: the clip starts fine and
    turns to garbage after it.
    """
    face_video(path, seconds=1.0)
    data = bytearray(path.read_bytes())
    off, size = _box(data, b"mdat")
    start = off + 8 + (sample_sizes(data)[0] if keep_first else 0)
    data[start : off + size] = rng().bytes(off + size - start)
    path.write_bytes(bytes(data))
    return path


def _patch_timing(path: Path, *, timescale: int | None = None, delta: int | None = None) -> Path:
    """Rewrite the video track's time scale (``mdhd``) and/or every frame's duration (``stts``,
    with the track duration in ``mdhd`` to match)."""
    data = bytearray(path.read_bytes())
    off, _ = _box(data, b"mdhd")
    version = data[off + 8]
    ts_at = off + 12 + (8 if version == 0 else 16)
    if timescale is not None:
        data[ts_at : ts_at + 4] = struct.pack(">I", timescale)
    if delta is not None:
        st, _ = _box(data, b"stts")
        count = struct.unpack(">I", data[st + 12 : st + 16])[0]
        frames = 0
        for k in range(count):
            e = st + 16 + 8 * k
            frames += struct.unpack(">I", data[e : e + 4])[0]
            data[e + 4 : e + 8] = struct.pack(">I", delta)
        if version == 0:
            data[ts_at + 4 : ts_at + 8] = struct.pack(">I", frames * delta)
    path.write_bytes(bytes(data))
    return path


def zero_fps_mp4(path: Path) -> Path:
    """Every frame lasts 0 ticks: the header says 0 fps and 0 s."""
    face_video(path, seconds=0.4)
    return _patch_timing(path, delta=0)


def zero_timescale_mp4(path: Path) -> Path:
    """The track's time scale is 0 (a division by zero for a naive reader)."""
    face_video(path, seconds=0.4)
    return _patch_timing(path, timescale=0)


def huge_fps_mp4(path: Path, ticks_per_second: int = 1_000_000) -> Path:
    """Re-muxed with a 1/1,000,000 time base and one tick per frame: one million fps."""
    src = face_video(path.with_name(path.name + ".src.mp4"), seconds=0.4)
    tb = fractions.Fraction(1, ticks_per_second)
    with av.open(str(src)) as inp, av.open(str(path), "w") as out:
        ist = inp.streams.video[0]
        ost = out.add_stream_from_template(ist)
        ost.time_base = tb
        packets = [p for p in inp.demux(ist) if p.dts is not None]
        for i, pkt in enumerate(sorted(packets, key=lambda p: p.dts)):
            pkt.stream = ost
            pkt.pts = pkt.dts = i
            pkt.duration = 1
            pkt.time_base = tb
            out.mux(pkt)
    src.unlink()
    return path


def long_clip(path: Path, seconds: float = 3.0) -> Path:
    """A small 3 s clip; "too long" once MAX_DURATION_SECONDS is set under 3."""
    return video(path, face_frames(int(seconds * 10), 160, 120), rate=10)


def video_8k(path: Path, n_frames: int = 2) -> Path:
    """7680x4320 (the largest accepted), ``n_frames`` frames with the astronaut's face large."""
    frame = astronaut_frame(7680, 4320)
    return video(path, [frame] * n_frames, options={"preset": "ultrafast", "crf": "35"})


def video_over_8k(path: Path) -> Path:
    """One black 8192x4608 frame: over the 8K limit."""
    return video(path, [np.zeros((4608, 8192, 3), np.uint8)], options={"crf": "40"})


def long_face_clip(path: Path, seconds: float = 20.0, fps: int = 25, size=(640, 360)) -> Path:
    """A clip of any length, written frame by frame (never held in memory): the astronaut
    drifting slowly, so every sampled frame has a face and the analysis takes a while."""
    w, h = size
    base = astronaut_frame(w, h)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(int(seconds * fps)):
            shift = int(12 * np.sin(i / 20))
            frame = av.VideoFrame.from_ndarray(np.roll(base, shift, axis=1), format="rgb24")
            for pkt in stream.encode(frame):
                out.mux(pkt)
        for pkt in stream.encode(None):
            out.mux(pkt)
    return path
