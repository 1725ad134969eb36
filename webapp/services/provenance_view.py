"""What the result page, the PDF report and the CSV show of a file's self-description (the
``provenance`` the analysis job stored in ``result.json``, see ``detection.provenance``).

It is shown beside the model's verdict and never changes it.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from ..detection.provenance import ABSENCE_NOTE, INVALID_NOTE, SIGNED_NOTE, UNSIGNED_NOTE

#: A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")

HASH_WORDS = {
    "match": "Yes: the content matches what was signed.",
    "mismatch": "No: the file was changed after it was signed.",
    "not_checked": "Not checked.",
}

RELATIONSHIPS = {"parentOf": "made from", "componentOf": "a part of it", "inputTo": "an input to it"}


def credential_rows(cc: dict[str, Any]) -> list[tuple[str, str]]:
    """``(label, plain words)`` of a present manifest, in the order the page lists them."""
    rows: list[tuple[str, str]] = []
    kind = cc.get("source_type")
    if kind:
        rows.append(("It says it was", kind["words"]))
    if cc.get("claim_generator"):
        rows.append(("Written by", cc["claim_generator"]))
    signer = cc.get("signer") or {}
    name, org = signer.get("name"), signer.get("organisation")
    if name or org:
        who = f"{name}, of {org}" if name and org and org != name else (name or org)
        rows.append(("Signed by", f"{who} (as the signing certificate names them)"))
    if cc.get("state") in ("valid", "invalid"):
        rows.append(("Signed at", cc.get("signed_at") or "Not recorded (no trusted time-stamp)."))
        rows.append(("Signature", "Valid." if cc.get("signature") == "valid" else "Does not validate."))
        rows.append(("Content unchanged", HASH_WORDS.get(cc.get("hashes") or "", "Not checked.")))
        rows.append(("Signer on a trust list", cc.get("trust_text") or "Not checked."))
    actions = cc.get("actions") or []
    if actions:
        rows.append(("What was done", "; ".join(
            a["words"] + (f" (with {a['software']})" if a.get("software") else "")
            + (f": {a['source_type']['words']}" if a.get("source_type") else "")
            for a in actions[:12]
        ) + "."))
    ingredients = cc.get("ingredients") or []
    if ingredients:
        rows.append(("Ingredients", "; ".join(
            f"{i.get('title') or 'an untitled file'} ({RELATIONSHIPS.get(i.get('relationship'), 'used')}"
            + (", with Content Credentials of its own" if i.get("has_credentials") else "") + ")"
            for i in ingredients
        ) + "."))
    for problem in cc.get("problems") or []:
        rows.append(("Problem", problem))
    if cc.get("remote_url"):
        rows.append(("Kept at", f"{cc['remote_url']} (not fetched)"))
    return rows


def provenance_view(result: dict[str, Any]) -> dict[str, Any]:
    """What the "What the file says about itself" panel draws.

    ``{"checked", "first", "found", "headline", "cc", "rows", "lines", "notes"}``:
    ``checked`` False for a result stored before files were read for this; ``first`` when a
    valid manifest declares AI generation (the panel goes above the verdict); ``found`` when
    anything at all was found.
    """
    prov = result.get("provenance")
    if not isinstance(prov, dict):
        return {"checked": False, "first": False, "found": False, "notes": []}
    cc = prov.get("content_credentials") or {}
    lines = prov.get("file_says") or []
    notes = []
    if cc.get("state") == "valid":
        notes.append(SIGNED_NOTE)
    elif cc.get("state") in ("invalid", "unreadable"):
        notes.append(INVALID_NOTE)
    if lines:
        notes.append(UNSIGNED_NOTE)
    if not cc.get("present"):
        notes.append(ABSENCE_NOTE)
    return {
        "checked": True,
        "first": bool(prov.get("declares_ai")),
        "found": bool(cc.get("present") or lines),
        "headline": prov.get("headline"),
        "cc": cc,
        "rows": credential_rows(cc) if cc.get("present") else [],
        "lines": lines,
        "metadata_ai": bool(prov.get("metadata_declares_ai")),
        "notes": notes,
    }


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return "" if value is None else value


def provenance_csv(result: dict[str, Any]) -> str:
    """The panel as CSV: ``section, kind, source, field, value, meaning``; safe to open in a
    spreadsheet."""
    view = provenance_view(result)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["section", "kind", "source", "field", "value", "meaning"])
    if not view["checked"]:
        writer.writerow(["note", "", "", "", "", "This result was stored before files were read for this."])
        return buf.getvalue()
    cc = view["cc"]
    writer.writerow(["content_credentials", "", "C2PA", "state", cc.get("state"), cc.get("text")])
    for label, words in view["rows"]:
        writer.writerow([_cell(x) for x in ("content_credentials", "", "C2PA", label, "", words)])
    for item in view["lines"]:
        writer.writerow(["file_says"] + [_cell(item.get(k)) for k in ("kind", "source", "field", "value", "text")])
    for note in view["notes"]:
        writer.writerow(["note", "", "", "", "", note])
    return buf.getvalue()
