"""The installed models as the site knows them (no TensorFlow): the registry's entries and
the default model's config.json, card and metrics.

The website reaches the engine's registry (``webapp.detection.registry``) only through this
module: pages, forms, health, analysis and reports ask here.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from flask import current_app

from ..detection import registry
from ..detection.errors import ModelNotFoundError
from ..detection.result import face_lines

log = logging.getLogger(__name__)


_model_info_cache: dict[str, tuple[float, dict[str, Any]]] = {}

#: The registry's entry of one model (version, folder, default, config, metrics, card).
ModelEntry = registry.ModelEntry
#: Raised for a version that is not (or no longer) installed.
UnknownModelError = registry.UnknownModelError


def installed_models(model_dir: str | Path | None = None) -> list[ModelEntry]:
    """The registry's models at MODEL_DIR, newest first (a single model folder is a registry
    of one); empty when it cannot be read (logged)."""
    root = Path(model_dir or current_app.config["MODEL_DIR"])
    try:
        return registry.Registry(root).entries
    except (ModelNotFoundError, OSError):
        log.warning("Model registry %s cannot be read", root, exc_info=True)
        return []


def installed_versions() -> list[str]:
    """The installed models' versions, newest first; empty when the registry cannot be read."""
    return [e.version for e in installed_models()]


def model_entry(version: str) -> ModelEntry | None:
    """The installed model ``version``, None when it is not installed (or nothing is)."""
    return next((e for e in installed_models() if e.version == version), None)


def model_folder(version: str | None, model_dir: str | Path | None = None) -> str:
    """The folder to load model ``version`` from (None: MODEL_DIR, which the engine's loader
    resolves to the default). Only a version of the registry is accepted, never a path: the
    version may come from a request. Raises :class:`UnknownModelError` for one not installed.
    """
    root = str(model_dir or current_app.config["MODEL_DIR"])
    if not version:
        return root
    reg = registry.Registry(root)
    entry = reg.get(version)
    if entry is None:
        raise UnknownModelError(
            f"Model version {version} is not installed on this server (available: "
            f"{', '.join(reg.versions) or 'none'}); upload the file again to use another model."
        )
    return str(entry.path)


def face_size_lines(config: dict[str, Any] | None = None) -> dict[str, dict[str, int]]:
    """A model's face-size lines (judged from / called real from) per media type, from its
    ``config`` (default: the default model's config.json; the engine's own lines without)."""
    return face_lines(model_info() if config is None else config)


def default_model_dir(model_dir: str | Path | None = None) -> Path:
    """The folder of the registry's default model (MODEL_DIR may also be one model folder)."""
    root = Path(model_dir or current_app.config["MODEL_DIR"])
    try:
        return registry.Registry(root).default.path
    except ModelNotFoundError:
        return root


def model_info(model_dir: str | Path | None = None) -> dict[str, Any]:
    """The default model's ``config.json`` as a dict (``{}`` if absent or unreadable). No TensorFlow."""
    path = default_model_dir(model_dir) / "config.json"
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return {}
    cached = _model_info_cache.get(str(path))
    if cached and cached[0] == mtime:
        return cached[1]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("Unreadable model config %s", path)
        data = {}
    if not isinstance(data, dict):
        data = {}
    _model_info_cache[str(path)] = (mtime, data)
    return data


def current_model_version() -> str | None:
    version = model_info().get("version")
    return str(version) if version is not None else None


def model_card_text() -> str | None:
    path = default_model_dir() / "MODEL_CARD.md"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


_ACRONYMS = {
    "auc",
    "dfdc",
    "eer",
    "ap",
    "tpr",
    "fpr",
    "ece",
    "roc",
    "c23",
    "c40",
    "hq",
    "lq",
    "f1",
    "mae",
    "lstm",
    "cnn",
    "sbi",
}
_WORDS = {
    "val": "validation",
    "acc": "accuracy",
    "n": "",
    "num": "",
    "celebdf": "Celeb-DF",
    "ffpp": "FaceForensics++",
}

#: Columns shown for each evaluated set, in this order, when config.json has them.
METRIC_COLUMNS = [
    ("n", "Items"),
    ("n_fake", "Fakes"),
    ("auc", "AUC"),
    ("balanced_accuracy", "Balanced accuracy"),
    ("accuracy", "Accuracy"),
    ("false_alarm_rate", "False alarms"),
    ("ece", "Calibration error"),
    ("fakes_called_fake", "Fakes called “likely fake”"),
    ("reals_called_fake", "Reals called “likely fake”"),
]
#: Which block of ``metrics`` to show, most honest first.
METRIC_SPLITS = [
    ("analyze", "the same analysis as an upload, on generator methods it never trained on and held-out test data"),
    ("test", "held-out test data"),
    ("val", "validation data"),
    ("validation", "validation data"),
]


def humanize(name: Any) -> str:
    """``dfdc_val`` -> "DFDC validation", ``clips_lstm`` -> "Clips LSTM", ``auc`` -> "AUC"."""
    words = []
    for word in str(name).replace("-", "_").split("_"):
        low = word.lower()
        if low in _ACRONYMS:
            words.append(word.upper())
        elif low in _WORDS:
            if _WORDS[low]:
                words.append(_WORDS[low])
        elif word:
            words.append(word)
    text = " ".join(words) or str(name)
    return text[0].upper() + text[1:] if not text[0].isupper() else text


#: The sets of ``benchmarks/generalisation.py`` (metrics["analyze"]), in the order shown:
#: key -> (short column label for the model page, plain row name for the accuracy table).
ANALYZE_SETS = {
    "generators val": ("Unseen generators (clips)",
                       "Clips from generators it never trained on (talking heads, lip-sync)"),
    "photos val": ("Unseen photos (diffusion vs real)",
                   "Diffusion portraits it never trained on, against new real photos"),
    "dfdc_faces test": ("DFDC crops (test)", "DFDC faces (held-out test)"),
    "ffpp_faces test": ("FaceForensics++ crops (test)", "FaceForensics++ faces (held-out test)"),
}
#: Columns that are shares, shown as percentages.
PERCENT_COLUMNS = {"fakes_called_fake", "reals_called_fake"}


def _fmt_metric(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3f}" if math.isfinite(value) else "–"
    return str(value)


def metrics_table(info: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The model's measured accuracy from config.json, as a table, or None if it has none.

    Prefers ``metrics["test"]`` (held out), then ``metrics["val"]``: each a mapping of
    evaluated set -> numbers. Also accepts ``{"set": {"auc": ...}}`` or a flat ``{"auc": ...}``.
    Returns ``{"split": str, "columns": [label], "rows": [{"name": str, "cells": [str]}]}``.
    """
    info = model_info() if info is None else info
    metrics = info.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        return None
    sets: dict[str, dict[str, Any]] = {}
    split = "validation data"
    for key, label in METRIC_SPLITS:
        block = metrics.get(key)
        if isinstance(block, dict):
            sets = {k: v for k, v in block.items() if isinstance(v, dict)}
            if sets:
                split = label
                break
    if not sets:
        nested = {k: v for k, v in metrics.items() if isinstance(v, dict)}
        scalars = {
            k: v
            for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        sets = nested if nested and not scalars else ({"validation": scalars} if scalars else {})
    if not sets:
        return None
    keys = [
        (k, label)
        for k, label in METRIC_COLUMNS
        if any(d.get(k) is not None for d in sets.values())
    ]
    if not keys:  # unknown names: show every number of the first set
        first = next(iter(sets.values()))
        keys = [
            (k, humanize(k))
            for k, v in first.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        ]
    if not keys:
        return None
    return {
        "split": split,
        "columns": [label for _, label in keys],
        "rows": [
            {"name": ANALYZE_SETS[name][1] if name in ANALYZE_SETS else humanize(name),
             "cells": [f"{d[k]:.1%}" if k in PERCENT_COLUMNS and isinstance(d.get(k), float)
                       else _fmt_metric(d.get(k)) for k, _ in keys]}
            for name, d in sets.items()
        ],
    }
