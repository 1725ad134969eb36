"""The upload form: one clip, photo or link (then its result page), or several at once (a
batch, then the batch's page), each checked by content and queued for analysis."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from ..extensions import limiter
from ..forms import UploadForm
from ..services import batches, compare, intake, links
from ..services.database import ensure_owner
from .pages import upload_limits

bp = Blueprint("upload", __name__)


def upload_rate_limit() -> str:
    return current_app.config["UPLOAD_RATE_LIMIT"]


#: One budget per client for the form and the API together (a batch counts as one upload).
uploads_limit = limiter.shared_limit(upload_rate_limit, scope="uploads", methods=["POST"])


@bp.route("/upload", methods=["GET", "POST"])
@uploads_limit
def upload():
    form = UploadForm()
    urls: list[str] = []
    if request.method == "POST":
        files = batches.present_files(request.files.getlist("file"))
        urls = links.parse_urls(request.form.get("urls"))
        if len(files) + len(urls) > 1:
            return upload_batch(form, files, urls)
    if not form.is_submitted():  # "Upload again with <model>" links preselect the model
        form.model.data = request.args.get("model", "")[:80]
        form.models.data = intake.ALL_MODELS if request.args.get("models") == "all" else ""
    status = 200
    if form.validate_on_submit():
        try:
            if urls:  # one link and no file
                analyses = links.create_link_detections(
                    urls[0], ensure_owner(), form.model.data, form.models.data
                )
            else:
                analyses = intake.create_detections(
                    form.file.data, ensure_owner(), form.model.data, form.models.data
                )
        except intake.UploadRejected as err:
            if err.code == "too_large":
                abort(413)
            (form.urls if urls else form.file).errors = [str(err)]
            status = err.status
        else:
            det, reused = analyses[0]
            if reused:
                flash(
                    f"You already analysed this exact file with {det.model_version or 'this model'}, "
                    "so here is your stored result instead of a new analysis.",
                    "info",
                )
            started = [d.model_version for d, again in analyses[1:] if not again]
            if started:
                flash(compare.started_message(started), compare.notice_category(started))
            return redirect(url_for("results.show", detection_id=det.id), code=303)
    elif form.is_submitted():
        status = 400
    return render_upload(form, status)


def upload_batch(form: UploadForm, files, urls: list[str]):
    """Several files or links from the form: a batch (the CSRF token was checked before the
    view)."""
    try:
        batch = batches.create_batch(
            files,
            ensure_owner(),
            request.form.get("model"),
            request.form.get("name"),
            models=request.form.get("models"),
            urls=urls,
        )
    except batches.NothingAccepted as err:
        form.file.errors = [str(err)]
        return render_upload(form, err.status, refused=err.items)
    except intake.UploadRejected as err:
        form.file.errors = [str(err)]
        return render_upload(form, err.status)
    return redirect(url_for("batches.show", batch_id=batch.id), code=303)


def render_upload(form: UploadForm, status: int, refused=None):
    return (
        render_template("upload/upload.html", form=form, limits=upload_limits(), refused=refused),
        status,
    )
