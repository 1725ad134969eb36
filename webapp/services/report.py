"""The PDF report of one finished detection: a page a fact-checker can print and file.

:func:`render_pdf` fills ``templates/report/report.html`` (the same Jinja2 environment as the
site, so the wording of "what the score means" and "known limits" is the site's own, see
``templates/_explain.html``) and lays it out with WeasyPrint. Every picture is read from the
detection's result folder and embedded as a ``data:`` URI, the font is the system's DejaVu
Sans (Debian's ``fonts-dejavu-core``), embedded as a subset; the layout engine may fetch
nothing else (only ``data:`` URLs), so a report never reaches the network or other files.

WeasyPrint takes about half a second to import, so it is imported on the first report, never
at start-up. No TensorFlow here: the report is built from the stored ``result.json``.
"""

from __future__ import annotations

import base64
import logging
import mimetypes
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import current_app, render_template

from ..models import Detection, utcnow
from . import modelcard, storage

log = logging.getLogger(__name__)

#: Paper sizes a report can be asked for (``?paper=``), first one the default.
PAPERS = {"a4": "A4", "letter": "letter"}
DEFAULT_PAPER = "a4"

#: The files of a result folder a report may embed (the site's artefact names).
EMBEDDABLE = re.compile(r"(?:thumb\.jpg|(?:chips|heatmaps)/\d{3,}\.jpg)")

UNAVAILABLE_MESSAGE = (
    "PDF reports are not available on this server: its PDF library (WeasyPrint and the Pango "
    "text libraries) is not installed. The JSON and CSV downloads hold the same result; the "
    "site's administrator can install the missing packages (see README, 'Reports')."
)


class ReportUnavailable(RuntimeError):
    """The PDF library cannot be loaded on this server."""


def not_ready_message(det: Detection) -> str | None:
    """Why ``det`` has no report yet, in words a person can act on; None when it can have one."""
    if det.status in ("queued", "running"):
        return (
            "The report can be downloaded once the analysis has finished. This file is still "
            f"being analysed ({det.stage_label.lower()}); try again in a moment."
        )
    if det.status == "failed":
        reason = det.error_message or "the analysis stopped without a reason being recorded"
        return (
            "There is no report for this file: its analysis failed, so there is no verdict to "
            f"report. Reason: {reason.rstrip('.')}."
        )
    return None


def artefact_uri(det: Detection) -> Callable[[str], str | None]:
    """``name -> data: URI`` of a file of ``det``'s result folder (None if it is missing)."""
    folder = storage.result_dir(det.id)

    def uri(name: str) -> str | None:
        if not EMBEDDABLE.fullmatch(name):
            return None
        try:
            data = (folder / name).read_bytes()
        except OSError:
            log.warning("Report of %s: %s is missing", det.id, name)
            return None
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"

    return uri


def model_facts(version: str | None) -> dict[str, Any]:
    """What the report says of the model that made the result: its bands for photos and for
    clips, what it was trained on and its measured accuracy (the model page's table).

    ``{"version", "installed", "default", "trained_on", "photo", "clip", "metrics", "frames",
    "lines"}`` (``lines``: its face-size lines, ``modelcard.face_size_lines``); a version no
    longer in the registry has ``installed`` False and no figures.
    """
    facts: dict[str, Any] = {
        "version": version,
        "installed": False,
        "default": False,
        "trained_on": [],
        "photo": None,
        "clip": None,
        "metrics": None,
        "lines": modelcard.face_size_lines({}),  # the engine's face-size lines when the model is gone
    }
    if not version:
        return facts
    entry = modelcard.model_entry(version)
    if entry is None:
        return facts
    cfg = entry.config

    def bands(lo: str, hi: str) -> dict[str, float] | None:
        if isinstance(cfg.get(lo), int | float) and isinstance(cfg.get(hi), int | float):
            return {"real_below": float(cfg[lo]), "fake_above": float(cfg[hi])}
        return None

    photo = bands("real_below", "fake_above")
    facts.update(
        installed=True,
        default=entry.default,
        trained_on=entry.trained_on,
        photo=photo,
        clip=bands("clip_real_below", "clip_fake_above") or photo,
        metrics=modelcard.metrics_table({"metrics": entry.metrics}),
        frames=cfg.get("frames"),
        lines=modelcard.face_size_lines(cfg),
    )
    return facts


def report_filename(det: Detection) -> str:
    return f"faceproof-report-{det.id}.pdf"


def _weasyprint():
    """The ``weasyprint`` module, imported on first use.

    Importing it sets Pillow's process-wide ``ImageFile.LOAD_TRUNCATED_IMAGES``, which would make
    the upload checks accept a damaged photo from then on: the flag is put back at once. (The
    report embeds only the result folder's own, complete JPEGs.)
    """
    from PIL import ImageFile

    before = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        import weasyprint
    except (ImportError, OSError) as err:  # OSError: a missing Pango or HarfBuzz library
        log.error("WeasyPrint cannot be loaded: %s", err)
        raise ReportUnavailable(UNAVAILABLE_MESSAGE) from err
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before
    return weasyprint


def report_html(
    det: Detection,
    result: dict[str, Any],
    view: dict[str, Any],
    *,
    paper: str = DEFAULT_PAPER,
    shared: bool = False,
    now: datetime | None = None,
) -> str:
    """The report as HTML (what :func:`render_pdf` lays out); ``view`` is the result page's
    (``presenters.build_view`` with :func:`artefact_uri` as its file URLs)."""
    css_folder = Path(current_app.static_folder or "static") / "css"
    model = model_facts(det.model_version)
    return render_template(
        "report/report.html",
        det=det,
        result=result,
        view=view,
        model=model,
        frames=model.get("frames") or 16,  # as the "How it works" page says it
        thumb=artefact_uri(det)("thumb.jpg") if storage.has_thumbnail(det) else None,
        paper=PAPERS.get(paper, PAPERS[DEFAULT_PAPER]),
        shared=shared,
        generated_at=now or utcnow(),
        css=(css_folder / "report.css").read_text(encoding="utf-8"),
        chart_css=(css_folder / "charts-print.css").read_text(encoding="utf-8"),
    )


def render_pdf(
    det: Detection,
    result: dict[str, Any],
    view: dict[str, Any],
    *,
    paper: str = DEFAULT_PAPER,
    shared: bool = False,
) -> bytes:
    """The report as PDF bytes. Raises :class:`ReportUnavailable` without WeasyPrint."""
    weasyprint = _weasyprint()
    html = report_html(det, result, view, paper=paper, shared=shared)
    started = time.perf_counter()
    # Only the data: URIs the report embeds itself: no network, no other files.
    fetcher = weasyprint.URLFetcher(allowed_protocols={"data"})
    pdf = weasyprint.HTML(string=html, url_fetcher=fetcher).write_pdf()
    log.info("Report of %s: %d bytes in %.2f s", det.id, len(pdf), time.perf_counter() - started)
    return pdf
