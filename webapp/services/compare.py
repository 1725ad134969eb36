"""One file judged by several models: the owner's analyses of the same bytes side by side,
and analysing a detection again with another model of the registry.

A detection is one (owner, SHA-256 of the file, model version). Analysing again never makes a
second one: when the owner already has that model's analysis of the file (finished or still
running), that is the answer. A new analysis reuses the upload still on disk (kept with
``KEEP_UPLOADS``, or another analysis of the same file still waiting for its job); when none
is left it is refused with a message saying to upload the file again, and nothing changes.
Only the owner's own analyses are ever shown or reused: never another owner's, never on a
share link.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import url_for
from sqlalchemy import select

from ..extensions import db
from ..models import Detection, new_id
from ..owners import current_identity, visible
from . import storage
from .detections import (
    StoredFile,
    UploadRejected,
    create_for_stored_file,
    find_existing,
    storage_rejection,
)
from .formatting import DEFAULT_THRESHOLDS, gauge, score_pct, timeline
from .intake import chosen_model
from .modelcard import installed_models
from .presenters import status_dict

log = logging.getLogger(__name__)

#: Which of several analyses of one file by one model stands for that model: a finished one,
#: else one still running, else a failed one (the newest of each kind).
STATUS_RANK = {"done": 0, "running": 1, "queued": 1, "failed": 2}

#: Size of each model's timeline in the comparison (SVG units; two fit side by side).
CHART_SIZE = {"width": 500, "height": 210}


#: The flash category of "Analysing with …" notices: ``analysing:<version>,<version>``. The
#: result page marks such a notice with its versions, and static/js/compare.js changes it to
#: "finished" once those models' columns have filled in.
NOTICE = "analysing"


def notice_category(versions: list[str | None]) -> str:
    return f"{NOTICE}:" + ",".join(v or "" for v in versions)


def names(versions: list[str | None]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    shown = [v or "an unknown model" for v in versions]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def started_message(versions: list[str | None]) -> str:
    """The notice after analyses by other models of the file were queued."""
    one = len(versions) == 1
    return (
        f"Also judging the file with {names(versions)}: "
        f"{'its verdict appears' if one else 'their verdicts appear'} beside this one as soon "
        f"as {'it is' if one else 'they are'} ready."
    )


def analysing_notice(models: str, cmp: dict[str, Any] | None) -> dict[str, str]:
    """How the result page shows an "Analysing with …" notice (``models``: the versions of its
    flash category) next to comparison ``cmp``: ``state`` "pending" while any of those columns
    is (or when the page has no comparison), else "done", or "failed" when one failed; with
    the texts for "done" and "failed", which static/js/compare.js uses when the columns fill
    in after the page was drawn."""
    versions = [v for v in models.split(",") if v]
    failed_text = (
        f"{names(versions)} could not judge the file"
        if len(versions) == 1
        else "Not every model could judge the file"
    ) + ": see why in the comparison below."
    one = len(versions) == 1
    out = {
        "state": "pending",
        "done": f"{names(versions)} {'has' if one else 'have'} finished: "
        f"{'its verdict is' if one else 'their verdicts are'} in the comparison below.",
        "failed": failed_text,
    }
    columns = {c["version"]: c for c in (cmp or {}).get("columns", [])}
    if not versions or any(v not in columns or columns[v]["pending"] for v in versions):
        return out
    out["state"] = "failed" if any(columns[v]["status"] == "failed" for v in versions) else "done"
    return out


def upload_gone_message(version: str) -> str:
    return (
        "The original file is no longer on the server (it is deleted once it has been "
        f"analysed), so it cannot be analysed again with {version} from here. Nothing was "
        f"changed. Upload the same file again and choose {version}: both verdicts then appear "
        "side by side."
    )


# --------------------------------------------------------------------------- the models


def model_options() -> list[dict[str, Any]]:
    """The models the history can filter by: every installed one (newest first), then the
    versions of the requester's own detections that are no longer installed."""
    installed = installed_models()
    names = {e.version for e in installed}
    used = db.session.scalars(
        visible(select(Detection.model_version).distinct()).where(
            Detection.model_version.is_not(None), Detection.model_version != ""
        )
    ).all()
    options = [{"version": e.version, "default": e.default, "installed": True} for e in installed]
    options += [
        {"version": v, "default": False, "installed": False}
        for v in sorted(set(used) - names, reverse=True)
    ]
    return options


# --------------------------------------------------------------------------- the analyses


def _same_file(det: Detection) -> list[Detection]:
    """Every detection of ``det``'s owner with the same bytes, newest first."""
    stmt = (
        select(Detection)
        .where(Detection.owner_id == det.owner_id, Detection.sha256 == det.sha256)
        .order_by(Detection.created_at.desc(), Detection.id)
    )
    return list(db.session.scalars(stmt).all())


def best_per_model(
    rows: list[Detection], preferred: set[str]
) -> dict[tuple[str, str | None], Detection]:
    """Of ``rows`` (newest first), the one that stands for each (file SHA-256, model version):
    one of ``preferred`` (the detection a page or batch is about), else by STATUS_RANK."""
    best: dict[tuple[str, str | None], Detection] = {}
    for row in rows:
        key = (row.sha256, row.model_version)
        current = best.get(key)
        if (
            current is None
            or row.id in preferred
            or (
                current.id not in preferred
                and STATUS_RANK[row.status] < STATUS_RANK[current.status]
            )
        ):
            best[key] = row
    return best


def analyses_of(det: Detection) -> list[Detection]:
    """The owner's analyses of ``det``'s file, one per model version (``det`` itself for its
    own), in registry order (newest model first; versions no longer installed last)."""
    best = best_per_model(_same_file(det), {det.id})
    order = {e.version: i for i, e in enumerate(installed_models())}
    rows = sorted(best.values(), key=lambda r: r.model_version or "", reverse=True)
    return sorted(rows, key=lambda r: order.get(r.model_version or "", len(order)))


def stored_uploads(det: Detection) -> list[Path]:
    """Copies of ``det``'s file still on disk: its own upload, then those of the owner's other
    analyses of the same bytes (uploads are deleted after analysis unless KEEP_UPLOADS)."""
    rows = [det] + [r for r in _same_file(det) if r.id != det.id]
    paths = [storage.upload_path(r) for r in rows]
    return [p for p in paths if p is not None and p.is_file()]


def _copy_upload(det: Detection, dest: Path) -> bool:
    """Put a copy of ``det``'s file at ``dest`` (a hard link where the disk allows). False when
    no copy is left (one may vanish meanwhile: its own job finished and deleted it)."""
    for source in stored_uploads(det):
        try:
            storage.link_or_copy(source, dest)
        except FileNotFoundError:
            dest.unlink(missing_ok=True)
            continue
        if dest.stat().st_size == det.size_bytes:
            return True
        dest.unlink(missing_ok=True)  # not the same bytes after all: never analyse those
    return False


def analyse_again(det: Detection, model: str | None) -> tuple[Detection, bool]:
    """Queue the analysis of ``det``'s file by ``model`` (a registry version; None or "": the
    default model) for ``det``'s owner.

    Returns ``(detection, reused)``: ``reused`` is True when the owner already has that
    model's analysis of the file (finished or running), which is returned instead.
    Raises :class:`UploadRejected`: ``unknown_model`` (400), ``upload_gone`` (409) when no
    copy of the file is left on the server, or a storage/busy error; nothing is left behind.
    """
    version = chosen_model(model)
    existing = find_existing(det.sha256, version, det.owner_id)
    if existing is not None:
        return existing, True
    if det.awaiting_download:
        raise UploadRejected(
            "This link's file is still being downloaded: ask for another model once it is in, "
            "or send the link again with that model.",
            "link_not_fetched",
            409,
        )
    sources = stored_uploads(det)
    part = storage.upload_folder() / f"{new_id()}.part"
    try:
        part.parent.mkdir(parents=True, exist_ok=True)
        copied = bool(sources) and _copy_upload(det, part)
    except BaseException as err:
        part.unlink(missing_ok=True)
        if storage.is_storage_error(err):
            log.error("Analysis again refused: storage full or not writable (%s)", err)
            raise storage_rejection() from err
        raise
    if not copied:
        raise UploadRejected(upload_gone_message(version or "that model"), "upload_gone", 409)
    thumb = storage.result_dir(det.id) / "thumb.jpg"
    stored = StoredFile.copy_of(det, part, sources[0].suffix, thumbnail=thumb)
    return create_for_stored_file(stored, det.owner_id, [version])[0]


# --------------------------------------------------------------------------- the page


def is_owner(det: Detection) -> bool:
    """Only the owner analyses a detection again (an admin sees it, but it is not theirs)."""
    return current_identity().owner_id == det.owner_id


def comparison(det: Detection, result: dict[str, Any]) -> dict[str, Any]:
    """What the result page of a finished detection shows of the other models: a column per
    model that judged the file (``side_by_side`` once there are two), whether any is still
    running, the installed models not tried yet, and whether they can be run from here."""
    entries = {e.version: e for e in installed_models()}
    rows = analyses_of(det)
    columns = [_column(row, det, result if row.id == det.id else None, entries) for row in rows]
    tried = {row.model_version for row in rows if row.status != "failed"}
    others = [
        {"version": v, "default": e.default} for v, e in entries.items() if v not in tried
    ]
    owner = is_owner(det)
    return {
        "columns": columns,
        "side_by_side": len(columns) >= 2,
        "pending": any(c["pending"] for c in columns),
        "agreement": agreement(columns),
        "others": others if owner else [],
        "upload_available": owner and bool(others) and bool(stored_uploads(det)),
        "panel_url": url_for("compare.panel", detection_id=det.id),
    }


def _column(
    row: Detection, det: Detection, result: dict[str, Any] | None, entries: dict[str, Any]
) -> dict[str, Any]:
    if result is None and row.status == "done":
        result = storage.load_result(row)
    t = (result or {}).get("thresholds") or DEFAULT_THRESHOLDS
    done = row.status == "done" and result is not None
    entry = entries.get(row.model_version or "")
    if row.status == "done" and result is None:
        band, label = "failed", "Result missing"
    elif done and row.verdict == "no_face" and result.get("largest_face_px") is not None:
        band, label = row.band, "Face too small to judge"
    else:
        band, label = row.band, row.verdict_label
    status = status_dict(row)
    return {
        "id": row.id,
        "version": row.model_version or "unknown model",
        "default": bool(entry and entry.default),
        "installed": entry is not None,
        "current": row.id == det.id,
        "url": url_for("results.show", detection_id=row.id),
        "status": row.status,
        "pending": row.is_pending,
        "band": band,
        "label": label,
        "verdict": row.verdict if done else None,
        "score": score_pct(row.p_fake, t) if done and row.p_fake is not None else None,
        "gauge": gauge(row.p_fake, t) if done and row.p_fake is not None else None,
        "thresholds": t,
        "timeline": (
            timeline(result, t, **CHART_SIZE)
            if done and (result.get("media") or {}).get("media_type") == "video"
            else None
        ),
        "faces": result.get("faces_found") if done else None,
        "percent": status["percent"],
        "stage_label": status["stage_label"],
        "error": row.error_message if row.status == "failed" else None,
    }


def agreement(columns: list[dict[str, Any]]) -> str | None:
    """One sentence on whether the finished models agree, or None with fewer than two."""
    done = [c for c in columns if c["verdict"]]
    if len(done) < 2:
        return None
    if len({c["label"] for c in done}) == 1:
        both = "Both models" if len(done) == 2 else f"All {len(done)} models"
        return f"{both} agree: {done[0]['label'].lower()}."
    said = "; ".join(f"{c['version']}: {c['label'].lower()}" for c in done)
    return (
        f"The models disagree ({said}). Treat the file as unverified and weigh each model by "
        "its measured accuracy on this kind of fake."
    )
