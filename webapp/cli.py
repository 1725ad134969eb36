"""Command-line interface: ``flask --app app detect | train | evaluate | models``.

The engine (and TensorFlow) is imported inside each command, so ``flask --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext


def _model_dir() -> Path:
    """The model registry root (MODEL_DIR), or a single model folder."""
    return Path(current_app.config.get("MODEL_DIR") or Path(current_app.root_path).parent / "model")


MODEL_HELP = "A model version of the registry (see `flask models`) or a model folder (default: the default model)."


def _detector(model: str | None):
    """The engine's detector for ``--model``; an unknown version ends the command with the list."""
    from webapp.detection.registry import UnknownModelError, resolve

    try:
        path = resolve(model, root=_model_dir()).path  # before TensorFlow is imported
    except UnknownModelError as err:
        raise click.BadParameter(str(err), param_hint="--model") from None
    from webapp.detection.pipeline import get_detector

    return get_detector(path)


@click.command("detect")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the full Analysis as JSON (a list when several files).")
@click.option("--model", "model", default=None, help=MODEL_HELP)
@with_appcontext
def detect_command(paths: tuple[Path, ...], as_json: bool, model: str | None) -> None:
    """Analyse photos or clips and print a verdict per file."""
    from webapp.detection.errors import DetectionError

    detector = _detector(model)
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
            why = ""
            if a.too_small:
                why = f"  (face {a.largest_face_px} px: too small to judge, needs >= {a.min_face_px} px)"
            elif a.unvouched:
                why = f"  (real band, but a face under {a.vouch_face_px} px is not vouched for)"
            elif a.unaccused:
                why = f"  (fake band, but a face under {a.fake_ok_from_px} px does not accuse by itself)"
            click.echo(f"{path}: {a.verdict:<12} p_fake={p} faces={a.faces_found:<3} "
                       f"{a.timings['total']:.2f}s{why}")
    if as_json:
        click.echo(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    if failed:
        sys.exit(1)


@click.command("train")
@click.option("--data", "data", multiple=True, required=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A folder with labels.csv (repeat for several).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output model folder (default: a new version folder in the registry, model/<version>).")
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
@click.option("--temporal-only", is_flag=True, help="Keep the frame model of --init; retrain the temporal stage only.")
@click.option("--resume", is_flag=True, help="Reuse cached activations and continue from the last checkpoint.")
@click.option("--version", "version", default="", help="Model version string (default: date + backbone).")
@with_appcontext
def train_command(data, out, backbone, epochs, views, steps, sbi, cap, lr, init, limit, temporal_only, resume, version) -> None:
    """Train a detector end to end and write it to --out."""
    from webapp.detection.training.train import Trainer, TrainOptions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if out is None:  # a new folder in the registry; make it the default in model/registry.json
        version = version or time.strftime("%Y.%m.%d-") + backbone
        out = _model_dir() / version
    opt = TrainOptions(data=list(data), out=out, backbone=backbone, epochs=epochs, views=views, steps=steps,
                       sbi=sbi, cap=cap, lr=lr, init=init, limit=limit, resume=resume, version=version,
                       temporal_only=temporal_only)
    cfg = Trainer(opt).run()
    click.echo(json.dumps(cfg.metrics.get("test", {}), indent=2))


@click.command("evaluate")
@click.argument("labels_csv", type=click.Path(exists=True, path_type=Path))
@click.option("--limit", type=int, default=None, help="A fixed-seed stratified sample of N items.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the summary and per-item rows here.")
@click.option("--model", "model", default=None, help=MODEL_HELP)
@click.option("--split", type=click.Choice(["all", "train", "val", "test"]), default="all", show_default=True,
              help="Only items whose group falls in this split of the training split rule.")
@click.option("--by", "by", type=click.Choice(["method", "group", "label", "none"]), default="method",
              show_default=True, help="Also print (and write) one row per generator method, group or label.")
@with_appcontext
def evaluate_command(labels_csv: Path, limit: int | None, json_out: Path | None, model: str | None,
                     split: str, by: str) -> None:
    """Run the website's analyze() on every item of LABELS_CSV and print honest metrics."""
    from dataclasses import asdict

    from webapp.detection.training.evaluate import GROUPINGS, by_key, evaluate

    detector = _detector(model)

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


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
@with_appcontext
def models_command(as_json: bool) -> None:
    """List the models of the registry: version, default, training data, held-out figures."""
    from webapp.detection.registry import Registry

    reg = Registry(_model_dir())
    rows = [{"version": e.version, "default": e.default, "path": str(e.path), "trained_on": e.trained_on,
             **{f"test_{k}": v for k, v in e.headline().items()}} for e in reg.entries]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        raise click.ClickException(f"No models in {reg.root} (no folder with a config.json).")

    def num(v) -> str:
        return "–" if v is None else f"{v:.3f}"

    click.echo(f"models in {reg.root} (figures: held-out test split)")
    click.echo(f"  {'version':<24} {'default':<8} {'AUC':>6} {'clips':>6} {'false alarms':>13}  trained on")
    for r in rows:
        click.echo(f"  {r['version']:<24} {'yes' if r['default'] else '':<8} {num(r['test_auc']):>6} "
                   f"{num(r['test_clips_auc']):>6} {num(r['test_false_alarm_rate']):>13}  "
                   f"{', '.join(r['trained_on']) or '–'}")


def register_cli(app: Flask) -> None:
    for cmd in (detect_command, train_command, evaluate_command, models_command):
        app.cli.add_command(cmd)
