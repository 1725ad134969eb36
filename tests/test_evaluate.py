"""Tests of ``webapp.detection.training.evaluate``: the metric plumbing around an injected
``analyze`` (a stand-in, not the engine). No TensorFlow."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest

from webapp.detection.errors import CorruptMediaError, NoFramesError, UnsupportedMediaError
from webapp.detection.training.dataset import split_of
from webapp.detection.training.evaluate import EvalRow, evaluate, summarise

# name -> (label, what the stand-in engine answers: a p_fake, None for no face, or an error)
ANSWERS: dict[str, tuple[str, object]] = {
    "r1.jpg": ("real", 0.1),
    "r2.jpg": ("real", None),  # no face
    "r3.mp4": ("real", CorruptMediaError("This video is damaged.")),
    "f1.jpg": ("fake", 0.9),
    "f2.mp4": ("fake", 0.6),
    "f3.jpg": ("fake", None),  # no face
}


def verdict_of(p: float | None) -> str:
    if p is None:
        return "no_face"
    return "fake" if p >= 0.7 else "real" if p < 0.3 else "inconclusive"


class StandIn:
    """``analyze(path)`` answering from a table; records the calls."""

    def __init__(self, answers: dict[str, tuple[str, object]]):
        self.answers = answers
        self.calls: list[str] = []

    def __call__(self, path: Path) -> SimpleNamespace:
        self.calls.append(Path(path).name)
        answer = self.answers[Path(path).name][1]
        if isinstance(answer, Exception):
            raise answer
        return SimpleNamespace(p_fake=answer, verdict=verdict_of(answer))


def make_folder(
    folder: Path, answers: dict[str, tuple[str, object]], groups: dict[str, str] | None = None
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "labels.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "group"])
        for name, (label, _) in answers.items():
            (folder / name).write_bytes(b"stand-in")
            w.writerow([name, label, (groups or {}).get(name, name)])
    return folder


def test_evaluate_counts(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "set", ANSWERS)
    seen: list[tuple[int, int, EvalRow]] = []
    analyze = StandIn(ANSWERS)
    report = evaluate(
        folder / "labels.csv", analyze, on_item=lambda n, t, r: seen.append((n, t, r))
    )
    s = report.summary
    assert sorted(analyze.calls) == sorted(ANSWERS)
    assert [(n, t) for n, t, _ in seen] == [(i, 6) for i in range(1, 7)]
    # Errors are counted apart and not scored.
    assert s["errors"] == 1
    err = next(r for r in report.rows if r.verdict == "error")
    assert Path(err.path).name == "r3.mp4" and err.p_fake is None and "damaged" in err.error
    # Scored: r1 .1, r2 no face -> .5, f1 .9, f2 .6, f3 no face -> .5  (y = 0 0 1 1 1)
    assert s["n"] == 5 and s["n_fake"] == 3
    # AUC: fakes {.9, .6, .5} vs reals {.1, .5}: 2 + 2 + 1.5 (tie) = 5.5 of 6
    assert s["auc"] == pytest.approx(round(5.5 / 6, 4))
    assert s["no_face"] == 2 and s["no_face_rate"] == pytest.approx(0.4)
    # Faces only: r1 .1, f1 .9, f2 .6 -> perfectly ordered
    assert s["auc_faces_only"] == 1.0
    assert s["verdict_bands"] == {
        "real": {"real": 1, "inconclusive": 0, "fake": 0, "no_face": 1},
        "fake": {"real": 0, "inconclusive": 1, "fake": 1, "no_face": 1},
    }
    # Decisions are what the site says: a no-face item is never called fake. r1, r2 are
    # not flagged (true negatives), f1 .9 and f2 .6 are caught, f3 (no face) is missed.
    assert s["recall"] == pytest.approx(round(2 / 3, 4)) and s["precision"] == 1.0
    assert s["balanced_accuracy"] == pytest.approx(round((2 / 3 + 1) / 2, 4))
    assert s["accuracy"] == pytest.approx(0.8)
    assert s["seconds"] >= 0 and "items_per_second" in s
    # Rows keep the labels and answers.
    by_name = {Path(r.path).name: r for r in report.rows}
    assert by_name["f2.mp4"].label == "fake" and by_name["f2.mp4"].p_fake == 0.6
    assert by_name["f2.mp4"].verdict == "inconclusive"
    assert by_name["r2.jpg"].verdict == "no_face" and by_name["r2.jpg"].p_fake is None


def test_evaluate_accepts_the_folder(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "set", ANSWERS)
    a = evaluate(folder, StandIn(ANSWERS)).summary
    b = evaluate(folder / "labels.csv", StandIn(ANSWERS)).summary
    a.pop("seconds"), b.pop("seconds"), a.pop("items_per_second"), b.pop("items_per_second")
    assert a == b


def test_evaluate_other_errors_propagate(tmp_path: Path) -> None:
    """Only the engine's typed errors are rows; a bug in the engine is not hidden."""
    answers = {"a.jpg": ("real", ValueError("bug")), "b.jpg": ("fake", 0.8)}
    folder = make_folder(tmp_path / "set", answers)
    with pytest.raises(ValueError):
        evaluate(folder, StandIn(answers))


def test_evaluate_limit_samples_stratified(tmp_path: Path) -> None:
    answers = {f"r{i}.jpg": ("real", 0.2) for i in range(30)}
    answers |= {f"f{i}.jpg": ("fake", 0.8) for i in range(10)}
    folder = make_folder(tmp_path / "set", answers)
    analyze = StandIn(answers)
    report = evaluate(folder, analyze, limit=8, seed=1)
    assert len(report.rows) == 8 and len(analyze.calls) == 8
    assert sum(r.label == "fake" for r in report.rows) == 2  # 25% fake, like the folder
    again = evaluate(folder, StandIn(answers), limit=8, seed=1)
    assert [r.path for r in again.rows] == [r.path for r in report.rows]
    other = evaluate(folder, StandIn(answers), limit=8, seed=2)
    assert {r.path for r in other.rows} != {r.path for r in report.rows}
    assert report.summary["auc"] == 1.0
    odd = evaluate(folder, StandIn(answers), limit=7)  # rounding must not lose or add items
    assert len(odd.rows) == 7


def test_evaluate_split_filter(tmp_path: Path) -> None:
    names = [f"item{i}.jpg" for i in range(200)]
    answers = {n: ("fake" if i % 2 else "real", 0.5) for i, n in enumerate(names)}
    groups = {n: f"grp-{i // 2}" for i, n in enumerate(names)}  # pairs share a group
    folder = make_folder(tmp_path / "set", answers, groups)
    analyze = StandIn(answers)
    report = evaluate(folder, analyze, split="test")
    expected = {n for n in names if split_of(groups[n]) == "test"}
    assert {Path(r.path).name for r in report.rows} == expected
    assert 0 < len(expected) < 100


def test_summarise_edge_cases() -> None:
    only_errors = [
        EvalRow("a", "real", None, "error", 0.1, "bad"),
        EvalRow("b", "fake", None, "error", 0.1, "bad"),
    ]
    s = summarise(only_errors)
    assert s["n"] == 0 and s["errors"] == 2 and s["no_face_rate"] is None
    assert "seconds" not in s
    all_no_face = [
        EvalRow("a", "real", None, "no_face", 0.1),
        EvalRow("b", "fake", None, "no_face", 0.1),
    ]
    s = summarise(all_no_face, seconds=2.0)
    assert s["auc"] == 0.5 and s["no_face_rate"] == 1.0 and "auc_faces_only" not in s
    assert s["items_per_second"] == 1.0


@pytest.mark.parametrize("error", [UnsupportedMediaError("x"), NoFramesError("y")])
def test_every_detection_error_is_a_row(tmp_path: Path, error: Exception) -> None:
    answers = {"a.mp4": ("real", error), "b.jpg": ("fake", 0.8), "c.jpg": ("real", 0.1)}
    folder = make_folder(tmp_path / "set", answers)
    s = evaluate(folder, StandIn(answers)).summary
    assert s["errors"] == 1 and s["n"] == 2 and s["auc"] == 1.0
