"""Check an instance folder against its database: every file has a row, every row its files.

Reads the SQLite file directly (no app), so it works on a live gunicorn server's instance too.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

PENDING = ("queued", "running")


def rows(db_path: Path) -> list[dict]:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM detection")]


def audit_instance(
    instance: Path, db_path: Path | None = None, *, keep_uploads: bool = False
) -> list[str]:
    """Problems found (empty when consistent). Call it when no upload is in flight."""
    db_path = db_path or instance / "detections.sqlite"
    uploads, results = instance / "uploads", instance / "results"
    table = {r["id"]: r for r in rows(db_path)} if db_path.exists() else {}
    problems: list[str] = []
    by_upload = {r["upload_name"]: r for r in table.values() if r["upload_name"]}

    for path in sorted(uploads.iterdir()) if uploads.is_dir() else []:
        row = by_upload.get(path.name)
        if row is None:
            problems.append(f"upload without a row: {path.name}")
        elif row["status"] not in PENDING and not keep_uploads:
            problems.append(f"upload kept after the job ended: {path.name} ({row['status']})")
    for path in sorted(results.iterdir()) if results.is_dir() else []:
        if path.name not in table:
            problems.append(f"result folder without a row: {path.name}")
        if list(path.rglob("*.tmp")):
            problems.append(f"half-written file in {path.name}")

    for det_id, row in table.items():
        status = row["status"]
        rdir = results / det_id
        if status in PENDING:
            if not row["upload_name"] or not (uploads / row["upload_name"]).is_file():
                problems.append(f"{status} row without its upload: {det_id}")
        elif status == "done":
            if not row["verdict"]:
                problems.append(f"done row without a verdict: {det_id}")
            try:
                result = json.loads((rdir / "result.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                problems.append(f"done row without a readable result.json: {det_id}")
                continue
            for chip in result.get("chips", []):
                for key in ("image", "heatmap"):
                    if chip.get(key) and not (rdir / chip[key]).is_file():
                        problems.append(f"done row missing {chip[key]}: {det_id}")
        elif status == "failed":
            if not row["error_code"] or not row["error_message"]:
                problems.append(f"failed row without a reason: {det_id}")
            if (rdir / "result.json").exists() or (rdir / "chips").exists():
                problems.append(f"failed row with a (half) result: {det_id}")
        else:
            problems.append(f"unknown status {status!r}: {det_id}")
    return problems
