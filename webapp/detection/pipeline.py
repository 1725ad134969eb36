"""``analyze(path) -> Analysis``: the one entry point the website, the CLI and evaluation share.

Stages: decode (sample frames) -> detect (dlib HOG faces + 5-point landmarks) -> align (chips
with :func:`faces.make_chip`, the function training uses) -> features (backbone) -> classify
(per-frame head, then the LSTM per face track; the clip's score is its most suspicious track)
-> explain (Grad-CAM of the most suspicious frames).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from . import registry
from .classifier import CONFIG_FILE, DetectorNets, ModelConfig
from .errors import ModelNotFoundError, ModelOutputError
from .faces import detect_faces, make_chip, warm_up
from .media import DEFAULT_MAX_PIXELS, FrameStream, SampledFrames, is_photo, load_media
from .result import Analysis, Chip, FrameScore, TrackScore, face_lines
from .tracking import ClipFaces, find_faces, link_tracks

ProgressCallback = Callable[[str, float], None]

DEFAULT_MODEL_DIR = registry.DEFAULT_ROOT  # the registry root; a Detector loads its default
BATCH = 16
EXPLAIN_TOP = 3  # Grad-CAM overlays for this many most suspicious frames
MIN_TRACK_FRACTION = 0.25  # tracks shorter than this share of the longest are not decisive


def sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def overlay_heatmap(chip: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a (h, w) [0, 1] activation map over a (S, S, 3) uint8 RGB chip (jet colours)."""
    s = chip.shape[0]
    heat = cv2.resize(cam, (s, s), interpolation=cv2.INTER_CUBIC)
    colour = cv2.applyColorMap(np.clip(heat * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(chip, 1 - alpha, colour, alpha, 0.0)


class Detector:
    """A loaded model. Build once per process with :func:`get_detector`; ``analyze`` is
    thread-safe (network calls are serialised: two CPU cores gain nothing from overlap)."""

    def __init__(self, model_dir: str | Path = DEFAULT_MODEL_DIR):
        """``model_dir``: a model folder, a registry root (its default) or a version."""
        model_dir = registry.resolve(model_dir).path
        if not (model_dir / CONFIG_FILE).is_file():
            raise ModelNotFoundError(
                f"No trained model in {model_dir} (config.json missing). Train one with "
                "`flask --app app train` or restore the shipped model/ folder."
            )
        self.model_dir = model_dir
        self.cfg = ModelConfig.load(model_dir)
        self.nets = DetectorNets(self.cfg, backbone_weights=None)
        self.nets.load_weights(model_dir)
        self._lock = threading.Lock()
        import tensorflow as tf

        # Traced once (fixed sequence length below), instead of eager calls per analysis.
        self._frame_fn = tf.function(lambda x: (*self.nets.features(x, training=False),),
                                     reduce_retracing=True)
        self._temporal_fn = tf.function(lambda f, g, m: self.nets.temporal([f, g, m], training=False))
        # Warm up once so the first upload does not pay for model loading and graph tracing.
        warm_up()
        _, pooled, logits = self._features(np.zeros((1, self.cfg.chip_size, self.cfg.chip_size, 3), np.uint8))
        self.track_logit(pooled, logits)

    @property
    def version(self) -> str:
        return self.cfg.version

    @property
    def config(self) -> dict:
        from dataclasses import asdict

        return asdict(self.cfg)

    def min_face_px(self, media_type: str) -> int:
        """Narrowest face this model judges ("video" or "image"): its config, else the default."""
        return face_lines(self.config)["judged"][media_type]

    def vouch_face_px(self, media_type: str) -> int:
        """Narrowest face this model may call "likely real" (never below :meth:`min_face_px`)."""
        return face_lines(self.config)["vouched"][media_type]

    def fake_ok_from_px(self, media_type: str) -> int:
        """Narrowest face that may call a file "likely fake" by itself: the vouch line, unless
        the model's config records a measured lower line (``small_face_fake_ok_from_px``)."""
        return face_lines(self.config)["accused"][media_type]

    # -- network calls ------------------------------------------------------------------
    def _features(self, chips: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N, S, S, 3) uint8 -> fmaps (N, h, w, C), pooled (N, C), frame logits (N,)."""
        fmaps, pooled, logits = [], [], []
        with self._lock:
            for i in range(0, len(chips), BATCH):
                x = self.nets.preprocess(chips[i:i + BATCH])
                fm, po = self._frame_fn(x)
                lg = self.nets.frame_head(po, training=False)
                fmaps.append(np.asarray(fm))
                pooled.append(np.asarray(po))
                logits.append(np.asarray(lg)[:, 0])
        return np.concatenate(fmaps), np.concatenate(pooled), np.concatenate(logits)

    def track_logit(self, pooled: np.ndarray, frame_logits: np.ndarray) -> float:
        """One track: pooled (T, C), frame_logits (T,) -> uncalibrated track logit."""
        t = min(len(pooled), self.cfg.max_sequence)
        idx = np.linspace(0, len(pooled) - 1, t).round().astype(int)
        n = self.cfg.max_sequence  # always padded to one length (masked): one traced graph
        feats = np.zeros((1, n, pooled.shape[1]), np.float32)
        lg = np.zeros((1, n, 1), np.float32)
        mask = np.zeros((1, n), dtype=bool)
        feats[0, :t] = pooled[idx]
        lg[0, :t, 0] = frame_logits[idx]
        mask[0, :t] = True
        with self._lock:
            out = self._temporal_fn(feats, lg, mask)
        return float(np.asarray(out)[0, 0])

    def _decode_and_find(self, path: str | Path, max_duration: float | None,
                         timings: dict[str, float], report) -> tuple[SampledFrames, list]:
        """Sample a clip's frames and find their faces, each frame as soon as it is decoded
        (the next one decodes meanwhile, on the other core). ``timings``: "decode" until the
        last frame is decoded, "detect" the face finding left after that; "detect_overlapped"
        the face finding done while decoding."""
        n = self.cfg.frames
        t = time.perf_counter()
        stream = FrameStream(path, n, max_duration=max_duration)
        clip, busy = ClipFaces(n), 0.0
        for k, frame in enumerate(stream):
            report("decode", k / n)
            t1 = time.perf_counter()
            clip.add(frame)
            busy += time.perf_counter() - t1
        sampled = stream.result()
        end = stream.finished_at or time.perf_counter()
        timings["decode"] = end - t
        report("detect", 0.0)
        # Fewer frames than asked (a short or cut clip): the key frames chosen for n were wrong.
        per_frame = clip.finish() if len(sampled.frames) == n else find_faces(sampled.frames)
        timings["detect"] = time.perf_counter() - end
        timings["detect_overlapped"] = busy
        return sampled, per_frame

    def _check_finite(self, values: np.ndarray, what: str) -> None:
        """Raise :class:`ModelOutputError` when the network answered NaN or infinity."""
        if not np.all(np.isfinite(values)):
            raise ModelOutputError(
                f"The detector's model (version {self.cfg.version}) produced invalid {what} "
                "(NaN or infinite), so no verdict can be given. The fault is in the model, not in "
                "the file: its weights are damaged; restore the shipped model/ folder or retrain."
            )

    # -- the pipeline -------------------------------------------------------------------
    def analyze(self, path: str | Path, *, progress: ProgressCallback | None = None,
                max_duration: float | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                explain: bool = True) -> Analysis:
        """Analyse one photo or clip. Raises a ``DetectionError`` subclass for bad media."""
        def report(stage: str, frac: float) -> None:
            if progress:
                progress(stage, float(min(max(frac, 0.0), 1.0)))

        timings: dict[str, float] = {}
        t_all = t = time.perf_counter()
        report("decode", 0.0)
        if is_photo(path):
            sampled: SampledFrames = load_media(path, self.cfg.frames, max_pixels=max_pixels)
            timings["decode"] = time.perf_counter() - t
            t = time.perf_counter()
            per_frame = [detect_faces(sampled.frames[0], thorough=True, enhanced=None)]
            timings["detect"] = time.perf_counter() - t
        else:
            sampled, per_frame = self._decode_and_find(path, max_duration, timings, report)
        report("detect", 1.0)
        info = sampled.info

        t = time.perf_counter()
        tracks = link_tracks(per_frame)
        flat = [tf for tr in tracks for tf in tr]
        chips = (np.stack([make_chip(sampled.frames[tf.frame], tf.face, self.cfg.chip_size,
                                     self.cfg.chip_padding) for tf in flat])
                 if flat else np.zeros((0, self.cfg.chip_size, self.cfg.chip_size, 3), np.uint8))
        # A face too small to judge is still shown and followed, but gets no score.
        min_px = self.min_face_px(info.media_type) * sampled.scale
        track_px = [float(np.median([tf.face.size for tf in tr])) * sampled.scale for tr in tracks]
        judged = [px >= min_px for px in track_px]
        scored = np.array([judged[tf.track] for tf in flat], dtype=bool)
        timings["align"] = time.perf_counter() - t
        report("align", 1.0)

        warnings = list(sampled.warnings or [])
        base = dict(path=str(path), media=info, frames_sampled=len(sampled.frames),
                    faces_found=len(flat), thresholds=self.cfg.thresholds_for(info.media_type),
                    model_version=self.cfg.version, warnings=warnings, min_face_px=round(min_px))
        if not flat:
            timings["total"] = time.perf_counter() - t_all
            report("done", 1.0)
            return Analysis(tracks=[], frames=[], p_fake=None, verdict="no_face",
                            timings=_round(timings), **base)
        if not all(judged):
            what = "All faces were" if not any(judged) else f"{judged.count(False)} face(s) were"
            small = max(px for px, ok in zip(track_px, judged, strict=True) if not ok)
            warnings.append(f"{what} too small to judge (largest {round(small)} px wide; the "
                            f"model needs at least {round(min_px)} px): shown, but not scored.")

        t = time.perf_counter()
        report("features", 0.0)
        n_scored = int(scored.sum())
        fmaps, pooled, logits = (self._features(chips[scored]) if n_scored
                                 else (np.zeros((0,)), np.zeros((0, 1)), np.zeros((0,))))
        self._check_finite(logits, "frame scores")
        timings["features"] = time.perf_counter() - t
        report("features", 1.0)

        t = time.perf_counter()
        frame_p = np.full(len(flat), np.nan)
        frame_p[scored] = sigmoid(logits / self.cfg.frame_temperature)
        row = np.cumsum(scored) - 1  # position of a scored chip in fmaps / pooled / logits
        track_scores: list[TrackScore] = []
        frame_scores: list[FrameScore] = []
        pos = 0
        for ti, tr in enumerate(tracks):
            sl = slice(pos, pos + len(tr))
            pos += len(tr)
            stamps = [sampled.timestamps[tf.frame] for tf in tr]
            p = mean = None
            if judged[ti]:
                rows = row[sl]
                track_logit = self.track_logit(pooled[rows], logits[rows])
                self._check_finite(np.array([track_logit]), "track score")
                p = round(self.cfg.probability(track_logit, info.media_type), 4)
                mean = round(float(np.mean(frame_p[sl])), 4)
            track_scores.append(TrackScore(
                id=ti, n_frames=len(tr), p_fake=p, p_fake_frame_mean=mean,
                first_timestamp=min(stamps), last_timestamp=max(stamps),
                face_px=round(track_px[ti]), judged=judged[ti]))
            for k, tf in enumerate(tr):
                box = tuple(int(round(v * sampled.scale)) for v in tf.face.box)
                fp = frame_p[sl][k]
                frame_scores.append(FrameScore(
                    index=sampled.indices[tf.frame], timestamp=sampled.timestamps[tf.frame],
                    track=ti, box=box, p_fake=None if np.isnan(fp) else round(float(fp), 4)))
        frame_scores.sort(key=lambda f: (f.timestamp, f.track))
        if not any(judged):
            timings["classify"] = time.perf_counter() - t
            timings["total"] = time.perf_counter() - t_all
            chip_list = [Chip(index=sampled.indices[tf.frame], timestamp=sampled.timestamps[tf.frame],
                              track=tf.track, p_fake=None, image=chips[j]) for j, tf in enumerate(flat)]
            chip_list.sort(key=lambda c: (c.timestamp, c.track))
            report("done", 1.0)
            return Analysis(tracks=track_scores, frames=frame_scores, p_fake=None, verdict="no_face",
                            timings=_round(timings), chips=chip_list,
                            largest_face_px=round(max(track_px)), **base)
        judged_tracks = [t for t in track_scores if t.judged]
        longest = max(t.n_frames for t in judged_tracks)
        decisive = [t for t in judged_tracks
                    if t.n_frames >= max(1, math.ceil(MIN_TRACK_FRACTION * longest))]
        p_fake = max(t.p_fake for t in decisive)
        if len(judged_tracks) > len(decisive):
            warnings.append(f"{len(judged_tracks) - len(decisive)} briefly seen face(s) were shown "
                            "but did not count towards the verdict.")
        verdict = self.cfg.verdict(p_fake, info.media_type)
        vouch_px = self.vouch_face_px(info.media_type) * sampled.scale
        smallest = min(track_px[tr.id] for tr in decisive)
        unvouched = verdict == "real" and smallest < vouch_px
        if unvouched:  # explained by the fields (web: the verdict sentence)
            verdict = "inconclusive"
        # The clip is judged by its most suspicious face; a face too small to vouch for may only
        # accuse by itself where the model was measured not to call real faces that small fake.
        accuse_px = self.fake_ok_from_px(info.media_type) * sampled.scale
        unaccused = verdict == "fake" and not any(
            track_px[tr.id] >= accuse_px and self.cfg.verdict(tr.p_fake, info.media_type) == "fake"
            for tr in decisive)
        if unaccused:
            verdict = "inconclusive"
            top = max(decisive, key=lambda tr: tr.p_fake)
            warnings.append(
                f"The most suspicious face ({round(track_px[top.id])} px wide) scored in the fake band, but "
                f"this model may call a file \"likely fake\" on a face narrower than {round(accuse_px)} px "
                "only where it was measured to call at most 2% of real faces that small fake, and it was "
                "not: the verdict is inconclusive.")
        timings["classify"] = time.perf_counter() - t
        report("classify", 1.0)

        t = time.perf_counter()
        report("explain", 0.0)
        order = np.argsort(-np.nan_to_num(frame_p, nan=-1.0))[:EXPLAIN_TOP]
        top = [int(j) for j in order if scored[j]] if explain else []
        cam_of = dict(zip(top, self.nets.cam(fmaps[row[top]]), strict=True)) if top else {}
        chip_list = []
        for j, tf in enumerate(flat):
            heat = overlay_heatmap(chips[j], cam_of[j]) if j in cam_of else None
            chip_list.append(Chip(index=sampled.indices[tf.frame], timestamp=sampled.timestamps[tf.frame],
                                  track=tf.track,
                                  p_fake=None if np.isnan(frame_p[j]) else round(float(frame_p[j]), 4),
                                  image=chips[j], heatmap=heat))
        timings["explain"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - t_all
        chip_list.sort(key=lambda c: (c.timestamp, c.track))
        report("done", 1.0)
        return Analysis(tracks=track_scores, frames=frame_scores, p_fake=round(p_fake, 4),
                        verdict=verdict, timings=_round(timings), chips=chip_list,
                        largest_face_px=round(max(track_px)), unvouched=unvouched,
                        vouch_face_px=round(vouch_px), unaccused=unaccused,
                        fake_ok_from_px=round(accuse_px), **base)


def _round(t: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in t.items()}


_detectors: registry.ModelCache[Detector] = registry.ModelCache(Detector)


def get_detector(model: str | Path | None = None, *, root: str | Path | None = None) -> Detector:
    """The process-wide detector for ``model``: a version of the registry at ``root`` (default
    $DEEPFAKE_MODEL_DIR or model/), a model folder, a registry root, or None for the default.

    Each model is loaded once, on first use; at most $MODEL_CACHE_SIZE (default 2) stay loaded,
    least recently used evicted first. An unknown version raises ``UnknownModelError``.
    """
    return _detectors.get(registry.resolve(model, root).path)


def analyze(path: str | Path, *, progress: ProgressCallback | None = None,
            model_dir: str | Path | None = None, **kwargs) -> Analysis:
    """Analyse ``path`` with the process-wide detector for ``model_dir`` (a version, a folder
    or None for the default). See :meth:`Detector.analyze`."""
    return get_detector(model_dir).analyze(path, progress=progress, **kwargs)
