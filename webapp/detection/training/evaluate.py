"""Evaluate the shipped detector with the SAME ``analyze()`` the website runs.

Items with no face found count as p_fake 0.5 in the AUC (an honest coin flip, not a free
"real") and are reported separately; items the engine refuses are listed as errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DetectionError
from .dataset import Item, read_labels
from .metrics import binary_metrics, roc_auc
from .sampling import assign_splits


@dataclass
class EvalRow:
    path: str
    label: str
    p_fake: float | None
    verdict: str
    seconds: float
    error: str = ""
    method: str = ""
    group: str = ""


@dataclass
class EvalReport:
    summary: dict
    rows: list[EvalRow] = field(default_factory=list)


def stratified_sample(items: list[Item], limit: int | None, seed: int = 0) -> list[Item]:
    """A fixed-seed sample of ``limit`` items keeping the real/fake proportion."""
    if not limit or limit >= len(items):
        return items
    rng = np.random.default_rng(seed)
    out: list[Item] = []
    for label in (0, 1):
        pool = [it for it in items if it.label == label]
        k = round(limit * len(pool) / len(items)) if label == 0 else limit - len(out)  # sums to limit
        idx = sorted(rng.choice(len(pool), size=min(k, len(pool)), replace=False).tolist())
        out.extend(pool[i] for i in idx)
    return out


def evaluate(labels_csv: str | Path, analyze: Callable, *, limit: int | None = None, seed: int = 0,
             split: str = "all", on_item: Callable[[int, int, EvalRow], None] | None = None) -> EvalReport:
    """Run ``analyze(path) -> Analysis`` on every item of ``labels_csv`` and compute the figures.

    ``split`` keeps only items whose group the training split rule puts in that split
    (``test`` = never used for training or choosing). ``analyze`` is injected (the CLI passes the real engine) so this module stays free of
    TensorFlow and can be tested on a tiny set.
    """
    labels_csv = Path(labels_csv)
    folder = labels_csv.parent if labels_csv.name == "labels.csv" else labels_csv
    items = read_labels(folder)
    if split != "all":
        splits = assign_splits(items)  # the training rule: by group hash, or by method where named
        items = [it for it in items if splits[it] == split]
    items = stratified_sample(items, limit, seed)
    rows: list[EvalRow] = []
    t_all = time.perf_counter()
    for n, it in enumerate(items, start=1):
        t = time.perf_counter()
        try:
            a = analyze(it.path)
            row = EvalRow(str(it.path), "fake" if it.label else "real", a.p_fake, a.verdict,
                          round(time.perf_counter() - t, 3), method=it.method, group=it.group)
        except DetectionError as err:
            row = EvalRow(str(it.path), "fake" if it.label else "real", None, "error",
                          round(time.perf_counter() - t, 3), str(err), method=it.method, group=it.group)
        rows.append(row)
        if on_item:
            on_item(n, len(items), row)
    seconds = time.perf_counter() - t_all
    return EvalReport(summarise(rows, seconds), rows)


def summarise(rows: list[EvalRow], seconds: float | None = None) -> dict:
    """Figures over rows: AUC, log-loss and ECE with no-face as 0.5; accuracy, precision,
    recall and F1 with no-face as "not called fake" (what the site says); bands; rates."""
    scored = [r for r in rows if r.verdict != "error"]
    y = np.array([r.label == "fake" for r in scored], dtype=int)
    p = np.array([0.5 if r.p_fake is None else r.p_fake for r in scored], dtype=np.float64)
    summary = binary_metrics(y, p) if len(scored) else {"n": 0, "n_fake": 0}
    if len(scored):
        # Decisions are what the site tells a person: "no face" is never a "fake" call.
        flagged = np.array([0.0 if r.p_fake is None else r.p_fake for r in scored])
        decided = binary_metrics(y, flagged)
        for key in ("accuracy", "balanced_accuracy", "precision", "recall", "f1"):
            summary[key] = decided[key]
    bands = {lbl: {v: sum(1 for r in scored if r.label == lbl and r.verdict == v)
                   for v in ("real", "inconclusive", "fake", "no_face")} for lbl in ("real", "fake")}
    summary["verdict_bands"] = bands
    summary["no_face"] = sum(1 for r in scored if r.verdict == "no_face")
    summary["no_face_rate"] = round(summary["no_face"] / len(scored), 4) if scored else None
    summary["errors"] = len(rows) - len(scored)
    with_face = [r for r in scored if r.p_fake is not None]
    if with_face and len({r.label for r in with_face}) == 2:
        yf = np.array([r.label == "fake" for r in with_face], dtype=int)
        summary["auc_faces_only"] = binary_metrics(yf, np.array([r.p_fake for r in with_face]))["auc"]
    if seconds is not None:
        summary["seconds"] = round(seconds, 2)
        summary["items_per_second"] = round(len(rows) / seconds, 3) if seconds > 0 else None
    return summary


def by_key(rows: list[EvalRow], key: Callable[[EvalRow], str]) -> dict[str, dict]:
    """Rows per method (or source): what the site told people about each.

    For a key with fakes: ``auc`` of its fakes against *all* reals evaluated (no face = 0.5),
    ``detected`` (share called "likely fake"), ``called_real`` ("likely real"). For reals:
    ``false_alarm`` (share called "likely fake"). ``no_face`` counts items with no face found.
    """
    scored = [r for r in rows if r.verdict != "error"]
    real_p = np.array([0.5 if r.p_fake is None else r.p_fake for r in scored if r.label == "real"])
    out: dict[str, dict] = {}
    for k in sorted({key(r) for r in scored}):
        mine = [r for r in scored if key(r) == k]
        fakes = [r for r in mine if r.label == "fake"]
        reals = [r for r in mine if r.label == "real"]
        row: dict = {"n": len(mine), "n_fake": len(fakes), "no_face": sum(r.verdict == "no_face" for r in mine)}
        if fakes:
            fp = np.array([0.5 if r.p_fake is None else r.p_fake for r in fakes])
            y = np.r_[np.zeros(len(real_p)), np.ones(len(fp))]
            row["auc"] = round(roc_auc(y, np.r_[real_p, fp]), 4) if len(real_p) else None
            row["detected"] = round(sum(r.verdict == "fake" for r in fakes) / len(fakes), 4)
            row["called_real"] = round(sum(r.verdict == "real" for r in fakes) / len(fakes), 4)
        if reals:
            row["false_alarm"] = round(sum(r.verdict == "fake" for r in reals) / len(reals), 4)
            row["called_real"] = round(sum(r.verdict == "real" for r in reals) / len(reals), 4)
        out[k] = row
    return out


GROUPINGS: dict[str, Callable[[EvalRow], str]] = {
    "method": lambda r: r.method or ("original" if r.label == "real" else "fake"),
    "group": lambda r: r.group,
    "label": lambda r: r.label,
}
