"""Content Credentials (C2PA manifests), read and validated with the official ``c2pa-python``.

The reader never touches the network: remote manifests and OCSP are not fetched, so a file can
make the worker call no address (a link in a manifest is reported, never followed). Trust is
checked only against the trust-anchor file the site configures; without one the page says so.

:func:`read_credentials` returns a JSON-serialisable dict and never raises; a manifest that
cannot be parsed is a reported state (``"unreadable"``), not an error.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
from pathlib import Path
from typing import Any

from .vocabulary import AI, action_words, source_type

log = logging.getLogger(__name__)

#: ``state`` values: what the page says first about the file's Content Credentials.
ABSENT = "absent"  # no manifest in the file
VALID = "valid"  # signature and hashes check out (trust is a separate field)
INVALID = "invalid"  # a manifest is there but does not validate (see ``problems``)
UNREADABLE = "unreadable"  # something that looks like a manifest could not be parsed
UNSUPPORTED = "unsupported"  # a format Content Credentials cannot be embedded in
REMOTE = "remote"  # the file points to a manifest elsewhere, which is not fetched
UNAVAILABLE = "unavailable"  # the c2pa library is not installed on this server

#: ``trust`` values.
TRUSTED = "trusted"
UNTRUSTED = "untrusted"
NO_TRUST_LIST = "no_trust_list"
TRUST_LIST_UNREADABLE = "trust_list_unreadable"

#: Validation codes that mean the media bytes changed after signing.
HASH_MISMATCH = (
    "assertion.dataHash.mismatch",
    "assertion.bmffHash.mismatch",
    "assertion.boxesHash.mismatch",
    "assertion.collectionHash.mismatch",
)
#: Codes that only say a certificate is not on the trust list: a matter of trust, not validity.
UNTRUSTED_CODES = ("signingCredential.untrusted", "timeStamp.untrusted")
#: Codes that mean the manifest itself was altered (an assertion or the claim).
MANIFEST_ALTERED = ("assertion.hashedURI.mismatch", "claimSignature.mismatch")

TRUST_WORDS = {
    TRUSTED: "The signer's certificate chains to a trust anchor this server is configured with.",
    UNTRUSTED: (
        "The signer is not on this server's trust list: the signature is intact, but who "
        "signed it is not vouched for by any authority this server knows."
    ),
    NO_TRUST_LIST: (
        "No trust list is configured on this server, so who signed it was not checked "
        "against one: anyone can make a certificate with any name."
    ),
    TRUST_LIST_UNREADABLE: (
        "This server's trust-list file could not be read, so who signed it was not checked."
    ),
}

#: Formats (file extensions) ``c2pa-python`` reads; others get ``UNSUPPORTED`` at once.
FORMATS = {"jpg", "jpeg", "png", "webp", "mp4", "mov", "avi", "m4v", "gif", "tif", "tiff",
           "heic", "heif", "avif", "dng"}


def load_trust_anchors(path: str | Path | None) -> tuple[str | None, str]:
    """``(PEM text, trust state when reading)`` of a trust-anchor bundle: ``(None,
    NO_TRUST_LIST)`` without a path, ``(None, TRUST_LIST_UNREADABLE)`` when it cannot be read
    or holds no certificate."""
    if not path:
        return None, NO_TRUST_LIST
    try:
        text = Path(path).read_text(encoding="ascii", errors="replace")
    except OSError as err:
        log.error("Trust-anchor file %s cannot be read: %s", path, err)
        return None, TRUST_LIST_UNREADABLE
    if "-----BEGIN CERTIFICATE-----" not in text:
        log.error("Trust-anchor file %s holds no PEM certificate", path)
        return None, TRUST_LIST_UNREADABLE
    return text, TRUSTED


def _context(anchors: str | None):
    import c2pa

    verify: dict[str, Any] = {
        "remote_manifest_fetch": False,
        "ocsp_fetch": False,
        "verify_trust": anchors is not None,
    }
    settings: dict[str, Any] = {"verify": verify}
    if anchors is not None:
        settings["trust"] = {"trust_anchors": anchors}  # replaces the SDK's own list
    return c2pa.Context.from_dict(settings)


def empty(state: str, text: str) -> dict[str, Any]:
    return {"state": state, "present": False, "text": text}


def read_credentials(path: str | Path, trust_anchors: str | Path | None = None) -> dict[str, Any]:
    """The file's Content Credentials, validated; see the module doc. ``trust_anchors``: the
    path of a PEM bundle of trusted root certificates (None: no trust list)."""
    path = Path(path)
    ext = path.suffix.lower().lstrip(".")
    if ext not in FORMATS:
        return empty(
            UNSUPPORTED,
            f"Content Credentials cannot be embedded in this format ({ext.upper() or 'unknown'}), "
            "so none were looked for.",
        )
    try:
        import c2pa
    except ImportError:  # pragma: no cover - c2pa-python is in requirements.txt
        return empty(UNAVAILABLE, "This server cannot read Content Credentials (c2pa-python "
                                  "is not installed).")
    anchors, trust_state = load_trust_anchors(trust_anchors)
    mime = mimetypes.guess_type(path.name)[0]
    try:
        with open(path, "rb") as fh:
            reader = c2pa.Reader.try_create(mime, fh, None, _context(anchors))
            if reader is None:
                return empty(ABSENT, "The file carries no Content Credentials.")
            with reader:
                store = json.loads(reader.json())
                state = reader.get_validation_state()
                embedded = reader.is_embedded()
                remote = reader.get_remote_url()
    except Exception as err:  # noqa: BLE001 - any odd file is a reported state, never a crash
        return _unreadable(err)
    return describe(store, state, trust_state, embedded=embedded, remote=remote)


def _unreadable(err: Exception) -> dict[str, Any]:
    message = str(err).strip() or type(err).__name__
    if "NotSupported" in type(err).__name__ or "not supported" in message.lower():
        return empty(UNSUPPORTED, "The C2PA library cannot look inside this file's format.")
    if "ManifestNotFound" in type(err).__name__:
        return empty(ABSENT, "The file carries no Content Credentials.")
    if "RemoteManifest" in type(err).__name__ or message.startswith("Remote:"):
        out = empty(
            REMOTE,
            "The file points to Content Credentials kept on another server. This server does "
            "not fetch them (it never follows addresses found in a file), so they were not checked.",
        )
        out["present"] = True
        found = re.search(r"from url (\S+)", message)
        out["remote_url"] = found.group(1)[:300] if found else None
        return out
    log.info("Content Credentials unreadable: %s", message)
    if "could not be parsed" in message or "could not parse" in message.lower():
        out = empty(
            UNREADABLE,
            "The C2PA library could not parse this file's structure, so it could not look for "
            "Content Credentials in it.",
        )
        out["error"] = message[:300]
        return out
    out = empty(
        UNREADABLE,
        "The file seems to carry Content Credentials, but they could not be read (damaged or "
        "not in a form the C2PA library understands), so nothing they say can be relied on.",
    )
    out["present"] = True
    out["error"] = message[:300]
    return out


def _codes(results: dict[str, Any], kind: str) -> list[dict[str, str]]:
    active = (results or {}).get("activeManifest") or {}
    return [
        {"code": str(item.get("code", "")), "explanation": str(item.get("explanation", ""))[:300]}
        for item in active.get(kind) or []
        if isinstance(item, dict)
    ]


def _actions(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for assertion in manifest.get("assertions") or []:
        if not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for action in (assertion.get("data") or {}).get("actions") or []:
            if not isinstance(action, dict):
                continue
            agent = action.get("softwareAgent")
            if isinstance(agent, dict):
                agent = " ".join(str(agent.get(k, "")) for k in ("name", "version")).strip()
            out.append(
                {
                    "action": str(action.get("action", ""))[:100],
                    "words": action_words(action.get("action")),
                    "software": str(agent)[:200] if agent else None,
                    "when": action.get("when"),
                    "source_type": source_type(action.get("digitalSourceType")),
                }
            )
    return out[:50]


def _generator(manifest: dict[str, Any]) -> str | None:
    infos = manifest.get("claim_generator_info")
    if isinstance(infos, list) and infos and isinstance(infos[0], dict):
        name = " ".join(str(infos[0].get(k, "")) for k in ("name", "version")).strip()
        if name:
            return name[:200]
    text = manifest.get("claim_generator")
    return str(text)[:200] if text else None


def describe(
    store: dict[str, Any],
    state: str | None,
    trust_state: str,
    *,
    embedded: bool = True,
    remote: str | None = None,
) -> dict[str, Any]:
    """The page's account of a manifest store (``Reader.json()``) and its validation."""
    results = store.get("validation_results") or {}
    failures = _codes(results, "failure")
    successes = {c["code"] for c in _codes(results, "success")}
    codes = {c["code"] for c in failures}
    manifest = (store.get("manifests") or {}).get(store.get("active_manifest") or "") or {}
    signature = manifest.get("signature_info") or {}

    changed = sorted(codes & set(HASH_MISMATCH))
    altered = sorted(codes & set(MANIFEST_ALTERED))
    signature_ok = not altered and not any(
        c.startswith(("claimSignature.", "signingCredential.", "timeStamp."))
        and c not in UNTRUSTED_CODES
        for c in codes
    )
    hashes = "mismatch" if changed else (
        "match" if any(c.endswith("Hash.match") for c in successes) else "not_checked"
    )
    if trust_state == TRUSTED:  # a trust list was loaded: what did it say?
        trust = TRUSTED if "signingCredential.trusted" in successes else UNTRUSTED
    else:
        trust = trust_state
    others = [f for f in failures if f["code"] not in UNTRUSTED_CODES]
    ok = signature_ok and not changed and not others and (state or "").lower() != "invalid"

    actions = _actions(manifest)
    types = [a["source_type"] for a in actions if a["source_type"]]
    primary = next((t for t in types if t["kind"] == AI), types[0] if types else None)
    problems = []
    if changed:
        problems.append(
            "The file was changed after it was signed: its content no longer matches the hash "
            "in its Content Credentials."
        )
    if altered:
        problems.append("The Content Credentials themselves were altered after signing.")
    elif not signature_ok:
        problems.append("The signature does not validate (bad, expired or revoked certificate).")
    problems += [
        f"{f['code']}: {f['explanation']}"
        for f in others
        if f["code"] not in set(HASH_MISMATCH) | set(MANIFEST_ALTERED)
        and not f["code"].startswith(("claimSignature.", "signingCredential.", "timeStamp."))
    ][:10]

    if ok:
        text = "The file carries Content Credentials, and they validate: the signature is intact and the content matches it."
    elif changed:
        text = "The file carries Content Credentials, but the file was changed after signing."
    else:
        text = "The file carries Content Credentials, but they do not validate."
    return {
        "state": VALID if ok else INVALID,
        "present": True,
        "text": text,
        "validation_state": state,
        "signature": "valid" if signature_ok else "invalid",
        "hashes": hashes,
        "trust": trust,
        "trust_text": TRUST_WORDS.get(trust, ""),
        "problems": problems,
        "failures": failures[:20],
        "claim_generator": _generator(manifest),
        "title": str(manifest["title"])[:200] if manifest.get("title") else None,
        "signer": {
            "name": signature.get("common_name"),
            "organisation": signature.get("issuer"),
            "algorithm": signature.get("alg"),
            "serial": signature.get("cert_serial_number"),
        },
        "signed_at": signature.get("time"),
        "source_type": primary,
        "declares_ai": bool(primary and primary["kind"] == AI),
        "actions": actions,
        "ingredients": [
            {
                "title": str(i.get("title") or "")[:200] or None,
                "format": i.get("format"),
                "relationship": i.get("relationship"),
                "has_credentials": bool(i.get("active_manifest")),
            }
            for i in (manifest.get("ingredients") or [])[:20]
            if isinstance(i, dict)
        ],
        "manifests": len(store.get("manifests") or {}),
        "embedded": embedded,
        "remote_url": remote,
    }
