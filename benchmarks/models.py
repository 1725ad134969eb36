"""Memory per loaded model: resident set size (RSS) before and after each load through
``get_detector``, with the LRU bound in force, and after an eviction.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.models [--versions 3] [--cache 2]

The registry's models are used as they are; when it holds fewer than ``--versions``, the
default model is copied to a temporary registry under extra version names (same weights, so
the figure is per model of this architecture). Prints one line per step and the mean growth
per loaded model.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import tempfile
import time
from pathlib import Path


def rss_mb() -> float:
    """Current resident set size of this process in MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def registry_of(n: int, tmp: Path) -> tuple[Path, list[str]]:
    """A registry root with at least ``n`` versions (copies of the default if needed)."""
    from webapp.detection.registry import Registry

    reg = Registry()
    if len(reg.entries) >= n:
        return reg.root, reg.versions[:n]
    root = tmp / "model"
    versions = []
    for i in range(n):
        version = f"{reg.default.version}-copy{i}"
        dst = root / version
        shutil.copytree(reg.default.path, dst)
        cfg = json.loads((dst / "config.json").read_text())
        (dst / "config.json").write_text(json.dumps({**cfg, "version": version}))
        versions.append(version)
    return root, versions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--versions", type=int, default=3, help="models to load one after the other")
    ap.add_argument("--cache", type=int, default=2, help="MODEL_CACHE_SIZE for this run")
    args = ap.parse_args()

    base = rss_mb()
    import tensorflow  # noqa: F401  (counted apart from the models)

    from webapp.detection import pipeline
    from webapp.detection.registry import ModelCache

    tf_mb = rss_mb()
    print(f"python + engine imports: {base:.0f} MB; + TensorFlow: {tf_mb:.0f} MB")
    pipeline._detectors = ModelCache(pipeline.Detector, size=args.cache)
    with tempfile.TemporaryDirectory() as tmp:
        root, versions = registry_of(args.versions, Path(tmp))
        growth = []
        for version in versions:
            before = rss_mb()
            t = time.perf_counter()
            pipeline.get_detector(version, root=root)
            gc.collect()
            after = rss_mb()
            growth.append(after - before)
            loaded = [p.name for p in pipeline._detectors.loaded()]
            print(f"load {version}: {before:.0f} -> {after:.0f} MB ({after - before:+.0f}) in "
                  f"{time.perf_counter() - t:.1f} s; loaded now: {', '.join(loaded)}")
        again = rss_mb()
        pipeline.get_detector(versions[-1], root=root)
        print(f"get {versions[-1]} again (cached): {again:.0f} -> {rss_mb():.0f} MB")
        pipeline._detectors.clear()
        gc.collect()
        print(f"after clearing the cache: {rss_mb():.0f} MB (freed memory may stay with the allocator)")
    first = growth[: args.cache]
    print(f"mean growth per loaded model (first {len(first)} loads): {sum(first) / len(first):.0f} MB; "
          f"loads past the bound of {args.cache}: " + ", ".join(f"{g:+.0f} MB" for g in growth[args.cache:]))


if __name__ == "__main__":
    main()
