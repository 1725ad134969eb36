"""Several models on one file: "Analyse again with …" on a finished result, and the
side-by-side panel the result page refreshes while another model's analysis runs.

The work is in :mod:`webapp.services.compare`. Like every result route these answer only the
detection's owner (and admins, who see but do not start analyses); anyone else gets the same
404 as for an id that does not exist.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from ..owners import get_visible_or_404
from ..services import compare, intake, storage
from .upload import uploads_limit

bp = Blueprint("compare", __name__, url_prefix="/results")


@bp.post("/<detection_id>/analyses")
@uploads_limit
def analyse(detection_id: str):
    det = get_visible_or_404(detection_id)
    if not compare.is_owner(det):
        abort(403, description="Only the owner of a detection can have it analysed again.")
    back = url_for("results.show", detection_id=det.id, _anchor="compare")
    try:
        new, reused = compare.analyse_again(det, request.form.get("model", ""))
    except intake.UploadRejected as err:
        flash(str(err), "error")
        return redirect(back, code=303)
    if reused:
        if new.id != det.id:
            flash(
                f"You already had this file analysed with {new.model_version}, so here is that "
                "result instead of a new analysis.",
                "info",
            )
        return redirect(url_for("results.show", detection_id=new.id), code=303)
    if new.is_pending:  # the notice turns to "finished" when its column fills in
        flash(
            f"Analysing the same file with {new.model_version}. Its verdict appears next to "
            "this one as soon as it is ready.",
            compare.notice_category([new.model_version]),
        )
    else:  # already finished (a queue that runs jobs at once)
        flash(f"{new.model_version} has judged the same file: see the comparison.", "success")
    return redirect(back, code=303)


@bp.get("/<detection_id>/compare")
def panel(detection_id: str):
    """The comparison panel alone (HTML), for the result page to refresh while it fills in."""
    det = get_visible_or_404(detection_id)
    result = storage.load_result(det)
    if result is None:
        abort(404)
    html = render_template("results/_compare.html", det=det, cmp=compare.comparison(det, result))
    return html, 200, {"Cache-Control": "no-store"}
