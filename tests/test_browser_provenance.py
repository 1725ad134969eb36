"""Headless Chromium with the real engine: a photo made "by an AI generator" (the scikit-image
astronaut, signed here with a throw-away certificate) is uploaded; the result page shows the
file's own claim above the model's verdict, as a separate panel. Screenshot (of generated
media only): ``screenshots/browser-provenance.png``, the README's picture of the panel."""

from __future__ import annotations

import media
import provenance_media as pm
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from test_browser import SCREENSHOTS, browser, live_server  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.engine, pytest.mark.slow]


def test_signed_generated_photo_shows_its_claim_first(live_server, browser, tmp_path):  # noqa: F811
    photo = pm.sign(
        media.face_photo(tmp_path / "astronaut.jpg"),
        tmp_path / "generated-astronaut.jpg",
        pm.make_pki("Example Image Generator"),
        pm.manifest(tool="Example Image Generator", title="generated-astronaut.jpg"),
    )
    browser.get(f"{live_server}/upload")
    browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(photo))
    submit = browser.find_element(By.CSS_SELECTOR, "input[type=submit]")
    # Below the fold with a file listed and the link field (smooth scrolling races WebDriver).
    browser.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", submit)
    submit.click()
    WebDriverWait(browser, 300).until(ec.presence_of_element_located((By.ID, "verdict-label")))
    panel = browser.find_element(By.ID, "provenance")
    verdict = browser.find_element(By.ID, "verdict-label")
    assert panel.location["y"] < verdict.location["y"]  # the file's claim comes first
    text = panel.text
    assert "THE FILE'S OWN CLAIM, NOT THE MODEL'S VERDICT" in text  # upper-cased by CSS
    assert "made by an AI generator" in text and "Example Image Generator" in text
    assert "No trust list is configured on this server" in text
    SCREENSHOTS.mkdir(exist_ok=True)
    browser.set_window_size(1280, 1500)
    browser.save_screenshot(str(SCREENSHOTS / "browser-provenance.png"))
