"""The real-footage validation's arithmetic: heads fitted on a feature bank, out-of-fold bands,
false alarms per kind, the shortcut audit. Small numeric cases; no TensorFlow except where the
temporal network itself is fitted (marked engine)."""

from __future__ import annotations

import numpy as np
import pytest

from webapp.detection.training import trust_report as tr
from webapp.detection.training.bank import Seq
from webapp.detection.training.heads import fit_frame_head, seq_weights
from webapp.detection.training.kfold import Scored, item_scores


def _item(i: int, label: int, kind: str, logit: float | None, media: str = "video", method: str = "original") -> Scored:
    return Scored(f"generators/c{i}.mp4", label, kind, method if label else "original", media, f"g{i}", logit, 120.0)


def test_frame_head_separates_what_is_separable():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 8)).astype(np.float32)
    y = (x[:, 0] - 0.5 * x[:, 3] > 0).astype(int)
    coef, b = fit_frame_head(x, y, np.ones(400), l2=1e-4)
    acc = ((x @ coef + b > 0).astype(int) == y).mean()
    assert acc > 0.97 and coef[0] > 0 > coef[3]


def test_weights_balance_labels_within_domains_and_kinds_of_real_footage():
    def seq(label, kind, media="video", view="clean", key="generators/x"):
        return Seq(np.zeros((4, 2), np.float16), np.zeros(4), label, "g", "m", kind, media, key, view)

    seqs = ([seq(0, "webcam")] * 10 + [seq(0, "interview")] * 2 + [seq(1, "fake")] * 4
            + [seq(1, "fake", view="selfmade")] * 3 + [seq(0, "crops_dfdc", "image", "crop_train", "dfdc_faces/a")] * 6
            + [seq(1, "fake", "image", "crop_train", "dfdc_faces/b")] * 2)
    w = seq_weights(seqs)
    webcam, interview = w[:10].sum(), w[10:12].sum()
    assert webcam == pytest.approx(interview)  # 10 webcam clips weigh what 2 interviews weigh
    assert webcam + interview == pytest.approx(w[12:16].sum())  # real clips = fake clips
    assert w[19:25].sum() == pytest.approx(w[25:27].sum())  # crops: reals = fakes
    assert w[16:19].sum() > 0


def test_item_scores_take_the_most_suspicious_judged_track():
    def seq(key, px, track):
        return Seq(np.zeros((3, 2), np.float16), np.zeros(3), 0, "g", "original", "webcam", "video", key, "clean", px, track)

    seqs = [seq("a", 120, 0), seq("a", 90, 1), seq("a", 40, 2), seq("b", 40, 0)]
    out = {s.key: s for s in item_scores(seqs, np.array([-2.0, 1.5, 5.0, 3.0]), {"video": 60, "image": 60})}
    assert out["a"].logit == 1.5  # max of the judged tracks; the 40-px one is too small
    assert out["b"].logit is None  # no face large enough: no score, never "real"


def test_cross_validated_bands_never_see_their_own_fold():
    # Fold 0 holds the only real that scores high: bands chosen without it call it fake.
    items = [_item(i, 0, "webcam", -3.0 + 0.01 * i) for i in range(40)] + [_item(40, 0, "webcam", 4.0)]
    items += [_item(100 + i, 1, "fake", 0.5 + 0.1 * i, method="sonic") for i in range(20)]
    p = tr.probabilities(items, 1.0)
    folds = [1] * 40 + [0] + [i % 2 for i in range(20)]
    v = tr.cross_validated_verdicts(items, p, folds)
    assert v[40] == "fake"  # measured honestly: a false alarm
    chosen_on_all = tr.verdicts(items, p, tr.choose_bands(items, p))
    assert chosen_on_all[40] != "fake"  # chosen on itself, it would have been hidden
    rows = tr.false_alarm_rows(items, p, v)
    assert rows["webcam"]["n"] == 41 and rows["webcam"]["fake"] == 1


def test_detection_and_summary_rows():
    items = [_item(i, 0, "phone", -1.0 - 0.01 * i) for i in range(30)]
    items += [_item(50 + i, 1, "fake", 2.0, method="wav2lip") for i in range(5)]
    items += [_item(60, 1, "fake", None, method="sonic")]
    p = tr.probabilities(items, 1.0)
    v = tr.verdicts(items, p, {"video": (0.3, 0.8)})
    fam = tr.detection_rows(items, p, v, "video", lambda s: tr.family(s.method))
    assert fam["lip-sync"] == {"n": 5, "auc": 1.0, "fake": 5, "real": 0, "no_face": 0}
    assert fam["talking head"]["no_face"] == 1
    s = tr.summary(items, p, v, "video")
    assert s["auc"] == 1.0 and s["tpr_at_2pct_fpr"] == 1.0 and s["reals_called_fake"] == [0, 30]


def test_platt_calibrates_an_overconfident_score():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2000)
    logit = 6.0 * (y - 0.5) + rng.normal(0, 3.0, 2000)  # true log-odds are smaller than these
    items = [_item(i, int(y[i]), "webcam" if y[i] == 0 else "fake", float(logit[i])) for i in range(2000)]
    scale, shift = tr.platt(items)
    assert 0 < scale < 1
    before = tr.expected_calibration_error(y, tr.probabilities(items, 1.0))
    after = tr.expected_calibration_error(y, tr.probabilities(items, scale, shift))
    assert after < 0.03 < before


def test_shortcut_audit_finds_a_planted_correlation():
    items = [_item(i, 0, "interview", float(i)) for i in range(30)]
    audit = {s.key: {"sharpness": float(i), "brightness": float((i * 7) % 30)} for i, s in enumerate(items)}
    a = tr.shortcut_audit(items, tr.probabilities(items, 0.1), audit)
    assert a["sharpness"] == pytest.approx(1.0) and abs(a["brightness"]) < 0.5
