"""Honest binary metrics (pure NumPy): AUC, balanced accuracy, calibration, verdict bands.

"fake" is the positive class. Accuracy is reported beside balanced accuracy and the class
counts, so nobody reads 80% accuracy on a set that is 80% fake as skill.
"""

from __future__ import annotations

import math

import numpy as np


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tie correction); NaN if one class only."""
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p), dtype=np.float64)
    sorted_p = p[order]
    i = 0
    while i < len(p):  # average ranks of ties
        j = i
        while j + 1 < len(p) and sorted_p[j + 1] == sorted_p[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(y: np.ndarray, p: np.ndarray, eps: float = 1e-7) -> float:
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE with equal-width bins of predicted P(fake): sum over bins of weight * |acc - conf|."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(y[m].mean() - p[m].mean())
    return float(ece)


def binary_metrics(y: np.ndarray, p: np.ndarray, real_below: float | None = None,
                   fake_above: float | None = None) -> dict:
    """All the figures for labels ``y`` (1 = fake) and probabilities ``p`` of fake.

    Decisions for accuracy/precision/recall/F1 use p >= 0.5. With thresholds given, also the
    3x2 confusion of verdict bands (real / inconclusive / fake) against the labels.
    """
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    pred = (p >= 0.5).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    n_fake, n_real = int(y.sum()), int((1 - y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / n_fake if n_fake else 0.0
    specificity = tn / n_real if n_real else 0.0
    out = {
        "n": int(len(y)), "n_fake": n_fake,
        "auc": round(roc_auc(y, p), 4) if n_fake and n_real else None,
        "accuracy": round((tp + tn) / len(y), 4) if len(y) else None,
        "balanced_accuracy": round((recall + specificity) / 2, 4) if n_fake and n_real else None,
        "precision": round(precision, 4), "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
        "log_loss": round(log_loss(y, p), 4) if len(y) else None,
        "ece": round(expected_calibration_error(y, p), 4) if len(y) else None,
    }
    if real_below is not None and fake_above is not None:
        band = np.where(p >= fake_above, "fake", np.where(p < real_below, "real", "inconclusive"))
        out["bands"] = {lbl: {b: int(((band == b) & (y == yy)).sum()) for b in ("real", "inconclusive", "fake")}
                        for lbl, yy in (("real", 0), ("fake", 1))}
        out["false_alarm_rate"] = round(float(((band == "fake") & (y == 0)).sum() / n_real), 4) if n_real else None
    return out


def best_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature T minimising the log-loss of sigmoid(logits / T) (grid, then refine)."""
    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)

    def nll(t: float) -> float:
        return log_loss(y, 1 / (1 + np.exp(-logits / t)))

    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 200))
    t = float(grid[np.argmin([nll(g) for g in grid])])
    fine = np.linspace(t * 0.9, t * 1.1, 41)
    return round(float(fine[np.argmin([nll(g) for g in fine])]), 4)


def by_group(y: np.ndarray, p: np.ndarray, groups: np.ndarray, real_below: float, fake_above: float) -> dict:
    """Rows per group (a generator method, a real source): how the verdict bands treat it.

    A group with fakes gets ``auc`` (its fakes against *all* reals given, so a method is judged
    against the same real footage as every other), ``detected`` (share called "likely fake")
    and ``called_real`` (share called "likely real"). A group of reals gets ``false_alarm``
    (share called "likely fake") and ``called_real``. ``n`` counts the group's items.
    """
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    groups = np.asarray(groups)
    reals = p[y == 0]
    out: dict[str, dict] = {}
    for g in sorted(set(groups.tolist())):
        m = groups == g
        fakes, real_g = p[m & (y == 1)], p[m & (y == 0)]
        row: dict = {"n": int(m.sum())}
        if len(fakes):
            row["auc"] = round(roc_auc(np.r_[np.zeros(len(reals)), np.ones(len(fakes))], np.r_[reals, fakes]), 4) if len(reals) else None
            row["detected"] = round(float((fakes >= fake_above).mean()), 4)
            row["called_real"] = round(float((fakes < real_below).mean()), 4)
        if len(real_g):
            row["false_alarm"] = round(float((real_g >= fake_above).mean()), 4)
            row["real_called_real"] = round(float((real_g < real_below).mean()), 4)
        out[str(g)] = row
    return out


def trust_thresholds(p: np.ndarray, y: np.ndarray, sources: np.ndarray, *, max_false_alarm: float = 0.02,
                     max_miss: float = 0.10, min_items: int = 20) -> tuple[float, float, dict]:
    """Verdict thresholds a person can trust, from validation scores.

    ``fake_above``: the lowest score at which at most ``max_false_alarm`` of the reals of *every*
    source (``sources``: one name per item; sources with fewer than ``min_items`` reals are
    pooled as "other") are called fake: the strictest source decides. ``real_below``: the
    highest score at which at most ``max_miss`` of the fakes are called real, each source's
    fakes weighted equally (a big source cannot hide a small one that is missed). Both kept
    in (0, 1) and ordered. Returns (real_below, fake_above, per-source rates at those).
    """
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y).astype(int)
    if not (y == 0).any() or not (y == 1).any():
        raise ValueError("validation needs both reals and fakes to choose thresholds")
    src = np.asarray(sources).astype(object)
    real_src = src[y == 0]
    counts = {s: int((real_src == s).sum()) for s in set(real_src.tolist())}
    key = np.array([s if counts.get(s, 0) >= min_items else "other" for s in src], dtype=object)
    fake_above = 0.5
    for s in set(key[y == 0].tolist()):
        r = p[(y == 0) & (key == s)]
        if len(r):
            # smallest t with mean(r >= t) <= max_false_alarm: just above the k-th largest score
            k = int(np.floor(max_false_alarm * len(r)))
            top = np.sort(r)[::-1]
            t = 0.0
            if k < len(top):  # the first 4-decimal value strictly above the (k+1)-th largest
                t = math.ceil(top[k] * 1e4) / 1e4
                while t <= top[k]:
                    t = round(t + 1e-4, 4)
            fake_above = max(fake_above, t)
    fake_above = min(fake_above, 0.995)
    fakes, fake_src = p[y == 1], src[y == 1]
    if len(fakes):
        w = np.zeros(len(fakes))
        for s in set(fake_src.tolist()):
            m = fake_src == s
            w[m] = 1.0 / m.sum()
        order = np.argsort(fakes)
        cum = np.cumsum(w[order]) / w.sum()
        # the largest t with weighted share(fakes < t) <= max_miss: the first score past max_miss
        idx = int(np.searchsorted(cum, max_miss, side="right"))
        real_below = float(fakes[order][min(idx, len(fakes) - 1)])
    else:
        real_below = 0.3
    real_below = float(min(real_below, 0.5, fake_above))
    real_below = math.floor(real_below * 1e4) / 1e4
    rates = by_group(y, p, src, real_below, fake_above)
    # rounded for config.json outward: never past the measured cut (up for fake, down for real)
    return real_below, fake_above, rates
