"""The Draw tab in a real browser: mouse strokes on the Sketchpad are read as the right digit.

One page for the whole module (each page load costs seconds on two cores); the tests run
in file order on it, and each one brings the canvas to the state it needs.
"""

from __future__ import annotations

import re
from typing import Iterator

import pytest
from playwright.sync_api import expect

from .browser import (
    ANSWER_TIMEOUT_MS, BLANK_MESSAGE, BRUSH_BUTTON, CANVAS, CLEAR_BUTTON, ONE, PAGE_TIMEOUT_MS, SEVEN, mouse_draw,
    prediction, screenshot,
)

VIEWPORT = {"width": 1280, "height": 1000}  # a laptop screen; the README's draw.png is this view


@pytest.fixture(scope="module")
def page(browser, app_server) -> Iterator[object]:
    """The app's Draw tab, loaded once, with nothing clicked yet."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto(app_server.url)
    page.locator(CANVAS).first.wait_for(state="visible")
    expect(prediction(page)).to_have_text(BLANK_MESSAGE)
    yield page
    context.close()


def clear(page) -> None:
    """Click the Sketchpad's own "Clear canvas" button and wait for the friendly blank message."""
    page.locator(CLEAR_BUTTON).click()
    expect(prediction(page)).to_have_text(BLANK_MESSAGE, timeout=ANSWER_TIMEOUT_MS)


def test_brush_is_active_on_load_and_a_drawn_one_is_read(page):
    # No click on any tool first: a newcomer's first stroke must draw (Gradio 6 opens with no tool).
    expect(page.locator(BRUSH_BUTTON)).to_have_class(re.compile(r"\bhighlight\b"), timeout=ANSWER_TIMEOUT_MS)
    mouse_draw(page, ONE)
    expect(prediction(page)).to_have_text("1", timeout=ANSWER_TIMEOUT_MS)
    screenshot(page, "draw-one")


def test_clear_resets_the_result_to_the_blank_message(page):
    if prediction(page).inner_text().strip() == BLANK_MESSAGE:  # run alone: put some ink there first
        mouse_draw(page, ONE)
        expect(prediction(page)).to_have_text("1", timeout=ANSWER_TIMEOUT_MS)
    clear(page)
    # The 28x28 view and the side-by-side answers empty too: nothing left that looks like a guess.
    seen = page.locator("#seen-image img")
    expect(seen).to_have_count(0, timeout=ANSWER_TIMEOUT_MS)


def test_a_seven_drawn_right_after_clear_is_read(page):
    if prediction(page).inner_text().strip() != BLANK_MESSAGE:
        clear(page)
    # "Clear canvas" deselects Gradio's brush; the app selects it again, so drawing goes on at once.
    mouse_draw(page, SEVEN)
    expect(prediction(page)).to_have_text("7", timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#seen-image img")).to_have_count(1, timeout=ANSWER_TIMEOUT_MS)
    screenshot(page, "draw")
