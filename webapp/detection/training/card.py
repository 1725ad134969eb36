"""Write ``MODEL_CARD.md`` from a trained model's config and measured metrics.

Every number in the card comes from ``config.json`` (written by the same training run) or
from an evaluation JSON passed in; nothing is typed by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..classifier import ModelConfig


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _metric_rows(block: dict[str, Any]) -> list[str]:
    rows = ["| items | n | fake | AUC | balanced acc. | accuracy | precision | recall | F1 | log-loss | ECE | false alarms (\"fake\" on reals) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in block.items():
        if not isinstance(m, dict) or "n" not in m:
            continue
        rows.append(f"| {name} | {m['n']} | {m['n_fake']} | {_fmt(m.get('auc'))} | {_fmt(m.get('balanced_accuracy'))} | "
                    f"{_fmt(m.get('accuracy'))} | {_fmt(m.get('precision'))} | {_fmt(m.get('recall'))} | "
                    f"{_fmt(m.get('f1'))} | {_fmt(m.get('log_loss'))} | {_fmt(m.get('ece'))} | "
                    f"{_fmt(m.get('false_alarm_rate'))} |")
    return rows


def _group_rows(block: dict[str, Any]) -> list[str]:
    """Per-method / per-source rows (:func:`..metrics.by_group`): what each verdict band did."""
    rows = ["| method or source | n | AUC (its fakes vs all reals) | fakes called \"likely fake\" | "
            "called \"likely real\" | reals called \"likely fake\" |", "|---|---|---|---|---|---|"]
    def pct(r: dict, k: str) -> str:
        return "–" if r.get(k) is None else f"{r[k]:.0%}"

    for name, r in block.items():
        rows.append(f"| {name} | {r.get('n', '–')} | {_fmt(r.get('auc'))} | {pct(r, 'detected')} | "
                    f"{pct(r, 'called_real') if 'detected' in r else pct(r, 'real_called_real')} | {pct(r, 'false_alarm')} |")
    return rows


HEADS_SPLIT = (
    "Split: the backbone is frozen (fine-tuned earlier on DFDC, FaceForensics++ and real crops only, so it never saw "
    "a clip or a photo of the footage below). The heads train on every clip of `generators/` and `videos/`, their "
    "quality-symmetric views and self-made lip-sync and animation fakes, every photo, and a sample of the DFDC / "
    "FaceForensics++ / real crops of the training split with self-blended fakes. Calibration (Platt, clips and "
    "photos apart) and the bands come from **out-of-fold** scores: 5 folds that hold out whole recordings and "
    "whole generator methods (every recording with a fake of a method goes with it), photos one by one; the "
    "image bands also keep validation-split DFDC/FF++ real crops at 2% or less. The DFDC/FF++ **test** split was "
    "used for nothing but the in-domain figures.")


def _reproduce_heads(command: str) -> list[str]:
    return [command + "   # heads on a frozen backbone, bands out of fold"]


def trust_rows(t: dict[str, Any]) -> list[str]:
    """The real-footage validation as markdown: false alarms per kind of real footage (with the
    number each rests on), generator families, in-domain crops, calibration and the shortcut audit."""
    def rate(k: int, n: int) -> str:
        return f"{k} of {n} ({k / n:.0%})" if n else "–"

    lines = [t.get("how") or "Every real clip and photo scored by heads that never trained on its recording or photo "
             "source, nor on any fake of its generator method (`python -m benchmarks.trust`).", "",
             "| real footage | n | called \"likely fake\" | called \"likely real\" | mean score |", "|---|---|---|---|---|"]
    for kind, r in t.get("false_alarms", {}).items():
        lines.append(f"| {kind} | {r['n']} | {rate(r['fake'], r['n'])} | {rate(r['real'], r['n'])} | {_fmt(r['mean_p'])} |")
    lines += ["", "| generator family (held out whole) | n | AUC against real clips | called \"likely fake\" | called \"likely real\" |",
              "|---|---|---|---|---|"]
    for fam, r in t.get("families", {}).items():
        lines.append(f"| {fam} | {r['n']} | {_fmt(r['auc'])} | {rate(r['fake'], r['n'])} | {rate(r['real'], r['n'])} |")
    for what in ("clips", "photos"):
        s = t.get(what) or {}
        if s:
            lines.append(f"\n{what.capitalize()}: n {s['n']}, AUC {_fmt(s.get('auc'))}, fakes called \"likely fake\" at 2% of "
                         f"reals {_fmt(s.get('tpr_at_2pct_fpr'))}, calibration error (ECE) {_fmt(s.get('ece'))}; fakes called "
                         f"fake {s['fakes_called_fake'][0]} of {s['fakes_called_fake'][1]}, reals called fake "
                         f"{s['reals_called_fake'][0]} of {s['reals_called_fake'][1]}.")
    for src, r in (t.get("in_domain") or {}).items():
        lines.append(f"\nIn-domain test {src} ({r['n']}): AUC {_fmt(r['auc'])}, fakes called \"likely fake\" "
                     f"{r['fakes_called_fake']:.0%} with {r['reals_called_fake']:.1%} of reals; at 2% of reals {r['tpr_at_2pct_fpr']:.0%}.")
    if t.get("ece_by_kind"):
        lines.append("\nCalibration error (ECE) per kind: " + ", ".join(f"{k} {v}" for k, v in t["ece_by_kind"].items()) + ".")
    if t.get("unseen", {}).get("false_alarms"):
        lines += ["", "Only the clips it never trained on:", "",
                  "| real footage | n | called \"likely fake\" |", "|---|---|---|"]
        lines += [f"| {k} | {r['n']} | {rate(r['fake'], r['n'])} |" for k, r in t["unseen"]["false_alarms"].items()
                  if not k.startswith("photo_")]
        s = t["unseen"].get("clips") or {}
        if s:
            lines.append(f"\nThose clips: n {s['n']}, AUC {_fmt(s.get('auc'))}, fakes called fake {s['fakes_called_fake'][0]} of "
                         f"{s['fakes_called_fake'][1]}, reals called fake {s['reals_called_fake'][0]} of {s['reals_called_fake'][1]}.")
    if t.get("audit_real"):
        lines.append("\nShortcut audit (Spearman correlation of real clips' scores with): " +
                     ", ".join(f"{k} {v}" for k, v in t["audit_real"].items()) + ".")
    return lines


def render_card(cfg: ModelConfig, extra: dict[str, str] | None = None) -> str:
    m = cfg.metrics
    counts = m.get("counts", {})
    notes = cfg.notes
    lines = [
        f"# Model card: {cfg.version}",
        "",
        "A deepfake detector for faces in photos and short clips: dlib-aligned face chips, an "
        f"ImageNet-initialised **{cfg.backbone}** CNN fine-tuned on face crops, and a bidirectional "
        "LSTM over the chips of one face track. It answers the probability that a face was "
        "manipulated, calibrated on validation data, and a verdict band.",
        "",
        "## How to reproduce",
        "```",
        *(_reproduce_heads(notes["training"]) if "train_heads" in str(notes.get("training", "")) else [
            "flask --app app train --data ../shared/data/dfdc_faces --data ../shared/data/ffpp_faces \\",
            "    --data ../shared/data/real_faces --data ../shared/data/photos --data ../shared/data/generators \\",
            "    --data ../shared/data/videos --out model/VERSION/ [--init model/PREVIOUS_VERSION/]"]),
        "python -m benchmarks.trust --write-metrics                                  # real footage per kind, out of fold",
        "python -m benchmarks.generalisation --model model/VERSION --write-metrics   # unseen generators, through analyze()",
        "python -m benchmarks.false_alarms --model model/VERSION --write-metrics     # reals shrunk, compressed, dark...",
        "flask --app app evaluate ../shared/data/dfdc_faces/labels.csv --split test --limit 600",
        "```",
        "",
        "## Configuration",
        f"- Backbone: `{cfg.backbone}`, input {cfg.chip_size}x{cfg.chip_size}, normalisation `{cfg.normalisation}`",
        f"- Chip: dlib 5-point alignment, padding {cfg.chip_padding}; the same function at training and serving",
        f"- Frames sampled per clip: {cfg.frames}; LSTM: bidirectional, {cfg.lstm_units} units per direction, "
        f"input = {cfg.proj_units}-d projection of pooled features + the frame logit",
        (f"- Calibration: Platt scaling fitted on out-of-fold scores, clips and photos apart: p = sigmoid(a * track logit + b) "
         f"with (a, b) = {tuple(cfg.calibration['video'])} for clips, {tuple(cfg.calibration['image'])} for photos; "
         f"per-frame scores shown with temperature {cfg.frame_temperature}" if cfg.calibration else
         f"- Calibration: temperature {cfg.temperature} (track), {cfg.frame_temperature} (frame), fitted on validation"),
        f"- Verdict bands: real if p < {cfg.real_below}, fake if p >= {cfg.fake_above}, otherwise inconclusive; "
        "no face found is its own verdict, never \"real\"",
    ]
    if cfg.clip_fake_above is not None:
        lines.append(f"- Clips have bands of their own: real if p < {cfg.clip_real_below}, fake if p >= "
                     f"{cfg.clip_fake_above} (real footage scores higher as a clip than as one photo)")
    if "thresholds" in notes:
        t = notes["thresholds"]
        if "val_false_alarm_rate" in t:
            lines.append(f"- Threshold rule: {t['rule']}. On validation this gives a false-alarm rate of "
                         f"{t['val_false_alarm_rate']:.1%} and calls {t['val_fake_called_real_rate']:.1%} of fakes real.")
        else:
            lines.append(f"- Threshold rule: {t['rule']}.")
    if cfg.min_face_px or cfg.vouch_face_px:
        from ..result import face_lines

        fl = face_lines({"min_face_px": cfg.min_face_px, "vouch_face_px": cfg.vouch_face_px,
                         "small_face_fake_ok_from_px": cfg.small_face_fake_ok_from_px})
        lines.append(f"- Face sizes: judged from {fl['judged']['video']} px in a clip, {fl['judged']['image']} px "
                     f"in a photo; called \"likely real\" only from {fl['vouched']['video']} px in a clip, "
                     f"{fl['vouched']['image']} px in a photo (below that a real-band score reads \"inconclusive\"); "
                     f"called \"likely fake\" by one face only from {fl['accused']['video']} px in a clip, "
                     f"{fl['accused']['image']} px in a photo (under the vouch line only where measured on real "
                     "footage to call at most 2% of real faces fake: `python -m benchmarks.small_faces`)")
        if notes.get("small_face_false_alarms"):
            lines.append(f"  - small faces: {notes['small_face_false_alarms'].get('summary', '')}")
        fs = notes.get("face_size_lines") or {}
        lines += [f"  - {k}: {fs[k]}" for k in ("rule", "video", "image") if k in fs]
    lines += [
        "",
        "## Training data",
        f"Folders: {', '.join(cfg.trained_on) or '–'} (from ../shared/data; research-only data sets: DFDC and "
        "FaceForensics++ c23, plus extra real faces, real talking-face clips, face photos and generator clips as "
        "their folders allow). The model is not trained on, and must not redistribute, anything else.",
        "",
        HEADS_SPLIT if "train_heads" in str(notes.get("training", "")) else
        "Split: DFDC, FaceForensics++, real crops and whole clips by `group` hash into train 75% / validation "
        "12.5% / test 12.5%: a DFDC fake and its original, and clips of one recording, are always on the same "
        "side. FaceForensics++ crops have no video id, so they split by row (optimistic). Generator clips and "
        "photos split by **method**: every group holding a fake of a held-out generator goes to validation "
        "whole, so validation measures generators the model never trained on. Validation chose the temperature "
        "and the thresholds; **test** was used for nothing but the figures below.",
    ]
    if notes.get("training"):
        lines += ["", f"Training: {notes['training']}."]
    if counts:
        lines.append("")
        lines.append("| split | chips | fake | notes |")
        lines.append("|---|---|---|---|")
        for s in ("train", "val", "test"):
            c = counts.get(s, {})
            extra_note = f"+ {c['sbi']} self-blended fakes" if c.get("sbi") else ""
            lines.append(f"| {s} | {c.get('chips', '–')} | {c.get('fake', '–')} | {extra_note} |")
        if "clips" in counts:
            lines.append(f"\nClip sequences (real clips, their self-blended versions, DFDC clips): {counts['clips']}")
    if "face_found_rate" in notes:
        lines.append("\nFace found by the chip function (dlib HOG on the reflect-padded crop): " +
                     ", ".join(f"{k} {v:.1%}" for k, v in notes["face_found_rate"].items()) +
                     ". Crops with no face found were left out.")
    if m.get("trust"):
        lines += ["", "## Real-footage validation (out of fold)", ""] + trust_rows(m["trust"])
    if m.get("analyze"):
        lines += ["", "## Through the site's analyze(): unseen generators and held-out test items", "",
                  "Measured with `python -m benchmarks.generalisation --model model/VERSION --write-metrics`: the "
                  "same analysis an upload gets (face finding, tracking, the temporal model, the verdict bands). "
                  "`generators val` and `photos val` hold generator methods and a real source that no training "
                  "step saw.", "",
                  "| set | n | fakes | AUC | fakes called \"likely fake\" | reals called \"likely fake\" |",
                  "|---|---|---|---|---|---|"]
        for name, r in m["analyze"].items():
            pct = {k: "–" if r.get(k) is None else f"{r[k]:.1%}" for k in ("fakes_called_fake", "reals_called_fake")}
            lines.append(f"| {name} | {r.get('n')} | {r.get('n_fake')} | {_fmt(r.get('auc'))} | "
                         f"{pct['fakes_called_fake']} | {pct['reals_called_fake']} |")
        for name, r in m["analyze"].items():
            if r.get("by_method"):
                lines += ["", f"Per method, {name}:", ""] + _group_rows(r["by_method"])
    if m.get("false_alarms"):
        lines += ["", "## Real faces under what uploads go through", "",
                  "`python -m benchmarks.false_alarms --model model/VERSION --write-metrics`: real clips and photos "
                  "shrunk, re-compressed, darkened, blurred, noised and cropped; the share called \"likely fake\" "
                  "(target: at most 2% for each).", "",
                  "| transformation | kind | n | called \"likely fake\" | inconclusive | \"likely real\" | no judgeable face |",
                  "|---|---|---|---|---|---|---|"]
        for r in m["false_alarms"]:
            n = r["n"] or 1
            lines.append(f"| {r['condition']} | {r['kind']} | {r['n']} | {r.get('fake', 0) / n:.1%} | "
                         f"{r.get('inconclusive', 0) / n:.0%} | {r.get('real', 0) / n:.0%} | {r.get('no_face', 0)} |")
    lines += ["", "## Measured on held-out test items (chips, length-1 sequences)", ""]
    lines += _metric_rows(m.get("test", {}))
    lines += ["", "## Validation (used for choosing: not held out)", ""]
    lines += _metric_rows(m.get("val", {}))
    if m.get("val_clips_by_method"):
        lines += ["", "### Clips per generator method (validation: these methods were never trained on)", ""]
        lines += _group_rows(m["val_clips_by_method"])
    if m.get("val_by_source"):
        lines += ["", "### Per source, as the thresholds saw it (`:stress` = reals shrunk to 45-90 px faces and dimmed)", ""]
        lines += _group_rows(m["val_by_source"])
    v = m.get("val", {})
    if "sequences_lstm_auc" in v:
        lines += ["", "## What the LSTM learns from, and whether it helps", "",
                  "The shared data is mostly one crop per video, so temporal training material is: real "
                  "talking-face clips, self-blended versions of them whose mask and colour drift from frame to "
                  "frame, four DFDC clips, and pseudo-sequences of one crop under per-frame augmentation. "
                  "Validation AUC of the LSTM against plain averaging of frame logits on the same sequences: "
                  f"LSTM {_fmt(v.get('sequences_lstm_auc'))}, averaging {_fmt(v.get('sequences_average_auc'))}."]
        for split in ("val", "test"):
            b = m.get(split, {})
            if "clips_lstm" in b:
                lines.append(f"On {split} clip sequences ({b['clips_lstm']['n']} clips): LSTM AUC "
                             f"{_fmt(b['clips_lstm']['auc'])}, averaging {_fmt(b['clips_frame_average']['auc'])}.")
    s1 = m.get("stage1", {}).get("history", [])
    if s1:
        lines += ["", "## Fine-tuning log", "", "| epoch | loss | val AUC (frames) | seconds |", "|---|---|---|---|"]
        lines += [f"| {h['epoch']} | {h['loss']:.4f} | {_fmt(h['val_auc'])} | {h['seconds']} |" for h in s1]
        lines.append(f"\nLast training run: {m.get('train_seconds', '–')} s on a 2-core CPU. A run with `--resume` "
                     "reuses the cached chips and frozen-block activations; from scratch, chipping ~30k crops and "
                     "caching two augmented views of activations took another ~1 h here (CPU shared with other jobs).")
    for title, body in (extra or {}).items():
        lines += ["", f"## {title}", "", body]
    lines += [
        "",
        "## Known limits",
        "- What it was trained on is listed above; kinds of fakes it never saw can score like real footage. "
        "The per-method rows above say how it does on generators it never trained on: read them before "
        "trusting a \"likely real\" on a talking-head or lip-sync clip.",
        "- Heavy compression, very small faces, strong profile views and occlusions lower accuracy; faces "
        "too small to judge are shown but not scored, faces too small to vouch for are never called \"likely "
        "real\", and faces dlib cannot find are reported as \"no face\".",
        "- In-domain figures are optimistic: DFDC actors recur across videos, FaceForensics++ crops split by row.",
        "- A score is evidence, not proof. Use the inconclusive band as \"look closer\", not as \"probably real\".",
    ]
    return "\n".join(lines) + "\n"


def write_card(model_dir: str | Path, extra: dict[str, str] | None = None) -> Path:
    cfg = ModelConfig.load(model_dir)
    path = Path(model_dir) / "MODEL_CARD.md"
    path.write_text(render_card(cfg, extra), encoding="utf-8")
    return path
