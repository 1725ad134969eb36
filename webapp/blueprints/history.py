"""Your past detections (an admin's: everyone's): search by file name, filter by verdict and
by model, sort, paginate, delete; links to the batches they came in."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template, request
from sqlalchemy import Select, select

from ..extensions import db
from ..models import VERDICTS, Detection
from ..owners import visible
from ..services import batches
from ..services.compare import model_options

bp = Blueprint("history", __name__)

#: Batches linked above the table (each detection of a batch also links to its batch).
RECENT_BATCHES = 5

FILTERS = {
    "": "All",
    "real": "Likely real",
    "inconclusive": "Inconclusive",
    "fake": "Likely fake",
    "no_face": "No face",
    "pending": "In progress",
    "failed": "Failed",
}
SORTS = {
    "newest": "Newest first",
    "oldest": "Oldest first",
    "score_desc": "Most suspicious first",
    "score_asc": "Least suspicious first",
}


def parse_filters(args) -> dict[str, str]:
    verdict = args.get("verdict", "")
    sort = args.get("sort", "newest")
    return {
        "q": args.get("q", "").strip()[:200],
        "verdict": verdict if verdict in FILTERS else "",
        "model": args.get("model", "").strip()[:80],  # checked by the caller: known_model()
        "sort": sort if sort in SORTS else "newest",
    }


def known_model(filters: dict[str, str], options: list[dict[str, Any]]) -> bool:
    """Whether the model filter names a model (installed, or of the requester's detections)."""
    return not filters["model"] or filters["model"] in {o["version"] for o in options}


def detections_query(filters: dict[str, str]) -> Select[Any]:
    """The requester's detections (``owners.visible``), filtered and sorted."""
    stmt = visible(select(Detection))
    if filters["q"]:
        stmt = stmt.where(Detection.filename.icontains(filters["q"], autoescape=True))
    if filters.get("model"):
        stmt = stmt.where(Detection.model_version == filters["model"])
    verdict = filters["verdict"]
    if verdict in VERDICTS:
        stmt = stmt.where(Detection.status == "done", Detection.verdict == verdict)
    elif verdict == "pending":
        stmt = stmt.where(Detection.status.in_(("queued", "running")))
    elif verdict == "failed":
        stmt = stmt.where(Detection.status == "failed")
    order = {
        "newest": [Detection.created_at.desc()],
        "oldest": [Detection.created_at.asc()],
        "score_desc": [Detection.p_fake.desc().nulls_last(), Detection.created_at.desc()],
        "score_asc": [Detection.p_fake.asc().nulls_last(), Detection.created_at.desc()],
    }[filters["sort"]]
    return stmt.order_by(*order, Detection.id)


@bp.get("/history")
def index():
    filters = parse_filters(request.args)
    models = model_options()
    unknown_model = None
    if not known_model(filters, models):  # a mistyped or old link: say so, show every model
        unknown_model, filters["model"] = filters["model"], ""
    page = db.paginate(
        detections_query(filters),
        per_page=current_app.config["HISTORY_PER_PAGE"],
        max_per_page=current_app.config["HISTORY_PER_PAGE"],
        error_out=False,
    )
    any_detections = db.session.scalar(visible(select(Detection.id)).limit(1)) is not None
    in_batch = batches.batches_of([det.id for det in page.items])
    args = {k: v for k, v in filters.items() if v and not (k == "sort" and v == "newest")}
    return render_template(
        "history/index.html",
        page=page,
        filters=filters,
        args=args,
        FILTERS=FILTERS,
        SORTS=SORTS,
        models=models,
        unknown_model=unknown_model,
        any_detections=any_detections,
        in_batch=in_batch,
        recent_batches=batches.recent_batches(RECENT_BATCHES),
    )
