"""One detection: progress while it runs, the explained verdict when done, downloads, delete.

Every route here answers only the detection's owner (and admins); anyone else gets the same
404 as for an id that does not exist (see ``webapp.owners``).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)

from ..forms import RevokeShareForm, ShareForm
from ..models import Detection
from ..owners import get_visible_or_404 as get_or_404
from ..services import compare, presenters, sharing, storage
from ..services.provenance_view import provenance_csv

bp = Blueprint("results", __name__, url_prefix="/results")


@bp.before_request
def _token_holders() -> Response | None:
    """An API client follows the result's file and download links with its bearer token."""
    if "Authorization" in request.headers:
        from ..auth import api_identity

        return api_identity()
    return None


def owner_urls(det: Detection) -> dict[str, Any]:
    """The file and download URLs of a result page seen by its owner (a share link has its
    own, see ``share.shared_urls``)."""
    return {
        "file": lambda name: url_for("results.artefact", detection_id=det.id, name=name),
        "json": url_for("results.download_json", detection_id=det.id),
        "csv": url_for("results.download_csv", detection_id=det.id),
        "provenance_csv": url_for("results.download_provenance_csv", detection_id=det.id),
        "report": url_for("report.owner", detection_id=det.id),
    }


@bp.get("/<detection_id>")
def show(detection_id: str):
    det = get_or_404(detection_id)
    result = storage.load_result(det)
    urls = owner_urls(det)
    view = presenters.build_view(det, result, urls["file"]) if result is not None else {}
    return render_template(
        "results/show.html",
        det=det,
        result=result,
        view=view,
        status=presenters.status_dict(det),
        broken=det.status == "done" and result is None,
        has_thumb=storage.has_thumbnail(det),
        urls=urls,
        shared=False,
        share_links=sharing.links_of(det) if result is not None else [],
        comparison=compare.comparison(det, result) if result is not None else None,
        # while this one runs: the owner's other models' analyses of the file, to come beside it
        companions=[r for r in compare.analyses_of(det) if r.id != det.id] if det.is_pending else [],
        share_form=ShareForm(),
        revoke_form=RevokeShareForm(),
    )


@bp.get("/<detection_id>/status")
def status(detection_id: str):
    det = get_or_404(detection_id)
    response = jsonify(presenters.status_dict(det))
    response.headers["Cache-Control"] = "no-store"
    return response


#: The only files served from a result folder (result.json has its own download route).
ARTEFACT_NAME = re.compile(r"(?:thumb\.jpg|(?:chips|heatmaps)/\d{3,}\.jpg)")


@bp.get("/<detection_id>/files/<path:name>")
def artefact(detection_id: str, name: str):
    det = get_or_404(detection_id)
    if not ARTEFACT_NAME.fullmatch(name):
        abort(404)
    return send_artefact(det, name)


def send_artefact(det: Detection, name: str) -> Response:
    """A checked artefact name (``ARTEFACT_NAME``) from the detection's result folder."""
    response = send_from_directory(storage.result_dir(det.id), name, max_age=3600)
    response.headers["Cache-Control"] = "private, max-age=3600"
    response.headers["Vary"] = "Cookie"
    return response


def _owned_result(detection_id: str) -> tuple[Detection, dict[str, Any]]:
    """The asker's detection and its stored result, or 404 (not theirs, or no result yet)."""
    det = get_or_404(detection_id)
    result = storage.load_result(det)
    if result is None:
        abort(404)
    return det, result


def _attachment(body: str, mimetype: str, filename: str) -> Response:
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.get("/<detection_id>/result.json")
def download_json(detection_id: str):
    det, result = _owned_result(detection_id)
    body = json.dumps(
        {**presenters.summary_dict(det), "result": presenters.result_with_urls(det, result)}, indent=2
    )
    return _attachment(body, "application/json", f"detection-{det.id}.json")


@bp.get("/<detection_id>/frames.csv")
def download_csv(detection_id: str):
    det, result = _owned_result(detection_id)
    return _attachment(presenters.frames_csv(det, result), "text/csv", f"detection-{det.id}-frames.csv")


@bp.get("/<detection_id>/provenance.csv")
def download_provenance_csv(detection_id: str):
    det, result = _owned_result(detection_id)
    return _attachment(provenance_csv(result), "text/csv", f"detection-{det.id}-provenance.csv")


@bp.post("/<detection_id>/delete")
def delete(detection_id: str):
    det = get_or_404(detection_id)
    name = det.filename
    storage.delete_detection(det)
    flash(f"Deleted the detection of “{name}” and everything stored for it.", "success")
    return redirect(safe_next(request.form.get("next")) or url_for("history.index"), code=303)


def safe_next(target: str | None) -> str | None:
    """A same-site path to go back to after a form, or None."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target
