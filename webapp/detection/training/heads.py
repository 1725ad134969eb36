"""Heads on a frozen backbone: the linear frame scorer and the temporal LSTM, fitted on a feature
bank (:mod:`.bank`) in seconds, so k folds and ablations are affordable on two cores.

* :func:`fit_frame_head`: L2-regularised logistic regression on pooled features (weighted).
  It stays linear, so its class activation map is still Grad-CAM at serving time.
* :func:`cross_fit_logits`: out-of-fold frame logits for the temporal model's training
  sequences (inner folds by unit), so the LSTM never learns from logits of chips the frame
  scorer was fitted on.
* :func:`fit_temporal`: the engine's own temporal network (:func:`..classifier.build_temporal`).
* :class:`Heads`: both, with :meth:`Heads.track_logits` scoring sequences as the engine does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from .bank import Seq
from .footage import grouped_folds

log = logging.getLogger(__name__)

#: Total weight of each domain of training sequences; within a domain reals and fakes weigh alike.
DOMAIN_SHARE = {"clip": 0.35, "selfmade": 0.15, "photo": 0.2, "crop": 0.3}


def domain_of(s: Seq) -> str:
    if s.view == "selfmade" and s.media == "video":
        return "selfmade"
    if s.media == "video":
        return "clip"
    return "photo" if s.key.startswith("photos/") else "crop"


def seq_weights(seqs: Sequence[Seq], share: dict[str, float] = DOMAIN_SHARE) -> np.ndarray:
    """One weight per sequence: the domain's share split equally between its reals and fakes,
    and among the reals of a clip domain equally between kinds of footage (no kind is drowned)."""
    w = np.zeros(len(seqs))
    doms = np.array([domain_of(s) for s in seqs])
    y = np.array([s.label for s in seqs])
    kinds = np.array([s.kind for s in seqs])
    present = {d for d in doms if (y[doms == d] == 0).any() or (y[doms == d] == 1).any()}
    total = sum(share.get(d, 0.0) for d in present) or 1.0
    for d in present:
        for lab in (0, 1):
            m = (doms == d) & (y == lab)
            if not m.any():
                continue
            part = share.get(d, 0.0) / total / 2
            if lab == 0 and d == "clip":
                ks = sorted(set(kinds[m]))
                for k in ks:
                    mk = m & (kinds == k)
                    w[mk] = part / len(ks) / mk.sum()
            else:
                w[m] = part / m.sum()
    return w * len(seqs)


def fit_frame_head(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = 1e-2) -> tuple[np.ndarray, float]:
    """Weighted logistic regression: x (N, C), y (N,) 0/1, w (N,) -> (coef (C,), bias).

    The loss is the weighted mean log-loss plus ``l2`` * |coef|^2 / 2."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    w = np.asarray(w, np.float64) / np.sum(w)

    def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
        coef, b = theta[:-1], theta[-1]
        z = x @ coef + b
        p = 1 / (1 + np.exp(-np.clip(z, -30, 30)))
        loss = np.sum(w * (np.logaddexp(0, z) - y * z)) + 0.5 * l2 * coef @ coef
        g = w * (p - y)
        return loss, np.concatenate([x.T @ g + l2 * coef, [g.sum()]])

    res = minimize(f, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x[:-1].astype(np.float32), float(res.x[-1])


def _frames(seqs: Sequence[Seq], w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every frame of every sequence, each weighing its sequence's weight / its length."""
    x = np.concatenate([s.feats for s in seqs]).astype(np.float32)
    y = np.concatenate([np.full(len(s.feats), s.label) for s in seqs])
    fw = np.concatenate([np.full(len(s.feats), wi / len(s.feats)) for s, wi in zip(seqs, w, strict=True)])
    return x, y, fw


def cross_fit_logits(seqs: Sequence[Seq], units: Sequence[str], w: np.ndarray, l2: float, k: int = 3) -> list[np.ndarray]:
    """Frame logits of each sequence from a frame head fitted on the other inner folds."""
    folds = np.array(grouped_folds(units, k, seed=1))
    out: list[np.ndarray | None] = [None] * len(seqs)
    for f in range(k):
        tr = np.flatnonzero(folds != f)
        coef, b = fit_frame_head(*_frames([seqs[i] for i in tr], w[tr]), l2=l2)
        for i in np.flatnonzero(folds == f):
            out[i] = seqs[i].feats.astype(np.float32) @ coef + b
    return out  # type: ignore[return-value]


def pad(feats: Sequence[np.ndarray], logits: Sequence[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sequences -> (B, n, C) features, (B, n, 1) logits, (B, n) mask; longer ones evenly thinned
    to ``n`` steps as the engine does (:meth:`..pipeline.Detector.track_logit`)."""
    c = feats[0].shape[1]
    f = np.zeros((len(feats), n, c), np.float32)
    g = np.zeros((len(feats), n, 1), np.float32)
    m = np.zeros((len(feats), n), bool)
    for i, (a, b) in enumerate(zip(feats, logits, strict=True)):
        t = min(len(a), n)
        idx = np.linspace(0, len(a) - 1, t).round().astype(int)
        f[i, :t], g[i, :t, 0], m[i, :t] = a[idx], b[idx], True
    return f, g, m


@dataclass
class Heads:
    """A fitted frame head (coef, bias) and temporal network (a Keras model)."""

    coef: np.ndarray
    bias: float
    temporal: object
    max_sequence: int

    def frame_logits(self, s: Seq) -> np.ndarray:
        return s.feats.astype(np.float32) @ self.coef + self.bias

    def track_logits(self, seqs: Sequence[Seq], batch: int = 256) -> np.ndarray:
        out = []
        for i in range(0, len(seqs), batch):
            part = seqs[i:i + batch]
            f, g, m = pad([s.feats for s in part], [self.frame_logits(s) for s in part], self.max_sequence)
            out.append(np.asarray(self.temporal([f, g, m], training=False))[:, 0])
        return np.concatenate(out) if out else np.zeros(0)


def fit_temporal(cfg, feats: Sequence[np.ndarray], logits: Sequence[np.ndarray], y: np.ndarray, w: np.ndarray,
                 epochs: int = 6, seed: int = 0):
    """The engine's temporal network fitted on sequences (weighted binary cross-entropy)."""
    import keras

    from ..classifier import build_temporal

    keras.utils.set_random_seed(seed)
    net = build_temporal(feats[0].shape[1], cfg)
    net.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    # Masked steps cost compute but change nothing: pad to the longest sequence, not max_sequence.
    f, g, m = pad(feats, logits, min(cfg.max_sequence, max(len(a) for a in feats)))
    net.fit([f, g, m], y.astype(np.float32), sample_weight=w.astype(np.float32), batch_size=64,
            epochs=epochs, verbose=0, shuffle=True)
    return net


def fit_heads(cfg, seqs: Sequence[Seq], units: Sequence[str], *, l2: float = 1e-2, oof_logits: bool = True,
              epochs: int = 6, seed: int = 0) -> Heads:
    """Frame head on every frame of ``seqs``, then the temporal network on the sequences with
    out-of-fold frame logits (``oof_logits``) or the fitted head's own."""
    w = seq_weights(seqs)
    coef, b = fit_frame_head(*_frames(seqs, w), l2=l2)
    if oof_logits:
        logits = cross_fit_logits(seqs, units, w, l2)
    else:
        logits = [s.feats.astype(np.float32) @ coef + b for s in seqs]
    y = np.array([s.label for s in seqs])
    net = fit_temporal(cfg, [s.feats for s in seqs], logits, y, w, epochs=epochs, seed=seed)
    return Heads(coef, b, net, cfg.max_sequence)


def shipped_heads(fz) -> Heads:
    """The frame head and temporal network of the model a :class:`.bank.Featurizer` loaded."""
    w, b = fz.nets.frame_head.get_layer("frame_logit").get_weights()
    return Heads(w[:, 0].astype(np.float32), float(b[0]), fz.nets.temporal, fz.cfg.max_sequence)
