"""What a file says about itself (webapp.detection.provenance): Content Credentials signed here
with a throw-away certificate chain and read back with c2pa-python, and unsigned metadata
written by generators, cameras and FFmpeg. No network, no committed media."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import media
import provenance_media as pm
import pytest
from PIL import Image

from webapp.detection.provenance import read_provenance
from webapp.detection.provenance.credentials import read_credentials
from webapp.detection.provenance.vocabulary import source_type


@pytest.fixture(scope="module")
def pki() -> pm.Pki:
    return pm.make_pki()


@pytest.fixture(scope="module")
def signed(tmp_path_factory, pki) -> dict[str, Path]:
    """Plain, signed (AI-generated), signed-camera-with-ingredient and tampered files."""
    folder = tmp_path_factory.mktemp("signed")
    jpg = media.face_photo(folder / "plain.jpg")
    png = media.face_photo(folder / "plain.png", "PNG")
    clip = media.face_clip(folder / "plain.mp4", seconds=1.0)
    out = {"plain_jpg": jpg, "plain_png": png, "plain_mp4": clip}
    for key, src in (("jpg", jpg), ("png", png), ("mp4", clip)):
        out[key] = pm.sign(src, folder / f"ai.{key}", pki)
        out[f"tampered_{key}"] = pm.tamper(shutil.copy(out[key], folder / f"tampered.{key}"))
    out["camera"] = pm.sign(
        jpg, folder / "camera.jpg", pki,
        pm.manifest(pm.CAMERA_SOURCE, tool="Faceproof Test Camera",
                    extra_actions=[{"action": "c2pa.color_adjustments"}]),
        ingredient=jpg,
    )
    (folder / "root.pem").write_bytes(pki.root_pem)
    out["root"] = folder / "root.pem"
    (folder / "other.pem").write_bytes(pm.make_pki("Somebody Else").root_pem)
    out["other_root"] = folder / "other.pem"
    return out


def kind_of(path: Path) -> str:
    return "video" if path.suffix in (".mp4", ".mov", ".mkv") else "image"


@pytest.mark.parametrize("key", ["jpg", "png", "mp4"])
def test_signed_ai_file_reads_valid_and_declares_ai(signed, key):
    prov = read_provenance(signed[key], kind_of(signed[key]))
    cc = prov["content_credentials"]
    assert cc["state"] == "valid" and cc["present"] is True
    assert cc["signature"] == "valid" and cc["hashes"] == "match"
    assert cc["claim_generator"] == "Faceproof Test Generator 1.0"
    assert cc["signer"]["name"] == "Faceproof Test Generator Signer"
    assert cc["source_type"]["code"] == "trainedAlgorithmicMedia"
    assert cc["source_type"]["words"] == "made by an AI generator"
    assert cc["actions"][0]["words"] == "created"
    assert prov["declares_ai"] is True
    assert prov["headline"] == "The file's own signed Content Credentials say it was made by an AI generator."
    json.dumps(prov)  # stored in result.json as it is


@pytest.mark.parametrize("key", ["jpg", "png", "mp4"])
def test_bytes_changed_after_signing_is_a_hash_mismatch(signed, key):
    path = signed[f"tampered_{key}"]
    prov = read_provenance(path, kind_of(path))
    cc = prov["content_credentials"]
    assert cc["state"] == "invalid" and cc["hashes"] == "mismatch"
    assert cc["signature"] == "valid"  # the manifest itself is intact; the picture is not
    assert "changed after it was signed" in cc["problems"][0]
    assert prov["declares_ai"] is False  # an invalid manifest is not shown as the file's claim
    assert "changed after signing" in prov["headline"]


def test_signer_on_the_configured_trust_list_is_trusted(signed):
    cc = read_credentials(signed["jpg"], signed["root"])
    assert cc["state"] == "valid" and cc["trust"] == "trusted"


def test_unknown_signer_is_untrusted_but_still_valid(signed):
    cc = read_credentials(signed["jpg"], signed["other_root"])
    assert cc["state"] == "valid" and cc["trust"] == "untrusted"
    assert "not on this server's trust list" in cc["trust_text"]


def test_without_a_trust_list_the_page_says_so(signed, tmp_path):
    cc = read_credentials(signed["jpg"])
    assert cc["trust"] == "no_trust_list"
    assert cc["trust_text"].startswith("No trust list is configured on this server")
    missing = read_credentials(signed["jpg"], tmp_path / "nowhere.pem")
    assert missing["trust"] == "trust_list_unreadable" and missing["state"] == "valid"
    (tmp_path / "empty.pem").write_text("not a certificate")
    assert read_credentials(signed["jpg"], tmp_path / "empty.pem")["trust"] == "trust_list_unreadable"


def test_camera_manifest_with_an_edit_and_an_ingredient(signed):
    prov = read_provenance(signed["camera"], "image")
    cc = prov["content_credentials"]
    assert cc["state"] == "valid" and prov["declares_ai"] is False
    assert cc["source_type"]["words"] == "captured by a camera"
    assert [a["words"] for a in cc["actions"]] == ["created", "adjusted the colours"]
    assert cc["ingredients"] == [
        {"title": "plain.jpg", "format": "image/jpeg", "relationship": "parentOf", "has_credentials": False}
    ]


@pytest.mark.parametrize("key", ["plain_jpg", "plain_png", "plain_mp4"])
def test_no_manifest(signed, key):
    prov = read_provenance(signed[key], kind_of(signed[key]))
    assert prov["content_credentials"]["state"] == "absent"
    assert prov["content_credentials"]["present"] is False
    assert prov["declares_ai"] is False


def test_broken_files_are_a_reported_state_never_a_crash(tmp_path, signed):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8\xff" + b"junk" * 100)
    prov = read_provenance(junk, "image")
    assert prov["content_credentials"]["state"] == "unreadable"
    assert prov["file_says"] == []
    half = tmp_path / "half.jpg"
    half.write_bytes(signed["jpg"].read_bytes()[:2000])  # cut inside the manifest
    state = read_provenance(half, "image")["content_credentials"]["state"]
    assert state in ("unreadable", "invalid")
    bmp = tmp_path / "photo.bmp"
    Image.open(signed["plain_jpg"]).save(bmp)
    assert read_provenance(bmp, "image")["content_credentials"]["state"] == "unsupported"
    assert read_provenance(tmp_path / "gone.mp4", "video")["content_credentials"]["state"] == "unreadable"


def test_stable_diffusion_parameters_chunk(tmp_path):
    prov = read_provenance(pm.sd_png(tmp_path / "sd.png", media.astronaut()), "image")
    [line] = prov["file_says"]
    assert line["source"] == "PNG text chunk" and line["field"] == "parameters"
    assert line["kind"] == "ai"
    assert "Stable Diffusion generation settings" in line["text"]
    assert "portrait photo of an astronaut" in line["text"]
    assert "model v1-5-pruned-emaonly, 28 steps, seed 1234567" in line["text"]
    assert prov["metadata_declares_ai"] is True and prov["declares_ai"] is False
    assert prov["headline"].startswith("Its metadata (unsigned) says it was made by an AI generator")


def test_comfyui_prompt_and_workflow_chunks(tmp_path):
    prov = read_provenance(pm.comfy_png(tmp_path / "comfy.png", media.astronaut()), "image")
    lines = {line["field"]: line for line in prov["file_says"]}
    assert set(lines) == {"prompt", "workflow"}
    assert "ComfyUI generation graph (3 nodes; model sd_xl_base_1.0.safetensors" in lines["prompt"]["text"]
    assert "an astronaut portrait" in lines["prompt"]["text"]
    assert lines["workflow"]["text"].startswith("It holds a ComfyUI workflow (3 nodes)")


def test_xmp_digital_source_type_and_exif(tmp_path):
    prov = read_provenance(pm.xmp_jpeg(tmp_path / "x.jpg", media.astronaut()), "image")
    by_field = {line["field"]: line for line in prov["file_says"]}
    assert by_field["Iptc4xmpExt:DigitalSourceType"]["kind"] == "ai"
    assert "made by an AI generator" in by_field["Iptc4xmpExt:DigitalSourceType"]["text"]
    assert by_field["xmp:CreatorTool"]["value"] == "Faceproof Test Generator"
    assert by_field["Software"]["source"] == "EXIF" and by_field["Software"]["value"] == "Faceproof Test Generator"
    assert by_field["Make / Model"]["value"] == "Faceproof Test Camera 1"
    camera = read_provenance(
        pm.xmp_jpeg(tmp_path / "c.jpg", media.astronaut(), pm.CAMERA_SOURCE), "image"
    )
    assert [x["text"] for x in camera["file_says"] if x["source"] == "XMP (IPTC)"] == [
        "Its IPTC digital source type says it was captured by a camera."
    ]
    assert camera["metadata_declares_ai"] is False


def test_clip_container_tags(tmp_path):
    frames = [media.astronaut()[100:340, 100:420]] * 8
    prov = read_provenance(pm.tagged_clip(tmp_path / "tagged.mov", frames), "video")
    by_field = {(line["source"], line["field"]): line for line in prov["file_says"]}
    assert by_field[("Container tag", "com.apple.quicktime.software")]["value"] == "Faceproof Test Generator 1.0"
    assert by_field[("Container tag", "com.apple.quicktime.model")]["kind"] == "camera"
    encoder = by_field[("Container tag", "encoder")]
    assert encoder["value"].startswith("Lavf") and "Written by FFmpeg" in encoder["text"]
    assert "FFmpeg's codec library" in by_field[("Video stream tag", "encoder")]["text"]
    assert prov["content_credentials"]["state"] == "absent"


def test_plain_photo_says_nothing(signed):
    prov = read_provenance(signed["plain_png"], "image")
    assert prov["file_says"] == [] and prov["headline"] is None


def test_source_type_words():
    assert source_type("http://cv.iptc.org/newscodes/digitalsourcetype/compositeSynthetic")["kind"] == "ai"
    assert source_type("digitalCapture")["words"] == "captured by a camera"
    assert source_type("http://c2pa.org/digitalsourcetype/empty") is None
    assert source_type("somethingNew") == {
        "code": "somethingNew", "uri": "somethingNew", "words": "described as “somethingNew”", "kind": "other",
    }


def _clip(path, fmt: str, codec: str = "mpeg4"):
    import av

    frame = media.astronaut()[100:340, 100:420].copy()
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=15)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for _ in range(6):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_which_upload_formats_can_carry_content_credentials(tmp_path, pki):
    """Of the site's formats, c2pa-python signs and validates JPEG, PNG, WebP, MP4, MOV and
    AVI (and the signed files still decode); BMP, MKV and WebM cannot carry a manifest."""
    import av

    photo = media.astronaut()
    Image.fromarray(photo).save(tmp_path / "a.webp")
    Image.fromarray(photo).save(tmp_path / "a.bmp")
    _clip(tmp_path / "a.mov", "mov")
    _clip(tmp_path / "a.avi", "avi")
    _clip(tmp_path / "a.mkv", "matroska")
    _clip(tmp_path / "a.webm", "webm", "libvpx")
    for name in ("a.webp", "a.mov", "a.avi"):
        signed = pm.sign(tmp_path / name, tmp_path / f"signed-{name}", pki)
        assert read_credentials(signed)["state"] == "valid", name
        if name == "a.webp":
            Image.open(signed).load()
        else:
            with av.open(str(signed)) as container:
                assert sum(1 for _ in container.decode(video=0)) == 6, name
    for name in ("a.bmp", "a.mkv", "a.webm"):
        with pytest.raises(Exception, match="unsupported"):
            pm.sign(tmp_path / name, tmp_path / f"signed-{name}", pki)
        assert read_credentials(tmp_path / name)["state"] == "unsupported", name


def test_xmp_forms_and_a_hostile_packet(tmp_path):
    """Attribute, element and rdf:resource forms are read; a megabyte of near-misses costs
    linear time (each occurrence is matched within 1 KB), and closing tags are not values."""
    import time

    from webapp.detection.provenance.metadata import _xmp_values

    packet = (
        '<rdf:Description Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"/>'
        "<Iptc4xmpExt:DigitalSourceType>compositeSynthetic</Iptc4xmpExt:DigitalSourceType>\n  "
        '<Iptc4xmpExt:DigitalSourceType rdf:resource="trainedAlgorithmicMedia"/>'
        "<xmp:CreatorTool><rdf:Alt><rdf:li xml:lang=\"x-default\">Some Tool 2.0</rdf:li></rdf:Alt></xmp:CreatorTool>"
    )
    assert _xmp_values(packet, "DigitalSourceType") == [
        "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture", "compositeSynthetic", "trainedAlgorithmicMedia",
    ]
    assert _xmp_values(packet, "CreatorTool") == ["Some Tool 2.0"]
    hostile = ("a" * 500_000) + ":DigitalSourceType " * 30_000 + "<" * 200_000
    started = time.perf_counter()
    assert _xmp_values(hostile, "DigitalSourceType") == []
    assert time.perf_counter() - started < 1.0


def test_validation_codes_in_plain_words():
    """How the C2PA library's codes become the page's states (stores as Reader.json() gives)."""
    from webapp.detection.provenance.credentials import describe

    def store(failures, successes=("assertion.dataHash.match",)):
        return {
            "active_manifest": "m",
            "manifests": {"m": {"claim_generator_info": [{"name": "Tool"}], "assertions": []}},
            "validation_results": {"activeManifest": {
                "failure": [{"code": c, "explanation": c} for c in failures],
                "success": [{"code": c} for c in successes],
            }},
        }

    untrusted_tsa = describe(store(["timeStamp.untrusted"]), "Valid", "trusted")
    assert untrusted_tsa["state"] == "valid" and untrusted_tsa["trust"] == "untrusted"
    altered = describe(store(["claimSignature.mismatch"]), "Invalid", "no_trust_list")
    assert altered["state"] == "invalid" and altered["signature"] == "invalid"
    assert altered["problems"] == ["The Content Credentials themselves were altered after signing."]
    expired = describe(store(["signingCredential.expired"]), "Invalid", "no_trust_list")
    assert expired["signature"] == "invalid" and expired["hashes"] == "match"
    other = describe(store(["ingredient.manifest.mismatch"]), "Invalid", "no_trust_list")
    assert other["state"] == "invalid" and other["problems"] == ["ingredient.manifest.mismatch: ingredient.manifest.mismatch"]
    assert describe(store([], ()), "Valid", "no_trust_list")["hashes"] == "not_checked"


def test_a_manifest_kept_elsewhere_is_reported_never_fetched(tmp_path, pki):
    """A file whose Content Credentials live at a URL (here a local server that counts its
    requests): c2pa's default reader would fetch it; ours reports the address and calls nothing."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    import c2pa

    requests: list[str] = []

    class Counter(BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/manifest.c2pa"
        signer = c2pa.Signer.from_info(
            c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, pki.chain_pem, pki.key_pem, None)
        )
        context = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})
        src, dst = media.face_photo(tmp_path / "a.jpg"), tmp_path / "remote.jpg"
        with c2pa.Builder(pm.manifest(), context=context) as builder:
            builder.set_no_embed()
            builder.set_remote_url(url)
            with open(src, "rb") as source, open(dst, "w+b") as out:
                builder.sign(signer, "image/jpeg", source, out)
        prov = read_provenance(dst, "image")
        cc = prov["content_credentials"]
        assert cc["state"] == "remote" and cc["remote_url"] == url
        assert "does not fetch them" in cc["text"] and prov["declares_ai"] is False
        assert requests == []
    finally:
        server.shutdown()


def test_generation_settings_in_a_jpeg_user_comment(tmp_path):
    """AUTOMATIC1111 saves a JPEG's settings in EXIF UserComment (8-byte charset header)."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + pm.SD_PARAMETERS.encode("utf-16-be")
    path = tmp_path / "sd.jpg"
    Image.fromarray(media.astronaut()).save(path, "JPEG", exif=exif)
    [line] = read_provenance(path, "image")["file_says"]
    assert line["source"] == "EXIF UserComment" and line["kind"] == "ai"
    assert "prompt “portrait photo of an astronaut" in line["text"] and "seed 1234567" in line["text"]
