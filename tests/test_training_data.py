"""Tests of ``webapp.detection.training.dataset`` (labels, the group-disjoint split, the chip
cache) and of ``evaluate.stratified_sample``. No TensorFlow.

Tests marked ``shared`` read ../shared/data: skipped when it is absent (a fresh clone), failed
when ``CI=true`` (see conftest.py).
"""

from __future__ import annotations

import csv
import random
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import engine_media as em
import numpy as np
import pytest

from webapp.detection.faces import chip_from_crop
from webapp.detection.training.dataset import (
    LABELS,
    SPLITS,
    Item,
    chip_folder,
    read_labels,
    read_rgb,
    split_items,
    split_of,
)
from webapp.detection.training.evaluate import stratified_sample

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def write_labels(folder: Path, rows: list[dict[str, str]], fields: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fields = fields or list(rows[0])
    with (folder / "labels.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return folder


# ------------------------------------------------------------------ read_labels
def test_read_labels(tmp_path: Path) -> None:
    folder = write_labels(
        tmp_path / "tiny",
        [
            {"path": "real/a.jpg", "label": "real", "group": "g1", "method": ""},
            {"path": "fake/a.jpg", "label": "fake", "group": "g1", "method": "Deepfakes"},
            {"path": "fake/b.mp4", "label": " Fake ", "group": "", "method": "FaceSwap"},
            {"path": "real/c.png", "label": "REAL", "group": "g2", "method": ""},
        ],
    )
    items = read_labels(folder)
    assert [it.path for it in items] == [
        folder / "real/a.jpg",
        folder / "fake/a.jpg",
        folder / "fake/b.mp4",
        folder / "real/c.png",
    ]
    assert [it.label for it in items] == [0, 1, 1, 0]
    assert LABELS == {"real": 0, "fake": 1}
    assert [it.group for it in items] == ["g1", "g1", "tiny:fake/b.mp4", "g2"]  # blank: own group
    assert {it.source for it in items} == {"tiny"}
    assert [it.method for it in items] == ["", "Deepfakes", "FaceSwap", ""]
    assert [it.is_video for it in items] == [False, False, True, False]


def test_read_labels_without_group_column(tmp_path: Path) -> None:
    folder = write_labels(
        tmp_path / "nogroup", [{"path": f"{i}.jpg", "label": "real"} for i in range(3)]
    )
    items = read_labels(folder)
    assert [it.group for it in items] == ["nogroup:0.jpg", "nogroup:1.jpg", "nogroup:2.jpg"]
    assert all(it.method == "" for it in items)


@pytest.mark.parametrize("label", ["maybe", "", "1", "deepfake"])
def test_read_labels_bad_label(tmp_path: Path, label: str) -> None:
    folder = write_labels(
        tmp_path / "bad",
        [
            {"path": "a.jpg", "label": "real", "group": "g"},
            {"path": "b.jpg", "label": label, "group": "g"},
        ],
    )
    with pytest.raises(ValueError, match=r"labels\.csv:3") as err:  # file and line of the bad row
        read_labels(folder)
    assert "real" in str(err.value) and "fake" in str(err.value)


@pytest.mark.parametrize(
    "fields,missing",
    [(["path", "group"], "label"), (["file", "label"], "path"), (["group"], "label, path")],
)
def test_read_labels_missing_columns(tmp_path: Path, fields: list[str], missing: str) -> None:
    folder = tmp_path / "cols"
    folder.mkdir()
    (folder / "labels.csv").write_text(
        ",".join(fields) + "\n" + ",".join("x" for _ in fields) + "\n"
    )
    with pytest.raises(ValueError, match=missing):
        read_labels(folder)


def test_read_labels_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="labels.csv"):
        read_labels(tmp_path)
    (tmp_path / "labels.csv").write_text("")  # empty file: no header at all
    with pytest.raises(ValueError):
        read_labels(tmp_path)


# ------------------------------------------------------------------ split
def _random_items(rng: random.Random, n_groups: int) -> list[Item]:
    items = []
    for g in range(n_groups):
        group = f"{rng.choice(['md5', 'vid', 'actor'])}:{rng.getrandbits(64):016x}:{g}"
        for k in range(rng.randint(1, 5)):
            items.append(Item(Path(f"{g}_{k}.jpg"), rng.randint(0, 1), group, "src"))
    rng.shuffle(items)
    return items


@pytest.mark.parametrize("seed", range(5))
def test_split_never_puts_a_group_on_two_sides(seed: int) -> None:
    rng = random.Random(seed)
    items = _random_items(rng, 2000)
    parts = split_items(items)
    assert set(parts) == set(SPLITS)
    assert sum(len(v) for v in parts.values()) == len(items)
    side_of: dict[str, set[str]] = defaultdict(set)
    for split, its in parts.items():
        for it in its:
            side_of[it.group].add(split)
    assert all(len(s) == 1 for s in side_of.values())
    # Deterministic, and independent of the order of the items.
    shuffled = items[:]
    rng.shuffle(shuffled)
    again = split_items(shuffled)
    for split in SPLITS:
        assert Counter(it.path for it in again[split]) == Counter(it.path for it in parts[split])


def test_split_proportions_and_stability() -> None:
    groups = [f"group-{i}" for i in range(40_000)]
    counts = Counter(split_of(g) for g in groups)
    assert counts["train"] / len(groups) == pytest.approx(0.75, abs=0.01)
    assert counts["val"] / len(groups) == pytest.approx(0.125, abs=0.01)
    assert counts["test"] / len(groups) == pytest.approx(0.125, abs=0.01)
    # A hash of the group name: fixed across runs and machines (these values must never change,
    # or a trained model's test set would leak into training).
    assert [split_of(g) for g in ("a", "b", "md5:0", "dfdc:abc.mp4")] == [
        split_of(g) for g in ("a", "b", "md5:0", "dfdc:abc.mp4")
    ]
    import hashlib

    for g in groups[:200]:
        h = int(hashlib.sha1(g.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        assert split_of(g) == ("test" if h < 0.125 else "val" if h < 0.25 else "train")


# ------------------------------------------------------------------ stratified sample
def _labelled(n_real: int, n_fake: int) -> list[Item]:
    items = [Item(Path(f"r{i}.jpg"), 0, f"r{i}", "s") for i in range(n_real)]
    items += [Item(Path(f"f{i}.jpg"), 1, f"f{i}", "s") for i in range(n_fake)]
    random.Random(0).shuffle(items)
    return items


@pytest.mark.parametrize(
    "n_real,n_fake,limit",
    [(300, 100, 40), (100, 300, 57), (10, 10, 7), (10, 10, 5), (50, 1, 20), (7, 0, 3)],
)
def test_stratified_sample_keeps_proportions(n_real: int, n_fake: int, limit: int) -> None:
    items = _labelled(n_real, n_fake)
    sample = stratified_sample(items, limit, seed=0)
    assert len(sample) == limit
    assert len({it.path for it in sample}) == limit  # no repeats
    assert set(sample) <= set(items)
    fake_share = sum(it.label for it in sample) / limit
    assert abs(fake_share - n_fake / (n_real + n_fake)) <= 1 / limit + 1e-9


def test_stratified_sample_is_seeded() -> None:
    items = _labelled(300, 200)
    a, b = stratified_sample(items, 50, seed=3), stratified_sample(items, 50, seed=3)
    assert a == b
    assert stratified_sample(items, 50, seed=4) != a
    assert stratified_sample(items, None) == items and stratified_sample(items, 500) == items
    assert stratified_sample(items, 10_000) == items


# ------------------------------------------------------------------ chip cache
def test_chip_folder_uses_the_engine_chip_and_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPFAKE_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "crops"
    (folder / "x").mkdir(parents=True)
    x0, y0, x1, y1 = 179, 83, 266, 170
    face = em.astronaut()[y0 - 10 : y1 + 10, x0 - 10 : x1 + 10]
    cv2.imwrite(str(folder / "x" / "face.png"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    cv2.imwrite(
        str(folder / "x" / "cup.png"),
        cv2.cvtColor(em.coffee()[100:300, 100:300], cv2.COLOR_RGB2BGR),
    )
    write_labels(
        folder,
        [
            {"path": "x/face.png", "label": "real"},
            {"path": "x/cup.png", "label": "fake"},
            {"path": "x/clip.mp4", "label": "fake"},
        ],
    )  # videos are not chipped
    cs = chip_folder(folder, 64, 0.2, workers=1)
    assert [it.path.name for it in cs.items] == ["face.png", "cup.png"]
    assert cs.chips.shape == (2, 64, 64, 3) and cs.chips.dtype == np.uint8
    assert cs.found.tolist() == [True, False] and cs.face_found_rate == 0.5
    assert not cs.chips[1].any()  # no face: zeros
    # The same chip the engine cuts at serving time from the same crop.
    np.testing.assert_array_equal(
        cs.chips[0], chip_from_crop(read_rgb(folder / "x/face.png"), 64, 0.2)
    )
    cached = sorted((tmp_path / "cache").glob("*.npy"))
    assert len(cached) == 2 and not list((tmp_path / "cache").glob("*partial*"))
    stamps = [p.stat().st_mtime_ns for p in cached]
    again = chip_folder(folder, 64, 0.2, workers=1)
    np.testing.assert_array_equal(again.chips, cs.chips)
    assert [p.stat().st_mtime_ns for p in cached] == stamps  # read, not rewritten


def test_read_rgb(tmp_path: Path) -> None:
    path = em.photo(tmp_path / "a.png", "PNG")
    np.testing.assert_array_equal(read_rgb(path), em.astronaut())
    with pytest.raises(OSError):
        read_rgb(em.text_file(tmp_path / "t.jpg"))


# ------------------------------------------------------------------ the real data (../shared)
@pytest.mark.shared
def test_dfdc_split_is_group_disjoint() -> None:
    folder = SHARED_DATA / "dfdc_faces"
    items = read_labels(folder)
    assert len(items) > 20_000
    parts = split_items(items)
    groups = {s: {it.group for it in parts[s]} for s in SPLITS}
    assert not groups["train"] & groups["val"]
    assert not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]
    for s, share in (("train", 0.75), ("val", 0.125), ("test", 0.125)):
        assert len(parts[s]) / len(items) == pytest.approx(share, abs=0.03)
    # A fake lands on the same side as the real video it was made from.
    with (folder / "labels.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    split_of_video = {r["video"]: split_of(r["group"]) for r in rows if r["label"] == "real"}
    pairs = [
        (split_of(r["group"]), split_of_video[r["original"]])
        for r in rows
        if r["label"] == "fake" and r.get("original") in split_of_video
    ]
    assert len(pairs) > 1000
    assert all(a == b for a, b in pairs)
    # Both classes in every split.
    for s in SPLITS:
        assert {it.label for it in parts[s]} == {0, 1}


@pytest.mark.shared
def test_ffpp_split_covers_every_method() -> None:
    items = read_labels(SHARED_DATA / "ffpp_faces")
    parts = split_items(items)
    for s in ("val", "test"):
        assert {it.method for it in parts[s] if it.label == 1} == {
            "Deepfakes",
            "Face2Face",
            "FaceSwap",
            "NeuralTextures",
        }
