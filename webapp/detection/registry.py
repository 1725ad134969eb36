"""The model registry: every shipped model version, side by side, one of them the default.

Layout of the registry root (``model/``)::

    model/
      registry.json          {"default": "2026.11.22-lite0"}
      2026.11.22-lite0/      config.json, frame_scorer.weights.h5, temporal.weights.h5,
                             metrics.json, MODEL_CARD.md
      backbones/             ImageNet weights for training only (no config.json: not a model)

A model is any sub-folder with a ``config.json``; its version is the config's ``version`` (the
value stored with every detection), and by convention also the folder's name. Adding a version
is: copy its folder in, and (to make it the default) edit the one line of ``registry.json``.
Without ``registry.json`` the highest version is the default.

Anything that names a model accepts a version (``"2026.11.22-lite0"``), a model folder (one
with ``config.json``, anywhere on disk), a registry root (its default), or nothing (the default
of :data:`DEFAULT_ROOT`, or of ``$DEEPFAKE_MODEL_DIR``). A legacy flat ``model/`` folder with
``config.json`` directly inside is a registry of one.

:class:`ModelCache` keeps at most N loaded models (least recently used evicted first). This
module never imports TensorFlow or Flask.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from .errors import ModelNotFoundError

CONFIG_FILE = "config.json"  # the same name as classifier.CONFIG_FILE (no Keras import here)
METRICS_FILE = "metrics.json"
CARD_FILE = "MODEL_CARD.md"
REGISTRY_FILE = "registry.json"
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "model"
#: Loaded models kept in memory at once (each is ~100-200 MB of RSS): $MODEL_CACHE_SIZE.
DEFAULT_CACHE_SIZE = 2


class UnknownModelError(ModelNotFoundError):
    """A model version or folder that the registry does not hold."""

    code = "unknown_model"


@dataclass(frozen=True)
class ModelEntry:
    """One model version on disk. ``config`` is its config.json as read (no TensorFlow)."""

    version: str
    path: Path
    default: bool = False
    config: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def trained_on(self) -> list[str]:
        return list(self.config.get("trained_on") or [])

    @property
    def metrics(self) -> dict[str, Any]:
        """metrics.json when present (it may hold more than config.json), else config's."""
        data = _read_json(self.path / METRICS_FILE)
        if not data:
            data = self.config.get("metrics")
        return data if isinstance(data, dict) else {}

    @property
    def card_path(self) -> Path:
        return self.path / CARD_FILE

    def headline(self) -> dict[str, Any]:
        """A few held-out numbers for listings: test AUC of all crops and of clips, false alarms."""
        test = self.metrics.get("test") or {}
        crops = test.get("all_crops") or {}
        clips = test.get("clips_out_of_fold") or test.get("clips_lstm") or {}
        return {"auc": crops.get("auc"), "clips_auc": clips.get("auc"),
                "false_alarm_rate": crops.get("false_alarm_rate", crops.get("reals_called_fake"))}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def is_model_dir(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file()


def _entry(path: Path, default: bool = False) -> ModelEntry:
    config = _read_json(path / CONFIG_FILE)
    version = str(config.get("version") or path.name)
    return ModelEntry(version=version, path=path.resolve(), default=default, config=config)


def default_root() -> Path:
    return Path(os.environ.get("DEEPFAKE_MODEL_DIR") or DEFAULT_ROOT)


class Registry:
    """The models under one root, newest first. Cheap to build: reads only the JSON files."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else default_root()
        self.entries: list[ModelEntry] = self._scan()

    def _scan(self) -> list[ModelEntry]:
        root = self.root
        if is_model_dir(root):  # a single model folder, or the legacy flat model/
            return [_entry(root, default=True)]
        if not root.is_dir():
            return []
        found = sorted((_entry(p) for p in root.iterdir() if p.is_dir() and is_model_dir(p)),
                       key=lambda e: e.version, reverse=True)
        seen: dict[str, Path] = {}
        for e in found:
            if e.version in seen:
                raise ModelNotFoundError(f"Two model folders in {root} claim version {e.version}: "
                                         f"{seen[e.version].name} and {e.path.name}. Keep one.")
            seen[e.version] = e.path
        if not found:
            return []
        wanted = str(_read_json(root / REGISTRY_FILE).get("default") or "")
        if wanted and wanted not in seen and (root / wanted).is_dir():
            wanted = _entry(root / wanted).version  # named by folder rather than version
        if wanted and wanted not in seen:
            raise UnknownModelError(f"{root / REGISTRY_FILE} names default model {wanted!r}, which is "
                                    f"not in {root}; available: {', '.join(seen)}.")
        wanted = wanted or found[0].version
        return [ModelEntry(e.version, e.path, e.version == wanted, e.config) for e in found]

    @property
    def versions(self) -> list[str]:
        return [e.version for e in self.entries]

    @property
    def default(self) -> ModelEntry:
        for e in self.entries:
            if e.default:
                return e
        raise ModelNotFoundError(
            f"No trained model in {self.root} (no folder with a config.json). Train one with "
            "`flask --app app train` or restore the shipped model/ folder.")

    def get(self, version: str) -> ModelEntry | None:
        return next((e for e in self.entries if e.version == version), None)

    def resolve(self, model: str | Path | None = None) -> ModelEntry:
        """A version, a model folder, a registry root, or None (the default) -> its entry.

        Raises :class:`UnknownModelError` (listing the available versions) for anything else.
        """
        if model is None or str(model) == "":
            return self.default
        path = Path(model)
        if (found := self.get(str(model))) and not path.is_dir():
            return found
        if is_model_dir(path):
            known = next((e for e in self.entries if e.path == path.resolve()), None)
            return known or _entry(path)
        if path.is_dir():  # a registry root: its default
            return self.default if path.resolve() == self.root.resolve() else Registry(path).default
        listed = ", ".join(self.versions) or "none"
        raise UnknownModelError(f"Unknown model {str(model)!r}: not a version in {self.root} nor a "
                                f"folder with a config.json. Available versions: {listed}.")


def resolve(model: str | Path | None = None, root: str | Path | None = None) -> ModelEntry:
    """:meth:`Registry.resolve` on ``root`` (default: $DEEPFAKE_MODEL_DIR or model/)."""
    return Registry(root).resolve(model)


def cache_size() -> int:
    """$MODEL_CACHE_SIZE (at least 1), default :data:`DEFAULT_CACHE_SIZE`."""
    raw = os.environ.get("MODEL_CACHE_SIZE", "")
    try:
        return max(1, int(raw)) if raw.strip() else DEFAULT_CACHE_SIZE
    except ValueError:
        raise ValueError(f"MODEL_CACHE_SIZE must be a whole number, not {raw!r}") from None


T = TypeVar("T")


class ModelCache(Generic[T]):
    """At most ``size`` loaded models, keyed by model folder; the least recently used goes first.

    ``load(path)`` builds a model (for the engine: ``Detector``). A model is loaded once and
    only when first asked for. An evicted model is freed once no running analysis holds it.
    """

    def __init__(self, load: Callable[[Path], T], size: int | None = None):
        self._load = load
        self.size = size
        self._items: OrderedDict[Path, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path) -> T:
        path = Path(path).resolve()
        with self._lock:
            if path in self._items:
                self._items.move_to_end(path)
                return self._items[path]
            item = self._load(path)
            self._items[path] = item
            limit = self.size or cache_size()
            while len(self._items) > limit:
                self._items.popitem(last=False)
            return item

    def loaded(self) -> list[Path]:
        """Folders of the loaded models, least recently used first."""
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
