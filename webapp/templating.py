"""Template filters and globals, registered by the app factory (:func:`register`).

The filters are :mod:`webapp.services.formatting`'s (sizes, ages, times, scores: the same
as the API, CSV and PDF use); the templates live in ``templates/``. Nothing here touches the
database or the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .services import formatting

if TYPE_CHECKING:
    from flask import Flask


def model_choices() -> list[dict[str, Any]]:
    """The registry's models for the upload form's model picker, default first; empty when
    the registry cannot be read (the form then has no picker and uploads use the default)."""
    from .services.modelcard import installed_models

    entries = sorted(installed_models(), key=lambda e: not e.default)
    return [{"version": e.version, "default": e.default} for e in entries]


def default_face_lines() -> dict[str, dict[str, int]]:
    """The default model's face-size lines (judged from / called real from), per media type."""
    from .services.modelcard import face_size_lines

    return face_size_lines()


def register(app: Flask) -> None:
    """Add the filters and globals to ``app``'s Jinja environment."""
    from .models import STAGE_LABELS, VERDICT_LABELS
    from .services.compare import analysing_notice
    from .services.storage import has_thumbnail

    app.jinja_env.filters.update(
        bytes=formatting.human_bytes,
        since=formatting.since,
        iso=formatting.iso,
        seconds=formatting.seconds,
        pct=formatting.pct,
        tpct=formatting.tpct,
        datetime=formatting.date_time,
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
