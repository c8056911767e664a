"""The drawing pad in a real browser: draw, Clear, draw on one page; Undo; a finger on a phone.

The app is ``pad_app_url`` (tests/e2e/conftest.py). One page per laptop-sized test module run;
the tests run in file order on it and each brings the pad to the state it needs. No timing is
asserted (that is benchmarks/browser_latency.py's job): every wait is generous.
"""

from __future__ import annotations

from typing import Iterator

import pytest
from playwright.sync_api import expect

from .browser import (
    ANSWER_TIMEOUT_MS, BLANK_MESSAGE, DIGIT_STROKES, LAPTOP, ONE, PAD, PAD_CANVAS, PAD_CLEAR, PAD_UNDO, PHONE,
    PREDICTION, SEVEN, SEVEN_BAR, answer, label, mouse_draw, open_pad, screenshot, settled_answer, touch_draw,
)


@pytest.fixture(scope="module")
def page(browser, pad_app_url) -> Iterator[object]:
    """The pad on a laptop-sized page, loaded once for the whole module."""
    context = browser.new_context(viewport=LAPTOP)
    yield open_pad(context, pad_app_url)
    context.close()


def clear(page) -> None:
    """Click the pad's Clear and wait for the blank message."""
    page.locator(PAD_CLEAR).click()
    expect(answer(page)).to_have_text(BLANK_MESSAGE, timeout=ANSWER_TIMEOUT_MS)


def blank(page) -> None:
    """Bring the pad to blank (a test run alone finds it blank already; Clear is disabled then)."""
    if page.locator(PAD_CLEAR).is_enabled():
        clear(page)


def draw_and_read(page, digit: str, strokes=None) -> str:
    """Draw a digit with the mouse, wait for its answer to show, then for the answers to stop coming."""
    mouse_draw(page, strokes or DIGIT_STROKES[digit], PAD_CANVAS)
    expect(answer(page)).not_to_have_text(BLANK_MESSAGE, timeout=ANSWER_TIMEOUT_MS)
    return settled_answer(page)


def test_draw_clear_draw_reads_every_digit_on_one_page(page):
    # Gradio's Sketchpad missed the first stroke after Clear: here every drawing must be read.
    for i, digit in enumerate(["1", "7", "4"]):
        if i:
            clear(page)
            assert page.locator(PAD_UNDO).is_disabled() and page.locator(PAD_CLEAR).is_disabled()
        assert draw_and_read(page, digit) == digit, f"drawing {i + 1} ({digit}) after {i} Clear(s)"
    screenshot(page, "pad-four")


def test_undo_takes_back_the_last_stroke(page):
    blank(page)
    assert draw_and_read(page, "1") == "1"
    assert draw_and_read(page, "7", SEVEN_BAR) == "7"  # a top bar makes the 1 a 7
    page.locator(PAD_UNDO).click()
    expect(answer(page)).to_have_attribute("data-label", "1", timeout=ANSWER_TIMEOUT_MS)
    assert settled_answer(page) == "1"
    page.locator(PAD_UNDO).click()  # the last stroke left: the pad is blank again
    expect(answer(page)).to_have_text(BLANK_MESSAGE, timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator(PAD_UNDO)).to_be_disabled()
    # And the next drawing is read as usual.
    assert draw_and_read(page, "7", SEVEN) == "7"


def test_right_click_does_not_draw(page):
    blank(page)
    box = page.locator(PAD_CANVAS).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 20)
    page.mouse.down(button="right")
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] - 20, steps=10)
    page.mouse.up(button="right")
    expect(page.locator(PAD_UNDO)).to_be_disabled()  # no stroke was recorded
    assert answer(page).inner_text().strip() == BLANK_MESSAGE and label(page) == ""


def scroll_y(page) -> float:
    return page.evaluate("() => window.scrollY")


def inside_viewport(page, locator) -> bool:
    box = locator.bounding_box()
    view = page.viewport_size
    return (box is not None and box["x"] >= 0 and box["y"] >= 0
            and box["x"] + box["width"] <= view["width"] and box["y"] + box["height"] <= view["height"])


def test_a_finger_draws_on_a_phone_without_scrolling_the_page(browser, pad_app_url):
    context = browser.new_context(**PHONE)
    try:
        page = open_pad(context, pad_app_url)
        cdp = context.new_cdp_session(page)
        # Make the page taller than the screen and scroll it a little, so that a vertical drag
        # over the pad *could* scroll it (a short page cannot scroll whatever the pad does).
        page.evaluate("() => { document.body.style.minHeight = '3000px'; window.scrollTo(0, 5); }")
        page.wait_for_function("() => window.scrollY === 5")
        assert inside_viewport(page, page.locator(PAD_CANVAS)), "the pad is not fully on a 390x844 screen"
        # Sharp on hi-DPI: the canvas has devicePixelRatio (2) pixels per CSS pixel.
        css_width, pixels = page.evaluate(
            "(s) => { const c = document.querySelector(s); return [c.getBoundingClientRect().width, c.width]; }", PAD_CANVAS)
        assert pixels == round(2 * css_width)
        assert css_width <= 360

        touch_draw(page, cdp, ONE, PAD_CANVAS)  # a vertical drag: exactly what would scroll a page
        assert scroll_y(page) == 5, "the page scrolled instead of drawing"
        expect(answer(page)).to_have_attribute("data-label", "1", timeout=ANSWER_TIMEOUT_MS)
        assert settled_answer(page) == "1"
        assert inside_viewport(page, page.locator(PREDICTION)), "the answer is not on screen while drawing"
        screenshot(page, "pad-phone")

        page.locator(PAD_CLEAR).tap()
        expect(answer(page)).to_have_text(BLANK_MESSAGE, timeout=ANSWER_TIMEOUT_MS)
        touch_draw(page, cdp, SEVEN, PAD_CANVAS)
        assert scroll_y(page) == 5
        expect(answer(page)).to_have_attribute("data-label", "7", timeout=ANSWER_TIMEOUT_MS)
        assert settled_answer(page) == "7"
        assert page.locator(PAD).count() == 1
    finally:
        context.close()
