"""JSON API, version 1. CSRF-exempt (no cookie acts for another site; see ``webapp.auth``);
errors are JSON (see ``webapp.errors``).

Every call needs ``Authorization: Bearer <token>`` unless the site sets ``PUBLIC_API``, and
sees only its owner's detections and batches (an admin's token: everyone's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, jsonify, request, url_for

from ..auth import api_identity
from ..extensions import db
from ..owners import get_visible_batch_or_404, get_visible_or_404
from ..services import batches, compare, intake, links, presenters, storage
from ..services.database import ensure_owner
from .history import detections_query, known_model, parse_filters
from .upload import uploads_limit

bp = Blueprint("api", __name__, url_prefix="/api/v1")
bp.before_request(api_identity)


def _error(status: int, code: str, message: str):
    return jsonify(error={"code": code, "status": status, "message": message}), status


def _rejected(err: intake.UploadRejected):
    response, status = _error(err.status, err.code, str(err))
    if status == 503:
        response.headers["Retry-After"] = "30"
    return response, status


def _queued(det, reused: bool, analyses=None):
    """202 with the new (or still running) detection, 200 with a finished one it reused.
    ``analyses``: ``(detection, reused)`` per model of the upload (``det``'s first), listed
    in the answer; 200 only when every one was a finished one reused."""
    body = presenters.summary_dict(det)
    body["reused"] = reused
    body["status_url"] = url_for(".get_detection", detection_id=det.id, _external=True)
    if analyses is not None:
        body["analyses"] = [{**presenters.summary_dict(d), "reused": again} for d, again in analyses]
    response = jsonify(body)
    finished = all(again and d.status == "done" for d, again in analyses or [(det, reused)])
    response.status_code = 200 if finished else 202
    response.headers["Location"] = body["status_url"]
    return response


def _field(name: str) -> str | None:
    """A form field, or a string member of a JSON body (a link needs no multipart)."""
    if request.is_json:
        data = request.get_json(silent=True)
        value = data.get(name) if isinstance(data, dict) else None
        return value if isinstance(value, str) else None
    return request.form.get(name)


@bp.post("/detections")
@uploads_limit
def create_detection():
    """One ``file``, or one ``url`` to fetch it from (optional ``model``, and ``models``:
    ``all`` or a comma-separated list of versions to judge it with as well). The answer is
    the detection by ``model`` (default: the default model), with ``analyses``: one entry
    per model, that one first. A link is fetched by the worker: its row starts queued."""
    try:
        file = intake.single_file(request.files.getlist("file"))
        url = _field("url")
        if url is not None and file is not None:
            raise intake.UploadRejected(
                "Send a file or a url, not both, in one request.", "file_and_url"
            )
        if url is not None:
            analyses = links.create_link_detections(
                url, ensure_owner(), _field("model"), _field("models")
            )
        else:
            analyses = intake.create_detections(
                file, ensure_owner(), request.form.get("model"), request.form.get("models")
            )
    except intake.UploadRejected as err:
        return _rejected(err)
    det, reused = analyses[0]
    return _queued(det, reused, analyses)


@bp.post("/detections/<detection_id>/analyses")
@uploads_limit
def analyse_again(detection_id: str):
    """The same file analysed by another model (``model=<version>``, form or JSON; default:
    the default model), from the upload still stored; the owner's existing analysis by that
    model when there is one."""
    det = get_visible_or_404(detection_id)
    if not compare.is_owner(det):
        return _error(403, "not_owner", "Only the owner of a detection can have it analysed again.")
    model = request.form.get("model")
    if model is None and request.is_json:
        data = request.get_json(silent=True)
        model = data.get("model") if isinstance(data, dict) else None
    if model is not None and not isinstance(model, str):
        return _error(400, "unknown_model", "model must be a model version (a string).")
    try:
        new, reused = compare.analyse_again(det, model)
    except intake.UploadRejected as err:
        return _rejected(err)
    return _queued(new, reused)


@bp.get("/detections/<detection_id>/analyses")
def list_analyses(detection_id: str):
    """The owner's analyses of this detection's file, one per model, for side by side."""
    det = get_visible_or_404(detection_id)
    rows = compare.analyses_of(det)
    tried = {r.model_version for r in rows if r.status != "failed"}
    return jsonify(
        sha256=det.sha256,
        items=[presenters.summary_dict(r) for r in rows],
        models_not_run=[e.version for e in compare.installed_models() if e.version not in tried],
        file_kept=bool(compare.stored_uploads(det)),
    )


@bp.get("/detections/<detection_id>")
def get_detection(detection_id: str):
    det = get_visible_or_404(detection_id)
    body = presenters.summary_dict(det)
    if det.status == "done":
        result = storage.load_result(det)
        body["result"] = presenters.result_with_urls(det, result) if result is not None else None
        body["links"]["json"] = url_for(
            "results.download_json", detection_id=det.id, _external=True
        )
        body["links"]["csv"] = url_for("results.download_csv", detection_id=det.id, _external=True)
        body["links"]["provenance_csv"] = url_for(
            "results.download_provenance_csv", detection_id=det.id, _external=True
        )
        body["links"]["report"] = url_for("report.api", detection_id=det.id, _external=True)
    response = jsonify(body)
    if det.is_pending:
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.delete("/detections/<detection_id>")
def delete_detection(detection_id: str):
    det = get_visible_or_404(detection_id)
    storage.delete_detection(det)
    return "", 204


@bp.get("/detections")
def list_detections():
    filters = parse_filters(request.args)
    options = compare.model_options()
    if not known_model(filters, options):
        listed = ", ".join(o["version"] for o in options) or "none"
        return _error(400, "unknown_model", f"Unknown model {filters['model']!r}. Models: {listed}.")
    return paginated(
        detections_query(filters),
        presenters.summary_dict,
        ".list_detections",
        **{k: v for k, v in filters.items() if v},
    )


# --------------------------------------------------------------------------- batches


@bp.post("/batches")
@uploads_limit
def create_batch():
    """Several ``file`` parts and/or ``url`` fields (optional ``model`` and ``name``): one
    detection per accepted file or link; refused ones are listed in the batch with their
    reason."""
    try:
        batch = batches.create_batch(
            request.files.getlist("file"),
            ensure_owner(),
            request.form.get("model"),
            request.form.get("name"),
            models=request.form.get("models"),
            urls=[u.strip() for u in request.form.getlist("url") if u.strip()],
        )
    except batches.NothingAccepted as err:
        response, status = _rejected(err)
        body = response.get_json()
        body["items"] = [
            {**item, "error": {k: v for k, v in item["error"].items() if k != "status"}}
            for item in err.items
        ]
        return jsonify(body), status
    except intake.UploadRejected as err:
        return _rejected(err)
    body = batches.batch_dict(batch)
    response = jsonify(body)
    response.status_code = 202
    response.headers["Location"] = body["links"]["self"]
    return response


@bp.get("/batches/<batch_id>")
def get_batch(batch_id: str):
    body = batches.batch_dict(get_visible_batch_or_404(batch_id))
    response = jsonify(body)
    if not body["finished"]:
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.delete("/batches/<batch_id>")
def delete_batch(batch_id: str):
    batches.delete_batch(get_visible_batch_or_404(batch_id))
    return "", 204


@bp.get("/batches")
def list_batches():
    return paginated(batches.visible_query(), batches.listing_dict, ".list_batches")


def paginated(query: Any, item: Callable[[Any], dict[str, Any]], endpoint: str, **args: Any):
    """One page of ``query``'s rows as the API lists them: ``items`` (each row through
    ``item``), ``page``, ``per_page`` (``?per_page=``, at most API_MAX_PER_PAGE), ``total``,
    ``pages``, and the ``next``/``prev`` page URLs of ``endpoint`` with ``args`` kept."""
    max_per_page = current_app.config["API_MAX_PER_PAGE"]
    page = db.paginate(query, max_per_page=max_per_page, error_out=False)

    def link(n: int | None) -> str | None:
        if n is None:
            return None
        return url_for(endpoint, page=n, per_page=page.per_page, _external=True, **args)

    return jsonify(
        items=[item(row) for row in page.items],
        page=page.page,
        per_page=page.per_page,
        total=page.total,
        pages=page.pages,
        next=link(page.next_num),
        prev=link(page.prev_num),
    )
