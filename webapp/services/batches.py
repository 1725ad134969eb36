"""Batches: several files sent at once (the form's multi-file upload, ``POST /api/v1/batches``).

Each file goes through the same intake as a single upload (:func:`intake.create_detection`:
the same checks by content, the same per-owner dedup, the same messages) and becomes its own
Detection. The batch keeps one item per file sent, in order: the detection it became, or why
it was refused. Nothing the user sent goes unmentioned; refused files never stop the others.

Whole-batch refusals (nothing stored): no file, too many files, too many bytes in all, an
unknown model, and a batch in which no file at all could be accepted.

A batch may ask for several models (``models=all`` or a list): each file is then stored once
and judged by each of them (:func:`intake.create_analyses`), and the batch stays one row per
file: the item's detection is by the model the batch is about (``model``, default the
default model), and ``analyses`` gives each model's verdict on that file, found as the result
page finds them (the owner's analysis of the same bytes by that model). Exports: the JSON has
one entry per file with its ``analyses``; the CSV one row per file and model.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

from flask import current_app, url_for
from sqlalchemy import Select, delete, select
from sqlalchemy.orm import aliased, selectinload
from werkzeug.datastructures import FileStorage

from ..extensions import db
from ..models import VERDICT_LABELS, VERDICTS, Batch, BatchItem, Detection, new_id
from ..owners import visible
from . import compare, intake, links, presenters
from .database import is_locked_error, retry_locked
from .formatting import human_bytes, pct
from .intake import UploadRejected
from .storage import delete_detection, has_thumbnail, is_storage_error

#: Room for the multipart framing around the files (boundaries, part headers, form fields).
MULTIPART_ALLOWANCE = 256 * 1024
NO_FILES_MESSAGE = "Choose one or more video clips or photos to analyse."
#: Item states: a detection's own, then refused at the door, or its detection deleted since.
ITEM_STATES = ("queued", "running", "done", "failed", "rejected", "deleted")
STATE_LABELS = {
    "queued": "Queued",
    "running": "Analysing",
    "done": "Done",
    "failed": "Failed",
    "rejected": "Refused",
    "deleted": "Deleted",
}


class NothingAccepted(UploadRejected):
    """Every file of the batch was refused; ``items`` says why for each (nothing is kept)."""

    def __init__(self, items: list[dict[str, Any]]):
        statuses = {item["error"]["status"] for item in items}
        codes = {item["error"]["code"] for item in items}
        n = len(items)
        super().__init__(
            f"None of the {n} files could be analysed; each one's reason is given with it. "
            "Nothing was stored." if n > 1 else "The file could not be analysed. Nothing was stored.",
            codes.pop() if len(codes) == 1 else "no_file_accepted",
            statuses.pop() if len(statuses) == 1 else 422,
        )
        self.items = items


# --------------------------------------------------------------------------- limits


def limits() -> dict[str, Any]:
    """The batch limits as the form, the API and the errors state them."""
    cfg = current_app.config
    return {
        "max_files": int(cfg["BATCH_MAX_FILES"]),
        "max_bytes": int(cfg["BATCH_MAX_BYTES"]),
        "max_size": human_bytes(cfg["BATCH_MAX_BYTES"]),
    }


def request_limit() -> int | None:
    """The body size allowed to a request that may carry several files (``request.
    max_content_length``): the batch total plus framing, never less than one file's limit."""
    cfg = current_app.config
    per_file = cfg.get("MAX_CONTENT_LENGTH")
    if per_file is None:
        return None
    return max(int(per_file), int(cfg["BATCH_MAX_BYTES"])) + MULTIPART_ALLOWANCE


def too_large_message() -> str:
    lim = limits()
    return (
        f"These files add up to more than {lim['max_size']}, the most one batch can hold. "
        "Nothing was uploaded: send them in smaller batches."
    )


def present_files(files: list[FileStorage]) -> list[FileStorage]:
    """The parts that hold a file (a browser sends one empty part when nothing was chosen)."""
    return [f for f in files if f is not None and f.filename]


def stream_size(file: FileStorage) -> int | None:
    """Bytes in an uploaded part (werkzeug spools it to memory or a temporary file)."""
    stream = file.stream
    try:
        here = stream.tell()
        stream.seek(0, os.SEEK_END)
        size = stream.tell()
        stream.seek(here)
    except (AttributeError, OSError, ValueError):
        return None
    return size


def check_limits(files: list[FileStorage], links: int = 0) -> list[int | None]:
    """Refuse the whole batch over the file count (``links`` count as files) or total
    size; the size of each file."""
    lim = limits()
    if not files and not links:
        raise UploadRejected(NO_FILES_MESSAGE, "no_file")
    if len(files) + links > lim["max_files"]:
        sent = f"{len(files) + links} files" + (" and links" if links else "")
        raise UploadRejected(
            f"You sent {sent}; one batch holds at most {lim['max_files']}. "
            "Nothing was uploaded: send them in smaller batches.",
            "too_many_files",
        )
    sizes = [stream_size(f) for f in files]
    if sum(s or 0 for s in sizes) > lim["max_bytes"]:
        raise UploadRejected(too_large_message(), "batch_too_large", 413)
    return sizes


# --------------------------------------------------------------------------- intake


def clean_name(name: str | None) -> str | None:
    name = intake.clean_filename(name)[:120].strip() if name else ""
    return name or None


def create_batch(
    files: list[FileStorage],
    owner_id: str,
    model: str | None = None,
    name: str | None = None,
    models: str | None = None,
    urls: list[str] | None = None,
) -> Batch:
    """Store each file as its own detection for ``owner_id`` (an existing Owner row), all
    analysed with ``model`` (default: the default model), and a batch naming them. ``models``
    (``all`` or a comma-separated list of versions) has each file judged by those models too.

    Raises :class:`UploadRejected` for the whole batch (nothing stored) and
    :class:`NothingAccepted` when every file was refused (nothing stored either).
    """
    files = present_files(files)
    urls = list(urls or [])
    sizes = check_limits(files, len(urls))
    versions = intake.chosen_models(models, model)
    batch = Batch(
        id=new_id(),
        owner_id=owner_id,
        name=clean_name(name),
        file_count=len(files) + len(urls),
        models=",".join(v for v in versions if v) if len(versions) > 1 else None,
    )
    _commit_new(batch)
    refused: list[dict[str, Any]] = []
    for position, (file, size) in enumerate(zip(files, sizes, strict=True), start=1):
        item = BatchItem(
            batch_id=batch.id,
            position=position,
            filename=intake.clean_filename(file.filename) or "upload",
            size_bytes=size,
        )
        _add_item(item, partial(intake.create_analyses, file, owner_id, versions), refused)
    for position, url in enumerate(urls, start=len(files) + 1):  # links: fetched by the worker
        item = BatchItem(batch_id=batch.id, position=position, filename=url[:255])
        _add_item(item, partial(links.create_link_analyses, url, owner_id, versions), refused)
    if len(refused) == len(files) + len(urls):
        db.session.execute(delete(Batch).where(Batch.id == batch.id))
        db.session.commit()
        raise NothingAccepted(refused)
    return batch


def _add_item(item: BatchItem, create: Callable[[], list], refused: list[dict[str, Any]]) -> None:
    """Store a batch row: its detection from ``create()`` (the first model's), or why it was
    refused (then also listed in ``refused``)."""
    try:
        det, reused = create()[0]
    except UploadRejected as err:
        item.error_code, item.error_message = err.code, str(err)
        refused.append(item_error(item, err.status))
    else:
        item.detection_id, item.reused = det.id, reused
    _commit_new(item)


def _commit_new(row: Batch | BatchItem) -> None:
    def insert() -> None:
        db.session.add(row)
        db.session.commit()

    try:
        retry_locked(insert)
    except Exception as err:
        db.session.rollback()
        if is_storage_error(err):
            raise intake.storage_rejection() from err
        if is_locked_error(err):
            raise UploadRejected(intake.BUSY_MESSAGE, "busy", 503) from err
        raise


def item_error(item: BatchItem, status: int) -> dict[str, Any]:
    return {
        "position": item.position,
        "filename": item.filename,
        "size_bytes": item.size_bytes,
        "error": {"code": item.error_code, "message": item.error_message, "status": status},
    }


# --------------------------------------------------------------------------- reading


def visible_query() -> Select[Any]:
    """The requester's batches (an admin's: everyone's), newest first, items loaded."""
    return (
        visible(select(Batch), owner_column=Batch.owner_id)
        .options(selectinload(Batch.items).selectinload(BatchItem.detection))
        .order_by(Batch.created_at.desc(), Batch.id)
    )


def recent_batches(limit: int) -> list[Batch]:
    return list(db.session.scalars(visible_query().limit(limit)))


def batches_of(detection_ids: list[str]) -> dict[str, Batch]:
    """For each of these detections that came in a batch the requester sees: its newest batch
    (for another model's analysis of a file of a batch judged by several models: that batch)."""
    if not detection_ids:
        return {}
    stmt = visible(
        select(BatchItem.detection_id, Batch)
        .join(Batch, Batch.id == BatchItem.batch_id)
        .where(BatchItem.detection_id.in_(detection_ids)),
        owner_column=Batch.owner_id,
    ).order_by(Batch.created_at.asc())
    found = {det_id: batch for det_id, batch in db.session.execute(stmt)}
    rest = [det_id for det_id in detection_ids if det_id not in found]
    if rest:
        item_det = aliased(Detection)
        stmt = visible(
            select(Detection.id, Detection.model_version, Batch)
            .join(
                item_det,
                (item_det.sha256 == Detection.sha256) & (item_det.owner_id == Detection.owner_id),
            )
            .join(BatchItem, BatchItem.detection_id == item_det.id)
            .join(Batch, (Batch.id == BatchItem.batch_id) & (Batch.owner_id == Detection.owner_id))
            .where(Detection.id.in_(rest), Batch.models.is_not(None)),
            owner_column=Batch.owner_id,
        ).order_by(Batch.created_at.asc())
        for det_id, version, batch in db.session.execute(stmt):
            if version in batch.model_versions:
                found[det_id] = batch
    return found


def item_detection(batch: Batch, item: BatchItem) -> Detection | None:
    """The item's detection, if it still exists and is the batch owner's."""
    det = item.detection
    return det if det is not None and det.owner_id == batch.owner_id else None


def item_state(batch: Batch, item: BatchItem) -> str:
    if item.rejected:
        return "rejected"
    det = item_detection(batch, item)
    return det.status if det is not None else "deleted"


# --------------------------------------------------------------------------- presenting


def percent(det: Detection) -> int:
    return 100 if det.status == "done" else int(float(det.progress or 0.0) * 100)


def batch_models(batch: Batch) -> list[str]:
    """The versions the batch's files are judged by, the items' own model first: those it
    asked for, or (one model) the versions of its detections."""
    if batch.model_versions:
        return batch.model_versions
    found = {item.detection.model_version for item in batch.items if item_detection(batch, item)}
    return sorted((v for v in found if v), reverse=True)


def analyses_by_file(batch: Batch) -> dict[tuple[str, str | None], Detection]:
    """For a batch judged by several models: (SHA-256, version) -> the owner's analysis of that
    file by that model (the item's own detection for its model; else, as on the result page,
    a finished one, else one running, else a failed one). One query for the whole batch."""
    versions = batch.model_versions
    dets = [det for item in batch.items if (det := item_detection(batch, item)) is not None]
    if not versions or not dets:
        return {}
    rows = db.session.scalars(
        select(Detection)
        .where(
            Detection.owner_id == batch.owner_id,
            Detection.sha256.in_({det.sha256 for det in dets}),
            Detection.model_version.in_(versions),
        )
        .order_by(Detection.created_at.desc(), Detection.id)
    ).all()
    return compare.best_per_model(list(rows), {det.id for det in dets})


def analysis_dict(det: Detection | None, version: str | None = None) -> dict[str, Any]:
    """One model's analysis of one file, as items and their ``analyses`` show it; ``det``
    None: that analysis was deleted since."""
    state = det.status if det is not None else "deleted"
    done = det is not None and state == "done"
    out: dict[str, Any] = {
        "model_version": det.model_version if det else version,
        "detection_id": det.id if det else None,
        "status": state,
        "status_label": STATE_LABELS[state],
        "stage_label": det.stage_label if det else None,
        "percent": percent(det) if det else None,
        "verdict": det.verdict if done else None,
        "verdict_label": VERDICT_LABELS.get(det.verdict or "") if done else None,
        "p_fake": det.p_fake if done else None,
        "score_label": pct(det.p_fake) if done and det.p_fake is not None else None,
        "created_at": presenters.iso(det.created_at) if det else None,
        "finished_at": presenters.iso(det.finished_at) if det else None,
        "error": None,
        "links": None,
    }
    if det is None:
        out["error"] = {"code": "deleted", "message": "This detection has been deleted."}
        return out
    if state == "failed":
        out["error"] = {"code": det.error_code, "message": det.error_message}
    out["links"] = {
        "html": url_for("results.show", detection_id=det.id, _external=True),
        "api": url_for("api.get_detection", detection_id=det.id, _external=True),
        "thumbnail": (
            url_for("results.artefact", detection_id=det.id, name="thumb.jpg", _external=True)
            if has_thumbnail(det)
            else None
        ),
    }
    return out


def agreement(analyses: list[dict[str, Any]]) -> str | None:
    """"agree" or "disagree" once two or more models have a verdict on the file, else None."""
    verdicts = [a["verdict"] for a in analyses if a["status"] == "done" and a["verdict"]]
    if len(verdicts) < 2:
        return None
    return "agree" if len(set(verdicts)) == 1 else "disagree"


def item_dict(
    batch: Batch,
    item: BatchItem,
    found: dict[tuple[str, str | None], Detection] | None = None,
) -> dict[str, Any]:
    """One file of a batch, as the batch page polls it and the API and exports show it: the
    item's own detection's fields, and ``analyses``, one per model of the batch (``found``:
    :func:`analyses_by_file`)."""
    det = item_detection(batch, item)
    state = item_state(batch, item)
    out: dict[str, Any] = {
        "position": item.position,
        "filename": item.filename,
        "size_bytes": item.size_bytes,
        "reused": bool(item.reused),
        "sha256": det.sha256 if det and not det.awaiting_download else None,
        "media_type": det.media_type if det else None,
    }
    if state == "rejected":
        out |= {
            **{key: None for key in analysis_dict(None)},
            "status": state,
            "status_label": STATE_LABELS[state],
            "error": {"code": item.error_code, "message": item.error_message},
        }
    else:
        out |= analysis_dict(det)
    analyses: list[dict[str, Any]] = []
    if det is not None:
        versions = batch.model_versions
        if versions and found is not None:
            analyses = [
                analysis_dict(det if v == det.model_version else found.get((det.sha256, v)), v)
                for v in versions
            ]
        else:
            analyses = [analysis_dict(det)]
    out["analyses"] = analyses
    out["agreement"] = agreement(analyses)
    return out


def totals(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts over the items (one per file sent): by state and, for finished ones, verdict
    (each by the item's own model); ``analyses``: by state over every model's analysis of
    every file; ``disagreements``: files on which finished models disagree."""
    states = Counter(item["status"] for item in items)
    verdicts = Counter(item["verdict"] for item in items if item["status"] == "done")
    pending = states["queued"] + states["running"]
    runs = Counter(a["status"] for item in items for a in item["analyses"])
    return {
        "files": len(items),
        **{state: states[state] for state in ITEM_STATES},
        "pending": pending,
        "verdicts": {verdict: verdicts[verdict] for verdict in VERDICTS},
        "analyses": {
            "total": sum(runs.values()),
            **{state: runs[state] for state in ("queued", "running", "done", "failed", "deleted")},
            "pending": runs["queued"] + runs["running"],
        },
        "disagreements": sum(1 for item in items if item["agreement"] == "disagree"),
    }


def batch_dict(batch: Batch) -> dict[str, Any]:
    """A batch with its items and totals (the API's answer and the JSON export)."""
    found = analyses_by_file(batch)
    items = [item_dict(batch, item, found) for item in batch.items]
    counts = totals(items)
    return {
        "id": batch.id,
        "name": batch.name,
        "title": batch.title,
        "created_at": presenters.iso(batch.created_at),
        "file_count": batch.file_count,
        "models": batch_models(batch),
        "finished": counts["pending"] == 0 and counts["analyses"]["pending"] == 0,
        "totals": counts,
        "items": items,
        "links": {
            "self": url_for("api.get_batch", batch_id=batch.id, _external=True),
            "html": url_for("batches.show", batch_id=batch.id, _external=True),
            "csv": url_for("batches.export_csv", batch_id=batch.id, _external=True),
            "json": url_for("batches.export_json", batch_id=batch.id, _external=True),
        },
    }


def listing_dict(batch: Batch) -> dict[str, Any]:
    """A batch as the API lists it (no items)."""
    full = batch_dict(batch)
    return {key: value for key, value in full.items() if key != "items"}


CSV_COLUMNS = (
    "position", "filename", "size_bytes", "sha256", "media_type", "model_version", "status",
    "verdict", "verdict_label", "p_fake", "error_code", "error_message", "created_at",
    "finished_at", "detection_id", "result_url",
)
#: A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet shows as text: formula starters get a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return "" if value is None else value


def batch_csv(batch: Batch) -> str:
    """One row per file sent and model, in order (a file refused at the door: one row);
    safe to open in a spreadsheet. A batch of one model has one row per file."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for item in batch_dict(batch)["items"]:
        for analysis in item["analyses"] or [item]:
            error = analysis["error"] or {}
            row = {
                **item,
                **analysis,
                "error_code": error.get("code"),
                "error_message": error.get("message"),
                "result_url": (analysis["links"] or {}).get("html"),
            }
            writer.writerow([csv_cell(row[column]) for column in CSV_COLUMNS])
    return buf.getvalue()


# --------------------------------------------------------------------------- deleting


def delete_batch(batch: Batch) -> int:
    """Delete the batch and the detections its files became, by every model of the batch
    (with everything stored for them). Returns how many detections were deleted."""
    batch_id = batch.id
    detections = {det.id: det for item in batch.items if (det := item_detection(batch, item))}
    detections |= {det.id: det for det in analyses_by_file(batch).values()}
    for det in detections.values():
        delete_detection(det)
    db.session.execute(delete(Batch).where(Batch.id == batch_id))
    db.session.commit()
    return len(detections)
