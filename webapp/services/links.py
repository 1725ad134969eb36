"""Intake of a link: check a URL's form, create its row(s), queue them. The worker fetches
the file (:mod:`.downloads`), never the web request: a slow or huge download holds no web
process, and every address is checked where the connection is made.

A link's row is a Detection with ``source_url`` set, queued like an upload, judged by the
model(s) asked for (one row per model; each downloads its own copy), made by
:func:`webapp.services.detections.create_for_link` as every intake's rows are. Here only
the URL's form is checked (scheme, host, no credentials, an address written as a number); the name's
addresses are checked by the worker, at the moment it connects.
"""

from __future__ import annotations

import ipaddress

from flask import current_app

from ..models import Detection
from .detections import UploadRejected, create_for_link
from .downloads import display_name, link_policy
from .fetching import LinkError, check_url, refusal
from .intake import chosen_models

NO_LINK_MESSAGE = "Paste the link to a video, a photo or a page with a video."


def parse_urls(text: str | None) -> list[str]:
    """The links of a text field: one per line (blank lines and surrounding spaces dropped)."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def check_link(url: str | None) -> str:
    """The URL, stripped, if its form may be fetched; raises :class:`UploadRejected` (400)
    with the fetch guard's message otherwise. A host written as an address is checked here
    already; a name is resolved and checked by the worker."""
    url = (url or "").strip()
    if not current_app.config.get("LINKS_ENABLED", True):
        raise UploadRejected(
            "This server does not fetch links. Download the file and upload it.",
            "links_disabled",
            403,
        )
    try:
        parts = check_url(url)
        try:
            ip = ipaddress.ip_address(parts.hostname or "")
        except ValueError:
            ip = None
        if ip is not None:
            why = refusal(ip, link_policy(current_app.config).allowed)
            if why is not None:
                raise LinkError(
                    f"This link points to {why} ({ip}), which this server does not fetch "
                    "from, for safety. Use a public link, or download the file and upload it.",
                    "refused_address",
                )
    except LinkError as err:
        raise UploadRejected(str(err), err.code, 400) from err
    return url


def create_link_detections(
    url: str | None, owner_id: str, model: str | None = None, models: str | None = None
) -> list[tuple[Detection, bool]]:
    """Queue the file at ``url`` for ``owner_id`` (an existing Owner row), judged by
    ``model`` and the ``models`` (as an upload, :func:`intake.chosen_models`). Returns
    ``(detection, False)`` per model, the one ``model`` picks first (never reused: the
    bytes are not known yet). Raises :class:`UploadRejected`."""
    return create_link_analyses(url, owner_id, chosen_models(models, model))


def create_link_analyses(
    url: str | None, owner_id: str, versions: list[str | None]
) -> list[tuple[Detection, bool]]:
    """One queued row per model version for the link (:func:`detections.create_for_link`,
    the rows every intake makes); nothing is fetched here."""
    url = check_link(url)
    versions = list(dict.fromkeys(versions)) or [chosen_models(None)[0]]
    return create_for_link(url, display_name(url), owner_id, versions)
