"""The web page in a real browser: Debian's chromium, headless, driven by its chromedriver.

Skipped only where chromium is not installed and EDGE_OCR_REQUIRE_BROWSER is unset; CI
(.ci/run) installs chromium and sets it, so there the test runs or fails.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import cv2
import pytest

from .helpers import FRAME, start_daemon

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("EDGE_OCR_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    if os.environ.get("EDGE_OCR_REQUIRE_BROWSER"):
        raise RuntimeError("EDGE_OCR_REQUIRE_BROWSER is set but chromium/chromedriver are missing "
                           "(apt-get install chromium chromium-driver)")
    pytest.skip("chromium and chromium-driver are not installed", allow_module_level=True)

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


@pytest.fixture
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_upload_on_the_page_shows_the_reading(tmp_path: Path, browser) -> None:
    image = tmp_path / "gate.png"
    cv2.imwrite(str(image), FRAME)
    d = start_daemon(tmp_path)
    try:
        browser.get(d.url + "/")
        field = browser.find_element(By.ID, "file")
        browser.execute_script("arguments[0].hidden = false;", field)  # the page opens it from the drop zone
        field.send_keys(str(image))
        wait = WebDriverWait(browser, 30)
        first = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#result .reading .plate"))[0]
        assert first.get_attribute("data-text") == "RK115AN"
        assert "RK115AN" in browser.find_element(By.ID, "result").text.replace("\n", "")
        # the boxes are drawn on a canvas the size of the upload
        assert browser.execute_script("return document.getElementById('canvas').width") == FRAME.shape[1]
        # the live view loads real snapshots, and the running pipeline's events reach the page
        wait.until(lambda b: b.execute_script("return document.getElementById('live').naturalWidth") == 640)
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#events .event"))
        time.sleep(1.2)  # let the next snapshot land before the screenshot
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "web-page.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        d.stop_event.set()
        d.thread.join(timeout=15)
    assert d.result == [0]
