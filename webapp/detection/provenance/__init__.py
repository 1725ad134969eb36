"""What a media file says about itself: its Content Credentials and its other metadata.

:func:`read_provenance` is the one entry point. It is evidence shown *beside* the model's
verdict, never fed into it: nothing here is read by the classifier, the score or the verdict.

The result (JSON-serialisable, stored as ``provenance`` in ``result.json``)::

    {
      "content_credentials": {...},   # credentials.read_credentials: state, signer, actions...
      "file_says": [{"source", "field", "value", "text", "kind"}, ...],   # metadata.read_metadata
      "declares_ai": bool,            # a valid manifest says a generator made it
      "metadata_declares_ai": bool,   # an unsigned field says so (anyone can write that)
      "headline": str | None,         # one sentence the page leads with, None when nothing found
      "seconds": float,               # how long the reading took
    }
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from .credentials import VALID, read_credentials
from .metadata import read_metadata
from .vocabulary import AI

log = logging.getLogger(__name__)

#: What the absence of any self-description does and does not mean (page, report, README).
ABSENCE_NOTE = (
    "Most platforms (social networks, messengers, many upload sites) strip metadata and Content "
    "Credentials when they re-encode a file, and anyone can remove them: their absence proves "
    "nothing, either way."
)
#: What unsigned metadata is worth.
UNSIGNED_NOTE = (
    "Unsigned fields (EXIF, XMP, PNG text chunks, container tags) can be written or changed by "
    "anyone: they are claims, not proof."
)
#: What a valid signature does and does not show.
SIGNED_NOTE = (
    "A valid signature shows who signed these statements and that the file has not changed "
    "since; it does not make them true, and the signer's name means little unless the signer "
    "is on a trust list."
)
#: What Content Credentials that do not validate are worth.
INVALID_NOTE = (
    "Content Credentials that do not validate cannot be relied on: what they say may have been "
    "true of an earlier version of the file, or never."
)


def read_provenance(
    path: str | Path, media_type: str, trust_anchors: str | Path | None = None
) -> dict[str, Any]:
    """Read ``path``'s Content Credentials (validated against the PEM bundle at
    ``trust_anchors``, if any) and its other self-descriptions. Never raises."""
    started = time.perf_counter()
    try:
        credentials = read_credentials(path, trust_anchors)
    except Exception as err:  # noqa: BLE001 - read_credentials reports; this is a last guard
        log.exception("Content Credentials of %s", path)
        credentials = {"state": "unreadable", "present": False, "text": f"Not read: {err}"[:300]}
    says = read_metadata(path, media_type)
    declares_ai = credentials.get("state") == VALID and bool(credentials.get("declares_ai"))
    metadata_ai = any(item["kind"] == AI for item in says)
    return {
        "content_credentials": credentials,
        "file_says": says,
        "declares_ai": declares_ai,
        "metadata_declares_ai": metadata_ai,
        "headline": headline(credentials, says),
        "seconds": round(time.perf_counter() - started, 4),
    }


def headline(credentials: dict[str, Any], says: list[dict[str, str]]) -> str | None:
    """One sentence: the strongest thing the file says about where it comes from."""
    state = credentials.get("state")
    kind = credentials.get("source_type") or {}
    if state == VALID and kind:
        return f"The file's own signed Content Credentials say it was {kind['words']}."
    if state == VALID:
        tool = credentials.get("claim_generator")
        return "The file carries valid Content Credentials" + (f", written by {tool}." if tool else ".")
    if credentials.get("present"):
        return credentials.get("text")
    ai = next((item for item in says if item["kind"] == AI), None)
    if ai:
        return f"Its metadata (unsigned) says it was made by an AI generator: {ai['source']} “{ai['field']}”."
    if says:
        return "No Content Credentials; its unsigned metadata says something about how it was made."
    return None
