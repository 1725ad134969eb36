"""The "Download report (PDF)" routes: one finished result as a printable, archivable PDF.

Three doors to the same report (``services.report``):

- ``/results/<id>/report.pdf``: the owner (and admins), like the result's other downloads;
- ``/shared/<token>/report.pdf``: whoever holds a share link, which already shows the result
  page and its JSON and CSV downloads; the report holds nothing more than those;
- ``/api/v1/detections/<id>/report.pdf``: an API client (token, or ``PUBLIC_API``).

Anyone else gets the site's 404. A queued, running or failed detection has no report: 409
with the reason (JSON under ``/api/``). ``?paper=letter`` lays it out on US Letter (A4 by
default). Reports that were actually rendered count against ``REPORT_RATE_LIMIT``.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request

from ..auth import api_identity
from ..errors import TITLES, wants_json
from ..extensions import limiter
from ..models import Detection
from ..owners import get_visible_or_404
from ..services import presenters, report, storage
from .share import shared_or_404

bp = Blueprint("report", __name__)


def report_rate_limit() -> str:
    return current_app.config["REPORT_RATE_LIMIT"]


#: One budget per client address for all three routes; only a rendered PDF counts.
reports_limit = limiter.shared_limit(
    report_rate_limit, scope="reports", deduct_when=lambda response: response.status_code == 200
)


def _error(status: int, code: str, message: str) -> Response:
    """The site's error page for a browser, its JSON error under /api/."""
    if wants_json():
        response = jsonify(error={"code": code, "status": status, "message": message})
        response.status_code = status
        return response
    title = {409: "No report yet"}.get(status, TITLES.get(status, "Error"))
    return Response(
        render_template("errors/error.html", code=status, title=title, message=message),
        status=status,
    )


def _send(det: Detection, *, shared: bool) -> Response:
    """The report of ``det``, or why there is none."""
    why = report.not_ready_message(det)
    if why is not None:
        code = "not_finished" if det.is_pending else "analysis_failed"
        response = _error(409, code, why)
        if det.is_pending:
            response.headers["Retry-After"] = "5"
        return response
    result = storage.load_result(det)
    if result is None:
        abort(404)  # finished, but its result files are gone (the result page says so)
    paper = (request.args.get("paper") or report.DEFAULT_PAPER).lower()
    if paper not in report.PAPERS:
        return _error(400, "bad_paper", f"Unknown paper size {paper!r}: use a4 or letter.")
    view = presenters.build_view(det, result, report.artefact_uri(det))
    try:
        pdf = report.render_pdf(det, result, view, paper=paper, shared=shared)
    except report.ReportUnavailable as err:
        return _error(503, "report_unavailable", str(err))
    return Response(
        pdf,
        mimetype="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{report.report_filename(det)}"',
            "Cache-Control": "private, no-store",
        },
    )


@bp.get("/results/<detection_id>/report.pdf")
@reports_limit
def owner(detection_id: str):
    if "Authorization" in request.headers:  # an API client following the result's links
        refused = api_identity()
        if refused is not None:
            return refused
    return _send(get_visible_or_404(detection_id), shared=False)


@bp.get("/shared/<token>/report.pdf")
@reports_limit
def shared(token: str):
    _, det = shared_or_404(token)
    return _send(det, shared=True)


@bp.get("/api/v1/detections/<detection_id>/report.pdf")
@reports_limit
def api(detection_id: str):
    refused = api_identity()
    if refused is not None:
        return refused
    return _send(get_visible_or_404(detection_id), shared=False)
