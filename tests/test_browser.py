"""A real browser: headless Chromium signs in, uploads a clip, watches the progress bar, reads
the verdict, and finds only its own detections in the history; then sends a batch of three
files, watches the batch page fill in, and downloads a result's PDF report; and judges files
with every installed model (the result page's comparison and notice, a batch page's column per
model).

Runs the real engine. Skipped when Chromium or chromedriver is not installed
(``apt-get install chromium chromium-driver``), except in CI (``CI=true``), where that fails.
Screenshots go to ``screenshots/``.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
from conftest import skip_or_fail_in_ci
from werkzeug.serving import make_server

pytestmark = [pytest.mark.browser, pytest.mark.engine, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path(shutil.which("chromedriver") or "/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots"


@pytest.fixture
def live_server(engine_app):
    server = make_server("127.0.0.1", 0, engine_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def browser():
    if not CHROMIUM.is_file() or not CHROMEDRIVER.is_file():
        skip_or_fail_in_ci("Chromium or chromedriver is not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


RECORD_PROGRESS = """
const bar = document.getElementById("job-progress");
if (bar) new MutationObserver(() => {
  const log = JSON.parse(sessionStorage.getItem("progress") || "[]");
  log.push(Number(bar.value));
  sessionStorage.setItem("progress", JSON.stringify(log));
}).observe(bar, {attributes: true, attributeFilter: ["value"]});
"""


PASSWORD = "a long test password"


@pytest.fixture
def accounts(engine_app):
    """The reporter's account, and a detection of someone else's that must stay hidden."""
    from webapp import auth
    from webapp.extensions import db
    from webapp.models import Detection

    with engine_app.app_context():
        auth.create_user("reporter", PASSWORD)
        other = auth.create_user("someone", PASSWORD)
        db.session.add(
            Detection(
                filename="someone-elses-clip.mp4",
                sha256="2" * 64,
                size_bytes=1,
                media_type="video",
                status="failed",
                stage="failed",
                owner_id=other.owner_id,
            )
        )
        db.session.commit()


def test_sign_in_upload_clip_watch_progress_read_verdict(live_server, browser, files, accounts):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    SCREENSHOTS.mkdir(exist_ok=True)
    browser.get(live_server + "/signin")
    browser.find_element(By.NAME, "username").send_keys("reporter")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.save_screenshot(str(SCREENSHOTS / "browser-signin.png"))
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, 30).until(ec.url_contains("/history"))
    assert "Signed in as reporter" in browser.page_source
    assert "someone-elses-clip.mp4" not in browser.page_source

    browser.get(live_server + "/upload")
    assert "Check clips or photos" in browser.page_source
    browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(files["clip"]))
    assert "astronaut-pan.mp4" in browser.find_element(By.CSS_SELECTOR, "[data-file-label]").text
    submit = browser.find_element(By.CSS_SELECTOR, "input[type=submit]")
    # Below the fold with a file listed (the page scrolls smoothly, which WebDriver races).
    browser.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", submit)
    submit.click()
    WebDriverWait(browser, 30).until(ec.url_contains("/results/"))
    WebDriverWait(browser, 30).until(
        lambda d: d.find_elements(By.ID, "job-progress") or d.find_elements(By.CSS_SELECTOR, "[data-verdict]")
    )
    # Every value the bar takes is logged in sessionStorage, which outlives the page's reload
    # into the result: the last one, shown just before it, must be 100.
    browser.execute_script(RECORD_PROGRESS)

    # Watch the progress bar move (it is polled from the JSON status endpoint by progress.js).
    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        bars = browser.find_elements(By.ID, "job-progress")
        if not bars:
            break  # the page reloaded with the result
        try:
            stage = browser.find_element(By.CSS_SELECTOR, "[data-stage-label]").text
            seen.append((stage, int(float(bars[0].get_attribute("value") or 0))))
        except Exception:  # noqa: BLE001 - the page may reload between the two lookups
            continue
        if len(seen) == 3:
            browser.save_screenshot(str(SCREENSHOTS / "browser-progress.png"))
        time.sleep(0.25)
    verdict = WebDriverWait(browser, 60).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "[data-verdict]"))
    )
    assert seen, "the progress bar was never shown"
    values = [v for _, v in seen]
    assert values == sorted(values), values  # it only moves forward
    shown = json.loads(browser.execute_script("return sessionStorage.getItem('progress')") or "[]")
    assert shown and shown[-1] == 100, f"the progress bar did not reach 100%: {shown}"
    assert shown == sorted(shown), shown
    texts = {"real": "Likely real", "inconclusive": "Inconclusive", "fake": "Likely fake"}
    assert verdict.text == texts[verdict.get_attribute("data-verdict")]
    assert "probability of manipulation" in browser.page_source
    browser.save_screenshot(str(SCREENSHOTS / "browser-result.png"))
    # No CSP violations or script errors on the page.
    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, errors

    # The history holds this account's detection and nobody else's.
    browser.find_element(By.LINK_TEXT, "History").click()
    WebDriverWait(browser, 30).until(ec.url_contains("/history"))
    names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "a.file-link")]
    assert names == ["astronaut-pan.mp4"], names
    assert "Your detections" in browser.page_source
    browser.save_screenshot(str(SCREENSHOTS / "browser-history.png"))


def test_batch_of_three_files_fills_in_live(live_server, browser, files, tmp_path):
    """Three files chosen at once in the form (a clip, a photo and a text file named .mp4): the
    batch page opens, its rows fill in live with the real engine's verdicts, the refused file
    says why, and the CSV export lists all three."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    SCREENSHOTS.mkdir(exist_ok=True)
    browser.get(live_server + "/upload")
    chosen = [files["clip"], files["photo_jpg"], files["text_mp4"]]
    browser.find_element(By.ID, "file").send_keys("\n".join(str(p) for p in chosen))
    items = browser.find_elements(By.CSS_SELECTOR, "#file-list li.file-item")
    assert [i.find_element(By.CSS_SELECTOR, ".file-name").text for i in items] == [p.name for p in chosen]
    assert browser.find_element(By.ID, "submit").get_attribute("value") == "Analyse 3 files"
    browser.find_element(By.ID, "batch-name").send_keys("Three files")
    browser.save_screenshot(str(SCREENSHOTS / "browser-batch-form.png"))
    submit = browser.find_element(By.ID, "submit")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", submit)
    submit.click()
    WebDriverWait(browser, 60).until(ec.url_contains("/batches/"))
    assert browser.find_element(By.ID, "batch-title").text == "Three files"

    # Live: the rows change status without the page being reloaded by us.
    WebDriverWait(browser, 600).until(
        lambda d: d.find_element(By.ID, "batch").get_attribute("data-finished") == "true"
    )
    rows = browser.find_elements(By.CSS_SELECTOR, "#batch-files tr.batch-row")
    assert [r.get_attribute("data-status") for r in rows] == ["done", "done", "rejected"]
    verdicts = [r.find_element(By.CSS_SELECTOR, '[data-field="verdict"]').text for r in rows[:2]]
    assert all(v in ("Likely real", "Inconclusive", "Likely fake", "No face found") for v in verdicts), verdicts
    error = rows[2].find_element(By.CSS_SELECTOR, '[data-field="error"]')
    assert error.is_displayed() and error.text, "the refused file must say why"
    assert len(rows[0].find_elements(By.CSS_SELECTOR, "a.result-link")) == 1
    assert not rows[2].find_elements(By.CSS_SELECTOR, "a.result-link")
    browser.save_screenshot(str(SCREENSHOTS / "browser-batch.png"))
    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, errors

    # The CSV export, fetched with the browser's own cookies (the batch is private).
    csv_text = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(document.getElementById('batch-csv').href).then(r => r.text()).then(done);"
    )
    lines = csv_text.strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith("position,filename"), lines
    assert [ln.split(",")[1] for ln in lines[1:]] == [p.name for p in chosen]

    # The clip's result, then its PDF report through the page's own link, saved by Chromium.
    rows[0].find_element(By.CSS_SELECTOR, "a.result-link").click()
    WebDriverWait(browser, 30).until(ec.url_contains("/results/"))
    link = WebDriverWait(browser, 30).until(ec.element_to_be_clickable((By.ID, "download-report")))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    # The page scrolls smoothly (CSS), which WebDriver's own scroll-then-click races: click in JS.
    browser.execute_script("arguments[0].click();", link)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not [p for p in downloads.glob("*.pdf")]:
        time.sleep(0.25)
    pdfs = list(downloads.glob("*.pdf"))
    assert len(pdfs) == 1 and pdfs[0].name.startswith("faceproof-report-"), list(downloads.iterdir())
    time.sleep(0.5)  # Chromium renames the finished download; let it close the file
    from pypdf import PdfReader

    text = "\n".join(page.extract_text() for page in PdfReader(pdfs[0]).pages)
    sha = lines[1].split(",")[3]
    assert sha and sha in text.replace("\n", "") and "astronaut-pan.mp4" in text
    assert verdicts[0] in text


def test_every_installed_model_side_by_side(live_server, browser, files):
    """The upload form's "Judge with every installed model": one photo opens its default
    model's result, the other model's verdict fills in beside it, and the "Also judging"
    notice turns to "finished"; then three files with the box ticked make a batch page with a
    column per model that batch.js fills in."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from webapp.detection.registry import Registry

    versions = [e.version for e in sorted(Registry().entries, key=lambda e: not e.default)]
    assert len(versions) >= 2, "the registry ships two models"

    def send(paths, tick=True):
        browser.get(live_server + "/upload")
        browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys("\n".join(map(str, paths)))
        if tick:
            box = browser.find_element(By.ID, "models-all")
            browser.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", box)
            box.click()
        submit = browser.find_element(By.CSS_SELECTOR, "input[type=submit]")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", submit)
        submit.click()

    # The photo with the default model alone, then again with every model: the stored result
    # opens at once and the other model's column and notice fill in.
    send([files["photo_jpg"]], tick=False)
    WebDriverWait(browser, 300).until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-verdict]")))
    first = browser.current_url
    send([files["photo_jpg"]])
    WebDriverWait(browser, 30).until(ec.url_to_be(first))
    notices = [n.text for n in browser.find_elements(By.CSS_SELECTOR, ".flash")]
    assert any(t.startswith("You already analysed this exact file") for t in notices), notices
    WebDriverWait(browser, 300).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#compare[data-pending='0']")
        and re.search(r"(has|have) finished", d.find_element(By.CSS_SELECTOR, ".flash[data-done]").text)
    )
    columns = browser.find_elements(By.CSS_SELECTOR, "#compare .compare-col")
    assert [c.get_attribute("data-model") for c in columns] == versions
    assert all(c.get_attribute("data-status") == "done" for c in columns)
    assert "the same file, judged by" in browser.page_source.lower()

    # Three files, every model: a batch page with a column per model, filled in by batch.js.
    send([files["photo_png"], files["clip"], files["no_face_clip"]])
    WebDriverWait(browser, 30).until(ec.url_contains("/batches/"))
    WebDriverWait(browser, 600).until(
        lambda d: d.find_element(By.ID, "batch").get_attribute("data-finished") == "true"
    )
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "th.col-model")]
    assert [h.split()[0] for h in headers] == versions, headers
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.batch-row")
    assert len(rows) == 3
    for row in rows:
        cells = row.find_elements(By.CSS_SELECTOR, "td[data-model]")
        assert len(cells) == len(versions)
        assert all(c.find_elements(By.CSS_SELECTOR, ".badge") for c in cells), row.text
        assert row.find_element(By.CSS_SELECTOR, "[data-field=agreement]").text in ("Agree", "Disagree")
    finished = browser.find_element(By.CSS_SELECTOR, "[data-total=finished]").text
    assert finished == str(3 * len(versions))
    browser.save_screenshot(str(SCREENSHOTS / "browser-batch-every-model.png"))
    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, errors
