"""The worker's side of a link: download the file a detection's ``source_url`` names, check
it as an upload is checked, and fill in the row, before the analysis runs.

Called by :func:`webapp.services.analysis._analyse` for a row still awaiting its file
(``Detection.awaiting_download``). Refusals are :class:`fetching.LinkError` (a
``DetectionError``), so the row fails with the reason as any analysis does.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import unicodedata
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import ALLOWED_EXTENSIONS
from ..detection.errors import DetectionError, MediaTooLongError, UnsupportedMediaError
from ..detection.media import probe_media
from ..extensions import db
from ..models import Detection
from .database import retry_locked
from .fetching import LinkError, Policy, close_response, content_type, open_url, save_body
from .storage import StoredFile, make_thumbnail, result_dir, upload_folder
from .video_pages import find_video, site_supported

log = logging.getLogger(__name__)

#: Content types that are a page to look for a video in (with yt-dlp).
PAGE_TYPES = ("text/html", "application/xhtml+xml")
#: Content types downloaded as they are (none said, too); the probe decides by content.
MEDIA_PREFIXES = ("video/", "image/")
UNTYPED = ("", "application/octet-stream", "binary/octet-stream", "application/mp4")
EXTENSION_OF_TYPE = {
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "video/x-matroska": "mkv",
    "video/x-msvideo": "avi",
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/bmp": "bmp",
}


def link_policy(config: Any) -> Policy:
    """The fetch policy of these settings: the upload limits and the LINK_* settings."""
    return Policy.from_settings(
        config.get("LINK_ALLOWED_NETWORKS"),
        max_bytes=config.get("MAX_CONTENT_LENGTH"),
        max_duration=float(config["MAX_DURATION_SECONDS"]),
        timeout=float(config["LINK_TIMEOUT_SECONDS"]),
        total_seconds=float(config["LINK_DOWNLOAD_SECONDS"]),
        max_redirects=int(config["LINK_MAX_REDIRECTS"]),
    )


def download_link(config: Any, det: Detection, report: Callable[[str, float], None]) -> Path:
    """Fetch ``det.source_url`` into the upload folder, probe it, write what was found to
    the row (file name, size, SHA-256, media facts, the stored name) and a thumbnail.
    Returns the stored file's path. Raises LinkError or the probe's DetectionError; on
    failure nothing is left on disk."""
    policy = link_policy(config)
    folder = upload_folder()
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"{det.id}.download"
    part.unlink(missing_ok=True)
    stored: Path | None = None
    rdir = result_dir(det.id)
    try:
        report("download", 0.0)
        got, title = _fetch(det.source_url or "", part, policy, report)
        info = _probe(part, config, got.content_type)
        ext = _extension(got.url, got.content_type, info.media_type)
        stored = folder / f"{det.id}.{ext}"
        os.replace(part, stored)
        rdir.mkdir(parents=True, exist_ok=True)
        make_thumbnail(stored, info.media_type, info.duration, rdir / "thumb.jpg")
        name = display_name(got.url, title, ext)
        file = StoredFile.probed(
            stored, name, f".{ext}", got.sha256, got.size, info, source_url=det.source_url
        )
        values = file.columns(stored.name)  # what a row says of a stored file, as intake's

        def write() -> None:
            for key, value in values.items():
                setattr(det, key, value)
            db.session.commit()

        retry_locked(write)
        report("download", 1.0)
        return stored
    except BaseException:
        db.session.rollback()
        part.unlink(missing_ok=True)
        if stored is not None:  # probed and stored: its thumbnail and folder go too
            stored.unlink(missing_ok=True)
            shutil.rmtree(rdir, ignore_errors=True)
        raise


def _fetch(url: str, dest: Path, policy: Policy, report: Callable[[str, float], None]):
    """Download a direct file, or the video a page holds. Returns (Download, title)."""
    policy.start()  # the time limit covers the page, yt-dlp and the file together

    def progress(size: int, total: int | None) -> None:
        whole = total or policy.max_bytes
        report("download", min(size / whole, 0.99) if whole else 0.0)

    title = ""
    if site_supported(url):
        found = find_video(url, policy)
        response, final = open_url(found.url, policy, headers=found.headers)
        title = found.title
    else:
        response, final = open_url(url, policy)
        if content_type(response) in PAGE_TYPES:
            close_response(response)
            found = find_video(final, policy)
            response, final = open_url(found.url, policy, headers=found.headers)
            title = found.title
    kind = content_type(response)
    if not (kind.startswith(MEDIA_PREFIXES) or kind in UNTYPED):
        close_response(response)
        raise not_media(kind)
    return save_body(response, final, dest, policy, progress), title


def not_media(kind: str) -> LinkError:
    said = f" (the server says it is {kind})" if kind else ""
    return LinkError(
        f"The link does not lead to a photo or a video{said}. Link to the file itself or to "
        "the page that plays the video.",
        "not_media",
    )


def _probe(path: Path, config: Any, kind: str):
    """The engine's probe of the downloaded file, with the upload limits."""
    try:
        return probe_media(
            path,
            max_pixels=int(config["MAX_PIXELS"]),
            max_duration=float(config["MAX_DURATION_SECONDS"]),
        )
    except UnsupportedMediaError as err:
        raise not_media(kind) from err
    except MediaTooLongError as err:
        raise LinkError(f"{err} (the video at this link)", "too_long") from err
    except DetectionError:
        raise
    except Exception as err:  # a decoder failing in a way the probe did not expect
        log.warning("Probe failed on a downloaded link (%s)", type(err).__name__, exc_info=True)
        raise LinkError(
            "The file at this link is damaged or is not a photo or video we can read.",
            "not_media",
        ) from err


def _extension(url: str, kind: str, media_type: str) -> str:
    """An extension for the stored file: the URL's if it is one of ours, else from the
    content type, else by what the probe found. The decoder goes by content anyway."""
    ext = posixpath.splitext(urllib.parse.urlsplit(url).path)[1].lstrip(".").lower()
    if ext in ALLOWED_EXTENSIONS:
        return ext
    return EXTENSION_OF_TYPE.get(kind) or ("mp4" if media_type == "video" else "jpg")


def display_name(url: str, title: str = "", ext: str = "") -> str:
    """What the pages call a file from a link: the page's title (with the extension), else
    the last part of the URL's path, else the server's name. For display only."""
    if title.strip():
        name = _printable(title)[:180]
        return f"{name}.{ext}" if ext and not name.lower().endswith(f".{ext}") else name
    parts = urllib.parse.urlsplit(url)
    last = urllib.parse.unquote(parts.path.rstrip("/").rsplit("/", 1)[-1])
    return _printable(last)[:200] or parts.hostname or "link"


def _printable(text: str) -> str:
    """``text`` without control characters or path separators, trimmed."""
    text = text.replace("/", " ").replace("\\", " ")
    return "".join(ch for ch in text if unicodedata.category(ch)[0] != "C").strip()
