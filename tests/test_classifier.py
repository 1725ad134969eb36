"""Tests of ``webapp.detection.classifier``: the verdict rule, the config file, and the
temporal model's masking. Small Keras models only (no backbone is built or loaded)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from webapp.detection.classifier import (  # noqa: E402
    CONFIG_FILE,
    DetectorNets,
    ModelConfig,
    build_frame_head,
    build_temporal,
)

FEATURES = 8


# ------------------------------------------------------------------ verdict
@pytest.mark.parametrize(
    "p,verdict",
    [
        (None, "no_face"),
        (0.0, "real"),
        (0.1, "real"),
        (0.2999, "real"),
        (0.3, "inconclusive"),  # real_below is strict: 0.3 itself is not "real"
        (0.5, "inconclusive"),
        (0.6999, "inconclusive"),
        (0.7, "fake"),  # fake_above is inclusive
        (0.95, "fake"),
        (1.0, "fake"),
    ],
)
def test_verdict_default_bands(p: float | None, verdict: str) -> None:
    assert ModelConfig(version="t").verdict(p) == verdict


def test_verdict_custom_thresholds() -> None:
    cfg = ModelConfig(version="t", real_below=0.1, fake_above=0.9)
    assert cfg.thresholds == {"real_below": 0.1, "fake_above": 0.9}
    assert [cfg.verdict(p) for p in (0.05, 0.1, 0.5, 0.8999, 0.9)] == [
        "real",
        "inconclusive",
        "inconclusive",
        "inconclusive",
        "fake",
    ]
    # Equal thresholds leave no inconclusive band.
    cfg = ModelConfig(version="t", real_below=0.5, fake_above=0.5)
    assert [cfg.verdict(p) for p in (0.4999, 0.5)] == ["real", "fake"]


@pytest.mark.parametrize("real_below", [0.0, 0.3, 1.0, 2.0])
def test_no_face_is_never_real(real_below: float) -> None:
    cfg = ModelConfig(version="t", real_below=real_below, fake_above=max(real_below, 0.7))
    assert cfg.verdict(None) == "no_face"
    assert cfg.verdict(float("nan")) != "real"  # a broken score must not pass as real


# ------------------------------------------------------------------ config file
def test_config_round_trip(tmp_path: Path) -> None:
    cfg = ModelConfig(
        version="2024-06-01-abc",
        backbone="efficientnet_lite0",
        chip_size=192,
        chip_padding=0.25,
        frames=12,
        max_sequence=24,
        lstm_units=32,
        proj_units=64,
        dropout=0.2,
        temperature=1.7,
        frame_temperature=1.3,
        real_below=0.25,
        fake_above=0.8,
        normalisation="x / 127.5 - 1",
        trained_on=["dfdc_faces", "ffpp_faces"],
        metrics={"dfdc_val": {"auc": 0.91, "n": 400}},
        notes={"sbi": True, "epochs": [2, 3]},
    )
    cfg.save(tmp_path)
    data = json.loads((tmp_path / CONFIG_FILE).read_text(encoding="utf-8"))
    assert data["version"] == "2024-06-01-abc" and data["fake_above"] == 0.8
    back = ModelConfig.load(tmp_path)
    assert back == cfg
    assert back.verdict(0.79) == "inconclusive" and back.verdict(0.8) == "fake"


def test_config_load_tolerates_old_and_new_files(tmp_path: Path) -> None:
    """Unknown keys (a newer writer) are ignored; missing keys (an older one) take defaults."""
    (tmp_path / CONFIG_FILE).write_text(
        json.dumps({"version": "old", "fake_above": 0.75, "some_future_field": [1, 2]}),
        encoding="utf-8",
    )
    cfg = ModelConfig.load(tmp_path)
    assert cfg.version == "old" and cfg.fake_above == 0.75
    assert cfg.real_below == ModelConfig(version="x").real_below
    assert cfg.chip_size == 224 and cfg.trained_on == []


def test_config_default_lists_not_shared() -> None:
    a, b = ModelConfig(version="a"), ModelConfig(version="b")
    a.trained_on.append("x")
    a.metrics["k"] = 1
    assert b.trained_on == [] and b.metrics == {}


# ------------------------------------------------------------------ temporal model
@pytest.fixture(scope="module")
def temporal() -> keras.Model:
    keras.utils.set_random_seed(0)
    cfg = ModelConfig(version="t", lstm_units=4, proj_units=6, dropout=0.3)
    return build_temporal(FEATURES, cfg)


def _run(model: keras.Model, feats: np.ndarray, logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.asarray(
        model(
            [feats.astype(np.float32), logits.astype(np.float32), mask.astype(bool)], training=False
        )
    )


def _seq(rng: np.random.Generator, t: int, b: int = 1) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(size=(b, t, FEATURES)), rng.normal(size=(b, t, 1))


def test_temporal_shapes(temporal: keras.Model) -> None:
    assert [i.name for i in temporal.inputs] == ["features", "frame_logits", "mask"]
    f, lg = _seq(np.random.default_rng(0), 7, b=3)
    out = _run(temporal, f, lg, np.ones((3, 7)))
    assert out.shape == (3, 1) and np.isfinite(out).all()


@pytest.mark.parametrize("n", [4, 16])
def test_length_one_padded_equals_unpadded(temporal: keras.Model, n: int) -> None:
    """A photo (length 1) padded to length N with a mask scores exactly as unpadded."""
    f, lg = _seq(np.random.default_rng(1), 1)
    ref = _run(temporal, f, lg, np.ones((1, 1)))
    fp = np.concatenate([f, np.full((1, n - 1, FEATURES), 9.0)], axis=1)  # loud padding
    lp = np.concatenate([lg, np.full((1, n - 1, 1), -20.0)], axis=1)
    mask = np.zeros((1, n), bool)
    mask[0, 0] = True
    np.testing.assert_allclose(_run(temporal, fp, lp, mask), ref, rtol=1e-5, atol=1e-6)
    # Control: the same padding unmasked does change the score.
    assert not np.allclose(_run(temporal, fp, lp, np.ones((1, n))), ref, atol=1e-4)


@pytest.mark.parametrize("n", [3, 8])
def test_length_n_padded_to_2n_equals_unpadded(temporal: keras.Model, n: int) -> None:
    f, lg = _seq(np.random.default_rng(2), n)
    ref = _run(temporal, f, lg, np.ones((1, n)))
    fp = np.concatenate([f, np.zeros_like(f) + 3.0], axis=1)
    lp = np.concatenate([lg, np.zeros_like(lg) + 5.0], axis=1)
    mask = np.concatenate([np.ones((1, n)), np.zeros((1, n))], axis=1)
    np.testing.assert_allclose(_run(temporal, fp, lp, mask), ref, rtol=1e-5, atol=1e-6)
    assert not np.allclose(_run(temporal, fp, lp, np.ones((1, 2 * n))), ref, atol=1e-4)


def test_mixed_lengths_in_one_batch(temporal: keras.Model) -> None:
    """Each row of a padded batch scores as it would alone (no leak across rows)."""
    rng = np.random.default_rng(3)
    lengths = [1, 5, 2, 8]
    seqs = [_seq(rng, t) for t in lengths]
    alone = [_run(temporal, f, lg, np.ones((1, len(f[0]))))[0, 0] for f, lg in seqs]
    t_max = max(lengths)
    feats = np.zeros((len(lengths), t_max, FEATURES))
    logits = np.zeros((len(lengths), t_max, 1))
    mask = np.zeros((len(lengths), t_max), bool)
    for i, (f, lg) in enumerate(seqs):
        feats[i, : len(f[0])], logits[i, : len(f[0])], mask[i, : len(f[0])] = f[0], lg[0], True
    np.testing.assert_allclose(
        _run(temporal, feats, logits, mask)[:, 0], alone, rtol=1e-5, atol=1e-6
    )


def test_temporal_uses_order_and_logits(temporal: keras.Model) -> None:
    """The frame logits are an input, and the order of the frames matters (an LSTM, not a mean)."""
    f, lg = _seq(np.random.default_rng(4), 6)
    ref = _run(temporal, f, lg, np.ones((1, 6)))
    assert not np.allclose(_run(temporal, f, lg + 3.0, np.ones((1, 6))), ref, atol=1e-5)
    perm = [2, 0, 5, 1, 4, 3]
    assert not np.allclose(_run(temporal, f[:, perm], lg[:, perm], np.ones((1, 6))), ref, atol=1e-5)


# ------------------------------------------------------------------ frame head and CAM
def test_frame_head_is_linear() -> None:
    keras.utils.set_random_seed(1)
    head = build_frame_head(FEATURES, dropout=0.5)
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(2, FEATURES)).astype(np.float32)
    zero = np.zeros((1, FEATURES), np.float32)

    def h(x: np.ndarray) -> float:
        return float(np.asarray(head(x.reshape(1, -1), training=False))[0, 0])

    assert h(a + b) - h(zero) == pytest.approx((h(a) - h(zero)) + (h(b) - h(zero)), abs=1e-4)
    w, bias = head.get_layer("frame_logit").get_weights()
    assert h(a) == pytest.approx(float(a @ w[:, 0] + bias[0]), abs=1e-4)


def test_cam_is_relu_of_fmap_times_head_weights() -> None:
    keras.utils.set_random_seed(2)
    nets = DetectorNets.__new__(DetectorNets)  # the CAM needs only the head, not a backbone
    nets.frame_head = build_frame_head(FEATURES, dropout=0.0)
    w = nets.frame_head.get_layer("frame_logit").get_weights()[0][:, 0]
    fmap = np.random.default_rng(6).normal(size=(2, 3, 3, FEATURES)).astype(np.float32)
    cam = nets.cam(fmap)
    assert cam.shape == (2, 3, 3) and cam.dtype == np.float32
    raw = np.maximum(fmap @ w, 0)
    for i in range(2):
        if raw[i].max() > 0:
            np.testing.assert_allclose(cam[i], raw[i] / raw[i].max(), rtol=1e-5, atol=1e-6)
            assert cam[i].max() == pytest.approx(1.0)
    # All-negative evidence: an all-zero map, not a division by zero.
    against = (-np.abs(fmap) * np.sign(w)).astype(np.float32)
    flat = nets.cam(against)
    assert np.isfinite(flat).all() and not flat.any()


def test_clips_have_bands_of_their_own_when_the_model_sets_them():
    cfg = ModelConfig(version="t", real_below=0.3, fake_above=0.9, clip_real_below=0.2, clip_fake_above=0.97)
    assert cfg.thresholds_for("image") == {"real_below": 0.3, "fake_above": 0.9}
    assert cfg.thresholds_for("video") == {"real_below": 0.2, "fake_above": 0.97}
    # 0.95 is "likely fake" in a photo but only "inconclusive" in a clip; 0.25 the other way round
    assert (cfg.verdict(0.95, "image"), cfg.verdict(0.95, "video")) == ("fake", "inconclusive")
    assert (cfg.verdict(0.25, "image"), cfg.verdict(0.25, "video")) == ("real", "inconclusive")
    assert cfg.verdict(None, "video") == "no_face"
    # a model without clip bands (2026.11.22-lite0) uses the photo bands for clips
    old = ModelConfig(version="old", real_below=0.3, fake_above=0.9)
    assert old.thresholds_for("video") == old.thresholds and old.verdict(0.95, "video") == "fake"


def test_calibration_per_media_type_and_temperature_otherwise(tmp_path: Path) -> None:
    cfg = ModelConfig(version="t", temperature=2.0)
    assert cfg.probability(2.0, "video") == pytest.approx(1 / (1 + np.exp(-1.0)))  # logit / T
    cfg.calibration = {"video": [0.5, -1.0], "image": [2.0, 0.5]}
    assert cfg.probability(2.0, "video") == pytest.approx(1 / (1 + np.exp(-0.0)))
    assert cfg.probability(2.0, "image") == pytest.approx(1 / (1 + np.exp(-4.5)))
    assert cfg.probability(-3.0, "video") < cfg.probability(3.0, "video")  # monotone, never inverted
    cfg.save(tmp_path)
    assert ModelConfig.load(tmp_path).calibration == {"video": [0.5, -1.0], "image": [2.0, 0.5]}
