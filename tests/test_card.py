"""Tests of ``webapp.detection.training.card``: the model card a training run writes and the
accuracy table that the card and the site's pages show, on a hand-worked metrics block."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_app

from webapp.detection.classifier import ModelConfig
from webapp.detection.training.card import render_card, write_card
from webapp.detection.training.metrics import binary_metrics

# The hand-worked set of test_metrics.py: four real, two fake; bands real < 0.3, fake >= 0.6.
Y = np.array([0, 0, 0, 0, 1, 1])
P = np.array([0.15, 0.65, 0.15, 0.35, 0.75, 0.45])
# AUC 7/8; tp 1 (0.75), fn 1 (0.45), fp 1 (0.65), tn 3 -> accuracy 4/6, precision 1/2,
# recall 1/2, F1 1/2, balanced accuracy (1/2 + 3/4) / 2 = 0.625; log-loss 2.8918326 / 6 =
# 0.482; ECE 0.35. Bands: reals 0.15, 0.15 "real", 0.35 "inconclusive", 0.65 "fake" -> one
# false alarm in four reals = 0.25.
CARD_ROW = "| crops | 6 | 2 | 0.875 | 0.625 | 0.667 | 0.500 | 0.500 | 0.500 | 0.482 | 0.350 | 0.250 |"
SITE_CELLS = {"Items": "6", "Fakes": "2", "AUC": "0.875", "Balanced accuracy": "0.625",
              "Accuracy": "0.667", "False alarms": "0.250", "Calibration error": "0.350"}


@pytest.fixture
def cfg() -> ModelConfig:
    block = binary_metrics(Y, P, real_below=0.3, fake_above=0.6)
    return ModelConfig(
        version="2026.01.01-test",
        real_below=0.3,
        fake_above=0.6,
        trained_on=["crops"],
        metrics={
            "stage1": {"history": [{"epoch": 1, "loss": 0.65, "val_auc": 0.8, "seconds": 12.5}]},
            "val": {"crops": binary_metrics(1 - Y, P, 0.3, 0.6), "sequences_lstm_auc": 0.81,
                    "sequences_average_auc": 0.79},
            "test": {"crops": block},
            "train_seconds": 40,
            "counts": {"train": {"chips": 100, "fake": 40, "sbi": 30},
                       "val": {"chips": 6, "fake": 2}, "test": {"chips": 6, "fake": 2}},
        },
        notes={"face_found_rate": {"crops": 0.975},
               "thresholds": {"rule": "fake_above: <= 2% of val reals above; real_below: <= 10% "
                                      "of val fakes below",
                              "val_false_alarm_rate": 0.02, "val_fake_called_real_rate": 0.1}},
    )


def test_card_rows_by_hand(cfg: ModelConfig) -> None:
    card = render_card(cfg)
    header = "## Measured on held-out test items (chips, length-1 sequences)"
    test_part = card.split(header)[1].split("## Validation")[0]
    assert CARD_ROW in test_part.splitlines()
    # The validation block (labels swapped: AUC 1/8) comes after, under its own heading.
    val_part = card.split("## Validation (used for choosing: not held out)")[1]
    assert "| crops | 6 | 4 | 0.125 |" in val_part
    assert "sequences_lstm_auc" not in card  # scalars are not table rows
    assert "LSTM 0.810, averaging 0.790" in card


def test_card_states_config_thresholds_and_data(cfg: ModelConfig) -> None:
    card = render_card(cfg, extra={"Evaluation": "Ran on nothing else."})
    assert card.startswith("# Model card: 2026.01.01-test\n")
    assert "- Verdict bands: real if p < 0.3, fake if p >= 0.6, otherwise inconclusive" in card
    assert ("On validation this gives a false-alarm rate of 2.0% and calls 10.0% of fakes real."
            in card)
    assert "| train | 100 | 40 | + 30 self-blended fakes |" in card
    assert "| test | 6 | 2 |  |" in card
    assert "crops 97.5%" in card
    assert "| 1 | 0.6500 | 0.800 | 12.5 |" in card and "Last training run: 40 s" in card
    assert card.endswith("\n") and "## Evaluation\n\nRan on nothing else." in card
    assert "nan" not in card.lower().split() and "None" not in card


def test_write_card_reads_config_json(cfg: ModelConfig, tmp_path) -> None:
    cfg.save(tmp_path)
    path = write_card(tmp_path)
    assert path == tmp_path / "MODEL_CARD.md"
    assert path.read_text(encoding="utf-8") == render_card(ModelConfig.load(tmp_path))
    assert CARD_ROW in path.read_text(encoding="utf-8")


def test_site_shows_the_same_figures_as_the_card(cfg: ModelConfig, tmp_path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    cfg.save(model)
    write_card(model)
    from webapp.services.modelcard import metrics_table

    app = make_app(tmp_path, MODEL_DIR=str(model), DETECTOR_LOADER=lambda _dir: None)
    try:
        with app.app_context():
            table = metrics_table()
        assert table["split"] == "held-out test data"
        (row,) = table["rows"]
        assert dict(zip(table["columns"], row["cells"], strict=True)) == SITE_CELLS
        page = app.test_client().get("/model").get_data(as_text=True)
        assert "2026.01.01-test" in page and "0.875" in page and "0.625" in page
    finally:
        app.extensions["detection_runner"].shutdown()
