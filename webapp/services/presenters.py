"""What views and the API show of a detection: status, summary, the result page's view
(verdict sentence, chips, charts), result with URLs, CSV. Numbers are formatted by
:mod:`webapp.services.formatting`."""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Callable
from typing import Any

from flask import url_for
from sqlalchemy import func, select

from ..extensions import db
from ..models import VERDICT_LABELS, Detection
from .formatting import (
    DEFAULT_THRESHOLDS,
    gauge,
    iso,
    score_band,
    score_pct,
    timeline,
    tpct,
)
from .provenance_view import provenance_view
from .storage import has_thumbnail

log = logging.getLogger(__name__)


PENDING = ("queued", "running")


#: Where each engine stage sits on the overall progress bar: (start, end) fractions. The
#: engine reports (stage, fraction within that stage); face detection is the slow part.
STAGE_SPAN = {
    "queued": (0.0, 0.0),
    "download": (0.0, 1.0),  # a link's file; the analysis's own stages then start again
    "load": (0.0, 0.03),
    "decode": (0.03, 0.20),
    "detect": (0.20, 0.60),
    "align": (0.60, 0.65),
    "features": (0.65, 0.85),
    "classify": (0.85, 0.88),
    "explain": (0.88, 0.97),
    "save": (0.97, 1.0),
}
#: Engine stage names shown under another name ("done" still has the saving to do).
STAGE_ALIASES = {"done": "save"}


def queue_position(det: Detection) -> int:
    """How many jobs will run before this queued one (0 when running or next)."""
    if det.status != "queued":
        return 0
    stmt = (
        select(func.count())
        .select_from(Detection)
        .where(Detection.status.in_(PENDING), Detection.created_at < det.created_at)
    )
    return int(db.session.scalar(stmt) or 0)


def overall_progress(stage: str, fraction: float) -> float:
    """Map the engine's (stage, fraction within stage) to one 0..1 figure for the bar."""
    start, end = STAGE_SPAN.get(stage, (0.0, 1.0))
    fraction = min(max(float(fraction), 0.0), 1.0) if math.isfinite(fraction) else 0.0
    return start + (end - start) * fraction


def status_dict(det: Detection) -> dict[str, Any]:
    """The small JSON the result page polls while a job runs."""
    progress = 1.0 if det.status == "done" else float(det.progress or 0.0)
    return {
        "id": det.id,
        "status": det.status,
        "stage": det.stage,
        "stage_label": det.stage_label,
        "progress": round(progress, 4),
        "percent": int(progress * 100),
        "queue_position": queue_position(det),
        "error": (
            {"code": det.error_code, "message": det.error_message}
            if det.status == "failed"
            else None
        ),
    }


def summary_dict(det: Detection) -> dict[str, Any]:
    """A detection as the API lists it."""
    return {
        **status_dict(det),
        "filename": det.filename,
        "source_url": det.source_url,
        # A link not fetched yet has no bytes to describe (its media_type is "link").
        "sha256": None if det.awaiting_download else det.sha256,
        "size_bytes": None if det.awaiting_download else det.size_bytes,
        "media_type": det.media_type,
        "created_at": iso(det.created_at),
        "started_at": iso(det.started_at),
        "finished_at": iso(det.finished_at),
        "model_version": det.model_version,
        "verdict": det.verdict if det.status == "done" else None,
        "verdict_label": VERDICT_LABELS.get(det.verdict or "") if det.status == "done" else None,
        "p_fake": det.p_fake if det.status == "done" else None,
        "links": {
            "self": url_for("api.get_detection", detection_id=det.id, _external=True),
            "html": url_for("results.show", detection_id=det.id, _external=True),
            "analyses": url_for("api.list_analyses", detection_id=det.id, _external=True),
            "thumbnail": (
                url_for("results.artefact", detection_id=det.id, name="thumb.jpg", _external=True)
                if has_thumbnail(det)
                else None
            ),
        },
    }


def result_with_urls(det: Detection, result: dict[str, Any],
                     artefact_url: Callable[[str], str] | None = None) -> dict[str, Any]:
    """``result.json`` with chip and heatmap paths turned into absolute URLs (``artefact_url``
    maps a stored file name to its URL; default: the owner's result file route)."""
    if artefact_url is None:
        def artefact_url(name: str) -> str:
            return url_for("results.artefact", detection_id=det.id, name=name, _external=True)
    out = dict(result)
    chips = []
    for chip in result.get("chips", []):
        chip = dict(chip)
        for key in ("image", "heatmap"):
            if chip.get(key):
                chip[key + "_url"] = artefact_url(chip[key])
        chips.append(chip)
    out["chips"] = chips
    return out


def frames_csv(det: Detection, result: dict[str, Any]) -> str:
    """Per-frame scores as CSV: one row per scored face per sampled frame."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["frame_index", "timestamp_s", "track", "x0", "y0", "x1", "y1", "p_fake"])
    for fr in result.get("frames", []):
        box = list(fr.get("box") or [None] * 4)[:4]
        writer.writerow(
            [fr.get("index"), fr.get("timestamp"), fr.get("track"), *box, fr.get("p_fake")]
        )
    return buf.getvalue()


# --------------------------------------------------------------------------- the result page


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


def build_view(
    det: Detection, result: dict[str, Any], file_url: Callable[[str], str]
) -> dict[str, Any]:
    """What the result page draws; ``file_url(name)`` is the URL of an artefact."""
    t = result.get("thresholds") or DEFAULT_THRESHOLDS
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
        "provenance": provenance_view(result),
    }
