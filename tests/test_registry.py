"""The model registry (``webapp.detection.registry``): which folder a version, a path or nothing
names, and the LRU of loaded models. Fake model folders hold only JSON; one test loads the real
model under two version names (TensorFlow)."""

from __future__ import annotations

import json
import shutil
import weakref
from pathlib import Path

import pytest
from conftest import shipped_model

from webapp.detection import registry
from webapp.detection.errors import ModelNotFoundError
from webapp.detection.registry import ModelCache, Registry, UnknownModelError, resolve


def fake_model(folder: Path, version: str, auc: float = 0.8, **extra) -> Path:
    """A model folder as training writes it, minus the weights (nothing here loads them)."""
    folder.mkdir(parents=True)
    metrics = {
        "test": {"all_crops": {"n": 100, "auc": auc, "false_alarm_rate": 0.02},
                 "clips_lstm": {"n": 10, "auc": auc - 0.1}},
        "val_clips_by_method": {"faceswap": {"n": 12, "auc": 0.7, "detected": 0.5, "called_real": 0.1},
                                "real_clips": {"n": 20, "false_alarm": 0.05, "real_called_real": 0.8}},
    }
    config = {"version": version, "backbone": "efficientnet_lite0", "trained_on": ["dfdc_faces"],
              "real_below": 0.3, "fake_above": 0.9, "metrics": metrics, **extra}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "MODEL_CARD.md").write_text(f"# Model card: {version}\n\n## Known limits\n\nSome.\n")
    return folder


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """model/ with two versions, the older one the default, and a backbones/ folder."""
    root = tmp_path / "model"
    fake_model(root / "2026.11.22-lite0", "2026.11.22-lite0", auc=0.85)
    fake_model(root / "2026.11.23-lite0", "2026.11.23-lite0", auc=0.9)
    (root / "backbones").mkdir()
    (root / "backbones" / "weights.npz").write_bytes(b"x")
    (root / "registry.json").write_text('{"default": "2026.11.22-lite0"}\n')
    return root


def test_lists_every_version_newest_first_with_the_named_default(root: Path) -> None:
    reg = Registry(root)
    assert reg.versions == ["2026.11.23-lite0", "2026.11.22-lite0"]  # backbones/ is not a model
    assert [e.default for e in reg.entries] == [False, True]
    d = reg.default
    assert d.version == "2026.11.22-lite0" and d.path == (root / "2026.11.22-lite0").resolve()
    assert d.trained_on == ["dfdc_faces"]
    assert d.headline() == {"auc": 0.85, "clips_auc": pytest.approx(0.75), "false_alarm_rate": 0.02}


def test_resolves_version_folder_root_and_nothing(root: Path, tmp_path: Path) -> None:
    new = (root / "2026.11.23-lite0").resolve()
    assert resolve("2026.11.23-lite0", root).path == new
    assert resolve(None, root).version == "2026.11.22-lite0"
    assert resolve("", root).version == "2026.11.22-lite0"
    assert resolve(root, root).version == "2026.11.22-lite0"  # a root means its default
    assert resolve(str(root / "2026.11.23-lite0"), root).path == new  # a folder, as a string
    elsewhere = fake_model(tmp_path / "scratch" / "trial", "trial-1")  # any folder with config.json
    entry = resolve(elsewhere, root)
    assert entry.version == "trial-1" and entry.path == elsewhere.resolve() and not entry.default
    other_root = tmp_path / "other"
    fake_model(other_root / "v9", "v9")
    assert resolve(other_root, root).version == "v9"


def test_unknown_version_lists_the_available_ones(root: Path) -> None:
    with pytest.raises(UnknownModelError) as err:
        resolve("2025.01.01-old", root)
    msg = str(err.value)
    assert "2025.01.01-old" in msg and "2026.11.23-lite0, 2026.11.22-lite0" in msg
    assert isinstance(err.value, ModelNotFoundError)  # the web's error pages know this family


def test_default_is_the_newest_without_registry_json(root: Path) -> None:
    (root / "registry.json").unlink()
    assert Registry(root).default.version == "2026.11.23-lite0"


def test_registry_json_may_name_a_folder_and_must_name_a_model(root: Path) -> None:
    shutil.move(root / "2026.11.23-lite0", root / "next")
    (root / "registry.json").write_text('{"default": "next"}')
    assert Registry(root).default.version == "2026.11.23-lite0"
    (root / "registry.json").write_text('{"default": "2027.01.01-gone"}')
    with pytest.raises(UnknownModelError, match="2027.01.01-gone.*available: 2026.11.23-lite0, 2026.11.22-lite0"):
        Registry(root)


def test_two_folders_with_one_version_are_refused(root: Path) -> None:
    shutil.copytree(root / "2026.11.23-lite0", root / "copy")
    with pytest.raises(ModelNotFoundError, match="Two model folders"):
        Registry(root)


def test_legacy_flat_folder_is_a_registry_of_one(tmp_path: Path) -> None:
    flat = fake_model(tmp_path / "model", "2026.01.01-flat")
    reg = Registry(flat)
    assert reg.versions == ["2026.01.01-flat"] and reg.default.path == flat.resolve()
    assert resolve("2026.01.01-flat", flat).default and resolve(None, flat).path == flat.resolve()


def test_empty_or_missing_root_says_how_to_get_a_model(tmp_path: Path) -> None:
    for root in (tmp_path, tmp_path / "absent"):
        with pytest.raises(ModelNotFoundError, match="No trained model"):
            _ = Registry(root).default


def test_the_repository_ships_a_registry() -> None:
    reg = Registry(registry.DEFAULT_ROOT)
    assert (registry.DEFAULT_ROOT / "registry.json").is_file()
    assert reg.default.path == shipped_model() and reg.default.path.parent == registry.DEFAULT_ROOT.resolve()
    assert "2026.11.22-lite0" in reg.versions  # every shipped model stays available
    for e in reg.entries:
        assert e.path.name == e.version, "a model folder is named after its version"
        for name in ("config.json", "frame_scorer.weights.h5", "temporal.weights.h5", "metrics.json",
                     "MODEL_CARD.md"):
            assert (e.path / name).is_file(), (e.version, name)
    # model/MODEL_CARD.md is the default model's card (a link re-pointed with registry.json)
    top = registry.DEFAULT_ROOT / "MODEL_CARD.md"
    assert top.resolve() == reg.default.card_path.resolve(), "re-point model/MODEL_CARD.md at the default's card"
    assert top.read_text(encoding="utf-8").startswith(f"# Model card: {reg.default.version}\n")


def test_cache_loads_once_and_evicts_the_least_recently_used(tmp_path: Path, monkeypatch) -> None:
    loads: list[str] = []

    class Loaded:
        def __init__(self, path: Path):
            loads.append(path.name)
            self.path = path

    monkeypatch.delenv("MODEL_CACHE_SIZE", raising=False)
    cache = ModelCache(Loaded)
    a, b, c = (tmp_path / n for n in "abc")
    first = cache.get(a)
    assert cache.get(a) is first and cache.get(tmp_path / "x" / ".." / "a") is first  # one load per folder
    cache.get(b)
    cache.get(a)  # a is now the most recently used
    cache.get(c)  # over the default size of 2: b goes
    assert loads == ["a", "b", "c"] and [p.name for p in cache.loaded()] == ["a", "c"]
    cache.get(b)
    assert loads == ["a", "b", "c", "b"] and [p.name for p in cache.loaded()] == ["c", "b"]

    monkeypatch.setenv("MODEL_CACHE_SIZE", "1")
    cache.get(a)
    assert [p.name for p in cache.loaded()] == ["a"]
    monkeypatch.setenv("MODEL_CACHE_SIZE", "lots")
    with pytest.raises(ValueError, match="MODEL_CACHE_SIZE"):
        registry.cache_size()


@pytest.mark.engine
@pytest.mark.slow
def test_get_detector_by_version_keeps_at_most_n_loaded(engine, tmp_path: Path, monkeypatch) -> None:
    """The real model copied under two versions: each loads once, the bound evicts, and an
    evicted detector is freed once nothing holds it."""
    import gc

    from webapp.detection import pipeline

    root = tmp_path / "model"
    for version in ("2026.11.22-lite0", "2099.01.01-copy"):
        shutil.copytree(shipped_model(), root / version,
                        ignore=shutil.ignore_patterns("metrics.json", "MODEL_CARD.md"))
        cfg = json.loads((root / version / "config.json").read_text())
        (root / version / "config.json").write_text(json.dumps({**cfg, "version": version}))
    (root / "registry.json").write_text('{"default": "2026.11.22-lite0"}')
    monkeypatch.setattr(pipeline, "_detectors", ModelCache(pipeline.Detector, size=1))

    old = pipeline.get_detector(root=root)
    assert old.version == "2026.11.22-lite0" and pipeline.get_detector("2026.11.22-lite0", root=root) is old
    gone = weakref.ref(old)
    new = pipeline.get_detector("2099.01.01-copy", root=root)
    assert new.version == "2099.01.01-copy" and pipeline._detectors.loaded() == [new.model_dir.resolve()]
    del old
    gc.collect()
    assert gone() is None, "the evicted detector is still referenced somewhere"
    with pytest.raises(UnknownModelError, match="2099.01.01-copy, 2026.11.22-lite0"):
        pipeline.get_detector("nope", root=root)
