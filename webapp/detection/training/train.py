"""Train the default detector end to end on CPU.

1. **Chips** of every image item, cut by the engine's chip function, cached on disk.
2. **Split** by group: train / val (choosing, calibration, thresholds) / test (reported).
3. **SBI**: self-blended fakes from real training chips (and real clips).
4. **Backbone fine-tuning** of the top blocks and the frame head. The frozen lower blocks are
   run once per augmented view and their activations cached (float16), so each epoch only
   pays for the small upper part: this is what makes fine-tuning affordable on two cores.
5. **Temporal LSTM** over pooled features of face tracks: real clips, temporally consistent
   self-blended versions of them, DFDC clips, and pseudo-sequences of one crop under jitter.
6. **Calibration** (temperature on val) and **thresholds** (false-alarm rate on val reals).
7. Writes weights + config.json + metrics.json into the output folder; resumable.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from ..classifier import NORMALISATION, DetectorNets, ModelConfig
from ..faces import detect_faces, landmarks68, link_tracks, make_chip
from ..media import sample_video
from .augment import BlendParams, augment, self_blend
from .card import write_card
from .dataset import Item, cache_dir, chip_folder, read_labels, split_of
from .metrics import best_temperature, binary_metrics

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    data: list[Path]
    out: Path
    backbone: str = "efficientnet_lite0"
    epochs: int = 3
    split_block: int = 11  # parts[:split_block] frozen (cached), parts[split_block:] trained
    views: int = 2  # augmented views per training chip (cached lower activations)
    sbi_per_real: float = 1.0  # self-blended fakes per real training chip
    batch: int = 32
    lr: float = 3e-4
    seq_len: int = 16
    limit: int | None = None
    resume: bool = False
    seed: int = 0
    version: str = ""
    work: Path = field(default_factory=lambda: cache_dir() / "train")


def _split_arrays(items: list[Item]) -> np.ndarray:
    return np.array([split_of(it.group) for it in items])


class Trainer:
    def __init__(self, opt: TrainOptions):
        self.opt = opt
        self.rng = np.random.default_rng(opt.seed)
        self.cfg = ModelConfig(version=opt.version or time.strftime("%Y.%m.%d-") + opt.backbone,
                               backbone=opt.backbone, frames=opt.seq_len)
        self.nets = DetectorNets(self.cfg, backbone_weights="imagenet")
        self.cfg.chip_size = self.nets.spec.input_size
        self.cfg.normalisation = NORMALISATION.get(opt.backbone, "")
        self.work = opt.work / opt.backbone
        self.work.mkdir(parents=True, exist_ok=True)
        self.lower = self.nets.backbone.lower(opt.split_block)
        self.upper = self.nets.backbone.upper(opt.split_block)

    # ------------------------------------------------------------------ data
    def load_images(self) -> dict[str, dict[str, np.ndarray]]:
        """Chips of all image folders, split. Returns {split: {"chips", "labels", "source", "real_idx"}}."""
        chips, labels, sources, splits = [], [], [], []
        for folder in self.opt.data:
            items = [it for it in read_labels(folder) if not it.is_video]
            if not items:
                continue
            cs = chip_folder(folder, self.cfg.chip_size, self.cfg.chip_padding, limit=self.opt.limit)
            log.info("%s: %d items, face found %.1f%%", folder, len(cs.items), 100 * cs.face_found_rate)
            self.cfg.notes.setdefault("face_found_rate", {})[Path(folder).name] = round(cs.face_found_rate, 4)
            keep = np.flatnonzero(cs.found)
            chips.append(np.asarray(cs.chips[keep]))
            labels.append(np.array([cs.items[i].label for i in keep], np.int8))
            sources.append(np.array([Path(folder).name] * len(keep)))
            splits.append(_split_arrays([cs.items[i] for i in keep]))
            self.cfg.trained_on.append(Path(folder).name)
        all_chips = np.concatenate(chips)
        all_labels, all_sources, all_splits = map(np.concatenate, (labels, sources, splits))
        out = {}
        for s in ("train", "val", "test"):
            m = all_splits == s
            out[s] = {"chips": all_chips[m], "labels": all_labels[m], "source": all_sources[m]}
            log.info("split %s: %d chips, %d fake", s, m.sum(), all_labels[m].sum())
        return out

    def sbi_chips(self, real_chips: np.ndarray, n: int) -> np.ndarray:
        """``n`` self-blended fakes from randomly chosen real chips."""
        out = np.zeros((n,) + real_chips.shape[1:], np.uint8)
        pick = self.rng.choice(len(real_chips), size=n, replace=n > len(real_chips))
        for j, i in enumerate(pick):
            chip = np.asarray(real_chips[i])
            out[j], _ = self_blend(chip, landmarks68(chip), BlendParams.draw(self.rng))
        return out

    def lower_activations(self, chips: np.ndarray, name: str, aug: bool) -> np.ndarray:
        """Cached frozen-part activations of ``chips`` (optionally augmented), float16."""
        path = self.work / f"lower_{name}_{self.opt.split_block}.npy"
        if path.is_file() and self.opt.resume:
            return np.load(path, mmap_mode="r")
        shape = None
        out = None
        t0 = time.time()
        for i in range(0, len(chips), 64):
            batch = np.asarray(chips[i:i + 64])
            if aug:
                batch = np.stack([augment(c, self.rng) for c in batch])
            act = np.asarray(self.lower(self.nets.preprocess(batch), training=False)).astype(np.float16)
            if out is None:
                shape = (len(chips),) + act.shape[1:]
                out = np.lib.format.open_memmap(path.with_suffix(".partial.npy"), "w+", np.float16, shape)
            out[i:i + len(batch)] = act
            if (i // 64) % 50 == 0:
                log.info("lower %s: %d/%d (%.0f img/s)", name, i + len(batch), len(chips),
                         (i + len(batch)) / (time.time() - t0))
        out.flush()
        del out
        path.with_suffix(".partial.npy").replace(path)
        return np.load(path, mmap_mode="r")

    # ------------------------------------------------------------------ stage 1
    def frame_model(self) -> keras.Model:
        inp = keras.Input(self.upper.input_shape[1:])
        fmap = self.upper(inp)
        pooled = keras.layers.GlobalAveragePooling2D()(fmap)
        return keras.Model(inp, self.nets.frame_head(pooled))

    def train_frames(self, views: list[np.ndarray], labels: np.ndarray, val_x: np.ndarray,
                     val_y: np.ndarray) -> dict:
        # BatchNorm layers of the trained blocks learn too (batch statistics while training,
        # moving averages at serving). Measured here: with them frozen, fine-tuning at 1e-4..5e-4
        # collapsed the features to a constant (val AUC 0.5); in training mode it learns.
        model = self.frame_model()
        steps = self.opt.epochs * (len(labels) // self.opt.batch)
        sched = keras.optimizers.schedules.CosineDecay(self.opt.lr, steps, warmup_target=None)
        model.compile(optimizer=keras.optimizers.AdamW(sched, weight_decay=1e-4),
                      loss=keras.losses.BinaryCrossentropy(from_logits=True))
        pos = float(np.clip(labels.mean(), 0.01, 0.99))
        cw = {0: 0.5 / (1 - pos), 1: 0.5 / pos}
        history = []
        ckpt = self.work / "frame_ckpt.weights.h5"
        start = 0
        state_f = self.work / "frame_state.json"
        if self.opt.resume and ckpt.is_file() and state_f.is_file():
            model.load_weights(ckpt)
            start = json.loads(state_f.read_text())["epoch"]
            history = json.loads(state_f.read_text())["history"]
        for epoch in range(start, self.opt.epochs):
            x = views[epoch % len(views)]
            order = self.rng.permutation(len(labels))
            t0 = time.time()
            losses = []
            for b in range(0, len(order) - self.opt.batch + 1, self.opt.batch):
                idx = np.sort(order[b:b + self.opt.batch])
                xb = np.asarray(x[idx], dtype=np.float32)
                yb = labels[idx].astype(np.float32)[:, None]
                sw = np.where(yb[:, 0] > 0, cw[1], cw[0]).astype(np.float32)
                losses.append(float(model.train_on_batch(xb, yb, sample_weight=sw)))
                if (b // self.opt.batch) % 100 == 0:
                    log.info("epoch %d step %d/%d loss %.4f (%.0f img/s)", epoch + 1, b // self.opt.batch,
                             len(order) // self.opt.batch, np.mean(losses[-100:]), (b + self.opt.batch) / (time.time() - t0))
            val_logits = self.predict_logits(model, val_x)
            m = binary_metrics(val_y, 1 / (1 + np.exp(-val_logits)))
            history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_auc": m["auc"],
                            "seconds": round(time.time() - t0, 1)})
            log.info("epoch %d done: %s", epoch + 1, history[-1])
            model.save_weights(ckpt)
            state_f.write_text(json.dumps({"epoch": epoch + 1, "history": history}))
        return {"history": history}

    @staticmethod
    def predict_logits(model: keras.Model, x: np.ndarray, batch: int = 128) -> np.ndarray:
        out = [np.asarray(model(np.asarray(x[i:i + batch], np.float32), training=False))[:, 0]
               for i in range(0, len(x), batch)]
        return np.concatenate(out) if out else np.zeros(0)

    def pooled(self, x: np.ndarray, batch: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """Upper part on cached activations -> (pooled (N, C) float32, frame logits (N,))."""
        feats, logits = [], []
        for i in range(0, len(x), batch):
            fm = self.upper(np.asarray(x[i:i + batch], np.float32), training=False)
            po = np.asarray(keras.ops.mean(fm, axis=(1, 2)))
            feats.append(po)
            logits.append(np.asarray(self.nets.frame_head(po, training=False))[:, 0])
        return np.concatenate(feats), np.concatenate(logits)

    # ------------------------------------------------------------------ clips
    def clip_chips(self, item: Item, n: int) -> np.ndarray | None:
        """Chips of the main face track of a clip (the engine's sampling, detection and chip)."""
        s = sample_video(item.path, n)
        tracks = link_tracks([detect_faces(f) for f in s.frames])
        if not tracks or len(tracks[0]) < 2:
            return None
        return np.stack([make_chip(s.frames[tf.frame], tf.face, self.cfg.chip_size, self.cfg.chip_padding)
                         for tf in tracks[0]])

    def clip_sequences(self) -> dict[str, list[tuple[np.ndarray, int, str]]]:
        """Chip sequences from every clip folder: (chips (T,S,S,3), label, kind) per split.
        Real clips also give self-blended fakes whose mask and colour drift per frame."""
        out: dict[str, list] = {"train": [], "val": [], "test": []}
        for folder in self.opt.data:
            vids = [it for it in read_labels(folder) if it.is_video]
            for it in vids:
                chips = self.clip_chips(it, self.opt.seq_len)
                if chips is None:
                    log.info("clip %s: no face track, skipped", it.path.name)
                    continue
                split = split_of(it.group)
                out[split].append((chips, it.label, "clip"))
                if it.label == 0:
                    for _ in range(2):
                        p = BlendParams.draw(self.rng)
                        fakes = []
                        for c in chips:
                            p = p.drift(self.rng)
                            fakes.append(self_blend(c, landmarks68(c), p)[0])
                        out[split].append((np.stack(fakes), 1, "clip_sbi"))
        for s in out:
            log.info("clip sequences %s: %d (%d fake)", s, len(out[s]), sum(lbl for _, lbl, _ in out[s]))
        return out

    # ------------------------------------------------------------------ stage 2
    def sequences_from_views(self, feats: list[np.ndarray], logits: list[np.ndarray],
                             labels: np.ndarray, n_seq: int) -> tuple[list, list, np.ndarray]:
        """Pseudo-sequences of one crop under jitter: steps drawn from the crop's augmented
        views with feature noise; lengths 1..seq_len (photos are length 1)."""
        fs, ls, ys = [], [], []
        idx = self.rng.choice(len(labels), size=n_seq, replace=n_seq > len(labels))
        for i in idx:
            t = int(self.rng.choice([1, 2, 4, 8, self.opt.seq_len]))
            v = self.rng.integers(0, len(feats), size=t)
            f = np.stack([feats[k][i] for k in v])
            lg = np.array([logits[k][i] for k in v])
            f = f + self.rng.normal(0, 0.05, f.shape) * f.std()
            fs.append(f.astype(np.float32))
            ls.append(lg.astype(np.float32))
            ys.append(labels[i])
        return fs, ls, np.array(ys, np.float32)

    def pad(self, fs: list, ls: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = max(len(f) for f in fs)
        c = fs[0].shape[1]
        x = np.zeros((len(fs), t, c), np.float32)
        lg = np.zeros((len(fs), t, 1), np.float32)
        mask = np.zeros((len(fs), t), bool)
        for i, (f, g) in enumerate(zip(fs, ls, strict=True)):
            x[i, :len(f)] = f
            lg[i, :len(f), 0] = g
            mask[i, :len(f)] = True
        return x, lg, mask

    def train_temporal(self, train: tuple, val: tuple, epochs: int = 8) -> None:
        temporal = self.nets.temporal
        temporal.compile(optimizer=keras.optimizers.Adam(1e-3),
                         loss=keras.losses.BinaryCrossentropy(from_logits=True))
        fs, ls, ys = train
        pos = float(np.clip(ys.mean(), 0.01, 0.99))
        for epoch in range(epochs):
            order = self.rng.permutation(len(ys))
            losses = []
            for b in range(0, len(order), 64):
                idx = order[b:b + 64]
                x, lg, m = self.pad([fs[i] for i in idx], [ls[i] for i in idx])
                sw = np.where(ys[idx] > 0, 0.5 / pos, 0.5 / (1 - pos)).astype(np.float32)
                losses.append(float(temporal.train_on_batch([x, lg, m], ys[idx][:, None], sample_weight=sw)))
            vl = self.temporal_logits(*val[:2])
            log.info("temporal epoch %d loss %.4f val auc %.4f", epoch + 1, np.mean(losses),
                     binary_metrics(val[2], 1 / (1 + np.exp(-vl)))["auc"])

    def temporal_logits(self, fs: list, ls: list) -> np.ndarray:
        out = []
        for b in range(0, len(fs), 256):
            x, lg, m = self.pad(fs[b:b + 256], ls[b:b + 256])
            out.append(np.asarray(self.nets.temporal([x, lg, m], training=False))[:, 0])
        return np.concatenate(out)

    # ------------------------------------------------------------------ run
    def run(self) -> ModelConfig:
        opt = self.opt
        t_start = time.time()
        data = self.load_images()
        tr = data["train"]
        real_tr = tr["chips"][tr["labels"] == 0]
        n_sbi = int(opt.sbi_per_real * len(real_tr))
        log.info("making %d self-blended fakes", n_sbi)
        sbi_f = self.work / f"sbi_{n_sbi}.npy"
        if opt.resume and sbi_f.is_file():
            sbi = np.load(sbi_f)
        else:
            sbi = self.sbi_chips(real_tr, n_sbi)
            np.save(sbi_f, sbi)
        train_chips = np.concatenate([tr["chips"], sbi])
        train_labels = np.concatenate([tr["labels"], np.ones(n_sbi, np.int8)])
        views = [self.lower_activations(train_chips, f"train_v{v}", aug=True) for v in range(opt.views)]
        val_x = self.lower_activations(data["val"]["chips"], "val", aug=False)
        test_x = self.lower_activations(data["test"]["chips"], "test", aug=False)
        stage1 = self.train_frames(views, train_labels, val_x, data["val"]["labels"])

        # pooled features for the temporal stage
        train_feats, train_logits = zip(*(self.pooled(v) for v in views), strict=True)
        val_feats, val_logits = self.pooled(val_x)
        test_feats, test_logits = self.pooled(test_x)

        clips = self.clip_sequences()

        def clip_feats(seqs):
            fs, ls, ys, kinds = [], [], [], []
            for chips, label, kind in seqs:
                act = self.lower(self.nets.preprocess(chips), training=False)
                f, g = self.pooled(np.asarray(act))
                fs.append(f)
                ls.append(g)
                ys.append(label)
                kinds.append(kind)
            return fs, ls, np.array(ys, np.float32), kinds

        ctr, cval, ctest = (clip_feats(clips[s]) for s in ("train", "val", "test"))
        pf, pl, py = self.sequences_from_views(list(train_feats), list(train_logits), train_labels,
                                               n_seq=min(20000, 2 * len(train_labels)))
        rep = max(1, 200 // max(1, len(ctr[0])))  # clips are few: repeat them so they count
        seq_train = (pf + ctr[0] * rep, pl + ctr[1] * rep, np.concatenate([py] + [ctr[2]] * rep))
        vf, vlg, vy = self.sequences_from_views([val_feats], [val_logits], data["val"]["labels"].astype(np.float32),
                                                n_seq=len(data["val"]["labels"]))
        seq_val = (vf + cval[0], vlg + cval[1], np.concatenate([vy, cval[2]]))
        self.train_temporal(seq_train, seq_val)

        # calibration and thresholds on val (photos: length-1 sequences of each val crop)
        single = ([f[None] for f in val_feats], [np.array([g]) for g in val_logits])
        v_logit = self.temporal_logits(*single)
        v_y = data["val"]["labels"].astype(np.float32)
        self.cfg.temperature = best_temperature(v_logit, v_y)
        self.cfg.frame_temperature = best_temperature(val_logits, v_y)
        p_val = 1 / (1 + np.exp(-v_logit / self.cfg.temperature))
        self.choose_thresholds(p_val, v_y)

        metrics: dict = {"stage1": stage1, "val": {}, "test": {}}
        for split, feats, logits, d, cl in (("val", val_feats, val_logits, data["val"], cval),
                                            ("test", test_feats, test_logits, data["test"], ctest)):
            tl = self.temporal_logits([f[None] for f in feats], [np.array([g]) for g in logits])
            p = 1 / (1 + np.exp(-tl / self.cfg.temperature))
            for src in sorted(set(d["source"])):
                m = d["source"] == src
                metrics[split][src] = binary_metrics(d["labels"][m], p[m], self.cfg.real_below, self.cfg.fake_above)
            metrics[split]["all_crops"] = binary_metrics(d["labels"], p, self.cfg.real_below, self.cfg.fake_above)
            if cl[0]:
                lstm = 1 / (1 + np.exp(-self.temporal_logits(cl[0], cl[1]) / self.cfg.temperature))
                avg = 1 / (1 + np.exp(-np.array([g.mean() for g in cl[1]]) / self.cfg.frame_temperature))
                metrics[split]["clips_lstm"] = binary_metrics(cl[2], lstm, self.cfg.real_below, self.cfg.fake_above)
                metrics[split]["clips_frame_average"] = binary_metrics(cl[2], avg, self.cfg.real_below, self.cfg.fake_above)
        # LSTM vs averaging on val pseudo-sequences (lengths 1..T)
        lstm_v = 1 / (1 + np.exp(-self.temporal_logits(*seq_val[:2])))
        avg_v = 1 / (1 + np.exp(-np.array([g.mean() for g in seq_val[1]])))
        metrics["val"]["sequences_lstm_auc"] = binary_metrics(seq_val[2], lstm_v)["auc"]
        metrics["val"]["sequences_average_auc"] = binary_metrics(seq_val[2], avg_v)["auc"]
        metrics["train_seconds"] = round(time.time() - t_start)
        metrics["counts"] = {s: {"chips": int(len(data[s]["labels"])), "fake": int(data[s]["labels"].sum())}
                             for s in data}
        metrics["counts"]["train"]["sbi"] = n_sbi
        metrics["counts"]["clips"] = {s: len(clips[s]) for s in clips}
        self.cfg.metrics = metrics
        self.nets.save(opt.out)
        (Path(opt.out) / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        write_card(opt.out)
        log.info("saved model to %s in %.0f s", opt.out, time.time() - t_start)
        return self.cfg

    def choose_thresholds(self, p: np.ndarray, y: np.ndarray, max_false_alarm: float = 0.02,
                          max_miss: float = 0.10) -> None:
        """``fake_above``: the lowest score at which at most ``max_false_alarm`` of val reals are
        called fake. ``real_below``: the highest at which at most ``max_miss`` of val fakes are
        called real. Kept ordered, with a 0.5 floor/ceiling so bands stay meaningful."""
        reals, fakes = p[y == 0], p[y == 1]
        if not len(reals) or not len(fakes):
            log.warning("validation lacks reals or fakes: thresholds left at %s/%s", self.cfg.real_below, self.cfg.fake_above)
            return
        fake_above = float(max(0.5, np.quantile(reals, 1 - max_false_alarm)))
        real_below = float(min(0.5, np.quantile(fakes, max_miss)))
        self.cfg.fake_above = round(min(fake_above, 0.99), 4)
        self.cfg.real_below = round(min(real_below, self.cfg.fake_above), 4)
        self.cfg.notes["thresholds"] = {
            "rule": f"fake_above: <= {max_false_alarm:.0%} of val reals above; real_below: <= {max_miss:.0%} of val fakes below",
            "val_false_alarm_rate": round(float((reals >= self.cfg.fake_above).mean()), 4),
            "val_fake_called_real_rate": round(float((fakes < self.cfg.real_below).mean()), 4),
        }
