"""Numbers turned into what people see, in one place for pages, API, CSV and PDF alike:
scores and thresholds as percentages, the verdict gauge and the per-frame timeline's
geometry, byte sizes, durations, dates and ages.

Pure functions of their arguments (and the clock, for :func:`since`): no request, no
database, no engine. The templates get them as filters (``webapp.templating``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from ..models import as_utc

#: The verdict lines a result without its own thresholds is drawn with.
DEFAULT_THRESHOLDS = {"real_below": 0.3, "fake_above": 0.7}


# --------------------------------------------------------------------------- sizes, times


def human_bytes(n: float | None) -> str:
    """``1.5 MB``, ``200 MB``, ``512 bytes``; "–" for unknown."""
    if n is None:
        return "–"
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" or n >= 100 else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def since(value: datetime | None) -> str:
    """'3 minutes ago' style text for a UTC datetime."""
    value = as_utc(value)
    if value is None:
        return ""
    seconds = (datetime.now(UTC) - value).total_seconds()
    if seconds < 60:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return ""


def seconds(value: float | None) -> str:
    """``4.2 s``, ``3 min 07 s``; "–" for unknown."""
    if value is None:
        return "–"
    value = float(value)
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(round(value)), 60)
    return f"{minutes} min {secs:02d} s"


def date_time(value: datetime | None) -> str:
    """``2 Dec 2026, 08:30 UTC``; "–" for none."""
    value = as_utc(value)
    return value.strftime("%-d %b %Y, %H:%M UTC") if value else "–"


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` (the API's and the exports' dates)."""
    value = as_utc(value)
    return value.isoformat().replace("+00:00", "Z") if value else None


# --------------------------------------------------------------------------- scores


def pct(value: float | None, digits: int = 0) -> str:
    """A 0..1 figure as a percentage; never "100%" or "0%" for a score that is not exactly so."""
    if value is None:
        return "–"
    v = float(value) * 100
    lo, hi = 0.5 * 10**-digits, 100 - 0.5 * 10**-digits
    if v >= hi:  # a calibrated score is never a certainty: no "100%"
        return f">{100 - 10**-digits:g}%"
    if v < lo and v > 0:
        return f"<{10**-digits:g}%"
    return f"{v:.{digits}f}%"


def tpct(value: float) -> str:
    """A threshold as a percentage, with a decimal only when it has one (50%, 88.4%)."""
    return f"{float(value) * 100:.1f}".rstrip("0").rstrip(".") + "%"


def score_pct(p: float, t: dict[str, float]) -> str:
    """A score as a percentage; one decimal when it is within a point of a threshold, so
    88.2% (inconclusive) and 88.4% (fake) never both read "88%"."""
    near = any(abs(p - v) < 0.01 for v in t.values() if isinstance(v, int | float))
    if p >= 0.995:  # a calibrated model is never certain: never print 100%
        return ">99%"
    if p < 0.005:
        return "<1%"
    return f"{p * 100:.1f}%" if near else f"{p:.0%}"


def score_band(p: float | None, t: dict[str, float]) -> str:
    """The band a score falls in: "fake", "inconclusive", "real"; "no_face" for none."""
    if p is None:
        return "no_face"
    if p >= t.get("fake_above", 0.7):
        return "fake"
    if p < t.get("real_below", 0.3):
        return "real"
    return "inconclusive"


# --------------------------------------------------------------------------- charts


def gauge(p: float | None, t: dict[str, float]) -> dict[str, Any]:
    """A 0..100% bar with the two thresholds and the score marked (x in 0..1000 units)."""
    w = 1000
    return {
        "w": w,
        "lo": t["real_below"] * w,
        "hi": t["fake_above"] * w,
        "x": None if p is None else min(max(p, 0.0), 1.0) * w,
    }


def _nice_step(span: float, target: int = 6) -> float:
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def timeline(
    result: dict[str, Any], t: dict[str, float], *, width: int = 760, height: int = 260
) -> dict[str, Any] | None:
    """Geometry of the per-frame score chart, drawn as SVG by ``results/_charts.html``.

    One line per face track; the shaded bands and dashed lines are the verdict thresholds.
    ``width`` x ``height`` is the chart's size in SVG units (smaller for the side-by-side
    comparison of models, so its text keeps its size). None when no frame has a score.
    """
    frames = [f for f in result.get("frames", []) if f.get("p_fake") is not None]
    if not frames:
        return None
    W, H = width, height
    left, right, top, bottom = 52, 16, 14, 40
    pw, ph = W - left - right, H - top - bottom
    duration = float((result.get("media") or {}).get("duration") or 0.0)
    t_max = max([duration] + [float(f["timestamp"]) for f in frames]) or 1.0

    def x(ts: float) -> float:
        return round(left + pw * (float(ts) / t_max), 1)

    def y(p: float) -> float:
        return round(top + ph * (1 - float(p)), 1)

    tracks: dict[int, list[dict[str, Any]]] = {}
    for f in sorted(frames, key=lambda f: f["timestamp"]):
        tracks.setdefault(int(f.get("track", 0)), []).append(
            {
                "x": x(f["timestamp"]),
                "y": y(f["p_fake"]),
                "p": f["p_fake"],
                "ts": f["timestamp"],
                "band": score_band(f["p_fake"], t),
            }
        )
    series = []
    for i, (track_id, pts) in enumerate(sorted(tracks.items())):
        series.append(
            {
                "track": track_id,
                "style": i % 4,
                "points": pts,
                "path": " ".join(f"{p['x']},{p['y']}" for p in pts),
            }
        )
    step = _nice_step(t_max)
    x_ticks = []
    v = 0.0
    while v <= t_max + 1e-9:
        x_ticks.append({"x": x(v), "label": f"{v:g} s"})
        v = round(v + step, 6)
    y_ticks = [{"y": y(p), "label": f"{p:.0%}"} for p in (0, 0.25, 0.5, 0.75, 1.0)]
    hi_y = y(t["fake_above"])
    return {
        "w": W,
        "h": H,
        "left": left,
        "top": top,
        "pw": pw,
        "ph": ph,
        "right_x": left + pw,
        "bottom_y": top + ph,
        "lo_y": y(t["real_below"]),
        "hi_y": hi_y,
        # "likely fake" is written above its line where the band has room, else just below
        "hi_label_y": hi_y - 5 if hi_y - top >= 18 else hi_y + 14,
        "lo_label": tpct(t["real_below"]),
        "hi_label": tpct(t["fake_above"]),
        "series": series,
        "x_ticks": x_ticks,
        "y_ticks": y_ticks,
        "n_tracks": len(series),
    }
