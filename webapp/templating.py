"""Template filters and globals, registered by the app factory (:func:`register`).

They format what the templates show (sizes, ages, times, scores); the templates live in
``templates/``. Nothing here touches the database or the engine.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .models import as_utc

if TYPE_CHECKING:
    from flask import Flask


def human_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" or n >= 100 else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def since(value: datetime | None) -> str:
    """'3 minutes ago' style text for a UTC datetime."""
    value = as_utc(value)
    if value is None:
        return ""
    seconds = (datetime.now(UTC) - value).total_seconds()
    if seconds < 60:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return ""


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    value = float(value)
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(round(value)), 60)
    return f"{minutes} min {secs:02d} s"


def pct(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    v = float(value) * 100
    lo, hi = 0.5 * 10**-digits, 100 - 0.5 * 10**-digits
    if v >= hi:  # a calibrated score is never a certainty: no "100%"
        return f">{100 - 10**-digits:g}%"
    if v < lo and v > 0:
        return f"<{10**-digits:g}%"
    return f"{v:.{digits}f}%"


def date_time(value) -> str:
    value = as_utc(value)
    return value.strftime("%-d %b %Y, %H:%M UTC") if value else "–"


def model_choices() -> list[dict[str, Any]]:
    """The registry's models for the upload form's model picker, default first; empty when
    the registry cannot be read (the form then has no picker and uploads use the default)."""
    from flask import current_app

    from .detection import registry
    from .detection.errors import ModelNotFoundError

    try:
        reg = registry.Registry(current_app.config["MODEL_DIR"])
        entries = sorted(reg.entries, key=lambda e: not e.default)
    except (ModelNotFoundError, OSError):
        return []
    return [{"version": e.version, "default": e.default} for e in entries]


def default_face_lines() -> dict[str, dict[str, int]]:
    """The default model's face-size lines (judged from / called real from), per media type."""
    from .detection.result import face_lines
    from .services.modelcard import model_info

    return face_lines(model_info())


def register(app: Flask) -> None:
    """Add the filters and globals to ``app``'s Jinja environment."""
    from .blueprints.results import tpct
    from .models import STAGE_LABELS, VERDICT_LABELS
    from .services.compare import analysing_notice
    from .services.presenters import iso
    from .services.storage import has_thumbnail

    app.jinja_env.filters.update(
        bytes=human_bytes,
        since=since,
        iso=iso,
        seconds=seconds,
        pct=pct,
        tpct=tpct,
        datetime=date_time,
    )

    @app.context_processor
    def _globals() -> dict[str, Any]:
        from .auth import accounts_exist
        from .owners import current_identity

        return {
            "VERDICT_LABELS": VERDICT_LABELS,
            "STAGE_LABELS": STAGE_LABELS,
            "identity": current_identity,  # a function: pages that need it call it
            "accounts_exist": accounts_exist,
            "face_lines": default_face_lines,  # a function: pages that need it call it
        }

    app.jinja_env.globals["has_thumb"] = has_thumbnail  # macros see globals
    app.jinja_env.globals["model_choices"] = model_choices
    app.jinja_env.globals["analysing_notice"] = analysing_notice
