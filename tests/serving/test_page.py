"""The web page in a real browser (headless Chromium through chromedriver and selenium) against the shared
``spectrotune serve``: it loads offline, takes an uploaded file, shows its top genres as bars and the timeline as a
plot, marks the player's position on it, and a screenshot is written to the test's temp folder.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium chromium-driver``); without them
the test fails saying so."""

from __future__ import annotations

import json
import shutil
import urllib.request

import pytest
from audio_files import signal, write

pytestmark = pytest.mark.integration

FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required")


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, "the page test needs Chromium: apt-get install -y chromium chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path, log_output=str(tmp_path / "driver.log")),
                              options=options)
    driver.set_page_load_timeout(60)
    driver.set_window_size(1200, 1000)
    try:
        yield driver
    finally:
        driver.quit()


def _painted(driver, color):
    """Pixels of the plot canvas within 40 of ``color`` (``#rrggbb``) in each channel."""
    return driver.execute_script("""
        const c = document.getElementById('timeline'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const want = [1, 3, 5].map(i => parseInt(arguments[0].slice(i, i + 2), 16));
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (want.every((v, k) => Math.abs(d[i + k] - v) < 40)) n++;
        return n;""", color)


def test_the_page_shows_genres_and_the_timeline_of_an_uploaded_file(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    clip = write(tmp_path / "my song.flac", signal(6.0, seed=4), "flac")
    with urllib.request.urlopen(server.url + "/v1/model", timeout=30) as r:
        labels = json.loads(r.read())["labels"]
    browser.get(server.url + "/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: "genres:" in d.find_element(By.ID, "model").text)
    assert "cnn" in browser.find_element(By.ID, "model").text
    assert browser.find_element(By.ID, "result").get_attribute("hidden") is not None  # nothing shown yet

    file_input = browser.find_element(By.ID, "file")
    browser.execute_script("arguments[0].style.display = 'block'", file_input)  # the label stands in for it
    file_input.send_keys(str(clip))
    wait.until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
    browser.execute_script("arguments[0].style.display = ''", file_input)

    assert browser.find_element(By.ID, "title").text == "my song.flac"
    genres = browser.find_elements(By.CSS_SELECTOR, "#genres li.genre")
    names = [g.get_attribute("data-genre") for g in genres]
    assert len(names) == 3 and sorted(names) == sorted(labels)  # top 5 asked, the bundle has 3
    widths = [g.find_element(By.CLASS_NAME, "bar").size["width"] for g in genres]
    assert widths == sorted(widths, reverse=True) and widths[0] > 0
    assert all(g.text.strip().endswith("%") for g in genres)

    canvas = browser.find_element(By.ID, "timeline")
    assert canvas.get_attribute("data-drawn") == "1" and canvas.get_attribute("data-windows") == "6"
    assert canvas.size["width"] > 400 and canvas.size["height"] > 150
    assert _painted(browser, "#3b5bdb") > 50  # the first genre's line (app.js COLORS[0]) is on the plot
    assert len(browser.find_elements(By.CSS_SELECTOR, "#legend li")) == len(labels)
    assert "error" not in (browser.find_element(By.ID, "status").get_attribute("class") or "")

    # The player's position is marked: seek to 2.5 s and the plot's cursor follows.
    wait.until(lambda d: d.execute_script("return document.getElementById('player').readyState >= 1"))
    browser.execute_script("document.getElementById('player').currentTime = 2.5")
    wait.until(lambda d: abs(float(d.find_element(By.ID, "timeline").get_attribute("data-cursor")) - 2.5) < 0.05)

    shot = tmp_path / "serving.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def test_the_page_reports_a_refused_file_in_words(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    text = tmp_path / "notes.txt"
    text.write_text("not a song\n")
    browser.get(server.url + "/")
    file_input = browser.find_element(By.ID, "file")
    browser.execute_script("arguments[0].style.display = 'block'", file_input)
    file_input.send_keys(str(text))
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 60).until(lambda d: "error" in (status.get_attribute("class") or ""))
    assert "notes.txt" in status.text and "not audio" in status.text
