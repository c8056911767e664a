"""Drawing with a finger on a phone-sized screen: the digit is read and the page does not scroll.

A touch drag over a page normally scrolls it; over the Sketchpad it must draw instead
(the canvas needs CSS ``touch-action: none``). Real touch events are sent through Chrome
DevTools (Input.dispatchTouchEvent), as a phone's touchscreen would send them.
"""

from __future__ import annotations

from typing import Iterator

import pytest
from playwright.sync_api import expect

from .browser import (
    ANSWER_TIMEOUT_MS, BLANK_MESSAGE, CANVAS, CLEAR_BUTTON, ONE, PAGE_TIMEOUT_MS, SEVEN, SKETCH, block, page_clip,
    prediction, screenshot, touch_draw,
)

PHONE = dict(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True, device_scale_factor=2)


@pytest.fixture(scope="module")
def phone(browser, app_server) -> Iterator[tuple[object, object]]:
    """The Draw tab on a 390x844 touch screen, and a DevTools session to touch it with."""
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto(app_server.url)
    page.locator(CANVAS).first.wait_for(state="visible")
    expect(prediction(page)).to_have_text(BLANK_MESSAGE)
    cdp = context.new_cdp_session(page)
    yield page, cdp
    context.close()


def scroll_y(page) -> float:
    return page.evaluate("() => window.scrollY")


@pytest.mark.parametrize("digit, strokes", [("1", ONE), ("7", SEVEN)])
def test_a_digit_drawn_by_touch_is_read_and_the_page_stays_put(phone, digit, strokes):
    page, cdp = phone
    if prediction(page).inner_text().strip() != BLANK_MESSAGE:
        page.locator(CLEAR_BUTTON).tap()
        expect(prediction(page)).to_have_text(BLANK_MESSAGE, timeout=ANSWER_TIMEOUT_MS)
    page.locator(CANVAS).first.scroll_into_view_if_needed()
    before = scroll_y(page)
    touch_draw(page, cdp, strokes)  # mostly vertical drags: exactly what would scroll a page
    assert scroll_y(page) == before, "the page scrolled instead of drawing"
    expect(prediction(page)).to_have_text(digit, timeout=ANSWER_TIMEOUT_MS)
    if digit == "7":  # the README's phone view: the drawing down to the answer
        screenshot(page, "mobile", clip=page_clip(page, page.locator(SKETCH), block(page, "Prediction")))
