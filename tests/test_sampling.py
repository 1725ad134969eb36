"""The method-disjoint split, the balanced sampler, and the per-group figures and trust
thresholds, against values worked out by hand."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from webapp.detection.training.dataset import Item, split_of
from webapp.detection.training.evaluate import EvalRow, by_key
from webapp.detection.training.metrics import by_group, trust_thresholds
from webapp.detection.training.sampling import (
    BalancedSampler,
    assign_splits,
    balanced_weights,
    pool_indices,
)


def item(name: str, label: int, group: str, source: str = "generators", method: str = "") -> Item:
    return Item(Path(name), label, group, source, method or ("original" if label == 0 else "x"))


# ------------------------------------------------------------------ split
def test_held_out_methods_go_to_val_with_their_whole_group():
    items = [
        item("a_real.mp4", 0, "g1"), item("a_w2l.mp4", 1, "g1", method="wav2lip"),
        item("a_ft.mp4", 1, "g1", method="fantasytalking"),  # held out: pulls all of g1 to val
        item("b_real.mp4", 0, "g2"), item("b_w2l.mp4", 1, "g2", method="wav2lip"),
        item("c_ed.mp4", 1, "g3", method="edtalk"),
    ]
    s = assign_splits(items, held_out_methods={"fantasytalking"})
    assert [s[it] for it in items] == ["val", "val", "val", "train", "train", "train"]


def test_no_training_item_shares_a_method_or_group_with_a_held_out_fake():
    rng = np.random.default_rng(3)
    methods = ["wav2lip", "edtalk", "sonic", "hallo", "musev"]
    items = []
    for g in range(60):
        items.append(item(f"r{g}.mp4", 0, f"g{g}"))
        for k in range(int(rng.integers(0, 3))):
            items.append(item(f"f{g}_{k}.mp4", 1, f"g{g}", method=str(rng.choice(methods))))
    held = {"sonic", "hallo"}
    s = assign_splits(items, held_out_methods=held)
    train = [it for it in items if s[it] == "train"]
    assert not any(it.method in held for it in train)
    groups = {}
    for it in items:
        groups.setdefault(it.group, set()).add(s[it])
    assert all(len(v) == 1 for v in groups.values()), "a group straddles splits"
    assert any(s[it] == "val" and it.label == 0 for it in items), "validation needs reals"


def test_real_only_groups_of_method_folders_split_by_hash_and_held_out_real_sources_validate():
    reals = [item(f"r{i}.jpg", 0, f"set{i}|src{i}", source="photos") for i in range(40)]
    held_src = item("aaf.jpg", 0, "x|all-age-faces", source="photos")
    s = assign_splits(reals + [held_src], held_out_methods=set(), held_out_real_groups={"x|all-age-faces"})
    assert s[held_src] == "val"
    for it in reals:
        assert s[it] == ("train" if split_of(it.group) == "train" else "val")


def test_other_folders_keep_the_group_hash_split():
    items = [item(f"{i}.jpg", i % 2, f"grp{i // 2}", source="dfdc_faces", method="x") for i in range(50)]
    s = assign_splits(items, held_out_methods={"x"})  # methods do not matter outside method folders
    assert all(s[it] == split_of(it.group) for it in items)


# ------------------------------------------------------------------ sampler
def test_balanced_sampler_draws_each_pool_at_its_share_however_big_the_pool():
    domains = ["big"] * 10000 + ["small"] * 40 + ["sbi"] * 300
    labels = [0] * 5000 + [1] * 5000 + [0] * 30 + [1] * 10 + [1] * 300
    pools = pool_indices(domains, labels)
    assert {k: len(v) for k, v in pools.items()} == {"big:real": 5000, "big:fake": 5000, "small:real": 30,
                                                     "small:fake": 10, "sbi:fake": 300}
    weights = balanced_weights(pools, {"big": 0.5, "small": 0.3, "sbi": 0.2, "absent": 0.4})
    assert weights == pytest.approx({"big:real": 0.25, "big:fake": 0.25, "small:real": 0.15,
                                     "small:fake": 0.15, "sbi:fake": 0.2})
    sampler = BalancedSampler(pools, weights, seed=1)
    drawn = np.concatenate([sampler.batch(32) for _ in range(2000)])
    assert len(drawn) == 64000
    names = np.empty(len(labels), dtype=object)
    for k, v in pools.items():
        names[v] = k
    share = Counter(names[drawn])
    for k, w in sampler.shares().items():
        assert share[k] / len(drawn) == pytest.approx(w, abs=0.01), k
    # the 10 small fakes are all used, many times each: the small pool is not drowned
    assert set(drawn[np.isin(drawn, pools["small:fake"])]) == set(pools["small:fake"].tolist())


def test_sampler_refuses_when_nothing_can_be_drawn():
    with pytest.raises(ValueError):
        BalancedSampler({"a:real": np.array([], np.int64)}, {"a:real": 1.0})


# ------------------------------------------------------------------ per-group figures
def test_by_group_against_hand_computed_values():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.8, 0.4, 0.9, 0.3, 0.05, 0.6])
    g = np.array(["webcam", "webcam", "webcam", "phone", "swap", "swap", "lipsync", "lipsync"])
    rows = by_group(y, p, g, real_below=0.25, fake_above=0.7)
    # webcam reals: 0.8 >= 0.7 is the one false alarm of three; 0.1 and 0.2 are "real"
    assert rows["webcam"] == {"n": 3, "false_alarm": pytest.approx(1 / 3, abs=1e-4), "real_called_real": pytest.approx(2 / 3, abs=1e-4)}
    assert rows["phone"] == {"n": 1, "false_alarm": 0.0, "real_called_real": 0.0}
    # swap fakes {0.9, 0.3} against reals {0.1, 0.2, 0.8, 0.4}: 0.9 beats 4, 0.3 beats 2 -> 6/8
    assert rows["swap"] == {"n": 2, "auc": 0.75, "detected": 0.5, "called_real": 0.0}
    # lipsync fakes {0.05, 0.6}: 0.05 beats 0, 0.6 beats 3 -> 3/8; 0.05 < 0.25 is called real
    assert rows["lipsync"] == {"n": 2, "auc": 0.375, "detected": 0.0, "called_real": 0.5}


def test_trust_thresholds_hold_every_source_to_the_false_alarm_cap():
    rng = np.random.default_rng(0)
    calm = rng.uniform(0.0, 0.5, 200)  # most sources: reals below 0.5
    webcam = np.r_[rng.uniform(0.0, 0.5, 95), [0.91, 0.92, 0.93, 0.94, 0.95]]  # 5% of webcam reals high
    fakes_a, fakes_b = rng.uniform(0.6, 1.0, 300), np.r_[rng.uniform(0.0, 0.1, 3), rng.uniform(0.8, 1.0, 7)]
    p = np.r_[calm, webcam, fakes_a, fakes_b]
    y = np.r_[np.zeros(300), np.ones(310)].astype(int)
    src = np.r_[["crops"] * 200, ["webcam"] * 100, ["swap"] * 300, ["talking"] * 10]
    real_below, fake_above, rates = trust_thresholds(p, y, src, max_false_alarm=0.02, max_miss=0.10)
    # webcam: at most 2 of 100 may be called fake -> the cut sits just above the 3rd largest (0.93)
    assert 0.93 < fake_above <= 0.9301
    assert rates["webcam"]["false_alarm"] == 0.02
    assert rates["crops"]["false_alarm"] == 0.0
    # fakes weighted per source: "talking" has 3 of 10 below 0.1 = 15% of its half, so
    # real_below must sit at or below its lowest scores' neighbourhood, not at swap's 10% point
    assert real_below <= 0.1
    miss = 0.5 * (fakes_a < real_below).mean() + 0.5 * (fakes_b < real_below).mean()
    assert miss <= 0.10


def test_trust_thresholds_pool_tiny_sources_and_never_go_below_half():
    p = np.array([0.1, 0.2, 0.3, 0.9, 0.95])
    y = np.array([0, 0, 0, 1, 1])
    rb, fa, _ = trust_thresholds(p, y, np.array(["a", "b", "c", "f", "f"]), min_items=5)
    assert fa == 0.5  # the pooled reals never reach 0.5: the floor holds
    assert rb <= fa


# ------------------------------------------------------------------ evaluate --by method
def test_evaluate_rows_by_method_use_the_verdicts_the_site_gave():
    rows = [
        EvalRow("r1", "real", 0.1, "real", 0.1, method="original"),
        EvalRow("r2", "real", 0.9, "fake", 0.1, method="original"),
        EvalRow("r3", "real", None, "no_face", 0.1, method="original"),
        EvalRow("f1", "fake", 0.95, "fake", 0.1, method="sadtalker"),
        EvalRow("f2", "fake", 0.2, "real", 0.1, method="sadtalker"),
        EvalRow("f3", "fake", 0.5, "inconclusive", 0.1, method="wav2lip"),
        EvalRow("e", "fake", None, "error", 0.1, method="wav2lip"),
    ]
    out = by_key(rows, lambda r: r.method)
    assert out["original"] == {"n": 3, "n_fake": 0, "no_face": 1, "false_alarm": pytest.approx(1 / 3, abs=1e-4),
                               "called_real": pytest.approx(1 / 3, abs=1e-4)}
    # sadtalker fakes {0.95, 0.2} vs reals {0.1, 0.9, 0.5 (no face)}: 0.95 beats 3, 0.2 beats 1 -> 4/6
    assert out["sadtalker"]["auc"] == pytest.approx(0.6667, abs=1e-4)
    assert out["sadtalker"]["detected"] == 0.5 and out["sadtalker"]["called_real"] == 0.5
    # wav2lip: the error row is left out; 0.5 vs {0.1, 0.9, 0.5}: beats 1, ties 1 -> 1.5/3
    assert out["wav2lip"] == {"n": 1, "n_fake": 1, "no_face": 0, "auc": 0.5, "detected": 0.0, "called_real": 0.0}
