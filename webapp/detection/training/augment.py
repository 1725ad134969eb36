"""Augmentations that real uploads need, and self-blended synthetic fakes (SBI).

All functions take and return (S, S, 3) uint8 RGB chips and a ``numpy.random.Generator``.

SBI (Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images", CVPR 2022): a real
face is blended with a slightly transformed copy of itself inside a soft landmark mask. The
result has the blending boundary, colour and sharpness mismatch of a face swap with no
generator fingerprint, so the detector learns the boundary, not one generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Rng = np.random.Generator


# ---------------------------------------------------------------- ordinary augmentation
def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Re-compress as JPEG at ``quality`` (1..100)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) if ok else img


def rescale(img: np.ndarray, factor: float) -> np.ndarray:
    """Downscale by ``factor`` (< 1) and back up: the softness of a low-resolution source."""
    s = img.shape[0]
    small = max(8, int(round(s * factor)))
    interp = [cv2.INTER_LINEAR, cv2.INTER_AREA, cv2.INTER_CUBIC]
    down = cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA)
    return cv2.resize(down, (s, s), interpolation=interp[small % 3])


def shift(img: np.ndarray, dx: float, dy: float, scale: float = 1.0) -> np.ndarray:
    """Translate by (dx, dy) fractions of the size and scale about the centre (reflect border)."""
    s = img.shape[0]
    m = cv2.getRotationMatrix2D((s / 2, s / 2), 0.0, scale)
    m[:, 2] += (dx * s, dy * s)
    return cv2.warpAffine(img, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def colour(img: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """Brightness offset (-1..1 of 255), contrast and saturation factors."""
    x = img.astype(np.float32)
    mean = x.mean()
    x = (x - mean) * contrast + mean + brightness * 255
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * saturation
    return np.clip(x, 0, 255).astype(np.uint8)


def darken(img: np.ndarray, gamma: float, gain: float) -> np.ndarray:
    """A dim room: gamma > 1 crushes shadows, ``gain`` < 1 lowers exposure."""
    x = (img.astype(np.float32) / 255.0) ** gamma * gain
    return np.clip(x * 255.0, 0, 255).astype(np.uint8)


def small_face(img: np.ndarray, face_px: float) -> np.ndarray:
    """The softness of a face only ``face_px`` wide in the source, brought back to chip size
    (the chip's face spans about 1 / (1 + 2 * padding) = 70% of it)."""
    return rescale(img, min(1.0, face_px / (0.7 * img.shape[0])))


def augment(img: np.ndarray, rng: Rng, strength: float = 1.0) -> np.ndarray:
    """A random chain of what uploads go through (probabilities scale with ``strength``):
    flips, jitter, colour, a small or far-away face, dim light, blur, sensor noise and JPEG.
    Applied alike to reals and fakes, so none of them is a cue for "fake"."""
    p = strength
    if rng.random() < 0.5:
        img = img[:, ::-1]
    if rng.random() < 0.5 * p:
        img = shift(img, rng.uniform(-0.04, 0.04), rng.uniform(-0.04, 0.04), rng.uniform(0.95, 1.05))
    if rng.random() < 0.5 * p:
        img = colour(img, rng.uniform(-0.1, 0.1), rng.uniform(0.8, 1.2), rng.uniform(0.7, 1.3))
    if rng.random() < 0.2 * p:
        img = darken(img, rng.uniform(1.0, 2.2), rng.uniform(0.3, 0.8))
    r = rng.random()
    if r < 0.2 * p:
        img = small_face(img, rng.uniform(40, 110))
    elif r < 0.4 * p:
        img = rescale(img, rng.uniform(0.5, 0.95))
    if rng.random() < 0.15 * p:
        k = int(rng.choice([3, 5]))
        img = cv2.GaussianBlur(img, (k, k), 0)
    if rng.random() < 0.2 * p:
        noise = rng.normal(0, rng.uniform(2, 10), img.shape)
        img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.7 * p:
        img = jpeg(img, int(rng.integers(30, 101)))
    return np.ascontiguousarray(img)


# ---------------------------------------------------------------- self-blended images
@dataclass
class BlendParams:
    """One draw of SBI's random choices; a clip reuses one draw with small per-frame drift."""

    scale: float
    dx: float
    dy: float
    brightness: float
    contrast: float
    saturation: float
    hue_shift: float
    sharpen: float  # > 0 sharpen, < 0 blur, as an unsharp-mask amount
    hull: str  # "full" (jaw + brows) or "inner" (no jaw, raised brows)
    dilate: float  # mask dilation/erosion as a fraction of size (negative erodes)
    soften: float  # mask blur sigma as a fraction of size
    ratio: float  # blend opacity of the source inside the mask

    @classmethod
    def draw(cls, rng: Rng) -> BlendParams:
        return cls(
            scale=rng.uniform(0.95, 1.05), dx=rng.uniform(-0.02, 0.02), dy=rng.uniform(-0.02, 0.02),
            brightness=rng.uniform(-0.06, 0.06), contrast=rng.uniform(0.9, 1.1),
            saturation=rng.uniform(0.85, 1.15), hue_shift=rng.uniform(-6, 6),
            sharpen=rng.choice([rng.uniform(-1.0, -0.3), rng.uniform(0.3, 1.0), 0.0]),
            hull=str(rng.choice(["full", "inner"])), dilate=rng.uniform(-0.03, 0.03),
            soften=rng.uniform(0.01, 0.05), ratio=float(rng.choice([0.5, 0.75, 1.0, 1.0, 1.0])),
        )

    def drift(self, rng: Rng, amount: float = 0.15) -> BlendParams:
        """A nearby draw: the frame-to-frame wobble of a real face swap's mask and colour."""
        def j(v: float, span: float) -> float:
            return v + rng.normal(0, amount * span)
        return BlendParams(
            scale=j(self.scale, 0.05), dx=j(self.dx, 0.02), dy=j(self.dy, 0.02),
            brightness=j(self.brightness, 0.06), contrast=j(self.contrast, 0.1),
            saturation=j(self.saturation, 0.15), hue_shift=j(self.hue_shift, 6),
            sharpen=j(self.sharpen, 0.5), hull=self.hull, dilate=j(self.dilate, 0.02),
            soften=max(0.005, j(self.soften, 0.02)), ratio=self.ratio)


def face_mask(landmarks: np.ndarray, size: int, params: BlendParams) -> np.ndarray:
    """Soft (S, S) float32 mask in [0, 1] of the face region given 68 landmarks (x, y)."""
    pts = landmarks.astype(np.float32).copy()
    if params.hull == "inner":
        pts = pts[17:]  # brows, nose, eyes, mouth: no jaw line
        brow = pts[:10].copy()
        brow[:, 1] -= 0.06 * size  # raise the brows to include the forehead edge
        pts = np.concatenate([pts, brow])
    hull = cv2.convexHull(pts.astype(np.int32))
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, hull, 255)
    k = int(abs(params.dilate) * size) * 2 + 1
    if k > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        mask = cv2.dilate(mask, kernel) if params.dilate > 0 else cv2.erode(mask, kernel)
    sigma = max(0.5, params.soften * size)
    soft = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), sigma)
    soft = np.clip(soft * (mask.max() > 0), 0, 1)
    return soft


def _source(img: np.ndarray, p: BlendParams) -> np.ndarray:
    src = shift(img, p.dx, p.dy, p.scale)
    src = colour(src, p.brightness, p.contrast, p.saturation)
    if abs(p.hue_shift) > 0.5:
        hsv = cv2.cvtColor(src, cv2.COLOR_RGB2HSV).astype(np.int16)
        hsv[..., 0] = (hsv[..., 0] + int(round(p.hue_shift / 2))) % 180
        src = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    if p.sharpen < -0.05:
        src = cv2.GaussianBlur(src, (0, 0), -p.sharpen * 1.5)
    elif p.sharpen > 0.05:
        blur = cv2.GaussianBlur(src, (0, 0), 1.5)
        src = cv2.addWeighted(src, 1 + p.sharpen, blur, -p.sharpen, 0)
    return src


def self_blend(img: np.ndarray, landmarks: np.ndarray, params: BlendParams) -> tuple[np.ndarray, np.ndarray]:
    """Blend a transformed copy of a real chip into itself.

    img: (S, S, 3) uint8 RGB real chip; landmarks: (68, 2) float32 in chip pixels.
    Returns (fake (S, S, 3) uint8, mask (S, S) float32 in [0, 1]).
    """
    s = img.shape[0]
    mask = face_mask(landmarks, s, params) * params.ratio
    src = _source(img, params).astype(np.float32)
    out = mask[..., None] * src + (1 - mask[..., None]) * img.astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8), mask
