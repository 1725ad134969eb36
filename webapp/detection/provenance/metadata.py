"""The unsigned things a file says about itself: EXIF, XMP (IPTC digital source type), PNG text
chunks of image generators, and the tags of a video container.

Each finding is a line ``{"source", "field", "value", "text", "kind"}``: where it was read
(``source``, e.g. "EXIF", "XMP", "PNG text chunk", "Container tag"), the field's name, its value
(shortened), a sentence in plain words, and a ``kind`` (``ai``, ``camera``, ``edited``,
``software``, ``other``) the page uses to pick what to show first. Nothing here is signed:
anyone can write, change or remove these fields.

Only headers are read (Pillow opens a picture without decoding it; PyAV reads a container's
header), so this costs milliseconds. Never raises: an odd file gives fewer lines.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from .vocabulary import AI, CAMERA, source_type

log = logging.getLogger(__name__)

SOFTWARE = "software"
MAX_VALUE = 400  # characters of a value kept in the result
MAX_XMP = 1 << 20  # bytes of an XMP packet searched

#: EXIF tags (IFD0 and the Exif IFD) read, with their plain names.
EXIF_IFD0 = {0x010F: "Make", 0x0110: "Model", 0x0131: "Software", 0x013B: "Artist",
             0x010E: "ImageDescription"}
EXIF_SUB = {0x9003: "DateTimeOriginal", 0x9286: "UserComment"}
EXIF_POINTER = 0x8769

#: PNG text chunk keys written by image generators -> the tool they name.
GENERATOR_CHUNKS = {
    "parameters": "Stable Diffusion WebUI (AUTOMATIC1111, Forge or a compatible tool)",
    "prompt": "ComfyUI",
    "workflow": "ComfyUI",
    "invokeai_metadata": "InvokeAI",
    "invokeai_graph": "InvokeAI",
    "sd-metadata": "InvokeAI (older versions)",
    "Dream": "InvokeAI (older versions)",
    "fooocus_scheme": "Fooocus",
    "generation_data": "an image generator (generation_data)",
}

#: Video container / stream tags read (lower-case names as FFmpeg reports them).
VIDEO_TAGS = {
    "encoder": "Encoder",
    "encoded_by": "Encoded by",
    "software": "Software",
    "creation_tool": "Creation tool",
    "com.apple.quicktime.software": "Software (QuickTime)",
    "com.apple.quicktime.make": "Camera make (QuickTime)",
    "com.apple.quicktime.model": "Camera model (QuickTime)",
    "com.android.manufacturer": "Phone maker (Android)",
    "com.android.model": "Phone model (Android)",
    "com.android.version": "Android version",
    "make": "Camera make",
    "model": "Camera model",
    "comment": "Comment",
    "description": "Description",
    "creation_time": "Creation time",
}
#: Stream handler names every FFmpeg or phone writes: they say nothing.
GENERIC_HANDLERS = {"videohandler", "soundhandler", "videohandle", "soundhandle", "core media video",
                    "core media audio", "gpac iso video handler", "l-smash video handler"}


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    text = text.replace("\x00", "").strip()
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def line(source: str, field: str, value: Any, text: str, kind: str = "other") -> dict[str, str]:
    return {"source": source, "field": field, "value": _short(value), "text": text, "kind": kind}


def read_metadata(path: str | Path, media_type: str) -> list[dict[str, str]]:
    """What the file says about itself, as lines (see the module doc)."""
    try:
        if media_type == "video":
            return _video_lines(Path(path))
        return _image_lines(Path(path))
    except Exception:  # noqa: BLE001 - metadata is a bonus: an odd file says nothing
        log.info("Metadata of %s could not be read", path, exc_info=True)
        return []


# --------------------------------------------------------------------------- photos


def _image_lines(path: Path) -> list[dict[str, str]]:
    from PIL import Image

    with Image.open(path) as im:  # reads the header and metadata, not the pixels
        info = dict(im.info)
        exif = im.getexif()
        lines = _exif_lines(exif)
        xmp = info.get("xmp") or info.get("XML:com.adobe.xmp")
        lines += _xmp_lines(xmp)
        if im.format == "PNG":
            lines += _png_lines(info)
        comment = info.get("comment")
        if comment and im.format == "JPEG":
            lines.append(line("JPEG comment", "COM", _text(comment),
                              f"A comment in the file reads “{_short(_text(comment))}”."))
    return lines


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _user_comment(raw: Any) -> str:
    """EXIF UserComment: an 8-byte character-set header, then the text."""
    if not isinstance(raw, bytes):
        return str(raw)
    head, body = raw[:8], raw[8:]
    if head.startswith(b"UNICODE"):
        for codec in ("utf-16-be", "utf-16-le"):
            text = body.decode(codec, errors="replace")
            if text.isprintable() or "\n" in text:
                return text
    return (body if head.rstrip(b"\x00 ") in (b"ASCII", b"") else raw).decode("utf-8", "replace")


def _exif_lines(exif) -> list[dict[str, str]]:
    values: dict[str, Any] = {}
    for tag, name in EXIF_IFD0.items():
        if exif.get(tag):
            values[name] = exif.get(tag)
    try:
        sub = exif.get_ifd(EXIF_POINTER)
    except Exception:  # noqa: BLE001 - a broken Exif IFD: keep what IFD0 said
        sub = {}
    for tag, name in EXIF_SUB.items():
        if sub.get(tag):
            values[name] = sub.get(tag)
    lines = []
    camera = " ".join(_short(values[k]) for k in ("Make", "Model") if k in values)
    if camera:
        lines.append(line("EXIF", "Make / Model", camera, f"It names the camera or phone: {camera}.", CAMERA))
    if "Software" in values:
        lines.append(line("EXIF", "Software", values["Software"],
                          f"The last program that saved it: {_short(values['Software'])}.", SOFTWARE))
    if "DateTimeOriginal" in values:
        lines.append(line("EXIF", "DateTimeOriginal", values["DateTimeOriginal"],
                          f"It says it was taken on {_short(values['DateTimeOriginal'])} (camera clock, no time zone)."))
    if "Artist" in values:
        lines.append(line("EXIF", "Artist", values["Artist"], f"It names its author: {_short(values['Artist'])}."))
    for name in ("ImageDescription", "UserComment"):
        if name in values:
            text = _user_comment(values[name]) if name == "UserComment" else _text(values[name])
            if text.strip():
                lines.append(_described(f"EXIF {name}", name, text))
    return lines


def _described(source: str, field: str, text: str) -> dict[str, str]:
    """A free-text field: generation settings when it reads like them, else a plain quote."""
    if _looks_like_sd_parameters(text):
        return _sd_line(source, field, text)
    return line(source, field, text, f"A description in the file reads “{_short(text)}”.")


# --------------------------------------------------------------------------- XMP

_XMP_FIELDS = {
    "DigitalSourceType": "Iptc4xmpExt:DigitalSourceType",
    "CreatorTool": "xmp:CreatorTool",
    "Credit": "photoshop:Credit",
}


_ATTRIBUTE = re.compile(r'\s*=\s*"([^"]*)"')
_RESOURCE = re.compile(r'\s[^>]*?rdf:resource="([^"]*)"')
_ELEMENT = re.compile(r"(?:\s[^>/]*)?>\s*(?:<rdf:\w+>\s*<rdf:li[^>]*>)?\s*([^<\s][^<]*)<")


def _xmp_values(packet: str, name: str, limit: int = 10) -> list[str]:
    """Values of an XMP property written as an attribute, an element or an rdf:resource.

    Each occurrence of ``name`` (a plain substring search) is matched within the next 1 KB
    only, so a hostile packet costs linear time (no regex runs over the whole packet)."""
    values: list[str] = []
    at = packet.find(name)
    seen = 0
    while at >= 0 and len(values) < limit and seen < 200:
        seen += 1
        head = packet[max(0, at - 48):at]
        prefix = re.search(r"([\w-]*:)?$", head)
        before = head[: len(head) - len(prefix.group(0))] if prefix else head
        if not before.endswith("/") and (not before or not before[-1].isalnum()):
            rest = packet[at + len(name): at + len(name) + 1024]
            for pattern in (_ATTRIBUTE, _RESOURCE, _ELEMENT):
                match = pattern.match(rest)
                if match and match.group(1).strip():
                    values.append(match.group(1).strip())
                    break
        at = packet.find(name, at + len(name))
    return values


def _xmp_lines(xmp: Any) -> list[dict[str, str]]:
    if not xmp:
        return []
    packet = xmp[:MAX_XMP].decode("utf-8", "replace") if isinstance(xmp, bytes) else str(xmp)[:MAX_XMP]
    lines = []
    for value in dict.fromkeys(_xmp_values(packet, "DigitalSourceType")):
        kind = source_type(value)
        if kind:
            lines.append(line("XMP (IPTC)", _XMP_FIELDS["DigitalSourceType"], value,
                              f"Its IPTC digital source type says it was {kind['words']}.", kind["kind"]))
    for value in dict.fromkeys(_xmp_values(packet, "CreatorTool")):
        lines.append(line("XMP", _XMP_FIELDS["CreatorTool"], value,
                          f"It names the program that made it: {_short(value)}.", SOFTWARE))
    for value in dict.fromkeys(_xmp_values(packet, "Credit")):
        ai = bool(re.search(r"\bAI\b|artificial intelligence", value, re.I))
        lines.append(line("XMP", _XMP_FIELDS["Credit"], value, f"Its credit line reads “{_short(value)}”.",
                          AI if ai else "other"))
    return lines


# --------------------------------------------------------------------------- PNG text chunks


def _looks_like_sd_parameters(text: str) -> bool:
    return bool(re.search(r"(?m)^Steps: \d+, ", text)) or (
        "Negative prompt:" in text and "Sampler:" in text
    )


def _sd_line(source: str, field: str, text: str) -> dict[str, str]:
    """Stable Diffusion WebUI ``parameters``: the prompt, then optional "Negative prompt:",
    then one line of ``Key: value, ...`` settings."""
    settings_at = text.rfind("\nSteps: ")
    body, settings = (text[:settings_at], text[settings_at + 1:]) if settings_at >= 0 else (text, "")
    prompt = body.split("\nNegative prompt:")[0].strip()
    found = dict(re.findall(r"(Model|Steps|Sampler|Seed|Size): ([^,]+)", settings))
    facts = [f"model {found['Model']}" if "Model" in found else "",
             f"{found['Steps']} steps" if "Steps" in found else "",
             f"seed {found['Seed']}" if "Seed" in found else ""]
    detail = ", ".join(f for f in facts if f)
    return line(
        source, field, text,
        f"It holds Stable Diffusion generation settings: prompt “{_short(prompt)[:160]}”"
        + (f" ({detail})" if detail else "") + ". Written by an AI image generator.",
        AI,
    )


def _comfy_line(key: str, value: str) -> dict[str, str]:
    try:
        graph = json.loads(value)
    except ValueError:
        graph = None
    details = []
    if isinstance(graph, dict) and key == "prompt":
        nodes = [n for n in graph.values() if isinstance(n, dict)]
        ckpts = {str((n.get("inputs") or {}).get("ckpt_name")) for n in nodes
                 if (n.get("inputs") or {}).get("ckpt_name")}
        texts = [str((n.get("inputs") or {}).get("text")) for n in nodes
                 if "CLIPTextEncode" in str(n.get("class_type")) and isinstance((n.get("inputs") or {}).get("text"), str)]
        details.append(f"{len(nodes)} nodes")
        if ckpts:
            details.append("model " + ", ".join(sorted(ckpts))[:120])
        if texts:
            details.append(f"prompt “{_short(texts[0])[:160]}”")
    elif isinstance(graph, dict) and isinstance(graph.get("nodes"), list):
        details.append(f"{len(graph['nodes'])} nodes")
    what = "generation graph" if key == "prompt" else "workflow"
    return line(
        "PNG text chunk", key, value,
        f"It holds a ComfyUI {what}" + (f" ({'; '.join(details)})" if details else "")
        + ". Written by an AI image generator.",
        AI,
    )


def _png_lines(info: dict[str, Any]) -> list[dict[str, str]]:
    lines = []
    for key, value in info.items():
        if not isinstance(key, str) or not isinstance(value, str | bytes) or key in ("xmp", "XML:com.adobe.xmp", "icc_profile", "exif"):
            continue
        text = _text(value)
        if key == "parameters" or (key in ("Description", "Comment") and _looks_like_sd_parameters(text)):
            lines.append(_sd_line("PNG text chunk", key, text))
        elif key in ("prompt", "workflow"):
            lines.append(_comfy_line(key, text))
        elif key in GENERATOR_CHUNKS:
            lines.append(line("PNG text chunk", key, text,
                              f"It holds generation settings of {GENERATOR_CHUNKS[key]}. Written by an AI image generator.", AI))
        elif key == "Software":
            lines.append(line("PNG text chunk", key, text, f"It names the program that made it: {_short(text)}.", SOFTWARE))
        elif key in ("Source", "Author", "Title", "Description", "Comment", "Copyright", "Creation Time"):
            lines.append(line("PNG text chunk", key, text, f"Its “{key}” field reads “{_short(text)}”."))
    return lines


# --------------------------------------------------------------------------- video


def _tag_text(name: str, label: str, value: str) -> tuple[str, str]:
    low = value.lower()
    if name == "encoder" and low.startswith("lavf"):
        return (f"Written by FFmpeg ({value}), the library most converters, editors and platforms "
                "use: the file was made or re-packaged with FFmpeg at some point.", SOFTWARE)
    if name == "encoder" and low.startswith("lavc"):
        return f"Its pictures were encoded with FFmpeg's codec library ({value}).", SOFTWARE
    if name in ("make", "model") or name.endswith((".make", ".model", ".manufacturer")):
        return f"{label}: {value}.", CAMERA
    if name == "creation_time":
        return f"It says it was made on {value} (as written by whatever made the file).", "other"
    if name in ("comment", "description"):
        return f"Its {label.lower()} reads “{value}”.", "other"
    return f"{label}: {value}.", SOFTWARE


def _video_lines(path: Path) -> list[dict[str, str]]:
    import av

    lines: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    with av.open(str(path), metadata_errors="ignore") as container:
        tagged = [("Container tag", container.metadata)] + [
            (f"{s.type.capitalize()} stream tag", s.metadata) for s in container.streams
        ]
    for source, tags in tagged:
        for raw_name, raw_value in (tags or {}).items():
            name, value = str(raw_name).lower(), _short(raw_value)
            if not value or (name, value) in seen:
                continue
            if name == "handler_name" and value.lower() not in GENERIC_HANDLERS:
                seen.add((name, value))
                lines.append(line(source, raw_name, value, f"The track's handler is named “{value}”.", SOFTWARE))
            elif name in VIDEO_TAGS:
                seen.add((name, value))
                text, kind = _tag_text(name, VIDEO_TAGS[name], value)
                lines.append(line(source, raw_name, value, text, kind))
                if name in ("comment", "description") and _looks_like_sd_parameters(value):
                    lines[-1] = _sd_line(source, raw_name, value)
    return lines[:40]
