"""The drawing page in a real browser: Debian's chromium, headless, driven by selenium with pointer actions.

Strokes are drawn with the mouse and with a finger (touch pointer) and the page must read them; Clear,
Undo, the upload, the correction box and the refusals are checked as a user meets them. Without chromium
and chromium-driver these tests are skipped, except under CI=true, where that is a failure (``./run.sh
test`` installs both when run as root).
"""

import base64
import io
import itertools
import os
import shutil
import tempfile
import threading
import time

import numpy as np
import pytest
from PIL import Image
from test_serve import SEVEN, drawing_png, trained_model_file

from scratchnet.serve import Corrections, Reader, make_server

ONE = [[(0.5, 0.18), (0.5, 0.85)]]
WAIT = 60  # seconds; a shared CI machine can be slow


def _missing(reason):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI must run the browser tests (./run.sh test installs chromium as root)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (the dev extra)")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        _missing("chromium and chromium-driver are not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="scratchnet-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_script_timeout(WAIT)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The server on a free loopback port with the trained model, and its corrections folder."""
    corrections = Corrections(tmp_path_factory.mktemp("handwriting"))
    server = make_server(Reader(trained_model_file(tmp_path_factory)), "127.0.0.1", 0, corrections=corrections)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.url, corrections
    server.shutdown()
    server.server_close()


@pytest.fixture
def page(browser, site):
    """The page freshly loaded."""
    return open_page(browser, site[0])


def open_page(driver, url):
    """Load the page and record every request to /api/predict in ``window.predictCalls`` (``window.pending``
    of them not answered yet), every lifted pointer in ``window.pointerUps`` and count ``window.moves``."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, WAIT).until(lambda d: d.execute_script("return document.body.dataset.ready"))
    driver.execute_script("""
        window.predictCalls = [];
        window.pending = 0;  // requests not yet answered (plus a moment for the page to show the answer)
        const original = window.fetch;
        window.fetch = (url, options) => {
          if (!String(url).startsWith("/api/predict")) return original(url, options);
          window.predictCalls.push(performance.now());
          window.pending++;
          const answer = original(url, options);
          answer.catch(() => null).finally(() => setTimeout(() => window.pending--, 100));
          return answer;
        };
        window.pointerUps = [];
        window.moves = 0;
        const pad = document.getElementById("pad");
        // on the window, capturing: noted before the page's own listener asks for the pen-up prediction
        window.addEventListener("pointerup", (event) => {
          if (event.target === pad) window.pointerUps.push(performance.now());
        }, true);
        pad.addEventListener("pointermove", () => window.moves++);
    """)
    return driver


def draw(driver, strokes, kind="mouse"):
    """Draw ``strokes`` (lists of (x, y) in 0..1 of the pad) with pointer actions of ``kind``."""
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    pad = driver.find_element("id", "pad")
    side = pad.size["width"]
    pointer = PointerInput(interaction.POINTER_TOUCH if kind == "touch" else
                           interaction.POINTER_PEN if kind == "pen" else interaction.POINTER_MOUSE, kind)
    actions = ActionBuilder(driver, mouse=pointer, duration=15)
    for stroke in strokes:
        points = _densify(stroke, 12)

        def move(x, y):
            actions.pointer_action.move_to(pad, round((x - 0.5) * side), round((y - 0.5) * side))

        move(*points[0])
        actions.pointer_action.pointer_down()
        for x, y in points[1:]:
            move(x, y)
        actions.pointer_action.pointer_up()
    actions.perform()


def _densify(stroke, steps):
    """The polyline ``stroke`` with ``steps`` points on each segment (a hand moves, it does not jump)."""
    points = [stroke[0]]
    for (x0, y0), (x1, y1) in itertools.pairwise(stroke):
        points += [(x0 + (x1 - x0) * t / steps, y0 + (y1 - y0) * t / steps) for t in range(1, steps + 1)]
    return points


def wait_idle(driver, quiet=0.4):
    """Wait until no prediction request is in flight and none has started for ``quiet`` seconds."""
    deadline, last, since = time.monotonic() + WAIT, None, time.monotonic()
    while time.monotonic() < deadline:
        state = driver.execute_script("return [window.predictCalls.length, window.pending]")
        if state != last:
            last, since = state, time.monotonic()
        elif state[1] == 0 and time.monotonic() - since >= quiet:
            return
        time.sleep(0.05)
    raise AssertionError(f"the page kept asking for predictions for {WAIT} s")


def wait_for_reading(driver, label=None):
    """Wait until the page is idle and shows a reading (of ``label``, if given); returns its text."""
    wait_idle(driver)
    text = driver.find_element("id", "prediction").text
    assert text.startswith("It reads") and (label is None or f"reads {label} " in text), text
    return text


def pad_pixels(driver):
    """The pad's pixels as a (H, W) uint8 gray array."""
    data_url = driver.execute_script("return document.getElementById('pad').toDataURL('image/png')")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("L"))


def bars(driver):
    rows = driver.find_elements("css selector", "#bars li")
    return [(row.find_element("class name", "bar-label").text, row.find_element("class name", "bar-value").text)
            for row in rows]


# ------------------------------------------------------------------------------------------ reading
@pytest.mark.parametrize("kind", ["mouse", "touch", "pen"])
def test_a_seven_drawn_with_pointer_strokes_is_read_as_seven(page, kind):
    draw(page, SEVEN, kind)
    text = wait_for_reading(page, "7")
    assert text.endswith("%")
    shown = bars(page)
    assert len(shown) == 5 and shown[0][0] == "7"
    percents = [float(value.rstrip("%")) for _, value in shown]
    assert percents == sorted(percents, reverse=True) and 50 < percents[0] <= 100
    # what the network sees: the 28x28 input and the first conv layer's 8 feature maps
    lit = page.execute_script("""
        const data = document.getElementById("input").getContext("2d").getImageData(0, 0, 28, 28).data;
        let lit = 0; for (let i = 0; i < data.length; i += 4) if (data[i] > 128) lit++; return lit;""")
    assert 20 < lit < 400
    assert len(page.find_elements("css selector", "#features canvas")) == 8
    assert page.find_element("id", "features-figure").is_displayed()


def test_predictions_come_while_drawing_throttled_and_never_for_a_blank_pad(page):
    page.find_element("id", "clear").click()
    assert page.execute_script("return window.predictCalls.length") == 0
    slow_seven = [_densify(SEVEN[0], 3)]  # many points: a long stroke
    draw(page, slow_seven)
    wait_for_reading(page, "7")
    calls, ups, moves = page.execute_script("return [window.predictCalls, window.pointerUps, window.moves]")
    assert len(ups) == 1 and len(calls) >= 2
    while_drawing = [t for t in calls if t < ups[0]]
    assert while_drawing  # live predictions before the pen was lifted
    assert len(while_drawing) < moves / 3  # throttled: far fewer requests than pointer moves
    gaps = np.diff(while_drawing)
    assert (gaps >= 100).all(), gaps  # at most one request per 120 ms (timer granularity aside)


def test_the_pad_is_sharp_on_hidpi_screens_and_does_not_scroll_while_drawing(browser, site):
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 800, "height": 900, "deviceScaleFactor": 2, "mobile": False})
    try:
        open_page(browser, site[0])
        draw(browser, SEVEN, "touch")
        wait_for_reading(browser, "7")
        width, css_width, touch_action, scrolled = browser.execute_script("""
            const pad = document.getElementById("pad");
            return [pad.width, pad.getBoundingClientRect().width, getComputedStyle(pad).touchAction,
                    window.scrollY];""")
        assert width == round(2 * css_width) and touch_action == "none" and scrolled == 0
        pixels = pad_pixels(browser)
        assert pixels.shape == (width, width) and pixels.min() == 0 and pixels.max() == 255
        # the stroke is about 1/14 of the pad: count the dark pixels across the vertical-ish part
        row = pixels[int(0.7 * width)]
        assert 0.04 * width < (row < 128).sum() < 0.11 * width
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


# ------------------------------------------------------------------------------------------ buttons and keys
def test_undo_removes_the_last_stroke_and_clear_empties_the_pad(page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    draw(page, ONE)
    wait_for_reading(page, "1")
    one = pad_pixels(page)
    draw(page, [[(0.2, 0.5), (0.8, 0.5)]])  # a cross-bar: now it is no longer a one
    wait_idle(page)
    assert (pad_pixels(page) != one).any()
    ActionChains(page).key_down(Keys.CONTROL).send_keys("z").key_up(Keys.CONTROL).perform()
    np.testing.assert_array_equal(pad_pixels(page), one)
    wait_for_reading(page, "1")
    page.find_element("id", "undo").click()
    assert (pad_pixels(page) == 255).all()
    draw(page, SEVEN)
    wait_for_reading(page, "7")
    ActionChains(page).send_keys(Keys.ESCAPE).perform()
    assert (pad_pixels(page) == 255).all()
    assert page.find_element("id", "prediction").text == "Draw something."
    assert bars(page) == []
    draw(page, SEVEN)
    wait_for_reading(page, "7")
    page.find_element("id", "clear").click()
    assert (pad_pixels(page) == 255).all() and bars(page) == []


def test_controls_are_real_buttons_and_the_answer_is_announced(page):
    for name in ("clear", "undo", "upload", "correct", "reload"):
        assert page.find_element("id", name).tag_name == "button"
    prediction = page.find_element("id", "prediction")
    assert prediction.get_attribute("aria-live") == "polite"
    assert page.find_element("id", "brush").get_attribute("type") == "range"


def test_the_brush_size_control_widens_the_stroke(page):
    draw(page, ONE)
    thin = (pad_pixels(page) < 128).sum()
    page.find_element("id", "clear").click()
    page.execute_script("""
        const brush = document.getElementById("brush");
        brush.value = "2";
        brush.dispatchEvent(new Event("input"));""")
    draw(page, ONE)
    thick = (pad_pixels(page) < 128).sum()
    assert thick > 1.7 * thin
    assert page.find_element("id", "brush-value").text == "2×"


# ------------------------------------------------------------------------------------------ upload
def test_an_uploaded_photo_is_read_through_the_same_preparation(page, tmp_path):
    photo = tmp_path / "seven.jpg"
    photo.write_bytes(drawing_png(side=900, fmt="JPEG"))
    field = page.find_element("id", "file")
    page.execute_script("arguments[0].hidden = false", field)
    field.send_keys(str(photo))
    text = wait_for_reading(page, "7")
    assert "photo seven.jpg" in text
    assert bars(page)[0][0] == "7"


# ------------------------------------------------------------------------------------------ corrections
def test_wrong_it_is_saves_the_drawing_under_the_given_label(page, site):
    _, corrections = site
    assert corrections.folder.as_posix() in page.find_element("id", "folder").text
    draw(page, SEVEN)
    wait_for_reading(page, "7")
    page.find_element("id", "correct-label").send_keys("1")
    page.find_element("id", "correct").click()
    from selenium.webdriver.support.ui import WebDriverWait

    status = WebDriverWait(page, WAIT).until(lambda d: d.find_element("id", "correct-status").text)
    saved = sorted((corrections.folder / "1").glob("*.png"))
    assert status.startswith("Saved ") and saved and str(saved[-1]) in status
    with Image.open(saved[-1]) as image:
        assert image.size == (280, 280) and image.mode == "L"
    page.find_element("id", "correct-label").clear()
    page.find_element("id", "correct-label").send_keys("Q")
    page.find_element("id", "correct").click()
    assert "not one of the model's classes" in page.find_element("id", "correct-status").text
    assert not (corrections.folder / "Q").exists()


def test_the_reload_button_reloads_the_model(page):
    from selenium.webdriver.support.ui import WebDriverWait

    page.find_element("id", "reload").click()
    status = WebDriverWait(page, WAIT).until(
        lambda d: (text := d.find_element("id", "status").text).startswith("Reloaded") and text)
    assert "kaggle_cnn" in status


# ------------------------------------------------------------------------------------------ refusals
def test_the_browser_gets_413_and_415_as_json(page):
    script = """
        const [body, type, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
        const bytes = body === "big" ? new Uint8Array(6 * 1024 * 1024) : new TextEncoder().encode(body);
        fetch("/api/predict", {method: "POST", body: bytes, headers: {"Content-Type": type}})
          .then(async (r) => done([r.status, (await r.json()).error]))
          .catch((e) => done([0, String(e)]));"""
    status, error = page.execute_async_script(script, "big", "image/png")
    assert status == 413 and "limit" in error
    status, error = page.execute_async_script(script, "not an image", "image/png")
    assert status == 415 and "PNG or JPEG" in error
    status, error = page.execute_async_script(script, "a=1", "application/x-www-form-urlencoded")
    assert status == 415
