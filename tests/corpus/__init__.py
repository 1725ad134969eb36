"""The bad-input corpus: hostile and odd uploads, each with the outcome the site must give.

Files are made by :mod:`corpus.generators` at test time. A :class:`Case` says what is sent
(a generated file under a given upload name, or a malformed request) and how it must end:

- ``rejected``: a 4xx page or JSON error that says what is wrong; nothing stored.
- ``failed``: accepted, then the job ends ``failed`` with a reason (an error code and message).
- ``result``: accepted and analysed (odd but valid media).

``engine=True`` cases (accepted ones: a rejected upload never reaches the engine) also run
through the real engine and the shipped model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import generators as g

OUTCOMES = ("rejected", "failed", "result")


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    make: Callable[[Path], Path] | None  # None: no file (a malformed request)
    filename: str = ""  # the client's file name; default: the generated file's name
    expect: str = "rejected"
    status: int | None = None  # for "rejected": the HTTP status (form and API)
    form_status: int | None = None  # when the form answers differently from the API
    code: str | None = None  # for "rejected": the API's error code
    message: str = ""  # a phrase the user-facing message must contain
    shown_name: str | None = None  # for accepted cases: the file name the site must show
    engine: bool = False  # also run through the real engine
    request: str = "file"  # file | missing_field | two_files | empty_filename | csrf_*
    channels: tuple[str, ...] = ("form", "api")
    config: dict[str, Any] = field(default_factory=dict)
    suffix: str = ""  # extension of the generated file on disk

    def __post_init__(self) -> None:
        assert self.expect in OUTCOMES, self.expect
        # A rejected upload never reaches the engine: running it there would test nothing.
        assert not (self.engine and self.expect == "rejected"), f"{self.key}: engine=True but rejected"

    def expected_status(self, channel: str) -> int | None:
        if channel == "form" and self.form_status is not None:
            return self.form_status
        return self.status


NOT_MEDIA = "neither a photo nor a video"
REJECTED_TYPE = "not supported"

# fmt: off  (a table: one case per entry, easier to scan than one argument per line)
CASES: list[Case] = [
    # ---------------------------------------------------------------- not media at all
    Case(
        "empty",
        "zero bytes, named .mp4",
        g.empty,
        "empty.mp4",
        status=400,
        code="corrupt_media",
        message="empty",
    ),
    Case(
        "random_bytes",
        "64 KB of random bytes named .mp4",
        g.random_bytes,
        "random.mp4",
        status=400,
        code="unsupported_media",
        message=NOT_MEDIA,
    ),
    Case(
        "text_as_mp4",
        "a text file named .mp4",
        g.text,
        "notes.mp4",
        status=400,
        code="unsupported_media",
        message=NOT_MEDIA,
    ),
    Case(
        "html_as_jpg",
        "an HTML page with scripts named .jpg",
        g.html,
        "page.jpg",
        status=400,
        code="unsupported_media",
        message=NOT_MEDIA,
    ),
    Case(
        "svg_as_png",
        "an SVG with a script named .png",
        g.svg,
        "vector.png",
        status=400,
        code="unsupported_media",
        message=NOT_MEDIA,
    ),
    Case(
        "pdf_as_mp4",
        "a PDF named .mp4",
        g.pdf,
        "report.mp4",
        status=400,
        code="unsupported_media",
        message=NOT_MEDIA,
    ),
    Case(
        "zip_as_mp4",
        "a zip archive named .mp4",
        g.zip_archive,
        "archive.mp4",
        status=400,
        code="unsupported_media",
        message=NOT_MEDIA,
    ),
    Case(
        "elf_as_mp4",
        "an executable (ELF header) named .mp4",
        g.elf,
        "program.mp4",
        status=400,
        code="unsupported_media",
        message=NOT_MEDIA,
    ),
    Case(
        "elf_as_jpg",
        "an executable (ELF header) named .jpg",
        g.elf,
        "program.jpg",
        status=400,
        code="unsupported_media",
        message=NOT_MEDIA,
    ),
    Case(
        "tiff_as_jpg",
        "a TIFF photo named .jpg",
        g.tiff,
        "scan.jpg",
        status=400,
        code="unsupported_media",
        message="TIFF images are not supported",
    ),
    Case(
        "gif_as_png",
        "an animated GIF named .png",
        g.animated_gif,
        "animation.png",
        status=400,
        code="unsupported_media",
        message="GIF files are not supported",
    ),
    Case(
        "gif",
        "an animated GIF named .gif",
        g.animated_gif,
        "animation.gif",
        status=415,
        form_status=400,
        code="unsupported_media",
        message=REJECTED_TYPE,
    ),
    Case(
        "txt_extension",
        "a photo named .txt",
        g.jpeg,
        "photo.txt",
        status=415,
        form_status=400,
        code="unsupported_media",
        message=REJECTED_TYPE,
    ),
    Case(
        "no_extension",
        "a photo with no extension",
        g.jpeg,
        "photo",
        status=415,
        form_status=400,
        code="unsupported_media",
        message=REJECTED_TYPE,
    ),
    # ---------------------------------------------------------------- damaged media
    Case(
        "mp4_header_only",
        "an MP4 cut after its first box (header only)",
        g.header_only_mp4,
        "header-only.mp4",
        status=400,
        code="corrupt_media",
        message="damaged",
    ),
    Case(
        "mp4_half",
        "the first half of an MP4 (index lost)",
        g.truncated_mp4,
        "half.mp4",
        status=400,
        code="corrupt_media",
        message="damaged",
    ),
    Case(
        "mp4_half_faststart",
        "the first half of a web-optimised MP4 (head playable)",
        g.truncated_faststart_mp4,
        "half-faststart.mp4",
        expect="result",
        engine=True,
    ),
    Case(
        "mp4_garbage_frames",
        "an MP4 with a valid header and index over random frames",
        g.garbage_frames_mp4,
        "garbage-frames.mp4",
        status=400,
        code="corrupt_media",
        message="damaged",
    ),
    Case(
        "mp4_garbage_after_first",
        "an MP4 whose frames after the first are random bytes",
        lambda p: g.garbage_frames_mp4(p, keep_first=True),
        "garbage-after-first.mp4",
        expect="result",
        engine=True,
    ),
    Case(
        "jpeg_half",
        "the first half of a JPEG",
        g.truncated_jpeg,
        "half.jpg",
        status=400,
        code="corrupt_media",
        message="damaged",
    ),
    Case(
        "audio_only_aac",
        "an MP4 with AAC sound and no picture",
        g.audio_only,
        "song.mp4",
        status=400,
        code="no_frames",
        message="sound but no picture",
    ),
    Case(
        "audio_only_mp2",
        "an MP4 with MP2 sound and no picture",
        lambda p: g.audio_only(p, codec="mp2"),
        "song-mp2.mp4",
        status=400,
        code="no_frames",
        message="sound but no picture",
    ),
    Case(
        "empty_video",
        "an MP4 with a video track of zero frames",
        g.empty_video,
        "no-frames.mp4",
        status=400,
        code="no_frames",
        message="no video stream",
    ),
    # ---------------------------------------------------------------- odd but valid media
    Case(
        "one_frame_video",
        "a one-frame H.264 video",
        g.one_frame_video,
        "one-frame.mp4",
        expect="result",
        engine=True,
    ),
    Case("one_pixel", "a 1x1 PNG", g.one_pixel, "pixel.png", expect="result", engine=True),
    Case("grey_png", "a greyscale PNG", g.grey_png, "grey.png", expect="result"),
    Case("png16", "a 16-bit greyscale PNG", g.png16, "deep.png", expect="result", engine=True),
    Case("cmyk_jpeg", "a CMYK JPEG", g.cmyk_jpeg, "cmyk.jpg", expect="result", engine=True),
    Case(
        "exif_6",
        "a JPEG stored on its side, EXIF orientation 6",
        lambda p: g.exif_rotated(p, 6),
        "rotated-6.jpg",
        expect="result",
        engine=True,
    ),
    Case(
        "exif_8",
        "a JPEG stored on its side, EXIF orientation 8",
        lambda p: g.exif_rotated(p, 8),
        "rotated-8.jpg",
        expect="result",
    ),
    Case(
        "exif_3",
        "a JPEG stored upside down, EXIF orientation 3",
        lambda p: g.exif_rotated(p, 3),
        "rotated-3.jpg",
        expect="result",
        engine=True,
    ),
    Case(
        "zero_fps",
        "an MP4 whose header says 0 fps (every frame lasts 0 ticks)",
        g.zero_fps_mp4,
        "zero-fps.mp4",
        expect="result",
        engine=True,
    ),
    Case(
        "huge_fps",
        "an MP4 at one million fps (time base 1/1000000)",
        g.huge_fps_mp4,
        "huge-fps.mp4",
        expect="result",
        engine=True,
    ),
    Case(
        "zero_timescale",
        "an MP4 whose time scale is 0",
        g.zero_timescale_mp4,
        "zero-timescale.mp4",
        status=400,
        code="corrupt_media",
        message="header is damaged: its timing says one frame every 512 s",
    ),
    Case(
        "video_8k",
        "an 8K (7680x4320) two-frame clip",
        g.video_8k,
        "8k.mp4",
        expect="result",
        engine=True,
    ),
    Case(
        "video_over_8k",
        "an 8192x4608 clip (over 8K)",
        g.video_over_8k,
        "over-8k.mp4",
        status=413,
        code="media_too_large",
        message="8K",
    ),
    Case(
        "too_long",
        "a 3 s clip with MAX_DURATION_SECONDS=1",
        g.long_clip,
        "long.mp4",
        status=400,
        code="media_too_long",
        message="the limit is 1 s",
        config={"MAX_DURATION_SECONDS": 1},
    ),
    Case(
        "png_bomb",
        "a real 1-bit 20000x20000 PNG (decompression bomb, ~50 KB)",
        g.bomb_png,
        "bomb.png",
        status=413,
        code="media_too_large",
        message="too many pixels",
    ),
    Case(
        "png_claims_huge",
        "a 1-pixel PNG whose header claims 20000x20000",
        g.png_claiming,
        "claims-huge.png",
        status=413,
        code="media_too_large",
        message="too many pixels",
    ),
    Case(
        "over_max_pixels",
        "a 256x256 photo with MAX_PIXELS=10000",
        g.png,
        "big.png",
        status=413,
        code="media_too_large",
        message="the limit is",
        config={"MAX_PIXELS": 10_000},
    ),
    Case(
        "polyglot",
        "a JPEG that is also a zip (archive appended)",
        g.polyglot,
        "polyglot.jpg",
        expect="result",
        engine=True,
    ),
    Case("jpeg_as_mp4", "a JPEG photo named .mp4", g.jpeg, "photo.mp4", expect="result"),
    Case("mp4_as_jpg", "an MP4 clip named .jpg", g.face_video, "clip.jpg", expect="result"),
    Case(
        "oversize",
        "a 300 KB file with MAX_CONTENT_LENGTH=100000",
        lambda p: g.random_bytes(p, 300_000),
        "big.mp4",
        status=413,
        code="too_large",
        message="at most",
        config={"MAX_CONTENT_LENGTH": 100_000},
    ),
    # ---------------------------------------------------------------- names
    Case(
        "name_unicode",
        "a photo named in unicode",
        g.jpeg,
        "fotó 照片 ✓ 🙂.jpg",
        expect="result",
        shown_name="fotó 照片 ✓ 🙂.jpg",
    ),
    Case(
        "name_spaces",
        "a photo whose name has spaces",
        g.jpeg,
        "  my holiday  photo .jpg",
        expect="result",
        shown_name="my holiday  photo .jpg",
    ),
    Case(
        "name_dotdot",
        "a photo named ../../../etc/passwd.jpg",
        g.jpeg,
        "../../../etc/passwd.jpg",
        expect="result",
        shown_name="passwd.jpg",
    ),
    Case(
        "name_absolute",
        "a photo named /etc/shadow.jpg",
        g.jpeg,
        "/etc/shadow.jpg",
        expect="result",
        shown_name="shadow.jpg",
    ),
    Case(
        "name_windows",
        r"a photo named C:\Windows\win.ini.jpg",
        g.jpeg,
        "C:\\Windows\\win.ini.jpg",
        expect="result",
        shown_name="win.ini.jpg",
    ),
    Case(
        "name_nul",
        "a photo named evil<NUL>.jpg",
        g.jpeg,
        "evil\x00.jpg",
        expect="result",
        shown_name="evil.jpg",
    ),
    Case(
        "name_300",
        "a photo with a 300-character name",
        g.jpeg,
        "a" * 296 + ".jpg",
        expect="result",
        shown_name="a" * 195 + "….jpg",
    ),
    Case(
        "name_dot_only",
        "a photo named just .jpg",
        g.jpeg,
        ".jpg",
        expect="result",
        shown_name=".jpg",
    ),
    # ---------------------------------------------------------------- malformed requests
    Case(
        "missing_field",
        "a form with no file field",
        None,
        status=400,
        code="no_file",
        message="Choose a video clip or a photo",
        request="missing_field",
    ),
    Case(
        "empty_filename",
        "a file part with an empty file name",
        g.jpeg,
        "",
        status=400,
        code="no_file",
        message="Choose a video clip or a photo",
        request="empty_filename",
    ),
    Case(  # the form takes several files as a batch (tests/test_batches.py)
        "two_files",
        "two files in one field of the single-file API",
        g.jpeg,
        "one.jpg",
        status=400,
        code="too_many_files",
        message="one file at a time",
        request="two_files",
        channels=("api",),
    ),
    Case(
        "csrf_missing",
        "the form without its CSRF token",
        g.jpeg,
        "a.jpg",
        status=400,
        message="expired",
        request="csrf_missing",
        channels=("form",),
    ),
    Case(
        "csrf_wrong",
        "the form with a wrong CSRF token",
        g.jpeg,
        "a.jpg",
        status=400,
        message="expired",
        request="csrf_wrong",
        channels=("form",),
    ),
]
# fmt: on

BY_KEY = {case.key: case for case in CASES}
assert len(BY_KEY) == len(CASES), "duplicate case keys"
ENGINE_CASES = [case for case in CASES if case.engine]


class Corpus:
    """Generates each case's file once, on first use, into ``folder``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._paths: dict[str, Path] = {}

    def path(self, case: Case) -> Path | None:
        if case.make is None:
            return None
        if case.key not in self._paths:
            ext = case.suffix or _disk_suffix(case.filename)
            self._paths[case.key] = case.make(self.folder / f"{case.key}{ext}")
        return self._paths[case.key]


def _disk_suffix(name: str) -> str:
    tail = name.replace("\\", "/").rsplit("/", 1)[-1].replace("\x00", "")
    ext = tail.rsplit(".", 1)[-1] if "." in tail else "bin"
    return "." + (ext if ext.isascii() and ext.isalnum() else "bin")
