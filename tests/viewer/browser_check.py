"""Run in the viewer environment: open nerfstudio's web viewer in headless Chromium (Debian's chromium and
chromedriver, driven by Selenium; no browser download), wait for a rendered frame, move the Time slider to
its end, wait for the new frame, and save both screenshots; prints JSON about them.

    python browser_check.py --url http://127.0.0.1:PORT/ --out <folder> --profile <empty folder>
"""

import argparse
import io
import json
import re
import time
from pathlib import Path

import numpy as np
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

parser = argparse.ArgumentParser()
parser.add_argument("--url", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--profile", required=True)
parser.add_argument("--timeout", type=float, default=90.0)
options = parser.parse_args()
out = Path(options.out)
out.mkdir(parents=True, exist_ok=True)

chrome = webdriver.ChromeOptions()
chrome.binary_location = "/usr/bin/chromium"
for argument in (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    f"--user-data-dir={options.profile}",
    "--window-size=1200,800",
    "--use-angle=swiftshader",  # software WebGL: viser draws the frame in a WebGL canvas
    "--enable-unsafe-swiftshader",
):
    chrome.add_argument(argument)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=chrome)


def canvas_pixels() -> np.ndarray:
    """The 3-D viewport: the WebGL canvas spans the window and the control panel covers its right part;
    the viewport is as wide as viser's narrower (overlay) canvas."""
    canvases = sorted(driver.find_elements(By.TAG_NAME, "canvas"), key=lambda c: c.size["width"])
    width = canvases[0].size["width"]
    image = Image.open(io.BytesIO(canvases[-1].screenshot_as_png)).convert("RGB")
    scale = image.width / canvases[-1].size["width"]  # device pixels per CSS pixel
    return np.asarray(image, dtype=np.float32)[:, : int(width * scale)]


def full_resolution() -> bool:
    """Whether the viewer reports a full-size frame (it streams low-resolution previews first)."""
    match = re.search(r"Resolution: (\d+)", driver.find_element(By.TAG_NAME, "body").text)
    return match is not None and int(match.group(1)) >= 256


def settled_frame(previous: np.ndarray | None) -> np.ndarray:
    """The viewport once it shows a full-resolution rendered (non-uniform) frame, different from
    ``previous`` when given, and unchanged for two seconds."""
    deadline, last, stable_since = time.monotonic() + options.timeout, None, None
    while time.monotonic() < deadline:
        pixels = canvas_pixels()
        rendered = full_resolution() and pixels.std() > 1.0
        rendered = rendered and (previous is None or np.abs(pixels - previous).mean() > 0.5)
        if rendered and last is not None and np.abs(pixels - last).max() == 0:
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= 2.0:
                return pixels
        else:
            stable_since = None
        last = pixels
        time.sleep(0.5)
    raise TimeoutError(
        f"no {'new ' if previous is not None else ''}rendered frame within {options.timeout} s"
    )


try:
    driver.get(options.url)
    first = settled_frame(None)
    Image.fromarray(first.astype(np.uint8)).save(out / "time_0.png")
    driver.save_screenshot(str(out / "page_time_0.png"))
    label = driver.find_element(By.XPATH, "//label[normalize-space(text())='Time']")
    slider = driver.find_element(By.ID, label.get_attribute("for"))
    thumb = slider.find_element(By.CSS_SELECTOR, "[role='slider']")
    before = float(thumb.get_attribute("aria-valuenow"))
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", thumb)
    thumb.send_keys(Keys.END)  # the slider's maximum, time 1
    after = float(thumb.get_attribute("aria-valuenow"))
    second = settled_frame(first)
    Image.fromarray(second.astype(np.uint8)).save(out / "time_1.png")
    driver.save_screenshot(str(out / "page_time_1.png"))
    print(
        json.dumps(
            {
                "slider_before": before,
                "slider_after": after,
                "frame_std": float(first.std()),
                "mean_change": float(np.abs(second - first).mean()),
                "shape": list(first.shape),
            }
        )
    )
finally:
    driver.quit()
