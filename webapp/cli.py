"""Command-line interface: ``flask --app app detect | train | evaluate``.

The engine (and TensorFlow) is imported inside each command, so ``flask --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext


def _model_dir() -> Path:
    return Path(current_app.config.get("MODEL_DIR") or Path(current_app.root_path).parent / "model")


@click.command("detect")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the full Analysis as JSON (a list when several files).")
@click.option("--model", "model_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Model folder (default: the shipped model/).")
@with_appcontext
def detect_command(paths: tuple[Path, ...], as_json: bool, model_dir: Path | None) -> None:
    """Analyse photos or clips and print a verdict per file."""
    from webapp.detection.errors import DetectionError
    from webapp.detection.pipeline import get_detector

    detector = get_detector(model_dir or _model_dir())
    results, failed = [], 0
    for path in paths:
        try:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such file")
            a = detector.analyze(path)
        except (DetectionError, FileNotFoundError) as err:
            failed += 1
            if as_json:
                results.append({"path": str(path), "error": str(err)})
            else:
                click.echo(f"{path}: error: {err}", err=True)
            continue
        if as_json:
            results.append(a.to_dict())
        else:
            p = "   -  " if a.p_fake is None else f"{a.p_fake:.3f}"
            click.echo(f"{path}: {a.verdict:<12} p_fake={p} faces={a.faces_found:<3} "
                       f"{a.timings['total']:.2f}s")
    if as_json:
        click.echo(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    if failed:
        sys.exit(1)


@click.command("train")
@click.option("--data", "data", multiple=True, required=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A folder with labels.csv (repeat for several).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("model"), show_default=True)
@click.option("--backbone", default="efficientnet_lite0", show_default=True)
@click.option("--epochs", default=3, show_default=True, type=int)
@click.option("--views", default=2, show_default=True, type=int, help="Augmented views per training chip.")
@click.option("--steps", default=500, show_default=True, type=int, help="Balanced batches per epoch.")
@click.option("--sbi", default=3000, show_default=True, type=int, help="Self-blended fakes made from real training chips.")
@click.option("--cap", default=3500, show_default=True, type=int, help="Most chips per folder and label in train.")
@click.option("--lr", default=2e-4, show_default=True, type=float)
@click.option("--init", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Warm-start from this model folder (same backbone).")
@click.option("--limit", default=None, type=int, help="Use only the first N items of each folder (quick runs).")
@click.option("--resume", is_flag=True, help="Reuse cached activations and continue from the last checkpoint.")
@click.option("--version", "version", default="", help="Model version string (default: date + backbone).")
@with_appcontext
def train_command(data, out, backbone, epochs, views, steps, sbi, cap, lr, init, limit, resume, version) -> None:
    """Train a detector end to end and write it to --out."""
    from webapp.detection.training.train import Trainer, TrainOptions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    opt = TrainOptions(data=list(data), out=out, backbone=backbone, epochs=epochs, views=views, steps=steps,
                       sbi=sbi, cap=cap, lr=lr, init=init, limit=limit, resume=resume, version=version)
    cfg = Trainer(opt).run()
    click.echo(json.dumps(cfg.metrics.get("test", {}), indent=2))


@click.command("evaluate")
@click.argument("labels_csv", type=click.Path(exists=True, path_type=Path))
@click.option("--limit", type=int, default=None, help="A fixed-seed stratified sample of N items.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the summary and per-item rows here.")
@click.option("--model", "model_dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--split", type=click.Choice(["all", "train", "val", "test"]), default="all", show_default=True,
              help="Only items whose group falls in this split of the training split rule.")
@click.option("--by", "by", type=click.Choice(["method", "group", "label", "none"]), default="method",
              show_default=True, help="Also print (and write) one row per generator method, group or label.")
@with_appcontext
def evaluate_command(labels_csv: Path, limit: int | None, json_out: Path | None, model_dir: Path | None,
                     split: str, by: str) -> None:
    """Run the website's analyze() on every item of LABELS_CSV and print honest metrics."""
    from dataclasses import asdict

    from webapp.detection.pipeline import get_detector
    from webapp.detection.training.evaluate import GROUPINGS, by_key, evaluate

    detector = get_detector(model_dir or _model_dir())

    def progress(n: int, total: int, row) -> None:
        if n % 25 == 0 or n == total:
            click.echo(f"  {n}/{total}", err=True)

    report = evaluate(labels_csv, detector.analyze, limit=limit, split=split, on_item=progress)
    s = report.summary
    click.echo(f"model {detector.version} on {labels_csv} ({split}): n={s['n']} fake={s['n_fake']}")
    for key in ("auc", "auc_faces_only", "accuracy", "balanced_accuracy", "precision", "recall", "f1",
                "log_loss", "ece", "no_face_rate", "errors", "items_per_second"):
        if key in s:
            click.echo(f"  {key:<18} {s[key]}")
    click.echo("  verdict bands (rows: label; columns: verdict)")
    for lbl, row in s["verdict_bands"].items():
        click.echo(f"    {lbl:<5} " + "  ".join(f"{k}={v}" for k, v in row.items()))
    out = {"model": detector.version, "thresholds": detector.cfg.thresholds, "summary": s,
           "items": [asdict(r) for r in report.rows]}
    if by != "none":
        rows = by_key(report.rows, GROUPINGS[by])
        out[f"by_{by}"] = rows
        click.echo(f"  by {by}: n, fakes, AUC (its fakes vs all reals), called fake, called real, no face")
        for k, r in rows.items():
            fa = f"false alarms {r['false_alarm']:.1%}" if "false_alarm" in r else f"detected {r['detected']:.1%}"
            auc = f"AUC {r['auc']:.3f}" if r.get("auc") is not None else ""
            click.echo(f"    {k[:40]:<40} n={r['n']:<4} {auc:<10} {fa:<20} called real {r['called_real']:.1%}"
                       f"  no face {r['no_face']}")
    if json_out:
        json_out.write_text(json.dumps(out, indent=2))
        click.echo(f"wrote {json_out}")


def register_cli(app: Flask) -> None:
    for cmd in (detect_command, train_command, evaluate_command):
        app.cli.add_command(cmd)
