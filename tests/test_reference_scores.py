"""Score regression: what the shipped model says about known media, through ``analyze()``.

``tests/reference_scores.json`` holds, per model version, the verdict and ``p_fake`` of each
item of :data:`tools.score_reference.ITEMS`: two DFDC clips (a face swap scoring 0.999 and its
kind's original scoring 0.08), DFDC and FaceForensics++ face crops and photos of each label, and
the bundled scikit-image astronaut. A new model version needs a new entry: run
``.venv/bin/python -m tools.score_reference``.

The clips and crops were mostly seen in training. These tests catch a broken detector (a
constant or inverted score, changed preprocessing, a loading bug); they do not measure accuracy.
The benchmarks (``benchmarks/quality.py``) and the model card's held-out figures do that.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools import score_reference as ref
from webapp.detection.errors import ModelOutputError

pytestmark = pytest.mark.engine


@pytest.fixture(scope="session")
def reference(engine) -> dict:
    """The reference entry of the loaded model's version; fails (not skips) when there is none."""
    entry = ref.load().get(engine.version)
    if entry is None:
        pytest.fail(ref.missing_message(engine.version), pytrace=False)
    return entry


def check(version: str, reference: dict, observed: dict, items: list[ref.RefItem]) -> list[str]:
    return ref.compare(version, reference, observed) + ref.label_failures(items, observed)


def test_reference_file_is_well_formed() -> None:
    data = ref.load()
    assert data, f"{ref.REFERENCE_FILE} is empty; run `{ref.COMMAND}`"
    for version, entry in data.items():
        for name, o in entry.items():
            assert o["verdict"] in {"real", "inconclusive", "fake", "no_face"}, (version, name)
            assert (o["p_fake"] is None) == (o["verdict"] == "no_face"), (version, name)
            assert o["p_fake"] is None or 0.0 <= o["p_fake"] <= 1.0, (version, name)


def test_missing_version_fails_with_the_command(tmp_path: Path) -> None:
    path = tmp_path / "reference_scores.json"
    path.write_text(json.dumps({"2020.01.01-old": {}}))
    msg = ref.missing_message("2099.01.01-new", path)
    assert "'2099.01.01-new'" in msg and "2020.01.01-old" in msg and ref.COMMAND in msg


def test_generated_photo_scores_as_pinned(engine, reference, tmp_path: Path) -> None:
    items = ref.select(shared=False)
    observed = ref.score(engine, items, tmp_path)
    failures = check(engine.version, reference, observed, items)
    assert not failures, "\n".join(failures)


@pytest.mark.shared
@pytest.mark.slow
def test_shared_clips_crops_and_photos_score_as_pinned(engine, reference, tmp_path: Path) -> None:
    items = ref.select()
    observed = ref.score(engine, items, tmp_path)
    failures = check(engine.version, reference, observed, items)
    assert not failures, "\n".join(failures)
    # The two clips the issue names, by their labels (not only as pinned): the real one is called
    # real, the fake one never is and scores well above it. (Since 2026.12.02-lite0, banded on
    # real footage of every kind, this DFDC fake reads "inconclusive" at 0.46; earlier defaults
    # called it "likely fake".)
    fake, real = observed["videos/abqwwspghj.mp4"], observed["videos/lynaeydofd.mp4"]
    assert real["verdict"] == "real"
    assert fake["verdict"] in ("fake", "inconclusive") and fake["p_fake"] > real["p_fake"] + 0.2


# ------------------------------------------------------------------ the check notices breakage
@pytest.mark.slow
@pytest.mark.parametrize("how", ["constant", "inverted"])
def test_broken_model_fails_the_check(how: str, broken_detector, engine, reference,
                                      tmp_path: Path) -> None:
    """A copy of the model with its output layers zeroed (every score the same) or negated
    (logit -> -logit) fails the same check, naming score, verdict and label regressions."""
    broken = broken_detector(how)
    assert broken.version == engine.version  # same version: only the weights changed
    items = ref.select(shared=ref.SHARED_DATA.is_dir(), videos=False)
    observed = ref.score(broken, items, tmp_path)
    if how == "constant":  # every track logit 0: one score, the calibration of 0 (0.5 for a temperature)
        assert {o["p_fake"] for o in observed.values()} == {round(engine.cfg.probability(0.0, "image"), 4)}
    failures = check(broken.version, reference, observed, items)
    assert any(f.startswith("score regression on astronaut.png") for f in failures), failures
    # A verdict regression: on every item whose reference verdict is not the one 0.5 (or 1 - p)
    # falls in; with ../shared absent only the astronaut is scored, and it may be inconclusive.
    expected = {name for name, o in observed.items()
                if o["verdict"] != reference[name]["verdict"]}
    assert expected or len(items) == 1, "the broken model's verdicts all match the reference"
    for name in expected:
        assert any(f.startswith(f"verdict regression on {name}") for f in failures), failures
    if len(items) > 1:
        assert any(f.startswith("label regression") for f in failures), failures


def test_compare_by_hand() -> None:
    reference = {"a": {"p_fake": 0.9, "verdict": "fake"}, "b": {"p_fake": None, "verdict": "no_face"}}
    assert ref.compare("v1", reference, {"a": {"p_fake": 0.915, "verdict": "fake"}}) == []
    (line,) = ref.compare("v1", reference, {"a": {"p_fake": 0.93, "verdict": "fake"}})
    assert line == "score regression on a: p_fake 0.93, reference 0.9 for model v1 (tolerance 0.02)"
    assert len(ref.compare("v1", reference, {"a": {"p_fake": 0.5, "verdict": "inconclusive"}})) == 2
    (line,) = ref.compare("v1", reference, {"b": {"p_fake": 0.2, "verdict": "no_face"}})
    assert line.startswith("score regression on b")
    (line,) = ref.compare("v1", reference, {"c": {"p_fake": 0.2, "verdict": "real"}})
    assert "not in the reference entry of model v1" in line


def test_label_check_by_hand() -> None:
    items = [ref.RefItem("x/f1", "fake"), ref.RefItem("x/f2", "fake"), ref.RefItem("x/r1", "real"),
             ref.RefItem("x/r2", "real"), ref.RefItem("x/out", "fake", in_domain=False)]

    def obs(*ps):
        return {it.name: {"p_fake": p, "verdict": "?"} for it, p in zip(items, ps, strict=True)}

    assert ref.label_failures(items, obs(0.9, 0.8, 0.1, 0.2, 0.0)) == []  # out-of-domain ignored
    # f2 (0.3) loses to r1 (0.4): 3 of 4 pairs = 75% < 80%
    (line,) = ref.label_failures(items, obs(0.9, 0.3, 0.4, 0.2, 0.0))
    assert line.startswith("label regression: labelled fakes outscore labelled reals in 75%")
    (line,) = ref.label_failures(items, obs(0.5, 0.5, 0.5, 0.5, 0.5))  # ties are half: 50%
    assert "in 50% of pairs" in line


# ------------------------------------------------------------------ non-finite scores are errors
@pytest.mark.slow
@pytest.mark.parametrize("how, what", [("nan_frames", "frame scores"), ("nan_tracks", "track score")])
def test_nan_weights_raise_a_model_output_error(how: str, what: str, broken_detector,
                                                tmp_path: Path) -> None:
    broken = broken_detector(how)
    photo = ref.item_path(ref.RefItem("astronaut.png", "real"), tmp_path)
    with pytest.raises(ModelOutputError, match=f"invalid {what} \\(NaN or infinite\\)") as err:
        broken.analyze(photo)
    assert err.value.code == "model_output_error"
