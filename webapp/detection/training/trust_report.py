"""What a model is trusted on, from item scores (:class:`.kfold.Scored`): false alarms per kind
of real footage with the number each rests on, method-held-out generator detection, in-domain
detection at a fixed false-alarm rate, calibration per kind, and the shortcut audit.

Thresholds are judged honestly: for out-of-fold candidates, :func:`cross_validated_verdicts`
chooses each fold's bands on the *other* folds' scores, so a false-alarm rate is never measured
on the items its threshold was chosen on.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from .kfold import Scored
from .metrics import expected_calibration_error, roc_auc, trust_thresholds

TALKING_HEADS = frozenset({
    "edtalk", "fantasytalking", "hallo", "joyhallo", "sonic", "atvgnet", "styletalk", "loopy",
    "omnihuman", "omnihuman-1.5", "vlogger", "echomimic_v2", "echomimic_v3", "stableavatar", "keyface",
    "d-id"})
LIP_SYNC = frozenset({"wav2lip", "wav2lip_288", "wav2lip_hq", "wav2lip_gfpgan", "joygen", "keysync"})


def family(method: str) -> str:
    if method in TALKING_HEADS:
        return "talking head"
    if method in LIP_SYNC:
        return "lip-sync"
    return "animation/other"


def sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def probabilities(items: Sequence[Scored], scale: float, shift: float = 0.0) -> np.ndarray:
    """Calibrated p_fake = sigmoid(scale * logit + shift) per item (NaN where no face was
    judged). A shipped model's temperature T is ``scale = 1 / T``."""
    return np.array([np.nan if s.logit is None else float(sigmoid(s.logit * scale + shift)) for s in items])


def platt(items: Sequence[Scored]) -> tuple[float, float]:
    """(scale, shift) of the logistic calibration of the items' logits (Platt scaling). Fit it
    per media type: clips' and photos' logits sit apart, and one fit for both can even invert."""
    from .heads import fit_frame_head

    ok = [s for s in items if s.logit is not None]
    x = np.array([[s.logit] for s in ok])
    y = np.array([s.label for s in ok])
    coef, bias = fit_frame_head(x, y, np.ones(len(ok)), l2=1e-6)
    return float(coef[0]), bias


def calibrate(items: Sequence[Scored]) -> tuple[np.ndarray, dict[str, list[float]]]:
    """Platt scaling per media type: (p per item, {"video": [scale, shift], "image": [...]})."""
    cal: dict[str, list[float]] = {}
    p = np.full(len(items), np.nan)
    for media in ("video", "image"):
        idx = [i for i, s in enumerate(items) if s.media == media]
        if idx and len({items[i].label for i in idx if items[i].logit is not None}) == 2:
            scale, shift = platt([items[i] for i in idx])
            cal[media] = [round(scale, 5), round(shift, 5)]
            p[idx] = probabilities([items[i] for i in idx], scale, shift)
    return p, cal


def choose_bands(items: Sequence[Scored], p: np.ndarray, min_items: int = 20) -> dict[str, tuple[float, float]]:
    """Bands per media type ("video", "image") by the trust rule: at most 2% of the reals of
    every kind (kinds under ``min_items`` reals pooled) called fake; real_below from the fakes."""
    out = {}
    for media in ("video", "image"):
        m = np.array([s.media == media for s in items]) & ~np.isnan(p)
        if not m.any():
            continue
        y = np.array([s.label for s in items])[m]
        src = np.array([s.kind if s.label == 0 else s.method for s in items])[m]
        if (y == 0).any() and (y == 1).any():
            rb, fa, _ = trust_thresholds(p[m], y, src, min_items=min_items)
            out[media] = (rb, fa)
    return out


def verdicts(items: Sequence[Scored], p: np.ndarray, bands: dict[str, tuple[float, float]]) -> list[str]:
    out = []
    for s, pi in zip(items, p, strict=True):
        if np.isnan(pi) or s.media not in bands:
            out.append("no_face")
            continue
        rb, fa = bands[s.media]
        out.append("fake" if pi >= fa else "real" if pi < rb else "inconclusive")
    return out


def cross_validated_verdicts(items: Sequence[Scored], p: np.ndarray, folds: Sequence[int]) -> list[str]:
    """Each fold's verdicts with bands chosen on the other folds' scores only."""
    out = [""] * len(items)
    folds = np.asarray(folds)
    for f in sorted(set(folds.tolist())):
        rest = np.flatnonzero(folds != f)
        bands = choose_bands([items[i] for i in rest], p[rest])
        here = np.flatnonzero(folds == f)
        for i, v in zip(here, verdicts([items[i] for i in here], p[here], bands), strict=True):
            out[i] = v
    return out


def _rate(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.0f}%)" if n else "–"


def false_alarm_rows(items: Sequence[Scored], p: np.ndarray, v: Sequence[str]) -> dict[str, dict]:
    """Per kind of real item: n, judged, called fake, called real, mean score."""
    rows: dict[str, dict] = {}
    by: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(items):
        if s.label == 0:
            by[s.kind].append(i)
    for kind, idx in sorted(by.items()):
        judged = [i for i in idx if not np.isnan(p[i])]
        rows[kind] = {"n": len(idx), "judged": len(judged),
                      "fake": sum(v[i] == "fake" for i in idx), "real": sum(v[i] == "real" for i in idx),
                      "mean_p": round(float(np.mean(p[judged])), 3) if judged else None}
    return rows


def tpr_at_fpr(y: np.ndarray, p: np.ndarray, fpr: float = 0.02) -> float:
    """Share of fakes above the score that at most ``fpr`` of the reals reach."""
    reals, fakes = np.sort(p[y == 0])[::-1], p[y == 1]
    if not len(reals) or not len(fakes):
        return float("nan")
    k = int(math.floor(fpr * len(reals)))
    cut = reals[k] if k < len(reals) else -np.inf
    return float((fakes > cut).mean())


def detection_rows(items: Sequence[Scored], p: np.ndarray, v: Sequence[str], media: str,
                   key: Callable[[Scored], str]) -> dict[str, dict]:
    """Per group of fakes (``key``): n, AUC against all reals of ``media``, called fake/real."""
    ok = [i for i, s in enumerate(items) if s.media == media and not np.isnan(p[i])]
    reals = np.array([p[i] for i in ok if items[i].label == 0])
    by: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(items):
        if s.media == media and s.label == 1:
            by[key(s)].append(i)
    rows = {}
    for g, idx in sorted(by.items()):
        f = np.array([p[i] for i in idx if not np.isnan(p[i])])
        auc = roc_auc(np.r_[np.zeros(len(reals)), np.ones(len(f))], np.r_[reals, f]) if len(f) and len(reals) else float("nan")
        rows[g] = {"n": len(idx), "auc": round(auc, 3), "fake": sum(v[i] == "fake" for i in idx),
                   "real": sum(v[i] == "real" for i in idx), "no_face": sum(v[i] == "no_face" for i in idx)}
    return rows


def summary(items: Sequence[Scored], p: np.ndarray, v: Sequence[str], media: str) -> dict:
    """AUC, TPR at 2% FPR, ECE, fakes/reals called fake, over the judged items of ``media``."""
    idx = [i for i, s in enumerate(items) if s.media == media and not np.isnan(p[i])]
    if not idx:
        return {}
    y = np.array([items[i].label for i in idx])
    q = p[idx]
    allm = [i for i, s in enumerate(items) if s.media == media]
    return {"n": len(allm), "auc": round(roc_auc(y, q), 3) if len(set(y)) == 2 else None,
            "tpr_at_2pct_fpr": round(tpr_at_fpr(y, q), 3) if len(set(y)) == 2 else None,
            "ece": round(expected_calibration_error(y, q), 3),
            "fakes_called_fake": [sum(v[i] == "fake" for i in allm if items[i].label == 1),
                                  sum(items[i].label == 1 for i in allm)],
            "reals_called_fake": [sum(v[i] == "fake" for i in allm if items[i].label == 0),
                                  sum(items[i].label == 0 for i in allm)]}


def ece_by_kind(items: Sequence[Scored], p: np.ndarray) -> dict[str, float]:
    """Calibration error per kind of real footage, over that kind's reals only (so it equals
    their mean score: how far from 0 the model puts real footage of that kind), and over all
    fakes. The calibration of a mixed population is the clips'/photos' overall ECE."""
    by: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(items):
        if not np.isnan(p[i]):
            by[s.kind if s.label == 0 else "fakes"].append(i)
    return {k: round(expected_calibration_error(np.array([items[i].label for i in idx]), p[idx]), 3)
            for k, idx in sorted(by.items())}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ok = ~(np.isnan(a) | np.isnan(b))
    if ok.sum() < 3:
        return float("nan")
    ra = np.argsort(np.argsort(a[ok])).astype(float)
    rb = np.argsort(np.argsort(b[ok])).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def shortcut_audit(items: Sequence[Scored], p: np.ndarray, audit: dict[str, dict[str, float]], label: int = 0) -> dict[str, float]:
    """Spearman correlation of the scores of real (``label``) clips with each measured property."""
    idx = [i for i, s in enumerate(items) if s.label == label and s.media == "video" and s.key in audit and not np.isnan(p[i])]
    if not idx:
        return {}
    keys = sorted({k for i in idx for k in audit[items[i].key]})
    q = p[idx]
    return {k: round(spearman(q, np.array([audit[items[i].key].get(k, np.nan) for i in idx])), 3) for k in keys}
