"""Face finding per skin tone x lighting x face size, on real clips of ../shared/data.

Which clips, and how the skin-tone groups were assigned: ``benchmarks/skin_tone_groups.csv``
lists 31 clips (one per recording) of ``videos/`` and ``generators/``, 10-11 per group, with
their group, assigned **by eye** (assisted): every real clip of both folders was chipped with
the site's own chip function and shown on a contact sheet of face chips (not kept: frames of
../shared data are never committed), sorted by a measured ITA (individual typology angle,
Chardon 1991: ``atan2(L* - 50, b*)`` on the cheeks of the chip, median over 8 frames, in the
CSV's ``ita`` column); clips were then picked and grouped by eye on the Fitzpatrick scale as
**lighter** (types I-III), **medium** (IV, mostly South Asian) and **darker** (V-VI). The ITA
was not used to decide: on video it follows the light and white balance more than the skin
(lighter-skinned faces under warm light measured ITA -40 to -85, a darker-skinned face in a
well-lit studio +14). The one fake clip in the list, ``videos/widuwuoiur.mp4`` (a DFDC face
swap of a darker-skinned woman: the issue's case), is real footage for a face finder.

Every clip (16 sampled frames, as ``analyze()`` samples them) is shown under each lighting,
synthesised from its real frames (:func:`light`):

- ``as is``: the frames untouched;
- ``dim``: gamma 1.8, gain 0.4 (a dim room; grey mean about a third of the original);
- ``very dim``: gamma 2.2, gain 0.25 (grey mean about a sixth);
- ``backlit``: the background brightened (gamma 0.8, gain 1.4) and a soft ellipse over the
  head and shoulders (1.3 x 1.8 face widths, Gaussian edge) darkened to 0.35: a bright window
  behind the person;
- ``coloured``: tungsten-orange light (R x 1.0, G x 0.72, B x 0.42), then gain 0.6;

at each face size: ``>=80 px``: the frames as they are (faces 87-258 px; a clip whose face is
under 80 px is enlarged so it is 100 px), ``60 px``: each frame shrunk into a 1920x1080 frame so
the face is 60 px wide (the rest: the frame's colours smeared, no face in it). The light is
applied after shrinking (the room is dark, not the picture). Truth: the face the full photo
detector (``detect_faces(thorough=True, enhanced=None)``) finds in the frame as is, moved with
the same transform; frames where it finds none are left out. Recall and false detections are
scored as in ``benchmarks/faces.py`` (a hit: a detection centre within half a face width).

    .venv/bin/python -m benchmarks.fairness                 # the table (about 10 min on 2 cores)
    .venv/bin/python -m benchmarks.fairness --ita           # re-measure the CSV's ita column
"""


from __future__ import annotations

import argparse
import csv
import math
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.faces import DATA, H, W, _affine, _backdrop, _move, score
from webapp.detection.faces import detect_faces, make_chip
from webapp.detection.media import sample_video

GROUPS_CSV = Path(__file__).with_name("skin_tone_groups.csv")
GROUPS = ("darker", "medium", "lighter")
LIGHTS = ("as is", "dim", "very dim", "backlit", "coloured")
SIZES = (">=80 px", "60 px")
N_FRAMES = 16
TARGET = {">=80 px": 0.98, "60 px": 0.95}


# ---------------------------------------------------------------- skin tone (ITA)
def ita_of_chip(chip: np.ndarray) -> float:
    """Individual typology angle (degrees) of the cheeks of an aligned (S, S, 3) uint8 RGB chip."""
    s = chip.shape[0]
    ys = slice(int(0.50 * s), int(0.65 * s))
    patch = np.concatenate([chip[ys, int(0.25 * s):int(0.40 * s)], chip[ys, int(0.60 * s):int(0.75 * s)]], axis=1)
    lab = cv2.cvtColor(np.ascontiguousarray(patch), cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float64)
    lum = np.median(lab[:, 0]) * 100 / 255  # OpenCV's 8-bit L is L* x 255/100, b is b* + 128
    b = np.median(lab[:, 2]) - 128
    return math.degrees(math.atan2(lum - 50, b))


def measure_clip(path: Path, n: int = 8) -> tuple[float, float] | None:
    """(median ITA, median face px) of a clip's largest face over ``n`` frames, or None."""
    s = sample_video(path, n)
    itas, sizes = [], []
    for fr in s.frames:
        faces = detect_faces(fr, thorough=True, enhanced=None)
        if faces:
            itas.append(ita_of_chip(make_chip(fr, faces[0], 112, 0.2)))
            sizes.append(faces[0].size * s.scale)
    if len(itas) < n // 2:
        return None
    return statistics.median(itas), statistics.median(sizes)



def remeasure_ita(path: Path = GROUPS_CSV) -> None:
    """Re-measure the ``ita`` and ``face_px`` columns of the CSV (the groups stay as assigned)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        m = measure_clip(DATA / r["clip"])
        r["ita"], r["face_px"] = (f"{m[0]:.1f}", f"{m[1]:.0f}") if m else ("", "")
        print(f"  {r['clip']}: {r['group']}, ITA {r['ita']}, face {r['face_px']} px", flush=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


# ---------------------------------------------------------------- the conditions
def light(frame: np.ndarray, kind: str, face: tuple | None) -> np.ndarray:
    """``frame`` (H, W, 3) uint8 RGB under the lighting ``kind`` (see the module doc); ``face``:
    the face box (x0, y0, x1, y1) the backlight leaves in shadow."""
    x = frame.astype(np.float32) / 255.0
    if kind == "dim":
        x = 0.4 * x ** 1.8
    elif kind == "very dim":
        x = 0.25 * x ** 2.2
    elif kind == "coloured":
        x = 0.6 * x * np.array([1.0, 0.72, 0.42], np.float32)
    elif kind == "backlit" and face is not None:
        h, w = frame.shape[:2]
        s = max(face[2] - face[0], face[3] - face[1])
        cx, cy = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2 + 0.4 * s
        mask = np.zeros((h, w), np.float32)
        cv2.ellipse(mask, (round(cx), round(cy)), (round(1.3 * s), round(1.8 * s)), 0, 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), 0.3 * s)[..., None]
        x = (1 - mask) * np.minimum(1.0, 1.4 * x ** 0.8) + mask * 0.35 * x
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


class Clip:
    """A listed clip: its 16 sampled frames and, per frame, the true face box (or None)."""

    def __init__(self, row: dict[str, str]):
        self.name, self.group = row["clip"], row["group"]
        self.frames = sample_video(DATA / row["clip"], N_FRAMES).frames
        self.boxes = []
        for fr in self.frames:
            faces = detect_faces(fr, thorough=True, enhanced=None)
            self.boxes.append(faces[0].box if faces else None)
        sizes = [max(b[2] - b[0], b[3] - b[1]) for b in self.boxes if b]
        self.face_px = float(np.median(sizes)) if sizes else 0.0
        mid = [b for b in self.boxes if b]
        self.median_box = tuple(float(np.median([b[k] for b in mid])) for k in range(4)) if mid else None


def condition(clip: Clip, kind: str, size: str) -> tuple[list[np.ndarray], list[list[tuple]]]:
    """The clip's frames under lighting ``kind`` at face size ``size``, and the true boxes."""
    frames, truths = [], []
    for fr, box in zip(clip.frames, clip.boxes, strict=True):
        h, w = fr.shape[:2]
        if size == "60 px":
            s = 60.0 / max(clip.face_px, 1.0)
            m = np.array([[s, 0, (W - w * s) * 0.6], [0, s, (H - h * s) * 0.4]])
            out = _affine(fr, m, _backdrop(fr))
        elif clip.face_px < 80:
            s = 100.0 / max(clip.face_px, 1.0)
            m = np.array([[s, 0, 0.0], [0, s, 0.0]])
            out = cv2.resize(fr, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC)
        else:
            m = np.array([[1.0, 0, 0], [0, 1.0, 0]])
            out = fr
        shadow = _move(box or clip.median_box, m)
        frames.append(light(out, kind, shadow))
        truths.append([_move(box, m)] if box else [])
    return frames, truths


def run(clips: list[Clip]) -> None:
    from webapp.detection.tracking import find_faces

    cells: dict[tuple[str, str, str], list] = {}
    t0 = time.time()
    for size in SIZES:
        for kind in LIGHTS:
            for clip in clips:
                frames, truths = condition(clip, kind, size)
                t = time.perf_counter()
                found = find_faces(frames)
                secs = time.perf_counter() - t
                hit, n, false = score(found, truths)
                c = cells.setdefault((clip.group, kind, size), [0, 0, 0, [], []])
                c[0] += hit
                c[1] += n
                c[2] += false
                c[3].append(secs)
                if hit < n:
                    c[4].append(f"{Path(clip.name).stem[:20]} {hit}/{n}")
            print(f"  {size} {kind}: done ({time.time() - t0:.0f} s)", flush=True)
    by_group = {g: sum(1 for c in clips if c.group == g) for g in GROUPS}
    print(f"\n{len(clips)} real clips x {N_FRAMES} frames ("
          + ", ".join(f"{g} {n}" for g, n in by_group.items()) + "); recall (faces found / there), "
          "false detections, face finding s/clip (median)\n")
    print("| face size | lighting | " + " | ".join(GROUPS) + " | false det. | s/clip |")
    print("|---|---|" + "---|" * len(GROUPS) + "---|---|")
    worst = []
    for size in SIZES:
        recalls = {}
        for kind in LIGHTS:
            row = []
            for g in GROUPS:
                hit, n = cells[(g, kind, size)][:2]
                recalls[(g, kind)] = hit / max(n, 1)
                row.append(f"{hit / max(n, 1):.1%} ({n})")
            false = sum(cells[(g, kind, size)][2] for g in GROUPS)
            secs = statistics.median(x for g in GROUPS for x in cells[(g, kind, size)][3])
            print(f"| {size} | {kind} | " + " | ".join(row) + f" | {false} | {secs:.2f} |")
        best, low = max(recalls.values()), min(recalls.values())
        ok = low >= TARGET[size] and best - low <= 0.02
        worst.append(f"{size}: lowest cell {low:.1%} (target >= {TARGET[size]:.0%}), best {best:.1%}, "
                     f"gap {100 * (best - low):.1f} points (target <= 2): {'met' if ok else 'MISSED'}")
    print("\n" + "\n".join(worst))
    misses = [f"{k[1]}/{k[2]}: " + ", ".join(v[4]) for k, v in cells.items() if v[4]]
    if misses:
        print("\nclips with misses (group cells above): " + "; ".join(misses))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ita", action="store_true", help="re-measure the CSV's ITA and face px columns instead")
    ap.add_argument("--groups", default=",".join(GROUPS), help="only these groups")
    args = ap.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} not found: this benchmark needs ../shared/data")
    if args.ita:
        remeasure_ita()
        return
    detect_faces(np.zeros((64, 64, 3), np.uint8))  # load the dlib models before timing
    with open(GROUPS_CSV, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["group"] in args.groups.split(",")]
    clips = [Clip(r) for r in rows]
    run([c for c in clips if c.face_px])


if __name__ == "__main__":
    main()
