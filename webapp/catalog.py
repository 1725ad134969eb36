"""What the model page shows about every model of the registry (no TensorFlow).

One dict per model, default first: its version and anchor, training data, thresholds, the
held-out table per data set (:func:`modelcard.metrics_table`), the per-generator-method and
per-source tables when its metrics.json has them, and its card rendered from Markdown.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import markdown
from flask import current_app
from markdown.extensions.toc import slugify
from markupsafe import Markup

from .services import modelcard

#: Per-group blocks of metrics.json (``training.metrics.by_group``), in the order shown.
GROUP_BLOCKS = [
    ("test_clips_by_method", "Clips per generator method, held-out test data"),
    ("val_clips_by_method", "Clips per generator method, validation (methods never trained on)"),
    ("val_by_source", "Per source, validation (`:stress` = reals shrunk and dimmed)"),
]
GROUP_COLUMNS = [
    ("n", "Items"),
    ("auc", "AUC (its fakes vs all reals)"),
    ("detected", "Fakes called fake"),
    ("called_real", "Fakes called real"),
    ("false_alarm", "Reals called fake"),
]


def anchor(version: str) -> str:
    """The id of a model's section on the model page: ``model-2026-11-22-lite0``."""
    return "model-" + re.sub(r"[^a-z0-9]+", "-", version.lower()).strip("-")


def render_card(text: str, prefix: str) -> tuple[str | None, Markup]:
    """A MODEL_CARD.md -> (its "# title" or None, HTML without that title). Heading ids get
    ``prefix`` so the cards of several models can share one page."""
    title = None
    lines = text.lstrip().splitlines()
    if lines and lines[0].startswith("# "):
        title, text = lines[0][2:].strip(), "\n".join(lines[1:])
    html = markdown.markdown(
        text,
        extensions=["tables", "fenced_code", "sane_lists", "toc"],
        extension_configs={"toc": {"slugify": lambda value, sep: f"{prefix}-{slugify(value, sep)}"}},
        output_format="html",
    )
    return title, Markup(html)


def _pct(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.0%}"
    return "–"


def group_table(block: Any) -> dict[str, Any] | None:
    """``{"method": {"n", "auc", "detected", "called_real", "false_alarm"}}`` -> table rows.

    For a group of reals, "Fakes called real" is empty and "Reals called fake" holds its
    false-alarm rate; for a group of fakes the reverse.
    """
    if not isinstance(block, dict):
        return None
    rows = []
    for name, r in block.items():
        if not isinstance(r, dict):
            continue
        cells = [
            f"{r['n']:,}" if isinstance(r.get("n"), int) else "–",
            f"{r['auc']:.3f}" if isinstance(r.get("auc"), float | int) else "–",
            _pct(r.get("detected")),
            _pct(r.get("called_real")),
            _pct(r.get("false_alarm")),
        ]
        rows.append({"name": str(name), "cells": cells})
    if not rows:
        return None
    return {"columns": [label for _, label in GROUP_COLUMNS], "rows": rows}


def describe(entry: modelcard.ModelEntry) -> dict[str, Any]:
    metrics = entry.metrics
    card_title, card = None, None
    with contextlib.suppress(OSError):  # no card: the page says so
        card_title, card = render_card(entry.card_path.read_text(encoding="utf-8"), anchor(entry.version))
    groups = []
    for key, title in GROUP_BLOCKS:
        table = group_table(metrics.get(key))
        if table:
            groups.append({"key": key, "title": title, **table})
    cfg = entry.config
    return {
        "version": entry.version,
        "default": entry.default,
        "anchor": anchor(entry.version),
        "trained_on": entry.trained_on,
        "backbone": cfg.get("backbone"),
        "thresholds": {k: cfg.get(k) for k in ("real_below", "fake_above", "clip_real_below", "clip_fake_above")},
        "headline": entry.headline(),
        "metrics": modelcard.metrics_table({"metrics": metrics}),
        "groups": groups,
        "card_title": card_title,
        "card": card,
        "warm_start": (cfg.get("notes") or {}).get("warm_start"),
        "analyze": metrics.get("analyze") if isinstance(metrics.get("analyze"), dict) else None,
        "trust": metrics.get("trust") if isinstance(metrics.get("trust"), dict) else None,
    }


def compared(models_: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Every model on the same items through the site's analyze(): per set, AUC and the shares
    of fakes and reals called "likely fake". None unless some model has the figures."""
    sets = [(k, short) for k, (short, _) in modelcard.ANALYZE_SETS.items()
            if any(k in (m.get("analyze") or {}) for m in models_)]
    if not sets:
        return None
    rows = []
    for m in models_:
        a = m.get("analyze") or {}
        cells = []
        for k, _ in sets:
            r = a.get(k) or {}
            auc = f"{r['auc']:.3f}" if isinstance(r.get("auc"), float | int) else "–"
            cells.append(f"{auc} · {_pct(r.get('fakes_called_fake'))} / {_pct(r.get('reals_called_fake'))}")
        rows.append({"version": m["version"], "anchor": m["anchor"], "default": m["default"], "cells": cells})
    return {"columns": [label for _, label in sets], "rows": rows}


#: Kinds of real footage (benchmarks/trust.py), in the order the model page shows them.
TRUST_KINDS = {
    "interview": "HD interviews, speeches, TV", "source_clip": "Source clips of generator projects",
    "expressive": "Expressive faces (emotion, laughing, grimaces)", "webcam": "Webcam, video calls, streams",
    "phone": "Phone and selfie footage", "corpus": "Speech corpora (LRS3, MEAD, GRID, VoxCeleb)",
    "dfdc": "DFDC clips", "other": "Other real clips",
    "photo_ffhq": "High-quality portraits (FFHQ)", "photo_utkface": "Face photos (UTKFace)",
    "photo_allage": "Face photos, all ages (All-Age-Faces)",
}


def trust_compared(models_: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Real footage called "likely fake", per kind, a column per model (metrics["trust"] of
    ``benchmarks/trust.py``): "k of n". None unless some model has the figures."""
    blocks = {m["version"]: (m.get("trust") or {}).get("false_alarms") or {} for m in models_}
    kinds = [k for k in TRUST_KINDS if any(k in b for b in blocks.values())]
    if not kinds:
        return None
    rows = []
    for k in kinds:
        cells = []
        for m in models_:
            r = blocks[m["version"]].get(k)
            cells.append(f"{r['fake']} of {r['n']}" if r else "–")
        rows.append({"name": TRUST_KINDS[k], "cells": cells})
    return {"columns": [m["version"] for m in models_], "rows": rows}


def models(model_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Every model of the registry at MODEL_DIR (a single model folder is a registry of one),
    default first, then newest first. Empty when there is none."""
    root = Path(model_dir or current_app.config["MODEL_DIR"])
    entries = sorted(modelcard.installed_models(root), key=lambda e: not e.default)  # stable: newest first otherwise
    return [describe(e) for e in entries]
