"""Make issue 10's hard case from a real clip: the same footage as if filmed from about three
metres away in a dim room, in a 1920x1080 frame.

Every frame of the first ``--seconds`` is shrunk so the face is ``--face-px`` wide, placed
left of centre on a blurred backdrop of its own colours (no second face in it), darkened with
gamma 1.8 and gain 0.4 (as ``benchmarks/faces.py``'s "far 70 dark"), and written as H.264
(CRF 23, the DFDC clips' own quality). Audio is dropped.

    .venv/bin/python -m tools.far_dim_clip ../shared/data/videos/lynaeydofd.mp4 /tmp/far_dim.mp4 [--face-px 70]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import cv2
import numpy as np

W, H = 1920, 1080


def face_width(frames: list[np.ndarray]) -> float:
    """Median width of the largest face over a few frames (dlib, as the site finds it)."""
    from webapp.detection.faces import detect_faces

    widths = []
    for fr in frames[:: max(1, len(frames) // 8)]:
        faces = detect_faces(fr, thorough=True)
        if faces:
            widths.append(max(f.size for f in faces))
    if not widths:
        raise SystemExit("no face found in the source clip")
    return float(np.median(widths))


def far_dim(frame: np.ndarray, scale: float, gamma: float = 1.8, gain: float = 0.4) -> np.ndarray:
    """One RGB frame shrunk by ``scale`` into a dim 1920x1080 frame."""
    h, w = frame.shape[:2]
    small = cv2.resize(frame, (max(2, round(w * scale)), max(2, round(h * scale))), interpolation=cv2.INTER_AREA)
    canvas = cv2.resize(cv2.resize(frame, (16, 9), interpolation=cv2.INTER_AREA), (W, H), interpolation=cv2.INTER_CUBIC)
    y, x = round((H - small.shape[0]) * 0.4), round((W - small.shape[1]) * 0.4)
    canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
    lut = (255 * gain * (np.arange(256) / 255.0) ** gamma).clip(0, 255).astype(np.uint8)
    return cv2.LUT(canvas, lut)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--face-px", type=float, default=70.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    with av.open(str(args.src)) as inp:
        stream = inp.streams.video[0]
        fps = stream.average_rate or 30
        frames = []
        for f in inp.decode(stream):
            if f.time is not None and f.time >= args.seconds:
                break
            frames.append(f.to_ndarray(format="rgb24"))
    src_px = face_width(frames)
    scale = min(1.0, args.face_px / src_px)
    with av.open(str(args.dst), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        vs.options = {"crf": "23", "preset": "veryfast"}
        for fr in frames:
            out.mux(vs.encode(av.VideoFrame.from_ndarray(far_dim(fr, scale), format="rgb24")))
        out.mux(vs.encode(None))
    print(f"{args.dst}: {len(frames)} frames at {float(fps):.2f} fps, 1920x1080, face {src_px:.0f} -> "
          f"{src_px * scale:.0f} px, darkened")


if __name__ == "__main__":
    main()
