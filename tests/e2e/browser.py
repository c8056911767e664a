"""Helpers for the browser tests: Chromium's location, strokes on the Sketchpad or the drawing pad,
locators, screenshots. benchmarks/browser_latency.py draws with the same strokes and helpers.

The tests drive Debian's Chromium (``/usr/bin/chromium``) through the ``playwright`` package;
``playwright install`` is never needed (and cannot download here).
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Sequence

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("DIGITNET_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = ROOT / "artifacts" / "e2e"  # every screenshot of every run (gitignored)
DOC_PNG_COLOURS = 128  # palette PNGs keep a UI screenshot under ~150 KB; the README loads them
DOC_PNG_MAX_BYTES = 300_000

# Generous: on two busy cores a page load and an answer can take tens of seconds (the old
# Sketchpad, which benchmarks/browser_latency.py still drives, took over a minute at load 10-15).
PAGE_TIMEOUT_MS = 180_000
ANSWER_TIMEOUT_MS = 180_000

LAPTOP = {"width": 1000, "height": 900}  # a viewport
PHONE = dict(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True, device_scale_factor=2)  # a context

BLANK_MESSAGE = "Draw a digit"  # digitnet.ui.common.BLANK_MESSAGE
SKETCH = "#digit-sketch"  # the Sketchpad's elem_id
CANVAS = f"{SKETCH} canvas"
BRUSH_BUTTON = f'{SKETCH} button[aria-label="Brush"]'
CLEAR_BUTTON = f'{SKETCH} button[aria-label="Clear canvas"]'

# The drawing pad (digitnet.ui.pad.drawing_pad) and the answer beside it, computed in the page
# (digitnet.ui.answer: #prediction carries the digit in data-label).
PAD = "#digit-pad"  # the pad's elem_id
PAD_CANVAS = f"{PAD} canvas"
PAD_CLEAR = f"{PAD} button[data-action=clear]"
PAD_UNDO = f"{PAD} button[data-action=undo]"
PREDICTION = "#prediction"  # the answer's elem_id

# Digits as strokes in a unit box (-1..1, y down), drawn as a person would: one stroke each.
ONE = [[(0.05, -0.85), (0.0, 0.85)]]
SEVEN = [[(-0.6, -0.8), (0.6, -0.8), (-0.1, 0.85)]]
# Two strokes, as most people write it: the open "L" first, then the long upright.
FOUR = [[(-0.25, -0.85), (-0.6, 0.2), (0.6, 0.2)], [(0.3, -0.5), (0.3, 0.9)]]
# A top bar that turns a ONE into a 7 (the undo test draws it, then takes it back).
SEVEN_BAR = [[(-0.6, -0.85), (0.05, -0.85)]]
DIGIT_STROKES = {"1": ONE, "7": SEVEN, "4": FOUR}
STEPS_PER_SEGMENT = 15  # intermediate pointer moves, so the editor sees a real drag


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not CHROMIUM.exists():
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -r requirements-dev.txt)"
    return None


def open_pad(context, url: str):
    """A page on the app, loaded, with a blank answer."""
    from playwright.sync_api import expect

    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto(url)
    page.locator(PAD_CANVAS).wait_for(state="visible")
    expect(answer(page)).to_have_text(BLANK_MESSAGE)
    return page


def open_page(context, url: str):
    """The app's Draw tab, loaded, its shipped weights in the page, the answer blank."""
    page = open_pad(context, url)
    # Every model's shipped spec is in the page (fetched once at load): the source line names them.
    page.wait_for_function("() => ['mlp', 'cnnnet', 'lenet'].every(m => window.DigitNetAnswer.ready(m))")
    return page


def canvas_points(page, strokes: Sequence[Sequence[tuple[float, float]]], canvas: str = CANVAS) -> list[list[tuple[float, float]]]:
    """Map unit-box strokes to page coordinates in the middle of the visible drawing canvas."""
    box = page.locator(canvas).first.bounding_box()
    assert box is not None, f"the drawing canvas {canvas} is not on screen"
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    half = 0.35 * min(box["width"], box["height"])  # inside the 800x800 drawing area shown at its zoom
    return [[(cx + x * half, cy + y * half) for x, y in stroke] for stroke in strokes]


def mouse_draw(page, strokes, canvas: str = CANVAS) -> None:
    """Draw strokes with the mouse: press, drag through each point, release."""
    for stroke in canvas_points(page, strokes, canvas):
        page.mouse.move(*stroke[0])
        page.mouse.down()
        for point in stroke[1:]:
            page.mouse.move(*point, steps=STEPS_PER_SEGMENT)
        page.mouse.up()


def touch_draw(page, cdp, strokes, canvas: str = CANVAS) -> None:
    """Draw strokes with a finger: real touchStart/touchMove/touchEnd through Chrome DevTools."""
    for stroke in canvas_points(page, strokes, canvas):
        x0, y0 = stroke[0]
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x0, "y": y0}]})
        for x1, y1 in stroke[1:]:
            for i in range(1, STEPS_PER_SEGMENT + 1):
                t = i / STEPS_PER_SEGMENT
                point = {"x": x0 + (x1 - x0) * t, "y": y0 + (y1 - y0) * t}
                cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
            x0, y0 = x1, y1
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def block(page, label: str):
    """The component block whose label is exactly ``label`` (e.g. "Prediction", "Loss")."""
    # Most components title their block with a block-label; plots use a block-info span.
    title = page.locator("[data-testid=block-label], [data-testid=block-info]", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
    return page.locator(".block").filter(has=title)


def prediction(page):
    """The Draw tab's answer, computed in the page: "It's a 7 (98%)", "Not sure: 4 or 9?" or "Draw a digit"."""
    return page.locator(PREDICTION)


def answer(page):
    """The element #prediction: its text is the answer in words, its ``data-label`` the digit ("" when blank)."""
    return page.locator(PREDICTION)


def label(page) -> str:
    """The chosen model's digit as the page says it (#prediction's data-label; "" when the pad is blank)."""
    return page.locator(PREDICTION).get_attribute("data-label") or ""


# Resolves once the element has not changed (text, children, attributes) for ``quiet`` ms: the
# page answers while drawing, so a test reads the answer after the last one.
SETTLE_JS = """
([selector, quiet]) => new Promise((resolve) => {
  const target = document.querySelector(selector);
  let timer = setTimeout(done, quiet);
  const observer = new MutationObserver(() => { clearTimeout(timer); timer = setTimeout(done, quiet); });
  observer.observe(target, { subtree: true, childList: true, characterData: true, attributes: true });
  function done() { observer.disconnect(); resolve(); }
})
"""
SETTLE_QUIET_MS = 1000


def settled_answer(page, quiet_ms: int = SETTLE_QUIET_MS) -> str:
    """The answer's digit (data-label, "" when blank) once it has stopped changing (no timing is asserted)."""
    page.evaluate(SETTLE_JS, [PREDICTION, quiet_ms])
    return label(page)


def screenshot(page, name: str, full_page: bool = False, clip: dict | None = None, folder: Path = ARTIFACTS) -> Path:
    """Save a small screenshot as <folder>/<name>.png (artifacts/e2e by default: gitignored, for people to look at)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    path.write_bytes(small_png(page.screenshot(full_page=full_page or clip is not None, clip=clip)))
    return path


def page_clip(page, top_locator, bottom_locator, margin: int = 8) -> dict:
    """A full-width clip of the page from one element's top to another's bottom (page coordinates)."""
    scroll = page.evaluate("() => window.scrollY")
    top, bottom = top_locator.bounding_box(), bottom_locator.bounding_box()
    width = page.viewport_size["width"]
    y0 = max(0.0, top["y"] + scroll - margin)
    return {"x": 0, "y": y0, "width": width, "height": bottom["y"] + bottom["height"] + scroll + margin - y0}


def small_png(png: bytes) -> bytes:
    """A palette PNG of a screenshot: UI colours survive, the file shrinks ~5x."""
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=DOC_PNG_COLOURS)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    data = out.getvalue()
    assert len(data) < DOC_PNG_MAX_BYTES, f"screenshot too large for the README: {len(data):,} bytes"
    return data
