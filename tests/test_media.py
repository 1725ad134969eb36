"""Tests of ``webapp.detection.media``: probing by content, loading photos, sampling clips,
and the typed errors for files the engine cannot analyse. No TensorFlow."""

from __future__ import annotations

from pathlib import Path

import cv2
import engine_media as em
import numpy as np
import pytest
from PIL import Image

from webapp.detection import media
from webapp.detection.errors import (
    CorruptMediaError,
    DetectionError,
    MediaTooLargeError,
    MediaTooLongError,
    NoFramesError,
    UnsupportedMediaError,
)
from webapp.detection.media import load_image, load_media, probe_media, sample_video

FPS = 25
CLIP_FRAMES = 75  # 3 s


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def clip(folder: Path) -> Path:
    return em.face_clip(folder / "astronaut-pan.mp4", n_frames=CLIP_FRAMES, fps=FPS)


@pytest.fixture(scope="module")
def short_clip(folder: Path) -> Path:
    return em.face_clip(folder / "short.mp4", n_frames=5, fps=FPS)


def _assert_message(err: pytest.ExceptionInfo) -> None:
    msg = str(err.value)
    assert msg.strip() and len(msg) > 10, f"empty or useless message: {msg!r}"
    assert isinstance(err.value, DetectionError)


# ------------------------------------------------------------------ probing
def test_probe_clip(clip: Path) -> None:
    info = probe_media(clip)
    assert info.media_type == "video"
    assert (info.width, info.height) == (320, 240)
    assert info.fps == pytest.approx(FPS, abs=0.01)
    assert info.duration == pytest.approx(CLIP_FRAMES / FPS, abs=0.05)
    assert info.frame_count == CLIP_FRAMES
    assert info.codec == "mpeg4"


@pytest.mark.parametrize(
    "fmt,suffix", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("BMP", "bmp")]
)
def test_probe_and_load_photo(folder: Path, fmt: str, suffix: str) -> None:
    path = em.photo(folder / f"astronaut.{suffix}", fmt)
    info = probe_media(path)
    assert info.media_type == "image"
    assert (info.width, info.height) == (512, 512)
    assert info.duration == 0.0 and info.fps == 0.0 and info.frame_count == 1
    assert info.codec == fmt.lower()
    loaded = load_image(path)
    assert len(loaded.frames) == 1 and loaded.timestamps == [0.0] and loaded.indices == [0]
    frame = loaded.frames[0]
    assert frame.shape == (512, 512, 3) and frame.dtype == np.uint8
    tol = 0 if fmt in ("PNG", "BMP") else 12  # lossless formats are exact
    assert np.abs(frame.astype(int) - em.astronaut().astype(int)).mean() <= tol
    # load_media decides by content: a photo is one frame whatever n_frames asks.
    assert len(load_media(path, 16).frames) == 1


def test_load_image_reports_codec(folder: Path) -> None:
    path = em.photo(folder / "codec.jpg", "JPEG")
    assert load_image(path).info.codec == "jpeg"


def test_exif_orientation_applied(folder: Path) -> None:
    from webapp.detection.faces import detect_faces

    path = em.exif_rotated_jpeg(folder / "exif6.jpg")
    with Image.open(path) as img:
        assert img.size == (512, 400)  # stored on its side
    info = probe_media(path)
    assert (info.width, info.height) == (400, 512)  # probe reports the displayed size
    frame = load_image(path).frames[0]
    assert frame.shape == (512, 400, 3)  # upright: taller than wide
    # Upright means the face is found where it is in the upright picture (the astronaut's
    # face is at about x 179..266 in the 512-wide original; the crop starts at x 56).
    faces = detect_faces(frame)
    centres = [f.center for f in faces]
    assert any(abs(cx - (222 - 56)) < 25 and abs(cy - 126) < 25 for cx, cy in centres), centres
    # Control: the stored (sideways) pixels have no face for the detector.
    with Image.open(path) as img:
        assert not detect_faces(np.asarray(img.convert("RGB")))


@pytest.mark.parametrize(
    "make", [em.png16, em.cmyk_jpeg, em.grey_png], ids=["png16", "cmyk_jpeg", "grey_png"]
)
def test_unusual_modes_load_as_rgb_uint8(folder: Path, make) -> None:
    path = make(folder / f"{make.__name__}.{'jpg' if 'jpeg' in make.__name__ else 'png'}")
    frame = load_image(path).frames[0]
    assert frame.shape == (512, 512, 3) and frame.dtype == np.uint8
    # The picture survives the conversion (compared in grey, as two of them are grey).
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(int)
    ref = cv2.cvtColor(em.astronaut(), cv2.COLOR_RGB2GRAY).astype(int)
    assert np.abs(grey - ref).mean() < 8
    assert frame.std() > 20


def test_png16_rgb_loads_as_rgb_uint8(folder: Path) -> None:
    path = folder / "rgb48.png"
    cv2.imwrite(str(path), cv2.cvtColor(em.astronaut(), cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    frame = load_image(path).frames[0]
    assert frame.shape == (512, 512, 3) and frame.dtype == np.uint8
    assert np.abs(frame.astype(int) - em.astronaut().astype(int)).mean() < 2


# ------------------------------------------------------------------ sampling clips
@pytest.mark.parametrize("n", [16, 8])
def test_sample_video_evenly_spread(clip: Path, n: int) -> None:
    progress: list[float] = []
    s = sample_video(clip, n, progress=progress.append)
    assert len(s.frames) == len(s.timestamps) == len(s.indices) == n
    assert all(f.shape == (240, 320, 3) and f.dtype == np.uint8 for f in s.frames)
    assert s.scale == 1.0 and s.warnings == []
    # Timestamps are the frames' times: index / fps, strictly increasing, from 0.
    assert s.timestamps[0] == 0.0 and s.indices[0] == 0
    np.testing.assert_allclose(s.timestamps, np.array(s.indices) / FPS, atol=1e-3)
    assert all(np.diff(s.timestamps) > 0) and all(np.diff(s.indices) > 0)
    # Evenly spread over the whole clip: the last frame is near the end, gaps are equal
    # to within a frame of rounding.
    assert s.indices[-1] >= CLIP_FRAMES - 2
    gaps = np.diff(s.indices)
    ideal = (CLIP_FRAMES - 1) / (n - 1)
    assert gaps.min() >= np.floor(ideal) - 1 and gaps.max() <= np.ceil(ideal) + 1, gaps
    assert progress == sorted(progress) and progress[-1] == 1.0
    # Frames differ (the window moves): not n copies of the first frame.
    assert np.abs(s.frames[0].astype(int) - s.frames[-1].astype(int)).mean() > 5


def test_sample_video_fewer_frames_than_asked(short_clip: Path) -> None:
    s = sample_video(short_clip, 16)
    assert len(s.frames) == 5
    assert s.indices == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(s.timestamps, [0.0, 0.04, 0.08, 0.12, 0.16], atol=1e-3)
    assert s.info.frame_count == 5


def test_load_media_decides_by_content(clip: Path, folder: Path) -> None:
    # A clip named .jpg is still a clip; a photo named .mp4 is still a photo.
    fake_name = folder / "clip-named.jpg"
    fake_name.write_bytes(clip.read_bytes())
    assert load_media(fake_name, 4).info.media_type == "video"
    photo = folder / "photo-named.mp4"
    em.photo(folder / "p.png", "PNG").rename(photo)
    assert load_media(photo, 4).info.media_type == "image"


def test_frame_stream_gives_the_sampled_frames_as_they_come(clip: Path, folder: Path) -> None:
    """FrameStream decodes in a background thread: its frames, in order, are sample_video's;
    result() is the same SampledFrames; a photo comes as its one frame; is_photo agrees."""
    stream = media.FrameStream(clip, 8)
    frames = list(stream)
    s, whole = stream.result(), sample_video(clip, 8)
    assert len(frames) == 8 and all(a is b for a, b in zip(frames, s.frames, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(frames, whole.frames, strict=True))
    assert s.indices == whole.indices and stream.finished_at is not None
    photo = em.photo(folder / "stream.png", "PNG")
    stream = media.FrameStream(photo, 8)
    assert [f.shape for f in stream] == [(512, 512, 3)] and stream.result().info.media_type == "image"
    assert media.is_photo(photo) and not media.is_photo(clip)


def test_frame_stream_raises_the_decoding_error_from_result(folder: Path) -> None:
    """An error in the decoding thread ends the frames and is raised by result()."""
    stream = media.FrameStream(em.text_file(folder / "stream-notes.mp4"), 8)
    assert list(stream) == []
    with pytest.raises(UnsupportedMediaError):
        stream.result()
    stream = media.FrameStream(em.empty_file(folder / "stream-empty.mp4"), 8)
    assert list(stream) == []
    with pytest.raises(CorruptMediaError, match="empty"):
        stream.result()


def test_max_duration(clip: Path) -> None:
    with pytest.raises(MediaTooLongError) as err:
        probe_media(clip, max_duration=1.0)
    _assert_message(err)
    with pytest.raises(MediaTooLongError):
        sample_video(clip, 4, max_duration=1.0)
    probe_media(clip, max_duration=10.0)  # within the limit


# ------------------------------------------------------------------ bad files
def test_text_file_named_mp4(folder: Path) -> None:
    path = em.text_file(folder / "notes.mp4")
    for call in (probe_media, lambda p: load_media(p, 8), lambda p: sample_video(p, 8)):
        with pytest.raises(UnsupportedMediaError) as err:
            call(path)
        _assert_message(err)


def test_zero_byte_file(folder: Path) -> None:
    path = em.empty_file(folder / "empty.mp4")
    for call in (probe_media, lambda p: load_media(p, 8)):
        with pytest.raises(CorruptMediaError) as err:
            call(path)
        _assert_message(err)
        assert "empty" in str(err.value)


def test_audio_only(folder: Path) -> None:
    path = em.audio_only(folder / "sound.mp4")
    for call in (probe_media, lambda p: load_media(p, 8)):
        with pytest.raises(NoFramesError) as err:
            call(path)
        _assert_message(err)


def test_truncated_mp4_is_called_damaged(clip: Path, folder: Path) -> None:
    # OpenCV writes the MP4 index (moov) at the end: the first half has no index at all.
    # FFmpeg cannot open it, but its signature (ftyp) says it is a video: damaged, not unknown.
    path = em.truncated(clip, folder / "truncated.mp4")
    for call in (probe_media, lambda p: load_media(p, 8), lambda p: sample_video(p, 8)):
        with pytest.raises(CorruptMediaError) as err:
            call(path)
        _assert_message(err)


def test_truncated_faststart_mp4_gives_the_readable_part(clip: Path, folder: Path) -> None:
    # With the index first, the first half of the file still plays: the frames before the cut
    # are analysed, in order.
    fast = em.faststart(clip, folder / "fast.mp4")
    assert probe_media(fast).frame_count == CLIP_FRAMES
    path = em.truncated(fast, folder / "fast-truncated.mp4")
    info = probe_media(path)  # header intact: probing cannot tell
    assert info.frame_count == CLIP_FRAMES
    s = sample_video(path, 16)
    assert 1 <= len(s.frames) < 16
    assert all(np.diff(s.timestamps) > 0)
    assert s.timestamps[-1] < 0.75 * info.duration


def test_truncated_faststart_mp4_warns(clip: Path, folder: Path) -> None:
    fast = em.faststart(clip, folder / "fast2.mp4")
    path = em.truncated(fast, folder / "fast2-truncated.mp4")
    s = sample_video(path, 16)
    assert s.warnings


def test_huge_png_refused_before_decoding(folder: Path) -> None:
    # 400 megapixels claimed: Pillow's decompression-bomb guard, mapped to our error.
    huge = em.png_claiming(folder / "huge.png", 20000, 20000)
    assert huge.stat().st_size < 1000
    for call in (probe_media, load_image, lambda p: load_media(p, 8)):
        with pytest.raises(MediaTooLargeError) as err:
            call(huge)
        _assert_message(err)
    # 48 megapixels: under Pillow's guard, over our 40 MP limit; the message gives the size.
    big = em.png_claiming(folder / "big.png", 8000, 6000)
    with pytest.raises(MediaTooLargeError, match="8000x6000") as err:
        probe_media(big)
    _assert_message(err)
    # Both files hold one pixel of data: decoding them would have failed as damaged, so the
    # size errors above came from the header, before decoding.




@pytest.mark.parametrize(
    "fmt,suffix",
    [
        ("JPEG", "jpg"),
        ("BMP", "bmp"),
        ("WEBP", "webp"),
        pytest.param("PNG", "png"),
    ],
)
def test_truncated_photo(folder: Path, fmt: str, suffix: str) -> None:
    """Half a photo (an interrupted upload) is refused with a typed error by every entry point."""
    path = em.truncated(em.photo(folder / f"whole.{suffix}", fmt), folder / f"half.{suffix}")
    for call in (probe_media, load_image, lambda p: load_media(p, 8)):
        with pytest.raises(DetectionError) as err:
            call(path)
        _assert_message(err)
        # A half WebP is not recognised by Pillow at all, so it is "unsupported"; the others
        # are recognised and called damaged.
        expected = UnsupportedMediaError if fmt == "WEBP" else CorruptMediaError
        assert isinstance(err.value, expected), type(err.value)


def test_png_header_over_data_is_damaged(folder: Path) -> None:
    """A PNG header within the size limit over missing pixel data is damaged, not a crash."""
    path = em.png_claiming(folder / "lying.png", 800, 600)
    with pytest.raises(CorruptMediaError):
        probe_media(path)


def test_max_pixels_parameter(folder: Path) -> None:
    path = em.photo(folder / "limit.png", "PNG")
    with pytest.raises(MediaTooLargeError):
        probe_media(path, max_pixels=512 * 512 - 1)
    with pytest.raises(MediaTooLargeError):
        load_image(path, max_pixels=512 * 512 - 1)
    assert probe_media(path, max_pixels=512 * 512).width == 512


def test_gif_refused(folder: Path) -> None:
    path = folder / "anim.gif"
    Image.fromarray(em.astronaut()).save(path, "GIF")
    with pytest.raises(UnsupportedMediaError, match="GIF") as err:
        probe_media(path)
    _assert_message(err)


def test_missing_file(folder: Path) -> None:
    with pytest.raises(CorruptMediaError):
        probe_media(folder / "does-not-exist.mp4")


def test_no_tensorflow_imported() -> None:
    """The website calls probe_media in the request: media.py must not pull in TensorFlow."""
    import subprocess
    import sys

    code = (
        "import sys; import webapp.detection.media; "
        "sys.exit(1 if any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules) else 0)"
    )
    root = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0
    assert media.WORK_MAX_SIDE >= 640
