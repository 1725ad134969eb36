"""The detector's networks and its config: a per-frame scorer and a temporal LSTM.

* Frame scorer: aligned chip -> backbone feature map (B, h, w, C) -> global average pool ->
  dropout -> Dense(1) = frame logit. The head is linear on pooled features, so its class
  activation map ``relu(fmap @ w)`` *is* Grad-CAM for that logit (the gradient of the logit with
  respect to each feature-map cell is ``w / (h*w)``); no gradient tape is needed at serving time.
* Temporal classifier: the sequence of one face track's pooled features (B, T, C) and frame
  logits (B, T, 1), with a mask (B, T) for padding, -> per-step projection -> bidirectional
  LSTM -> Dense(1) = track logit. A photo is a sequence of length 1.

:class:`ModelConfig` is saved beside the weights as ``config.json`` and read back at load time:
backbone, chip size and padding, frames, normalisation, temperatures, thresholds, version.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from .backbones import BACKBONES, get_backbone

CONFIG_FILE = "config.json"
FRAME_WEIGHTS = "frame_scorer.weights.h5"
TEMPORAL_WEIGHTS = "temporal.weights.h5"
#: What each backbone's ``preprocess`` does, recorded in config.json for people reading it.
NORMALISATION = {
    "efficientnet_lite0": "RGB uint8 -> x / 127.5 - 1",
    "efficientnetv2b0": "RGB uint8 -> float 0..255 (the network rescales internally)",
    "xception": "RGB uint8 -> x / 127.5 - 1",
}


@dataclass
class ModelConfig:
    """Everything needed to rebuild and use a trained detector exactly as it was trained."""

    version: str
    backbone: str = "efficientnet_lite0"
    chip_size: int = 224
    chip_padding: float = 0.2
    frames: int = 16
    max_sequence: int = 32
    lstm_units: int = 64
    proj_units: int = 128
    dropout: float = 0.3
    temperature: float = 1.0  # track logit / temperature -> calibrated p_fake
    # Per media type ("video", "image"): (scale, shift), p_fake = sigmoid(scale * logit + shift)
    # (Platt scaling, fitted apart for clips and photos: a photo is a sequence of one and its
    # logits sit elsewhere). None: the temperature above for both.
    calibration: dict[str, list[float]] | None = None
    frame_temperature: float = 1.0  # frame logit / frame_temperature -> shown per-frame p_fake
    real_below: float = 0.3  # p_fake below: "real"
    fake_above: float = 0.7  # p_fake at or above: "fake"; between: "inconclusive"
    # Clips' own bands: real footage scores higher as a clip (the temporal model reads whole
    # tracks) than as one photo, so clips need their own cut to keep false alarms down.
    # None: clips use the photo bands above.
    clip_real_below: float | None = None
    clip_fake_above: float | None = None
    # Narrowest face (pixels of the decoded frame, median over a track) the model is trusted to
    # judge, per media type ("video", "image"); measured per model with
    # `python -m benchmarks.false_alarms --min-face-px ...`. None: the engine's defaults.
    min_face_px: dict[str, int] | None = None
    # Narrowest face the model may call "likely real". Between min_face_px and this, a face is
    # scored and can be called "likely fake", but a score in the real band reads "inconclusive":
    # small faces' fakes drift into the real band. None: same as min_face_px.
    vouch_face_px: dict[str, int] | None = None
    # Narrowest face that may be called "likely fake" by itself, per media type: below the vouch
    # line a face accuses only where this model was measured to call at most 2% of real faces
    # of that size fake, on real footage held out of training (`python -m benchmarks.small_faces
    # --write`, which also stores the per-band rates in notes["small_face_false_alarms"]).
    # None (or a media type missing): no face under the vouch line accuses; it reads "inconclusive".
    small_face_fake_ok_from_px: dict[str, int] | None = None
    normalisation: str = ""
    trained_on: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def thresholds(self) -> dict[str, float]:
        return {"real_below": self.real_below, "fake_above": self.fake_above}

    def thresholds_for(self, media_type: str) -> dict[str, float]:
        """The bands for a "video" or an "image"."""
        if media_type == "video" and self.clip_fake_above is not None and self.clip_real_below is not None:
            return {"real_below": self.clip_real_below, "fake_above": self.clip_fake_above}
        return self.thresholds

    def probability(self, track_logit: float, media_type: str = "image") -> float:
        """Calibrated p_fake of a track logit for a "video" or an "image"."""
        scale, shift = (self.calibration or {}).get(media_type) or (1.0 / self.temperature, 0.0)
        return float(1.0 / (1.0 + np.exp(-(scale * track_logit + shift))))

    def verdict(self, p_fake: float | None, media_type: str = "image") -> str:
        """Band of a calibrated probability; ``None`` (no face) is never "real"."""
        if p_fake is None:
            return "no_face"
        t = self.thresholds_for(media_type)
        if p_fake >= t["fake_above"]:
            return "fake"
        if p_fake < t["real_below"]:
            return "real"
        return "inconclusive"

    def save(self, model_dir: str | Path) -> None:
        path = Path(model_dir) / CONFIG_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, model_dir: str | Path) -> ModelConfig:
        data = json.loads((Path(model_dir) / CONFIG_FILE).read_text(encoding="utf-8"))
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def build_frame_head(feature_dim: int, dropout: float) -> keras.Model:
    """Pooled features (B, C) -> frame logit (B, 1). Linear, so its CAM is Grad-CAM."""
    inp = keras.Input((feature_dim,), name="features")
    x = keras.layers.Dropout(dropout, name="head_dropout")(inp)
    out = keras.layers.Dense(1, name="frame_logit")(x)
    return keras.Model(inp, out, name="frame_head")


def build_temporal(feature_dim: int, cfg: ModelConfig) -> keras.Model:
    """Temporal classifier over one track.

    Inputs: ``features`` (B, T, C) float32, ``frame_logits`` (B, T, 1) float32, ``mask`` (B, T)
    bool (True = a real step, False = padding). Output: track logit (B, 1).
    """
    feats = keras.Input((None, feature_dim), name="features")
    logits = keras.Input((None, 1), name="frame_logits")
    mask = keras.Input((None,), dtype="bool", name="mask")
    x = keras.layers.Dropout(cfg.dropout, name="seq_dropout")(feats)
    x = keras.layers.Dense(cfg.proj_units, activation="relu", name="seq_proj")(x)
    x = keras.layers.Concatenate(name="seq_concat")([x, logits])
    x = keras.layers.Bidirectional(keras.layers.LSTM(cfg.lstm_units), name="bilstm")(x, mask=mask)
    x = keras.layers.Dropout(cfg.dropout, name="lstm_dropout")(x)
    out = keras.layers.Dense(1, name="track_logit")(x)
    return keras.Model([feats, logits, mask], out, name="temporal")


class DetectorNets:
    """The three Keras pieces of a detector, built from a config.

    ``features``: chip batch (B, S, S, 3) float32 normalised -> (fmap (B, h, w, C), pooled (B, C)).
    ``frame_head``: (B, C) -> (B, 1) logit. ``temporal``: see :func:`build_temporal`.
    """

    def __init__(self, cfg: ModelConfig, backbone_weights: str | Path | None = None):
        self.cfg = cfg
        self.spec = BACKBONES[cfg.backbone]
        self.backbone = get_backbone(cfg.backbone, weights=backbone_weights)
        self.features = self.backbone.feature_model()
        self.frame_head = build_frame_head(self.backbone.output_dim, cfg.dropout)
        self.temporal = build_temporal(self.backbone.output_dim, cfg)

    def preprocess(self, chips_uint8: np.ndarray) -> np.ndarray:
        """(B, S, S, 3) uint8 RGB -> the backbone's normalised float32 input."""
        return self.spec.preprocess(np.asarray(chips_uint8))

    def save(self, model_dir: str | Path) -> None:
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        frame = keras.Model(self.features.inputs,
                            self.frame_head(self.features.outputs[1]), name="frame_scorer")
        frame.save_weights(model_dir / FRAME_WEIGHTS)
        self.temporal.save_weights(model_dir / TEMPORAL_WEIGHTS)
        self.cfg.save(model_dir)

    def load_weights(self, model_dir: str | Path) -> None:
        model_dir = Path(model_dir)
        frame = keras.Model(self.features.inputs,
                            self.frame_head(self.features.outputs[1]), name="frame_scorer")
        frame.load_weights(model_dir / FRAME_WEIGHTS)
        self.temporal.load_weights(model_dir / TEMPORAL_WEIGHTS)

    def cam(self, fmap: np.ndarray) -> np.ndarray:
        """Grad-CAM of the frame logit. fmap (B, h, w, C) -> (B, h, w) float32 in [0, 1]."""
        w = self.frame_head.get_layer("frame_logit").get_weights()[0][:, 0]  # (C,)
        cam = np.maximum(np.tensordot(fmap, w, axes=([3], [0])), 0.0)
        top = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
        return (cam / np.maximum(top, 1e-6)).astype(np.float32)
