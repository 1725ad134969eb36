"""The "What the file says about itself" panel through the real site: signed files uploaded
through the form and the API (the stand-in detector scores faces; the provenance reading is
the real one), then the page, the API JSON, the CSV, the shared page and the PDF report."""

from __future__ import annotations

import csv
import html as htmllib
import io
import shutil

import media
import provenance_media as pm
import pytest
from conftest import detection_id_from, upload, wait_for_job
from test_report import read_pdf


@pytest.fixture(scope="module")
def pki() -> pm.Pki:
    return pm.make_pki()


@pytest.fixture
def signed_photo(tmp_path, pki):
    return pm.sign(media.face_photo(tmp_path / "plain.jpg"), tmp_path / "generated.jpg", pki)


def page(client, url: str) -> str:
    """A page's HTML with entities decoded (a file's own words may hold quotes)."""
    return htmllib.unescape(client.get(url).get_data(as_text=True))


def done(app, client, path, **kw) -> str:
    det_id = detection_id_from(upload(client, path, **kw))
    det = wait_for_job(app, det_id)
    assert det.status == "done", det.error_message
    return det_id


def test_signed_ai_photo_shows_the_files_claim_first_and_leaves_the_verdict_alone(
    app, client, signed_photo, detector
):
    detector.p_fake = 0.12  # the model says "likely real": the manifest must not change that
    det_id = done(app, client, signed_photo)
    html = page(client, f"/results/{det_id}")
    panel, verdict = html.index('id="provenance"'), html.index('id="verdict-label"')
    assert panel < verdict  # shown first
    assert "The file's own claim, not the model's verdict" in html
    assert "The file's own signed Content Credentials say it was made by an AI generator." in html
    assert "does not change its score or verdict" in html
    assert "Faceproof Test Generator 1.0" in html and "Faceproof Test Generator Signer" in html
    assert "No trust list is configured on this server" in html
    assert "Yes: the content matches what was signed." in html
    assert 'data-verdict="real"' in html and "Likely real" in html

    body = client.get(f"/api/v1/detections/{det_id}").json
    assert body["verdict"] == "real" and body["p_fake"] == 0.12
    prov = body["result"]["provenance"]
    assert prov["declares_ai"] is True
    assert prov["content_credentials"]["state"] == "valid"
    assert prov["content_credentials"]["source_type"]["code"] == "trainedAlgorithmicMedia"
    assert body["links"]["provenance_csv"].endswith(f"/results/{det_id}/provenance.csv")

    rows = list(csv.DictReader(io.StringIO(client.get(f"/results/{det_id}/provenance.csv").get_data(as_text=True))))
    assert rows[0]["field"] == "state" and rows[0]["value"] == "valid"
    assert {"It says it was": "made by an AI generator"}.items() <= {r["field"]: r["meaning"] for r in rows}.items()
    download = client.get(f"/results/{det_id}/result.json").json
    assert download["result"]["provenance"]["declares_ai"] is True


def test_api_upload_of_a_signed_photo(app, client, signed_photo):
    with open(signed_photo, "rb") as fh:
        response = client.post("/api/v1/detections", data={"file": (fh, "generated.jpg")},
                               content_type="multipart/form-data")
    det_id = response.json["id"]
    wait_for_job(app, det_id)
    prov = client.get(f"/api/v1/detections/{det_id}").json["result"]["provenance"]
    assert prov["content_credentials"]["claim_generator"] == "Faceproof Test Generator 1.0"
    assert prov["seconds"] < 1.0


def test_file_changed_after_signing_says_so(app, client, signed_photo):
    tampered = pm.tamper(shutil.copy(signed_photo, signed_photo.with_name("tampered.jpg")))
    det_id = done(app, client, tampered)
    html = page(client, f"/results/{det_id}")
    assert html.index('id="verdict-label"') < html.index('id="provenance"')  # not first
    assert "The file was changed after it was signed" in html
    assert "No: the file was changed after it was signed." in html
    assert "do not validate" in html


def test_signer_on_the_configured_trust_list(app, client, signed_photo, pki, tmp_path):
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(pki.root_pem)
    app.config["PROVENANCE_TRUST_ANCHORS"] = str(anchors)
    det_id = done(app, client, signed_photo)
    html = page(client, f"/results/{det_id}")
    assert "chains to a trust anchor this server is configured with" in html


def test_unknown_signer_with_a_trust_list(app, client, signed_photo, tmp_path):
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(pm.make_pki("Somebody Else").root_pem)
    app.config["PROVENANCE_TRUST_ANCHORS"] = str(anchors)
    det_id = done(app, client, signed_photo)
    html = page(client, f"/results/{det_id}")
    assert "The signer is not on this server's trust list" in html


def test_plain_photo_explains_what_absence_means(app, client, files):
    det_id = done(app, client, files["photo_png"])
    html = page(client, f"/results/{det_id}")
    assert html.index('id="verdict-label"') < html.index('id="provenance"')
    assert "Nothing. The file carries no Content Credentials." in html
    assert "their absence proves nothing" in html


def test_stable_diffusion_png_and_tagged_clip_show_their_lines(app, client, tmp_path):
    sd = pm.sd_png(tmp_path / "sd.png", media.astronaut())
    html = page(client, f"/results/{done(app, client, sd)}")
    assert "PNG text chunk · <code>parameters</code>" in html
    assert "It holds Stable Diffusion generation settings" in html
    assert "Its metadata (unsigned) says it was made by an AI generator" in html
    clip = pm.tagged_clip(tmp_path / "tagged.mov", [media.astronaut()[100:340, 100:420]] * 10)
    html = page(client, f"/results/{done(app, client, clip)}")
    assert "Container tag · <code>encoder</code>" in html and "Written by FFmpeg (Lavf" in html
    assert "Faceproof Test Generator 1.0" in html


def test_shared_page_and_report_carry_the_panel(app, client, signed_photo):
    from test_privacy import share

    det_id = done(app, client, signed_photo)
    link = share(app, client, det_id)
    viewer = app.test_client()
    shared = page(viewer, f"/shared/{link.token}")
    assert "made by an AI generator" in shared and f"/shared/{link.token}/provenance.csv" in shared
    assert viewer.get(f"/shared/{link.token}/provenance.csv").status_code == 200
    _, text = read_pdf(client.get(f"/results/{det_id}/report.pdf").data)
    assert "What the file says about itself" in text
    assert "made by an AI generator" in " ".join(text.split())


def test_result_stored_before_provenance_says_it_was_not_read(app, client, files):
    import json

    from webapp.services.storage import result_dir

    det_id = done(app, client, files["photo_jpg"])
    with app.app_context():
        path = result_dir(det_id) / "result.json"
        stored = json.loads(path.read_text())
        assert stored["provenance"]["content_credentials"]["state"] == "absent"
        del stored["provenance"]
        path.write_text(json.dumps(stored))
    html = page(client, f"/results/{det_id}")
    assert "Not read: this result was stored before the site read what files say about themselves." in html
    assert "Likely real" in html
    csv_text = client.get(f"/results/{det_id}/provenance.csv").get_data(as_text=True)
    assert "stored before files were read" in csv_text
    assert client.get(f"/results/{det_id}/report.pdf").status_code == 200
