"""Honest binary metrics (pure NumPy): AUC, balanced accuracy, calibration, verdict bands.

"fake" is the positive class. Accuracy is reported beside balanced accuracy and the class
counts, so nobody reads 80% accuracy on a set that is 80% fake as skill.
"""

from __future__ import annotations

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
