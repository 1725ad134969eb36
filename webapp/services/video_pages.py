"""Pages that hold a video (the sites yt-dlp knows, and any page with a ``<video>``): find
the video's own address with yt-dlp, every request it makes going through the guard of
:mod:`.fetching`. No Flask, no database.

yt-dlp never opens a connection of its own here: its network layer is given one request
handler, :class:`GuardedRH`, which sends each request with :func:`fetching.open_url` (the
address checks, the pinned connection, redirects checked hop by hop, no cookies or
credentials). Its cookie file, ``.netrc``, cache, proxies and JavaScript runtimes are off. It only *finds* the
video; the caller downloads the address it finds with the same guard (see
:mod:`.downloads`), so the media URL is checked as the page URL was. Formats that come in
pieces (HLS, DASH) are not fetched: the message says to download the file and upload it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .fetching import LinkError, Policy, close_response, open_url

log = logging.getLogger(__name__)

#: Direct (one-file) formats only: yt-dlp's format selector for them.
FORMAT = "best[protocol^=http][vcodec!=none]/best[protocol^=http]"


@dataclass
class FoundVideo:
    """What yt-dlp found on a page: the video file's URL, headers the site asks for (safe
    ones only), a title, an extension hint, the duration and size when the site says them."""

    url: str
    headers: dict[str, str]
    title: str
    ext: str | None
    duration: float | None
    filesize: int | None


def site_supported(url: str) -> bool:
    """True when one of yt-dlp's site extractors (not the generic one) claims the URL."""
    from yt_dlp.extractor import gen_extractor_classes

    return any(ie.IE_NAME != "generic" and ie.suitable(url) for ie in gen_extractor_classes())


def _guarded_handler(policy: Policy, errors: list[LinkError]):
    """A yt-dlp request handler class bound to ``policy``; refusals are kept in ``errors``
    (yt-dlp turns them into its own, vaguer, errors)."""
    from yt_dlp.networking.common import RequestHandler, Response
    from yt_dlp.networking.exceptions import TransportError, UnsupportedRequest

    class GuardedRH(RequestHandler):
        _SUPPORTED_URL_SCHEMES = ("http", "https")
        _SUPPORTED_PROXY_SCHEMES = None
        _SUPPORTED_FEATURES = None

        def _check_extensions(self, extensions):
            extensions.clear()  # cookies, impersonation, ...: ignored, never an error

        def _send(self, request):
            if request.method not in ("GET", "HEAD") or request.data is not None:
                raise UnsupportedRequest("only GET and HEAD are sent for a link check")
            headers = dict(self._get_headers(request))
            try:
                response, url = open_url(request.url, policy, method=request.method, headers=headers)
            except LinkError as err:
                errors.append(err)
                raise TransportError(str(err), cause=err) from err
            return _Answer(response, url)

    class _Answer(Response):
        def __init__(self, response, url):
            super().__init__(response, url, response.msg, response.status, response.reason)
            self._raw = response

        def close(self):
            close_response(self._raw)
            return super().close()

    return GuardedRH


def find_video(url: str, policy: Policy) -> FoundVideo:
    """The video a page at ``url`` holds. Raises LinkError: ``no_video`` when yt-dlp finds
    none (or only streamed pieces), ``too_long``/``too_large`` when the site says so, or the
    guard's refusal of any address yt-dlp tried."""
    import yt_dlp
    from yt_dlp.utils import DownloadError

    errors: list[LinkError] = []
    handler = _guarded_handler(policy, errors)

    class GuardedYDL(yt_dlp.YoutubeDL):
        def build_request_director(self, handlers, preferences=None):
            return super().build_request_director([handler], None)

    options: dict[str, Any] = {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": _QuietLogger(),
        "skip_download": True,
        "noplaylist": True,
        "playlist_items": "1",
        "format": FORMAT,
        "cachedir": False,
        "cookiefile": None,
        "usenetrc": False,
        "netrc_location": None,
        "proxy": "",
        "socket_timeout": policy.timeout,
        "extractor_retries": 0,
        "retries": 0,
        "check_formats": False,
        "match_filter": None,
        "geo_bypass": False,
        "js_runtimes": {},  # no JavaScript runtime is started for a site's scripts
        "remote_components": [],  # and nothing is fetched to run one
    }
    try:
        with GuardedYDL(options) as ydl:
            info = ydl.extract_info(url, download=False)
    except DownloadError as err:
        if errors:
            raise errors[-1] from err
        log.info("yt-dlp found no video at a link: %s", err)
        if "Requested format is not available" in str(err):
            raise _pieces_only() from err
        raise LinkError(
            "No video was found on the page at this link. Link to the video itself (or its "
            "page on a site that hosts it), or download the video and upload the file.",
            "no_video",
        ) from err
    if info is None:
        raise LinkError("No video was found on the page at this link.", "no_video")
    if info.get("_type") in ("playlist", "multi_video"):
        entries = [e for e in (info.get("entries") or []) if e]
        if not entries:
            raise LinkError("No video was found on the page at this link.", "no_video")
        info = entries[0]
    media_url = info.get("url")
    if not media_url or str(info.get("protocol") or "").split("+")[0] not in ("http", "https"):
        raise _pieces_only()
    duration = _number(info.get("duration"))
    if policy.max_duration and duration and duration > policy.max_duration:
        raise LinkError(
            f"The video at this link is {duration:.0f} s long; the limit is "
            f"{policy.max_duration:.0f} s. Trim it to the part you doubt and upload that.",
            "too_long",
        )
    size = _number(info.get("filesize") or info.get("filesize_approx"))
    if policy.max_bytes and size and size > policy.max_bytes:
        from .fetching import too_large_error

        raise too_large_error(policy.max_bytes)
    return FoundVideo(
        url=str(media_url),
        headers={str(k): str(v) for k, v in (info.get("http_headers") or {}).items()},
        title=str(info.get("title") or ""),
        ext=str(info.get("ext")) if info.get("ext") else None,
        duration=duration,
        filesize=int(size) if size else None,
    )


def _pieces_only() -> LinkError:
    return LinkError(
        "The video on this page is only streamed in pieces (HLS or DASH), which a link check "
        "does not download. Download the video with the site's own button and upload the file.",
        "no_video",
    )


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


class _QuietLogger:
    """yt-dlp's messages go to this module's log at debug level, never to stdout."""

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    info = debug

    def warning(self, msg: str) -> None:
        log.debug("yt-dlp warning: %s", msg)

    def error(self, msg: str) -> None:
        log.info("yt-dlp error: %s", msg)
