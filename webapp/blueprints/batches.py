"""Batches: the page of several files sent at once, its live status, CSV/JSON export, delete.

Batches are made by the upload form (several files) and ``POST /api/v1/batches``. Every
route here answers only the batch's owner (and admins); anyone else gets the same 404 as for
an id that does not exist (see ``webapp.owners``).
"""

from __future__ import annotations

import json

from flask import (
    Blueprint,
    Response,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from ..owners import get_visible_batch_or_404 as get_or_404
from ..services import batches

bp = Blueprint("batches", __name__, url_prefix="/batches")

#: Requests that may carry several files: their body may be as large as a whole batch.
MULTI_FILE_ENDPOINTS = ("upload.upload", "api.create_batch")


def allow_batch_bodies() -> None:
    """App ``before_request``, ahead of the CSRF check that reads the body: a request that may
    carry several files gets the batch's size limit instead of one file's
    (``MAX_CONTENT_LENGTH``, still applied to each file by the intake)."""
    if request.method == "POST" and request.endpoint in MULTI_FILE_ENDPOINTS:
        request.max_content_length = batches.request_limit()


@bp.before_request
def _token_holders() -> Response | None:
    """An API client follows a batch's export links with its bearer token."""
    if "Authorization" in request.headers:
        from ..auth import api_identity

        return api_identity()
    return None


@bp.get("/<batch_id>")
def show(batch_id: str):
    batch = get_or_404(batch_id)
    body = batches.batch_dict(batch)
    return render_template("batches/show.html", batch=batch, body=body, items=body["items"])


@bp.get("/<batch_id>/status")
def status(batch_id: str):
    """What the batch page polls: the batch, its totals and one entry per file."""
    response = jsonify(batches.batch_dict(get_or_404(batch_id)))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/<batch_id>/export.json")
def export_json(batch_id: str):
    batch = get_or_404(batch_id)
    return Response(
        json.dumps(batches.batch_dict(batch), indent=2),
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="batch-{batch.id}.json"'},
    )


@bp.get("/<batch_id>/export.csv")
def export_csv(batch_id: str):
    batch = get_or_404(batch_id)
    return Response(
        batches.batch_csv(batch),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="batch-{batch.id}.csv"'},
    )


@bp.post("/<batch_id>/delete")
def delete(batch_id: str):
    batch = get_or_404(batch_id)
    title = batch.title
    n = batches.delete_batch(batch)
    flash(
        f"Deleted “{title}” and its {n} detection{'' if n == 1 else 's'}, with everything "
        "stored for them.",
        "success",
    )
    return redirect(url_for("history.index"), code=303)
