"""Share links: a read-only, revocable, optionally expiring link to one finished result.

The owner creates and revokes links from the result page. ``/shared/<token>`` shows the
result page and its downloads, never the delete button or the owner's other detections. A
revoked, expired or unknown token is a 404, like any other missing page.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for
from sqlalchemy import select

from ..extensions import db
from ..forms import RevokeShareForm, ShareForm
from ..models import Detection, ShareLink
from ..owners import get_visible_or_404
from ..services import presenters, sharing, storage
from ..services.provenance_view import provenance_csv
from .results import ARTEFACT_NAME, send_artefact

bp = Blueprint("share", __name__)


@bp.post("/results/<detection_id>/share")
def create(detection_id: str):
    det = get_visible_or_404(detection_id)
    form = ShareForm()
    back = redirect(url_for("results.show", detection_id=det.id, _anchor="share"), code=303)
    if not form.validate_on_submit():
        flash("Choose how long the link should work, then try again.", "error")
        return back
    if det.status != "done" or storage.load_result(det) is None:
        flash("A result can be shared once its analysis has finished.", "error")
        return back
    sharing.create_link(det, int(form.expires.data) if form.expires.data else None)
    flash(
        "Share link created: anyone with it can see this result and download it, nothing else. "
        "Revoke it below when it is no longer needed.",
        "success",
    )
    return back


@bp.post("/results/<detection_id>/share/revoke")
def revoke(detection_id: str):
    det = get_visible_or_404(detection_id)
    form = RevokeShareForm()
    link = None
    if form.validate_on_submit() and form.link.data.isdigit():
        link = db.session.get(ShareLink, int(form.link.data))
    if link is None or link.detection_id != det.id:
        abort(404)
    sharing.revoke(link)
    flash("Share link revoked: it no longer opens this result.", "success")
    return redirect(url_for("results.show", detection_id=det.id, _anchor="share"), code=303)


def shared_or_404(token: str) -> tuple[ShareLink, Detection]:
    """The link and its finished detection; 404 if unknown, revoked or expired."""
    link = db.session.scalars(select(ShareLink).where(ShareLink.token == token)).first()
    if link is None or not link.usable():
        abort(404)
    det = db.session.get(Detection, link.detection_id)
    if det is None or det.status != "done":
        abort(404)
    return link, det


def shared_result_or_404(token: str) -> tuple[ShareLink, Detection, dict]:
    """:func:`shared_or_404` and the detection's stored result; 404 if that is gone."""
    link, det = shared_or_404(token)
    result = storage.load_result(det)
    if result is None:
        abort(404)
    return link, det, result


def shared_urls(token: str) -> dict:
    return {
        "file": lambda name: url_for("share.artefact", token=token, name=name),
        "json": url_for("share.download_json", token=token),
        "csv": url_for("share.download_csv", token=token),
        "provenance_csv": url_for("share.download_provenance_csv", token=token),
        "report": url_for("report.shared", token=token),
    }


@bp.get("/shared/<token>")
def show(token: str):
    link, det, result = shared_result_or_404(token)
    urls = shared_urls(token)
    response = Response(
        render_template(
            "results/show.html",
            det=det,
            result=result,
            view=presenters.build_view(det, result, urls["file"]),
            status=presenters.status_dict(det),
            broken=False,
            has_thumb=storage.has_thumbnail(det),
            urls=urls,
            shared=True,
            share_expires=link.expires_at,
        )
    )
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@bp.get("/shared/<token>/files/<path:name>")
def artefact(token: str, name: str):
    _, det = shared_or_404(token)
    if not ARTEFACT_NAME.fullmatch(name):
        abort(404)
    response = send_artefact(det, name)
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _download(body: str, mimetype: str, filename: str) -> Response:
    return Response(
        body,
        mimetype=mimetype,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "private, no-store",
        },
    )


@bp.get("/shared/<token>/result.json")
def download_json(token: str):
    _, det, result = shared_result_or_404(token)
    urls = shared_urls(token)
    with_urls = presenters.result_with_urls(
        det, result, lambda name: url_for("share.artefact", token=token, name=name, _external=True))
    body = {
        "id": det.id,
        "filename": det.filename,
        "created_at": presenters.iso(det.created_at),
        "verdict": det.verdict,
        "p_fake": det.p_fake,
        "model_version": det.model_version,
        "links": {"html": url_for("share.show", token=token, _external=True), "csv": urls["csv"]},
        "result": with_urls,
    }
    return _download(json.dumps(body, indent=2), "application/json", f"detection-{det.id}.json")


@bp.get("/shared/<token>/frames.csv")
def download_csv(token: str):
    _, det, result = shared_result_or_404(token)
    return _download(presenters.frames_csv(det, result), "text/csv", f"detection-{det.id}-frames.csv")


@bp.get("/shared/<token>/provenance.csv")
def download_provenance_csv(token: str):
    _, det, result = shared_result_or_404(token)
    return _download(provenance_csv(result), "text/csv", f"detection-{det.id}-provenance.csv")
