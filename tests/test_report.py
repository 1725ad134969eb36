"""The PDF report: a real clip and photo through the real engine, then their reports read back
(text with pypdf, fonts and images embedded, page 1 as a PNG with poppler's pdftoppm); the
stand-in detector for who may download it and what a pending or failed detection answers."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import time
from pathlib import Path

import media
import pytest
from conftest import (
    PROJECT_ROOT,
    SUMMARY,
    detection_id_from,
    make_app,
    skip_or_fail_in_ci,
    upload,
    wait_for_job,
)
from pypdf import PdfReader

from webapp.models import VERDICT_LABELS

#: The report of an analysed upload, in both queue modes: threads and Celery.
BOTH_QUEUE_MODES = True

# --------------------------------------------------------------------------- reading a PDF


def read_pdf(pdf: bytes) -> tuple[PdfReader, str]:
    """The reader and the text of every page, joined."""
    assert pdf.startswith(b"%PDF-"), pdf[:200]
    reader = PdfReader(io.BytesIO(pdf))
    return reader, "\n".join(page.extract_text() or "" for page in reader.pages)


def squeezed(text: str) -> str:
    """Text without white space: a SHA-256 wrapped over two lines reads as one again."""
    return "".join(text.split())


def unembedded_fonts(reader: PdfReader) -> list[str]:
    """Names of the fonts used without their font program in the file."""
    missing = []
    for page in reader.pages:
        fonts = (page.get("/Resources") or {}).get("/Font") or {}
        for ref in fonts.values():
            font = ref.get_object()
            descendants = font.get("/DescendantFonts")
            target = descendants[0].get_object() if descendants else font
            descriptor = target.get("/FontDescriptor") or {}
            descriptor = descriptor.get_object() if descriptor else {}
            if not any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")):
                missing.append(str(font.get("/BaseFont")))
    return missing


def image_count(reader: PdfReader) -> int:
    return sum(len(page.images) for page in reader.pages)


# --------------------------------------------------------------------------- the real engine


@pytest.fixture(scope="module")
def engine_reports(tmp_path_factory):
    """A clip and a photo analysed by the real engine, and their reports (owner and API)."""
    tmp = tmp_path_factory.mktemp("report")
    folder = tmp / "media"
    folder.mkdir()
    clip = media.face_clip(folder / "astronaut-pan.mp4")
    photo = media.face_photo(folder / "astronaut.jpg")
    app = make_app(tmp)
    try:
        client = app.test_client()
        clip_id = detection_id_from(upload(client, clip))
        photo_id = detection_id_from(upload(client, photo))
        clip_det = wait_for_job(app, clip_id, timeout=600)
        photo_det = wait_for_job(app, photo_id, timeout=600)
        assert clip_det.status == "done" and photo_det.status == "done", clip_det.error_message
        started = time.perf_counter()
        clip_pdf = client.get(f"/results/{clip_id}/report.pdf")
        seconds = time.perf_counter() - started
        out = {
            "app": app,
            "client": client,
            "clip": clip_det,
            "photo": photo_det,
            "clip_pdf": clip_pdf,
            "photo_pdf": client.get(f"/results/{photo_id}/report.pdf"),
            "api_pdf": client.get(f"/api/v1/detections/{clip_id}/report.pdf"),
            "letter_pdf": client.get(f"/results/{clip_id}/report.pdf?paper=letter"),
            "rdir": Path(app.config["RESULTS_FOLDER"]) / clip_id,
        }
        SUMMARY["PDF report"] = [
            f"clip report (real engine, 3-s clip, {clip_det.verdict}): {len(clip_pdf.data):,} "
            f"bytes, {seconds:.2f} s to render and send"
        ]
        yield out
    finally:
        app.extensions["detection_runner"].shutdown()


@pytest.mark.engine
@pytest.mark.slow
def test_clip_report_holds_the_verdict_the_hash_and_the_model(engine_reports):
    det, response = engine_reports["clip"], engine_reports["clip_pdf"]
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="faceproof-report-{det.id}.pdf"'
    )
    reader, text = read_pdf(response.data)
    flat = squeezed(text)
    assert VERDICT_LABELS[det.verdict] in text
    assert det.sha256 in flat  # the whole fingerprint, not a prefix
    assert det.model_version and det.model_version in text
    assert det.filename in text and "astronaut-pan.mp4" in text
    # The parts a fact-checker files: facts, chart, faces, heat maps, accuracy, limits.
    for heading in (
        "The file and its analysis",
        "Score over time",
        "Faces that were scored",
        "Where the model looked",
        "What the score means",
        "The model and its measured accuracy",
        "What this report cannot say",
    ):
        assert heading in text, heading
    for fact in (
        f"{det.width} × {det.height} px",
        f"{det.duration:.1f} s",
        f"{det.fps:g} fps",
        f"{det.size_bytes:,} bytes",
        "Frames analysed",
        "Report made",
    ):
        assert fact in text, f"{fact!r} not in {text[:1500]}"
    assert "frame score" in text and "time in the clip" in text  # the chart's axes
    assert "DFDC faces (held-out test)" in text  # the model's measured rows
    assert "Faces only." in text  # the site's own list of limits
    n = len(reader.pages)
    assert 2 <= n <= 4, n
    assert f"Page {n} of {n}" in reader.pages[-1].extract_text()
    assert reader.metadata.title == f"Faceproof report: {det.filename}"
    assert reader.pages[0].mediabox.height == pytest.approx(841.89, abs=1)  # A4 by default


@pytest.mark.engine
@pytest.mark.slow
def test_clip_report_embeds_its_fonts_and_images(engine_reports):
    import json

    reader, _ = read_pdf(engine_reports["clip_pdf"].data)
    assert not unembedded_fonts(reader)
    result = json.loads((engine_reports["rdir"] / "result.json").read_text())
    heat = sum(1 for c in result["chips"] if c.get("heatmap"))
    # every chip, the heat-map pairs (chip + overlay) and the thumbnail are in the file
    assert image_count(reader) >= len(result["chips"]) + 2 * heat + 1
    if shutil.which("pdffonts"):
        lines = (
            subprocess.run(
                ["pdffonts", "-"],
                input=engine_reports["clip_pdf"].data,
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .splitlines()[2:]
        )
        assert lines and all(line.split()[-5] == "yes" for line in lines), lines  # "emb" column
        assert any("DejaVu" in line for line in lines), lines


@pytest.mark.engine
@pytest.mark.slow
def test_clip_report_page_one_as_png_is_not_blank(engine_reports, tmp_path):
    if not shutil.which("pdftoppm"):
        skip_or_fail_in_ci(
            "pdftoppm (Debian's poppler-utils) is not installed: page 1 not looked at"
        )
    from PIL import Image

    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(engine_reports["clip_pdf"].data)
    subprocess.run(
        [
            "pdftoppm",
            "-r",
            "50",
            "-png",
            "-f",
            "1",
            "-l",
            "1",
            "-singlefile",
            str(pdf),
            str(tmp_path / "page1"),
        ],
        check=True,
    )
    page = Image.open(tmp_path / "page1.png").convert("RGB")
    assert page.width == pytest.approx(210 / 25.4 * 50, abs=2)  # A4 at 50 dpi
    grey = page.convert("L")
    inked = sum(grey.histogram()[:200]) / (page.width * page.height)
    assert inked > 0.03, f"page 1 is nearly blank ({inked:.1%} inked)"
    colours = page.quantize(colors=64).getcolors()
    assert len(colours) >= 8  # text, the verdict colours, the gauge, the thumbnail


@pytest.mark.engine
@pytest.mark.slow
def test_api_and_letter_paper(engine_reports):
    det = engine_reports["clip"]
    api = engine_reports["api_pdf"]
    assert api.status_code == 200 and api.mimetype == "application/pdf"
    assert det.sha256 in squeezed(read_pdf(api.data)[1])
    body = engine_reports["client"].get(f"/api/v1/detections/{det.id}").json
    assert body["links"]["report"].endswith(f"/api/v1/detections/{det.id}/report.pdf")
    letter = engine_reports["letter_pdf"]
    reader, text = read_pdf(letter.data)
    assert reader.pages[0].mediabox.height == pytest.approx(792, abs=1)  # US Letter
    assert det.sha256 in squeezed(text)


@pytest.mark.engine
@pytest.mark.slow
def test_photo_report_has_no_timeline(engine_reports):
    det, response = engine_reports["photo"], engine_reports["photo_pdf"]
    assert response.status_code == 200
    reader, text = read_pdf(response.data)
    assert VERDICT_LABELS[det.verdict] in text and det.sha256 in squeezed(text)
    assert "Score over time" not in text and "time in the clip" not in text
    assert "The photo bands of model" in text or det.verdict == "no_face"
    assert "Duration" not in text and "Frame rate" not in text
    assert "Where the model looked" in text
    assert not unembedded_fonts(reader)


# --------------------------------------------------------------------------- who, and when


def test_result_page_links_the_report(client, done_clip):
    html = client.get(f"/results/{done_clip}").get_data(as_text=True)
    assert f'id="download-report" href="/results/{done_clip}/report.pdf"' in html
    response = client.get(f"/results/{done_clip}/report.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Cache-Control"] == "private, no-store"
    reader, text = read_pdf(response.data)
    assert "Likely fake" in text and "86%" in text and "test-model-1" in text
    assert "at or above the 70% line" in text  # the result page's own sentence
    assert not unembedded_fonts(reader)


def test_share_link_viewer_gets_the_report_until_revoked(app, client, done_clip):
    from test_privacy import csrf, share

    link = share(app, client, done_clip)
    editor = app.test_client()
    html = editor.get(f"/shared/{link.token}").get_data(as_text=True)
    assert f'id="download-report" href="/shared/{link.token}/report.pdf"' in html
    response = editor.get(f"/shared/{link.token}/report.pdf")
    assert response.status_code == 200
    _, text = read_pdf(response.data)
    assert "Likely fake" in text and "from a share link" in text
    assert f"/results/{done_clip}" not in text and link.token not in text
    assert editor.get(f"/results/{done_clip}/report.pdf").status_code == 404
    client.post(
        f"/results/{done_clip}/share/revoke",
        data={"csrf_token": csrf(client, f"/results/{done_clip}"), "link": str(link.id)},
    )
    assert editor.get(f"/shared/{link.token}/report.pdf").status_code == 404


def test_someone_else_gets_404(app, client, done_clip):
    stranger = app.test_client()
    stranger.get("/")  # its own owner cookie
    for url in (
        f"/results/{done_clip}/report.pdf",
        f"/api/v1/detections/{done_clip}/report.pdf",
        f"/results/{'0' * 32}/report.pdf",
    ):
        response = stranger.get(url)
        assert response.status_code == 404, url
        assert b"%PDF" not in response.data


def test_pending_detection_has_no_report_yet(app, client, files, detector, queue_mode):
    if queue_mode == "celery":
        pytest.skip("eager Celery runs the job inside the request: nothing is ever seen running")
    detector.delay = 0.4
    det_id = detection_id_from(upload(client, files["clip"]))
    html = client.get(f"/results/{det_id}").get_data(as_text=True)
    assert "download-report" not in html  # no link while it runs
    page = client.get(f"/results/{det_id}/report.pdf")
    assert page.status_code == 409 and page.mimetype == "text/html"
    assert "once the analysis has finished" in page.get_data(as_text=True)
    api = client.get(f"/api/v1/detections/{det_id}/report.pdf")
    assert api.status_code == 409 and api.json["error"]["code"] == "not_finished"
    assert api.headers["Retry-After"]
    wait_for_job(app, det_id)
    assert client.get(f"/results/{det_id}/report.pdf").status_code == 200


def test_failed_detection_has_no_report(app, client, files, detector):
    detector.error = RuntimeError("boom")
    det_id = detection_id_from(upload(client, files["photo_jpg"]))
    det = wait_for_job(app, det_id)
    assert det.status == "failed"
    html = client.get(f"/results/{det_id}").get_data(as_text=True)
    assert "download-report" not in html
    page = client.get(f"/results/{det_id}/report.pdf")
    assert page.status_code == 409
    assert "its analysis failed" in page.get_data(as_text=True)
    api = client.get(f"/api/v1/detections/{det_id}/report.pdf")
    assert api.status_code == 409 and api.json["error"]["code"] == "analysis_failed"
    assert det.error_message.rstrip(".") in api.json["error"]["message"]


def test_no_face_report_says_nothing_was_judged(app, client, files, detector):
    detector.no_face = True
    det_id = detection_id_from(upload(client, files["no_face_clip"]))
    wait_for_job(app, det_id)
    _, text = read_pdf(client.get(f"/results/{det_id}/report.pdf").data)
    assert "No face found" in text and "Why no face was found" in text
    assert "Score over time" not in text and "probability of manipulation" not in text


def test_small_face_that_may_not_accuse_reads_inconclusive_in_the_report(app, client, files, detector):
    """A fake-band score on a face under the model's accusing line: the PDF says "Inconclusive"
    and why (the face's size), as the page does."""
    detector.p_fake, detector.fake_ok_from_px = 0.97, 100
    det_id = detection_id_from(upload(client, files["clip"]))
    wait_for_job(app, det_id)
    _, text = read_pdf(client.get(f"/results/{det_id}/report.pdf").data)
    text = " ".join(text.split())
    assert "VERDICT Inconclusive" in text and "VERDICT Likely fake" not in text
    assert "narrower than 100 px" in text and "does not accuse by itself" in text


def test_unknown_paper_and_missing_library_are_clear_errors(client, done_clip, monkeypatch):
    bad = client.get(f"/api/v1/detections/{done_clip}/report.pdf?paper=a3")
    assert bad.status_code == 400 and bad.json["error"]["code"] == "bad_paper"
    from webapp.services import report

    def missing():
        raise report.ReportUnavailable(report.UNAVAILABLE_MESSAGE)

    monkeypatch.setattr(report, "_weasyprint", missing)
    response = client.get(f"/results/{done_clip}/report.pdf")
    assert response.status_code == 503 and "PDF reports are not available" in response.get_data(
        as_text=True
    )


def test_only_rendered_reports_count_against_the_rate_limit(tmp_path, model_dir, detector, files):
    app = make_app(
        tmp_path,
        MODEL_DIR=str(model_dir),
        DETECTOR_LOADER=lambda _dir: detector,
        REPORT_RATE_LIMIT="2 per minute",
    )
    try:
        client = app.test_client()
        det_id = detection_id_from(upload(client, files["photo_jpg"]))
        wait_for_job(app, det_id)
        for _ in range(3):  # refusals and 404s cost nothing
            assert client.get(f"/results/{'0' * 32}/report.pdf").status_code == 404
        assert client.get(f"/results/{det_id}/report.pdf").status_code == 200
        assert client.get(f"/api/v1/detections/{det_id}/report.pdf").status_code == 200
        limited = client.get(f"/results/{det_id}/report.pdf")
        assert limited.status_code == 429
        assert "many PDF reports" in limited.get_data(as_text=True)
    finally:
        app.extensions["detection_runner"].shutdown()


def test_report_and_info_page_share_one_wording(app, client, done_clip):
    """The score's meaning and the limits come from one template (_explain.html)."""
    from webapp.extensions import db
    from webapp.models import Detection
    from webapp.services import report, storage
    from webapp.services.presenters import build_view

    info = client.get("/info").get_data(as_text=True)
    with app.test_request_context():
        det = db.session.get(Detection, done_clip)
        result = storage.load_result(det)
        html = report.report_html(det, result, build_view(det, result, report.artefact_uri(det)))
    for phrase in (
        "It is <em>calibrated</em> on validation data",
        "<strong>Faces only.</strong> Only faces are judged",
        "Use the verdict as one piece of evidence",
    ):
        assert phrase in info and phrase in html, phrase
    assert 'src="data:image/jpeg;base64,' in html and "http" not in html.split("<body>")[1]


def test_a_report_leaves_the_damaged_photo_check_alone(app, client, files, done_clip):
    """Importing WeasyPrint turns on Pillow's LOAD_TRUNCATED_IMAGES for the whole process; the
    report puts it back, so an upload after a report still refuses a damaged photo."""
    from PIL import ImageFile

    assert client.get(f"/results/{done_clip}/report.pdf").status_code == 200
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    response = upload(client, files["truncated_png"])
    assert response.status_code == 400 and "damaged" in response.get_data(as_text=True)


def test_the_pdf_library_stays_off_the_start_up_path(tmp_path):
    code = (
        "import sys\n"
        "from webapp import create_app\n"
        f"create_app({{'TESTING': True, 'SECRET_KEY': 'x', 'SQLALCHEMY_DATABASE_URI': "
        f"'sqlite:///{tmp_path / 'db.sqlite'}'}}, instance_path={str(tmp_path / 'i')!r})\n"
        "assert 'weasyprint' not in sys.modules, 'weasyprint imported at start-up'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, check=True, timeout=120)
