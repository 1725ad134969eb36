"""The upload form: one clip or photo, checked by content, then queued for analysis."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from ..extensions import limiter
from ..forms import UploadForm
from ..owners import ensure_owner
from ..services import intake
from .pages import upload_limits

bp = Blueprint("upload", __name__)


def upload_rate_limit() -> str:
    return current_app.config["UPLOAD_RATE_LIMIT"]


#: One budget per client for the form and the API together.
uploads_limit = limiter.shared_limit(upload_rate_limit, scope="uploads", methods=["POST"])


@bp.route("/upload", methods=["GET", "POST"])
@uploads_limit
def upload():
    form = UploadForm()
    if not form.is_submitted():  # "Upload again with <model>" links preselect the model
        form.model.data = request.args.get("model", "")[:80]
    status = 200
    if form.validate_on_submit():
        try:
            det, reused = intake.create_detection(form.file.data, ensure_owner(), form.model.data)
        except intake.UploadRejected as err:
            if err.code == "too_large":
                abort(413)
            form.file.errors = [str(err)]
            status = err.status
        else:
            if reused:
                flash(
                    "You already analysed this exact file with the current model, so here is "
                    "your stored result instead of a new analysis.",
                    "info",
                )
            return redirect(url_for("results.show", detection_id=det.id), code=303)
    elif form.is_submitted():
        status = 400
    return render_template("upload/upload.html", form=form, limits=upload_limits()), status
