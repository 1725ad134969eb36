"""Reference scores: what a model says about a fixed set of known media, kept per model version.

Run from the repository root whenever a new model is shipped (about 30 s)::

    .venv/bin/python -m tools.score_reference [--model VERSION|FOLDER]   # default: the default model

It analyses every item below with ``analyze()`` and writes the model's entry,
``{version: {item: {"p_fake", "verdict"}}}``, into ``tests/reference_scores.json`` (other
versions' entries are kept), then prints the scores beside the items' labels. Read that table
before committing: the file pins what the model says, so a wrong answer pinned here is pinned.

``tests/test_reference_scores.py`` compares the loaded model's answers with its entry
(:func:`compare`) and checks that labelled fakes outscore labelled reals (:func:`label_failures`).
Most items were seen in training: this catches a broken detector (constant, inverted, changed
preprocessing), it does not measure accuracy; ``benchmarks/quality.py`` and the model card do.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_FILE = ROOT / "tests" / "reference_scores.json"
SHARED_DATA = ROOT.parent / "shared" / "data"
COMMAND = ".venv/bin/python -m tools.score_reference"
#: Scores of one model on one machine agree to ~1e-4; this leaves room for other CPUs.
TOLERANCE = 0.02
#: In-domain labelled fakes must outscore labelled reals at least this often (pairwise, = AUC).
MIN_LABEL_AUC = 0.8


@dataclass(frozen=True)
class RefItem:
    """One reference item. ``name``: ``astronaut.png`` (generated) or a path under
    ../shared/data. ``label``: the data set's label. ``in_domain``: a kind of media the model
    was trained to judge (False: StyleGAN portraits, which it is known to miss)."""

    name: str
    label: str
    in_domain: bool = True

    @property
    def generated(self) -> bool:
        return "/" not in self.name

    @property
    def is_video(self) -> bool:
        return self.name.endswith(".mp4")


ITEMS: tuple[RefItem, ...] = (
    RefItem("astronaut.png", "real"),  # skimage.data.astronaut(): Eileen Collins, NASA
    RefItem("videos/abqwwspghj.mp4", "fake"),  # DFDC face swap, 1080p 10 s
    RefItem("videos/lynaeydofd.mp4", "real"),  # DFDC original
    RefItem("dfdc_faces/real/lwtsuekjgr.jpg", "real"),
    RefItem("dfdc_faces/real/vlmkudpvpw.jpg", "real"),
    RefItem("dfdc_faces/fake/ftwtfucugq.jpg", "fake"),
    RefItem("dfdc_faces/fake/zmvwhjtsfc.jpg", "fake"),
    RefItem("ffpp_faces/youtube/roi_490.jpg", "real"),
    RefItem("ffpp_faces/Face2Face/roi_520.jpg", "fake"),
    RefItem("ffpp_faces/NeuralTextures/roi_885.jpg", "fake"),
    RefItem("photos/ffhq_bhunakit__r1911_e8d9c741.jpg", "real"),
    RefItem("photos/tpdne_bhunakit__f1754_8189e7dd.jpg", "fake", in_domain=False),  # StyleGAN2
)


def select(*, shared: bool = True, videos: bool = True) -> list[RefItem]:
    """The items to score: generated ones always, ../shared/data ones if ``shared``."""
    return [it for it in ITEMS if (shared or it.generated) and (videos or not it.is_video)]


def item_path(item: RefItem, workdir: Path) -> Path:
    """The file of ``item``: generated into ``workdir``, or under ../shared/data."""
    if item.name == "astronaut.png":
        import skimage.data
        from PIL import Image

        path = workdir / item.name
        if not path.is_file():
            Image.fromarray(skimage.data.astronaut()).save(path, "PNG")
        return path
    path = SHARED_DATA / item.name
    if not path.is_file():
        raise FileNotFoundError(f"reference item {path} is missing (../shared/data absent?)")
    return path


def score(detector: Any, items: list[RefItem], workdir: Path) -> dict[str, dict[str, Any]]:
    """``{item name: {"p_fake": float | None, "verdict": str}}`` from ``detector.analyze``."""
    out = {}
    for it in items:
        a = detector.analyze(item_path(it, workdir))
        out[it.name] = {"p_fake": a.p_fake, "verdict": a.verdict}
    return out


def load(path: Path = REFERENCE_FILE) -> dict[str, dict[str, dict[str, Any]]]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def missing_message(version: str, path: Path = REFERENCE_FILE) -> str:
    return (f"No reference scores for model version {version!r} in {path.name} (it has: "
            f"{', '.join(sorted(load(path))) or 'none'}). A new model was shipped: run `{COMMAND}` "
            "from the repository root, read the table it prints, and commit the file.")


def compare(version: str, reference: dict[str, dict[str, Any]], observed: dict[str, dict[str, Any]],
            tolerance: float = TOLERANCE) -> list[str]:
    """One line per regression: an item whose verdict or score differs from the reference."""
    failures = []
    for name, got in observed.items():
        ref = reference.get(name)
        if ref is None:
            failures.append(f"{name}: not in the reference entry of model {version}; run `{COMMAND}`")
            continue
        if got["verdict"] != ref["verdict"]:
            failures.append(f"verdict regression on {name}: {got['verdict']!r}, reference "
                            f"{ref['verdict']!r} (p_fake {got['p_fake']}, reference {ref['p_fake']})")
        if (got["p_fake"] is None) != (ref["p_fake"] is None) or (
                got["p_fake"] is not None and abs(got["p_fake"] - ref["p_fake"]) > tolerance):
            failures.append(f"score regression on {name}: p_fake {got['p_fake']}, reference "
                            f"{ref['p_fake']} for model {version} (tolerance {tolerance})")
    return failures


def label_failures(items: list[RefItem], observed: dict[str, dict[str, Any]],
                   min_auc: float = MIN_LABEL_AUC) -> list[str]:
    """Labelled fakes must outscore labelled reals (in-domain items): guards the reference
    itself, so an inverted or constant model cannot be pinned by regenerating it blindly."""
    scored = [(it, observed[it.name]["p_fake"]) for it in items
              if it.in_domain and it.name in observed and observed[it.name]["p_fake"] is not None]
    fakes = [p for it, p in scored if it.label == "fake"]
    reals = [p for it, p in scored if it.label == "real"]
    if not fakes or not reals:
        return []
    wins = sum((f > r) + 0.5 * (f == r) for f in fakes for r in reals)
    auc = wins / (len(fakes) * len(reals))
    if auc >= min_auc:
        return []
    return [f"label regression: labelled fakes outscore labelled reals in {auc:.0%} of pairs "
            f"(at least {min_auc:.0%} expected); fakes {sorted(fakes)}, reals {sorted(reals)}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "model"),
                        help="model version or folder (default: the registry's default model)")
    parser.add_argument("--out", type=Path, default=REFERENCE_FILE, help="reference file")
    args = parser.parse_args(argv)
    if not SHARED_DATA.is_dir():
        print(f"error: {SHARED_DATA} is missing; the reference items live there", file=sys.stderr)
        return 2
    from webapp.detection.pipeline import Detector

    t0 = time.perf_counter()
    detector = Detector(args.model)
    t_load = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        observed = score(detector, list(ITEMS), Path(tmp))
    data = load(args.out)
    data[detector.version] = observed
    args.out.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"model {detector.version}: loaded in {t_load:.1f} s, scored {len(ITEMS)} items in "
          f"{time.perf_counter() - t0 - t_load:.1f} s -> {args.out}")
    print(f"{'item':48} {'label':6} {'p_fake':>7}  verdict")
    for it in ITEMS:
        o = observed[it.name]
        note = "" if it.in_domain else "  (out of domain)"
        print(f"{it.name:48} {it.label:6} {o['p_fake']!s:>7}  {o['verdict']}{note}")
    for line in label_failures(list(ITEMS), observed):
        print(f"warning: {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
