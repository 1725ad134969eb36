"""Self-made fakes for the families that fool detectors, and quality-symmetric augmentation.

Self-blended images (:mod:`.augment`) teach a face swap's seam. Talking heads leave no seam:
* :func:`lipsync_fake`: the lower face re-rendered at low resolution with the mouth opened or
  closed, blended back under a soft lower-face mask (what Wav2Lip and its kin do: a 96-px mouth
  pasted on a sharp face).
* :func:`animation_fake`: the face of another frame of the same person warped onto this frame's
  landmarks by a smooth field and resampled (what reenactment/animation models do: appearance
  from a source image, geometry from a driver), blended under a soft face mask.
Each returns ``(fake, mask)``; outside the mask (``mask == 0``) the fake equals its source
exactly, so the only difference a model can learn is the manipulation inside.

:func:`quality_view` degrades or polishes a chip the same way whatever its label (sharpen,
smooth/beautify, upscale from low resolution, denoise, re-encode), so sharpness, studio light
and compression stop being evidence. All arrays are (S, S, 3) uint8 RGB chips with (68, 2)
float32 landmarks in chip pixels (:func:`..faces.landmarks68`).
"""

from __future__ import annotations

import cv2
import numpy as np

from .augment import jpeg

Rng = np.random.Generator

JAW_LOW = list(range(3, 14))  # jaw from below the cheekbone round the chin
NOSE_BASE = [31, 32, 33, 34, 35]
MOUTH = list(range(48, 68))


def _soft(mask: np.ndarray, sigma: float) -> np.ndarray:
    """A hard uint8 mask -> soft float32 in [0, 1] that is exactly 0 where the blur does not reach."""
    soft = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), max(sigma, 0.5))
    soft[soft < 1e-3] = 0.0
    return np.clip(soft, 0.0, 1.0)


def lower_face_mask(lm: np.ndarray, size: int, soften: float = 0.04) -> np.ndarray:
    """Soft (S, S) mask of the lower face (nose base, cheeks, mouth, chin) from 68 landmarks."""
    pts = lm[JAW_LOW + NOSE_BASE + MOUTH].astype(np.int32)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(pts), 255)
    return _soft(mask, soften * size)


def full_face_mask(lm: np.ndarray, size: int, soften: float = 0.04) -> np.ndarray:
    """Soft (S, S) mask of the whole face (jaw line and brows, brows raised a little)."""
    pts = lm.astype(np.float32).copy()
    brows = pts[17:27].copy()
    brows[:, 1] -= 0.05 * size
    hull = cv2.convexHull(np.concatenate([pts, brows]).astype(np.int32))
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, hull, 255)
    return _soft(mask, soften * size)


def _blend(src: np.ndarray, fake_layer: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None]
    out = m * fake_layer.astype(np.float32) + (1.0 - m) * src.astype(np.float32)
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    out[mask == 0] = src[mask == 0]  # bit-exact outside the mask
    return out


def draw_lipsync(rng: Rng) -> dict:
    """One clip's lip-sync parameters (a clip keeps them; the mouth moves per frame)."""
    return {"render_px": int(rng.choice([64, 96, 96, 128])), "soften": float(rng.uniform(0.02, 0.06)),
            "colour": rng.uniform(-6, 6, 3).astype(np.float32), "sharpen": float(rng.choice([0.0, 0.0, 0.6])),
            "jpeg": int(rng.integers(60, 95))}


def lipsync_fake(chip: np.ndarray, lm: np.ndarray, params: dict, mouth_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The lower face re-rendered at ``params["render_px"]`` with the mouth stretched vertically
    by ``mouth_scale`` (< 1 closes it, > 1 opens it) about its centre, blended back."""
    s = chip.shape[0]
    mouth = lm[MOUTH]
    cx, cy = mouth.mean(0)
    h = max(float(np.ptp(mouth[:, 1])), 0.04 * s)
    # Vertical stretch about the mouth centre, fading out over ~1.5 mouth heights.
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    w = np.exp(-(((xx - cx) / (0.9 * np.ptp(mouth[:, 0]) + 1)) ** 2 + ((yy - cy) / (1.5 * h)) ** 2))
    map_y = yy - w * (yy - cy) * (1.0 - 1.0 / mouth_scale)
    moved = cv2.remap(chip, xx, map_y.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    r = params["render_px"]
    low = cv2.resize(moved, (r, r), interpolation=cv2.INTER_AREA)
    low = jpeg(low, params["jpeg"])
    layer = cv2.resize(low, (s, s), interpolation=cv2.INTER_CUBIC).astype(np.float32) + params["colour"]
    if params["sharpen"]:
        blur = cv2.GaussianBlur(layer, (0, 0), 1.2)
        layer = layer * (1 + params["sharpen"]) - blur * params["sharpen"]
    mask = lower_face_mask(lm, s, params["soften"])
    return _blend(chip, np.clip(layer, 0, 255), mask), mask


def _landmark_field(src_lm: np.ndarray, dst_lm: np.ndarray, size: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Backward maps (map_x, map_y) taking each output pixel near ``dst_lm[i]`` to where the same
    landmark is in the source: a Gaussian-weighted (smooth) interpolation of the 68 offsets."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    d = (src_lm - dst_lm).astype(np.float32)  # (68, 2)
    num_x = np.zeros((size, size), np.float32)
    num_y = np.zeros((size, size), np.float32)
    den = np.full((size, size), 1e-3, np.float32)
    for (px, py), (dx, dy) in zip(dst_lm, d, strict=True):
        g = np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * sigma ** 2))
        num_x += g * dx
        num_y += g * dy
        den += g
    return xx + num_x / den, yy + num_y / den


def draw_animation(rng: Rng) -> dict:
    return {"sigma": float(rng.uniform(0.06, 0.12)), "soften": float(rng.uniform(0.02, 0.05)),
            "render_px": int(rng.choice([128, 160, 224])), "jitter": float(rng.uniform(0.0, 0.01))}


def animation_fake(chip: np.ndarray, lm: np.ndarray, source: np.ndarray, source_lm: np.ndarray,
                   params: dict, rng: Rng | None = None) -> tuple[np.ndarray, np.ndarray]:
    """This frame's face re-made from ``source`` (another frame of the same person): the source
    warped so its landmarks land on ``lm`` by a smooth field, resampled at ``render_px``, and
    blended under the face mask."""
    s = chip.shape[0]
    target = lm.copy()
    if rng is not None and params["jitter"]:
        target = target + rng.normal(0, params["jitter"] * s, target.shape).astype(np.float32)
    mx, my = _landmark_field(source_lm, target, s, params["sigma"] * s)
    warped = cv2.remap(source, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    r = params["render_px"]
    if r < s:
        warped = cv2.resize(cv2.resize(warped, (r, r), interpolation=cv2.INTER_AREA), (s, s),
                            interpolation=cv2.INTER_LINEAR)
    mask = full_face_mask(lm, s, params["soften"])
    return _blend(chip, warped, mask), mask


# ---------------------------------------------------------------- quality-symmetric views
QUALITY_OPS = ("sharpen", "beautify", "upscale", "denoise", "reencode", "none")


def quality_view(chip: np.ndarray, rng: Rng, op: str | None = None) -> np.ndarray:
    """The chip sharpened, smoothed (beauty filter), upscaled from a low resolution, denoised or
    re-encoded: the same draw for real and fake chips, so image quality says nothing of the label."""
    op = op or str(rng.choice(QUALITY_OPS))
    s = chip.shape[0]
    if op == "sharpen":
        amount = rng.uniform(0.5, 1.5)
        blur = cv2.GaussianBlur(chip, (0, 0), rng.uniform(1.0, 2.0))
        return cv2.addWeighted(chip, 1 + amount, blur, -amount, 0)
    if op == "beautify":
        return cv2.bilateralFilter(chip, 9, rng.uniform(30, 80), rng.uniform(5, 12))
    if op == "upscale":
        r = int(rng.uniform(0.25, 0.6) * s)
        low = cv2.resize(chip, (r, r), interpolation=cv2.INTER_AREA)
        return cv2.resize(low, (s, s), interpolation=int(rng.choice([cv2.INTER_LINEAR, cv2.INTER_CUBIC])))
    if op == "denoise":
        return cv2.fastNlMeansDenoisingColored(chip, None, rng.uniform(3, 8), rng.uniform(3, 8), 5, 11)
    if op == "reencode":
        return jpeg(chip, int(rng.integers(30, 80)))
    return chip.copy()
