"""One detection: progress while it runs, the explained verdict when done, downloads, delete.

Every route here answers only the detection's owner (and admins); anyone else gets the same
404 as for an id that does not exist (see ``webapp.owners``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)

from ..forms import RevokeShareForm, ShareForm
from ..models import Detection
from ..owners import get_visible_or_404 as get_or_404
from ..services import compare, presenters, storage

bp = Blueprint("results", __name__, url_prefix="/results")


@bp.before_request
def _token_holders() -> Response | None:
    """An API client follows the result's file and download links with its bearer token."""
    if "Authorization" in request.headers:
        from ..auth import api_identity

        return api_identity()
    return None


def owner_urls(det: Detection) -> dict[str, Any]:
    """The file and download URLs of a result page seen by its owner (a share link has its
    own, see ``share.shared_urls``)."""
    return {
        "file": lambda name: url_for("results.artefact", detection_id=det.id, name=name),
        "json": url_for("results.download_json", detection_id=det.id),
        "csv": url_for("results.download_csv", detection_id=det.id),
        "report": url_for("report.owner", detection_id=det.id),
    }


@bp.get("/<detection_id>")
def show(detection_id: str):
    from .share import links_of

    det = get_or_404(detection_id)
    result = storage.load_result(det)
    urls = owner_urls(det)
    view = build_view(det, result, urls["file"]) if result is not None else {}
    return render_template(
        "results/show.html",
        det=det,
        result=result,
        view=view,
        status=presenters.status_dict(det),
        broken=det.status == "done" and result is None,
        has_thumb=storage.has_thumbnail(det),
        urls=urls,
        shared=False,
        share_links=links_of(det) if result is not None else [],
        comparison=compare.comparison(det, result) if result is not None else None,
        # while this one runs: the owner's other models' analyses of the file, to come beside it
        companions=[r for r in compare.analyses_of(det) if r.id != det.id] if det.is_pending else [],
        share_form=ShareForm(),
        revoke_form=RevokeShareForm(),
    )


@bp.get("/<detection_id>/status")
def status(detection_id: str):
    det = get_or_404(detection_id)
    response = jsonify(presenters.status_dict(det))
    response.headers["Cache-Control"] = "no-store"
    return response


#: The only files served from a result folder (result.json has its own download route).
ARTEFACT_NAME = re.compile(r"(?:thumb\.jpg|(?:chips|heatmaps)/\d{3,}\.jpg)")


@bp.get("/<detection_id>/files/<path:name>")
def artefact(detection_id: str, name: str):
    det = get_or_404(detection_id)
    if not ARTEFACT_NAME.fullmatch(name):
        abort(404)
    return send_artefact(det, name)


def send_artefact(det: Detection, name: str) -> Response:
    """A checked artefact name (``ARTEFACT_NAME``) from the detection's result folder."""
    response = send_from_directory(storage.result_dir(det.id), name, max_age=3600)
    response.headers["Cache-Control"] = "private, max-age=3600"
    response.headers["Vary"] = "Cookie"
    return response


@bp.get("/<detection_id>/result.json")
def download_json(detection_id: str):
    det = get_or_404(detection_id)
    result = storage.load_result(det)
    if result is None:
        abort(404)
    body = json.dumps(
        {**presenters.summary_dict(det), "result": presenters.result_with_urls(det, result)}, indent=2
    )
    return Response(
        body,
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="detection-{det.id}.json"'},
    )


@bp.get("/<detection_id>/frames.csv")
def download_csv(detection_id: str):
    det = get_or_404(detection_id)
    result = storage.load_result(det)
    if result is None:
        abort(404)
    return Response(
        presenters.frames_csv(det, result),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="detection-{det.id}-frames.csv"'},
    )


@bp.post("/<detection_id>/delete")
def delete(detection_id: str):
    det = get_or_404(detection_id)
    name = det.filename
    storage.delete_detection(det)
    flash(f"Deleted the detection of “{name}” and everything stored for it.", "success")
    return redirect(safe_next(request.form.get("next")) or url_for("history.index"), code=303)


def safe_next(target: str | None) -> str | None:
    """A same-site path to go back to after a form, or None."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


# --------------------------------------------------------------------------- view building


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


def verdict_sentence(verdict: str | None, p: float | None, t: dict[str, float]) -> str:
    lo, hi = t.get("real_below", 0.3), t.get("fake_above", 0.7)
    if verdict == "no_face" or p is None:
        return (
            "No face was found in the frames we looked at, so there was nothing to judge. "
            "This says nothing about whether the file is genuine."
        )
    ps = score_pct(p, t)
    if verdict == "fake":
        return (
            f"The model puts the chance that a face here was manipulated at {ps}, at or "
            f"above the {tpct(hi)} line where we call it likely fake. That is strong evidence, "
            "not proof: heavy compression, beauty filters or unusual lighting can also raise "
            "the score."
        )
    if verdict == "real":
        return (
            f"The model puts the chance that a face here was manipulated at {ps}, below "
            f"the {tpct(lo)} line where we call it likely real. It found no sign of "
            "manipulation — which is not proof that the file is authentic: methods it never "
            "saw in training can slip through."
        )
    return (
        f"The model puts the chance that a face here was manipulated at {ps}, between the "
        f"{tpct(lo)} and {tpct(hi)} lines. It cannot tell with confidence, so treat this file as "
        "unverified and look for other evidence."
    )


def unvouched_sentence(p: float, result: dict[str, Any], t: dict[str, float]) -> str:
    """Why a score in the real band reads "inconclusive": the face is too small to vouch for."""
    line = result.get("vouch_face_px")
    return (
        f"The model puts the chance that a face here was manipulated at {score_pct(p, t)}, below the "
        f"{tpct(t.get('real_below', 0.3))} line where we call it likely real, but a face in it is "
        f"narrower than {line} px. At that size this model lets too many fakes through "
        "(they score as real), so it does not vouch for the face: treat the file as unverified. "
        "It would still have called a small face \"likely fake\" above the fake line. A closer or "
        "sharper copy can be judged fully."
    )


def unaccused_sentence(p: float, result: dict[str, Any], t: dict[str, float]) -> str:
    """Why a score in the fake band reads "inconclusive": the face is too small to accuse."""
    return (
        f"The model puts the chance that a face here was manipulated at {score_pct(p, t)}, above the "
        f"{tpct(t.get('fake_above', 0.7))} line where we call it likely fake, but the face that scored it "
        f"is narrower than {result.get('fake_ok_from_px')} px. This model has not been shown to keep its "
        "false alarms at or under 2% on real faces that small, so a face this small does not accuse by "
        "itself: treat the file as unverified, not as fake. A closer or sharper copy can be judged fully."
    )


def score_band(p: float | None, t: dict[str, float]) -> str:
    if p is None:
        return "no_face"
    if p >= t.get("fake_above", 0.7):
        return "fake"
    if p < t.get("real_below", 0.3):
        return "real"
    return "inconclusive"


def build_view(
    det: Detection, result: dict[str, Any], file_url: Callable[[str], str]
) -> dict[str, Any]:
    """What the result page draws; ``file_url(name)`` is the URL of an artefact."""
    t = result.get("thresholds") or {"real_below": 0.3, "fake_above": 0.7}
    chips = []
    for chip in result.get("chips", []):
        if not chip.get("image"):
            continue
        chips.append(
            {
                **chip,
                "band": score_band(chip.get("p_fake"), t),
                "url": file_url(chip["image"]),
                "heatmap_url": file_url(chip["heatmap"]) if chip.get("heatmap") else None,
            }
        )
    explained = sorted((c for c in chips if c["heatmap_url"]), key=lambda c: -(c["p_fake"] or 0))
    timings = result.get("timings") or {}
    media = result.get("media") or {}
    too_small = None
    if det.verdict == "no_face" and result.get("largest_face_px") is not None:
        too_small = {"px": result["largest_face_px"], "needs": result.get("min_face_px")}
    return {
        "thresholds": t,
        "too_small": too_small,
        "sentence": (
            f"Face too small to judge ({too_small['px']} px wide; needs ≥ {too_small['needs']} px). "
            "The model's scores on faces this small are not trustworthy (real faces drift towards "
            "\"fake\"), so there is no verdict. A closer or higher-resolution copy can be judged."
            if too_small else unvouched_sentence(det.p_fake, result, t) if result.get("unvouched")
            else unaccused_sentence(det.p_fake, result, t) if result.get("unaccused")
            else verdict_sentence(det.verdict, det.p_fake, t)
        ),
        "score": score_pct(det.p_fake, t) if det.p_fake is not None else None,
        "gauge": gauge(det.p_fake, t),
        "timeline": timeline(result, t) if media.get("media_type") == "video" else None,
        "chips": chips,
        "explained": explained,
        "tracks": result.get("tracks") or [],
        "warnings": result.get("warnings") or [],
        "media": media,
        "engine_seconds": timings.get("total"),
    }


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
    """Geometry of the per-frame score chart, drawn as SVG by the template.

    One line per face track; the shaded bands and dashed lines are the verdict thresholds.
    ``width`` x ``height`` is the chart's size in SVG units (smaller for the side-by-side
    comparison of models, so its text keeps its size).
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
