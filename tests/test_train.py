"""Tests of ``webapp.detection.training.train``: the verdict thresholds a training run chooses
(hand-made score lists with known false-alarm rates) and a tiny end-to-end
``flask --app app train`` on generated faces that must write a model ``analyze()`` can load.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from webapp.detection.classifier import ModelConfig
from webapp.detection.training.dataset import split_of
from webapp.detection.training.metrics import trust_thresholds

ROOT = Path(__file__).resolve().parents[1]


def choose(p, y, **kw) -> tuple[float, float, dict]:
    """``trust_thresholds`` with every item from one source."""
    return trust_thresholds(np.asarray(p, float), np.asarray(y), np.array(["one"] * len(p)), **kw)


# ------------------------------------------------------------------ thresholds
def test_thresholds_from_known_false_alarm_rates() -> None:
    # 100 reals at 0.00, 0.01, ..., 0.99. At most 2% (2 of them) may be called fake: the cut sits
    # just above the third largest, 0.97, rounded up to 4 decimals -> 0.9701; 0.98 and 0.99 are over.
    reals = np.arange(100) / 100
    # 50 fakes at 0.30, 0.31, ..., 0.79. At most 10% (5) may be called real: 0.30 .. 0.34 are
    # below the cut, which is the sixth lowest, 0.35.
    fakes = 0.30 + np.arange(50) / 100
    real_below, fake_above, rates = choose(np.r_[reals, fakes], np.r_[np.zeros(100), np.ones(50)])
    assert (real_below, fake_above) == (0.35, 0.9701)
    assert rates["one"]["false_alarm"] == 0.02 and rates["one"]["called_real"] == 0.1
    # A looser rule: 5% of reals may be called fake -> just above the sixth largest, 0.94
    _, fake_above, rates = choose(np.r_[reals, fakes], np.r_[np.zeros(100), np.ones(50)], max_false_alarm=0.05)
    assert fake_above == 0.9401 and rates["one"]["false_alarm"] == 0.05  # 0.95 .. 0.99


def test_thresholds_keep_their_floor_ceiling_and_order() -> None:
    # Reals all low, but "fake" never starts below 0.5; fakes all high, but "real" never
    # reaches above 0.5.
    real_below, fake_above, _ = choose([0.1, 0.2, 0.15, 0.9, 0.95, 0.99], [0, 0, 0, 1, 1, 1])
    assert (real_below, fake_above) == (0.5, 0.5)
    cfg = ModelConfig(version="t", real_below=real_below, fake_above=fake_above)
    assert cfg.verdict(0.5) == "fake" and cfg.verdict(0.4999) == "real"
    # Reals up to 1.0: fake_above is capped at 0.995 so a "fake" band exists at all.
    real_below, fake_above, _ = choose([0.2, 1.0, 1.0, 1.0, 0.995, 0.9], [0, 0, 0, 1, 1, 1])
    assert fake_above == 0.995
    assert real_below <= fake_above


def test_thresholds_need_both_classes() -> None:
    with pytest.raises(ValueError, match="both reals and fakes"):
        choose([0.1, 0.2, 0.9], [0, 0, 0])


# ------------------------------------------------------------------ a tiny training run
FACE_CENTRE = (222.0, 126.0)  # the astronaut's face: dlib box about (179, 83)-(266, 170)


def jittered_face(rng: np.random.Generator) -> np.ndarray:
    """A 200x200 RGB crop of the astronaut's face, rotated, scaled, shifted and lit at random."""
    img = skimage.data.astronaut()
    angle, scale = rng.uniform(-8, 8), rng.uniform(0.9, 1.1)
    m = cv2.getRotationMatrix2D(FACE_CENTRE, angle, scale)
    m[:, 2] += np.array([100, 100]) - np.array(FACE_CENTRE) + rng.uniform(-8, 8, 2)
    crop = cv2.warpAffine(img, m, (200, 200), borderMode=cv2.BORDER_REFLECT)
    return np.clip(crop * rng.uniform(0.85, 1.15) + rng.uniform(-12, 12), 0, 255).astype(np.uint8)


def edited_face(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A crude "manipulation": the inner face blurred and colour-shifted under a soft ellipse."""
    mask = np.zeros(face.shape[:2], np.float32)
    cv2.ellipse(mask, (100, 105), (34, 44), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 6)[..., None]
    edit = cv2.GaussianBlur(face, (0, 0), rng.uniform(2.0, 3.5)).astype(np.float32)
    edit += np.array([rng.uniform(15, 30), 0, -rng.uniform(10, 20)], np.float32)
    return np.clip(face * (1 - mask) + edit * mask, 0, 255).astype(np.uint8)


def groups_per_split(counts: dict[str, int]) -> list[str]:
    """Group names whose hash split gives ``counts`` groups per split (a pair per group)."""
    out, have, k = [], dict.fromkeys(counts, 0), 0
    while have != counts:
        g, k = f"astronaut-{k}", k + 1
        s = split_of(g)
        if have[s] < counts[s]:
            have[s] += 1
            out.append(g)
    return out


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """48 generated crops: 24 jittered astronaut faces and an edited copy of each (one group
    per pair, like a DFDC fake and its original): 16 pairs train, 4 val, 4 test."""
    folder = tmp_path / "astronaut_faces"
    (folder / "real").mkdir(parents=True)
    (folder / "fake").mkdir()
    rng = np.random.default_rng(7)
    rows = []
    for i, group in enumerate(groups_per_split({"train": 16, "val": 4, "test": 4})):
        face = jittered_face(rng)
        for label, img in (("real", face), ("fake", edited_face(face, rng))):
            rel = f"{label}/{i:02d}.jpg"
            cv2.imwrite(str(folder / rel), cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 92])
            rows.append({"path": rel, "label": label, "group": group})
    with (folder / "labels.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "label", "group"])
        writer.writeheader()
        writer.writerows(rows)
    return folder


def small_options() -> list[str]:
    """The smallest setting of every size option ``train`` has (one epoch, one view, and,
    where the command offers them, a few steps and self-blended fakes)."""
    from webapp.cli import train_command

    small = {"epochs": 1, "views": 1, "steps": 2, "sbi": 16, "cap": 64}
    names = {p.name for p in train_command.params}
    return [arg for name, v in small.items() if name in names for arg in (f"--{name}", str(v))]


@pytest.mark.engine
@pytest.mark.slow
def test_flask_train_writes_a_model_that_analyses(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "trained"
    env = {**os.environ, "DEEPFAKE_CACHE": str(tmp_path / "cache"),
           "DEEPFAKE_INSTANCE_PATH": str(tmp_path / "instance")}
    env.pop("FLASK_RUN_FROM_CLI", None)
    cmd = [sys.executable, "-m", "flask", "--app", "app", "train", "--data", str(tiny_data),
           "--out", str(out), "--version", "test-tiny", *small_options()]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]

    cfg = ModelConfig.load(out)
    assert cfg.version == "test-tiny" and cfg.trained_on == ["astronaut_faces"]
    assert 0 < cfg.real_below <= cfg.fake_above < 1 and cfg.temperature > 0
    test = cfg.metrics["test"]["astronaut_faces"]
    assert test["n"] == 8 and test["n_fake"] == 4  # the 4 test pairs, all faces found
    assert json.loads((out / "metrics.json").read_text()) == cfg.metrics
    card = (out / "MODEL_CARD.md").read_text()
    assert card.startswith("# Model card: test-tiny") and "| astronaut_faces | 8 | 4 |" in card

    from webapp.detection.pipeline import Detector

    detector = Detector(out)
    photo = tiny_data / "real" / "00.jpg"
    a = detector.analyze(photo)
    assert a.model_version == "test-tiny" and a.faces_found == 1
    assert a.p_fake is not None and 0.0 <= a.p_fake <= 1.0
    assert a.verdict == cfg.verdict(a.p_fake)


def test_temporal_weights_give_reals_and_fakes_half_each() -> None:
    from webapp.detection.training.train import balanced_label_weights

    # 2 real clips and 6 fake clips sharing 0.5 of the weight: 0.125 per real, 0.25/6 per fake
    w = balanced_label_weights(np.array([0, 0, 1, 1, 1, 1, 1, 1]), 0.5)
    assert w[:2] == pytest.approx([0.125, 0.125]) and w[2:] == pytest.approx([0.25 / 6] * 6)
    assert w.sum() == pytest.approx(0.5)
    # one label only: it takes the whole share
    assert balanced_label_weights(np.array([1, 1]), 0.5) == pytest.approx([0.25, 0.25])
