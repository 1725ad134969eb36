"""Tests of ``webapp.detection.training.metrics`` against figures worked out by hand.

"fake" (1) is the positive class; decisions use p >= 0.5.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from webapp.detection.training.metrics import (
    best_temperature,
    binary_metrics,
    expected_calibration_error,
    log_loss,
    roc_auc,
)

# The hand-worked set: four real, two fake.
Y = np.array([0, 0, 0, 0, 1, 1])
P = np.array([0.15, 0.65, 0.15, 0.35, 0.75, 0.45])
# Decisions (p >= 0.5):  0     1     0     0     1     0
#   tp = 1 (0.75)  fn = 1 (0.45)  fp = 1 (0.65)  tn = 3
# AUC: fake 0.75 beats all 4 reals (4); fake 0.45 beats 0.15, 0.15, 0.35 (3) -> 7 / 8
# log loss: -(2 ln .85 + ln .35 + ln .65 + ln .75 + ln .45) / 6
#   = (2 * 0.1625189 + 1.0498221 + 0.4307829 + 0.2876821 + 0.7985077) / 6 = 2.8918326 / 6
# ECE (10 equal bins):
#   [0.1, 0.2): 0.15, 0.15 (real)  weight 2/6, |0 - 0.15| -> 0.05
#   [0.3, 0.4): 0.35 (real)        1/6 * 0.35 = 0.0583333
#   [0.4, 0.5): 0.45 (fake)        1/6 * 0.55 = 0.0916667
#   [0.6, 0.7): 0.65 (real)        1/6 * 0.65 = 0.1083333
#   [0.7, 0.8): 0.75 (fake)        1/6 * 0.25 = 0.0416667      total 0.35


def test_roc_auc_by_hand() -> None:
    assert roc_auc(Y, P) == pytest.approx(7 / 8)
    assert roc_auc(1 - Y, P) == pytest.approx(1 / 8)  # swapping the classes mirrors it
    assert roc_auc([0, 1], [0.2, 0.9]) == 1.0
    assert roc_auc([1, 0], [0.2, 0.9]) == 0.0


def test_roc_auc_ties() -> None:
    # fake 0.5 vs real 0.5 is a tie: half a win.
    # fakes {0.5, 0.9} vs reals {0.2, 0.5}: 0.5 -> 1 + 0.5; 0.9 -> 2; total 3.5 / 4
    assert roc_auc([0, 0, 1, 1], [0.2, 0.5, 0.5, 0.9]) == pytest.approx(0.875)
    # Everything tied: a coin.
    assert roc_auc([0, 1, 0, 1, 1], [0.3] * 5) == pytest.approx(0.5)
    # Ties inside one class do not matter: fakes {0.8, 0.8, 0.1} vs reals {0.1, 0.4}
    # 0.8 -> 2, 0.8 -> 2, 0.1 -> 0.5 (tie with 0.1) -> 4.5 / 6
    assert roc_auc([1, 1, 1, 0, 0], [0.8, 0.8, 0.1, 0.1, 0.4]) == pytest.approx(0.75)


def test_roc_auc_one_class_is_nan() -> None:
    assert math.isnan(roc_auc([1, 1, 1], [0.1, 0.5, 0.9]))
    assert math.isnan(roc_auc([0, 0], [0.1, 0.5]))


def test_roc_auc_matches_pairwise_count() -> None:
    """On random data with many ties, against the definition (pairs won + half the ties)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = rng.integers(0, 10, 300) / 10  # only 10 distinct values: lots of ties
    pos, neg = p[y == 1], p[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert roc_auc(y, p) == pytest.approx(wins / (len(pos) * len(neg)))


def test_log_loss_by_hand() -> None:
    assert log_loss(Y, P) == pytest.approx(2.8918326 / 6, abs=1e-6)
    assert log_loss([1], [0.5]) == pytest.approx(math.log(2))
    # Clipped: a confident wrong answer costs a lot, but not infinity.
    assert math.isfinite(log_loss([1], [0.0])) and log_loss([1], [0.0]) > 15


def test_ece_by_hand() -> None:
    assert expected_calibration_error(Y, P) == pytest.approx(0.35)
    # Perfectly calibrated bins: 0.25 predicted, 1 in 4 fake.
    assert expected_calibration_error([1, 0, 0, 0], [0.25] * 4) == pytest.approx(0.0)
    # p = 1.0 falls in the top bin, p = 0.0 in the bottom one.
    assert expected_calibration_error([1, 0], [1.0, 0.0]) == pytest.approx(0.0)


def test_binary_metrics_by_hand() -> None:
    m = binary_metrics(Y, P)
    assert m["n"] == 6 and m["n_fake"] == 2
    assert m["auc"] == pytest.approx(0.875)
    assert m["accuracy"] == pytest.approx(round(4 / 6, 4))  # tp + tn = 4
    # recall (fakes caught) 1/2, specificity (reals passed) 3/4
    assert m["balanced_accuracy"] == pytest.approx(0.625)
    assert m["precision"] == pytest.approx(0.5)  # 1 of 2 flagged is fake
    assert m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(0.5)
    assert m["log_loss"] == pytest.approx(round(2.8918326 / 6, 4))
    assert m["ece"] == pytest.approx(0.35)
    assert "bands" not in m


def test_binary_metrics_unbalanced_f1() -> None:
    # y: 1 1 1 0 ; p: .9 .8 .2 .6 -> tp 2, fn 1, fp 1, tn 0
    # precision 2/3, recall 2/3, F1 2/3; specificity 0 -> balanced accuracy 1/3
    m = binary_metrics([1, 1, 1, 0], [0.9, 0.8, 0.2, 0.6])
    assert m["precision"] == pytest.approx(0.6667)
    assert m["recall"] == pytest.approx(0.6667)
    assert m["f1"] == pytest.approx(0.6667)
    assert m["balanced_accuracy"] == pytest.approx(0.3333)
    assert m["accuracy"] == pytest.approx(0.5)
    # Nothing flagged: precision and F1 are 0, not a division error.
    m = binary_metrics([1, 0], [0.1, 0.2])
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0


def test_binary_metrics_one_class() -> None:
    m = binary_metrics([0, 0, 0], [0.1, 0.6, 0.2])
    assert m["auc"] is None and m["balanced_accuracy"] is None
    assert m["accuracy"] == pytest.approx(0.6667)


def test_verdict_band_confusion() -> None:
    # real_below 0.3 (strict), fake_above 0.7 (inclusive)
    y = [0, 0, 0, 1, 1, 1]
    p = [0.29, 0.3, 0.7, 0.69, 0.7, 0.1]
    #    real  inc  fake  inc  fake real
    m = binary_metrics(y, p, real_below=0.3, fake_above=0.7)
    assert m["bands"] == {
        "real": {"real": 1, "inconclusive": 1, "fake": 1},
        "fake": {"real": 1, "inconclusive": 1, "fake": 1},
    }
    assert m["false_alarm_rate"] == pytest.approx(0.3333)  # 1 of 3 reals called fake
    m = binary_metrics(Y, P, real_below=0.3, fake_above=0.7)
    assert m["bands"] == {
        "real": {"real": 2, "inconclusive": 2, "fake": 0},
        "fake": {"real": 0, "inconclusive": 1, "fake": 1},
    }
    assert m["false_alarm_rate"] == 0.0


def test_best_temperature_by_hand() -> None:
    # logits [2, 2, -2, -2], labels [1, 0, 0, 0]. With s = sigmoid(2 / T) the likelihood is
    # s (1 - s) s s = s^3 (1 - s), largest at s = 3/4, so 2 / T = ln 3: T = 2 / ln 3 = 1.8205
    t = best_temperature(np.array([2.0, 2.0, -2.0, -2.0]), np.array([1, 0, 0, 0]))
    assert t == pytest.approx(2 / math.log(3), abs=0.01)
    # Over-confident logits get T > 1 (softened), under-confident ones T < 1.
    rng = np.random.default_rng(1)
    z = rng.normal(0, 1, 2000)
    y = (rng.random(2000) < 1 / (1 + np.exp(-z))).astype(int)  # calibrated at T = 1
    assert best_temperature(z, y) == pytest.approx(1.0, abs=0.15)
    assert best_temperature(3 * z, y) == pytest.approx(3.0, rel=0.15)
    assert best_temperature(z / 2, y) == pytest.approx(0.5, rel=0.15)
