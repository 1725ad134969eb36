"""Media that describe themselves, made at test time (no committed blobs, no real keys).

- :func:`make_pki`: a throw-away root CA and an end-entity signing certificate (ECDSA P-256)
  with what C2PA asks of a signer: Key Usage digitalSignature (critical), an EKU of
  emailProtection, not a CA. The root is what a trust-anchor file would hold.
- :func:`sign`: put a signed C2PA manifest into a JPEG, PNG, WebP, MP4, MOV or AVI file with
  ``c2pa-python``'s Builder.
- :func:`tamper`: change one byte of the picture data after signing.
- :func:`sd_png`, :func:`comfy_png`, :func:`xmp_jpeg`, :func:`tagged_clip`: the other ways
  files describe themselves.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import mimetypes
import struct
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image, PngImagePlugin

AI_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
CAMERA_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"


@dataclass
class Pki:
    root_pem: bytes  # the trust anchor
    chain_pem: bytes  # end-entity certificate, then the root
    key_pem: bytes  # the end entity's private key (PKCS#8)


def make_pki(org: str = "Faceproof Test Generator", days: int = 30,
             root_org: str | None = None) -> Pki:
    """A root CA (of ``root_org``, default ``org``) and ``org``'s signing certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn: str, o: str = org) -> x509.Name:
        return x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, o),
        ])

    def usage(**on: bool) -> x509.KeyUsage:
        names = ("digital_signature", "content_commitment", "key_encipherment",
                 "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
                 "encipher_only", "decipher_only")
        return x509.KeyUsage(**{n: on.get(n, False) for n in names})

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(name(f"{root_org or org} Root CA", root_org or org))
        .issuer_name(name(f"{root_org or org} Root CA", root_org or org))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name(f"{org} Signer"))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return Pki(
        root_pem=root.public_bytes(pem),
        chain_pem=leaf.public_bytes(pem) + root.public_bytes(pem),
        key_pem=key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def manifest(source_type: str | None = AI_SOURCE, *, tool: str = "Faceproof Test Generator",
             title: str = "astronaut", extra_actions: list[dict] | None = None) -> dict:
    """A manifest definition: one ``c2pa.created`` action with ``source_type``."""
    created = {"action": "c2pa.created", "softwareAgent": {"name": tool, "version": "1.0"}}
    if source_type:
        created["digitalSourceType"] = source_type
    return {
        "claim_generator_info": [{"name": tool, "version": "1.0"}],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [created, *(extra_actions or [])]}}
        ],
    }


def sign(src: Path, dst: Path, pki: Pki, definition: dict | None = None,
         ingredient: Path | None = None) -> Path:
    """``src`` with a signed manifest (``definition``, default: AI-generated) written to ``dst``;
    ``ingredient``: a file recorded as the parent it was made from."""
    import c2pa

    mime = mimetypes.guess_type(src.name)[0]
    context = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})
    signer = c2pa.Signer.from_info(
        c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, pki.chain_pem, pki.key_pem, None)
    )
    with c2pa.Builder(definition or manifest(), context=context) as builder:
        if ingredient is not None:
            with open(ingredient, "rb") as fh:
                builder.add_ingredient(
                    {"title": ingredient.name, "relationship": "parentOf"},
                    mimetypes.guess_type(ingredient.name)[0], fh,
                )
        with open(src, "rb") as source, open(dst, "w+b") as out:
            builder.sign(signer, mime, source, out)
    return dst


def tamper(path: Path) -> Path:
    """Change one byte of the picture data in place (after signing): the JPEG entropy data
    before its end marker, a PNG's last IDAT chunk data, or an MP4's ``mdat`` box."""
    data = bytearray(path.read_bytes())
    if data[:2] == b"\xff\xd8":
        at = len(data) - 64
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        at = data.rfind(b"IDAT") + 8
    else:
        at = _mdat(data) + 64
    data[at] ^= 0x55
    path.write_bytes(bytes(data))
    return path


def _mdat(data: bytes) -> int:
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"mdat":
            return pos + 8
        pos += size or len(data)
    raise ValueError("no mdat box")


#: A Stable Diffusion WebUI ``parameters`` chunk, as AUTOMATIC1111 writes it.
SD_PARAMETERS = (
    "portrait photo of an astronaut, white spacesuit, studio light\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234567, Size: 512x512, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.10.1"
)


def sd_png(path: Path, image: np.ndarray) -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", SD_PARAMETERS)
    Image.fromarray(image).save(path, "PNG", pnginfo=info)
    return path


def comfy_png(path: Path, image: np.ndarray) -> Path:
    """ComfyUI's ``prompt`` (the executed graph) and ``workflow`` (the editor's graph)."""
    prompt = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "an astronaut portrait", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 42, "steps": 20, "model": ["4", 0]}},
    }
    workflow = {"last_node_id": 9, "nodes": [{"id": 4}, {"id": 6}, {"id": 3}]}
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(prompt))
    info.add_text("workflow", json.dumps(workflow))
    Image.fromarray(image).save(path, "PNG", pnginfo=info)
    return path


def xmp_jpeg(path: Path, image: np.ndarray, source_type: str = AI_SOURCE,
             software: str = "Faceproof Test Generator") -> Path:
    """A JPEG with an XMP packet naming its IPTC digital source type and creator tool, and
    EXIF Software, Make and Model."""
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        f'Iptc4xmpExt:DigitalSourceType="{source_type}" xmp:CreatorTool="{software}"/>'
        "</rdf:RDF></x:xmpmeta>"
    )
    exif = Image.Exif()
    exif[0x0131] = software
    exif[0x010F] = "Faceproof"
    exif[0x0110] = "Test Camera 1"
    Image.fromarray(image).save(path, "JPEG", quality=90, exif=exif, xmp=xmp.encode())
    return path


def tagged_clip(path: Path, frames: list[np.ndarray], fps: int = 15) -> Path:
    """A QuickTime clip whose container names the software and camera that made it, as a
    phone or an editor writes them (FFmpeg adds its own ``encoder`` tag)."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", format="mov", options={"movflags": "use_metadata_tags"}) as out:
        out.metadata["com.apple.quicktime.software"] = "Faceproof Test Generator 1.0"
        out.metadata["com.apple.quicktime.make"] = "Faceproof"
        out.metadata["com.apple.quicktime.model"] = "Test Camera 1"
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.metadata["encoder"] = "Lavc62 mpeg4"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def jpeg_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=90)
    return buf.getvalue()
