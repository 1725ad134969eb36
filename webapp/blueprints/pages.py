"""Landing, information and model-card pages."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template
from sqlalchemy import select

from .. import catalog
from ..extensions import db
from ..forms import UploadForm
from ..models import Detection
from ..owners import visible
from ..services import batches, modelcard
from ..services.formatting import human_bytes

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    recent = db.session.scalars(
        visible(select(Detection))
        .order_by(Detection.created_at.desc())
        .limit(current_app.config["RECENT_ON_LANDING"])
    ).all()
    info = modelcard.model_info()
    return render_template(
        "pages/index.html",
        form=UploadForm(),
        recent=recent,
        model=info,
        metrics=modelcard.metrics_table(info),
        limits=upload_limits(),
    )


@bp.get("/info")
def info():
    model = modelcard.model_info()
    return render_template(
        "pages/info.html",
        model=model,
        metrics=modelcard.metrics_table(model),
        limits=upload_limits(),
        thresholds=thresholds(model),
    )


@bp.get("/model")
def model_card():
    """Every model of the registry with its measured rows and its card, the default first."""
    models = catalog.models()
    return render_template("pages/model.html", models=models, compared=catalog.compared(models),
                           trust=catalog.trust_compared(models))


def upload_limits() -> dict:
    cfg = current_app.config
    batch = batches.limits()
    return {
        "batch_max_files": batch["max_files"],
        "batch_max_bytes": batch["max_bytes"],
        "batch_max_size": batch["max_size"],
        "max_bytes": cfg.get("MAX_CONTENT_LENGTH"),
        "max_size": human_bytes(cfg.get("MAX_CONTENT_LENGTH")),
        "max_duration": cfg["MAX_DURATION_SECONDS"],
        "rate": cfg["UPLOAD_RATE_LIMIT"].replace(";", ", "),
        "retention_days": cfg.get("RETENTION_DAYS") or 0,
        "keep_uploads": cfg.get("KEEP_UPLOADS"),
        "public_api": bool(cfg.get("PUBLIC_API")),
    }


def thresholds(model: dict) -> dict:
    """The verdict thresholds from config.json, else the engine's defaults (0.3 / 0.7)."""
    t = model.get("thresholds") if isinstance(model.get("thresholds"), dict) else model
    known = "real_below" in t and "fake_above" in t
    return {
        "real_below": float(t.get("real_below", 0.3)),
        "fake_above": float(t.get("fake_above", 0.7)),
        "known": known,
    }
