"""Fool it on a phone (390x844): draw a 7, open the fold, pick a target, and see the altered image, the
change and the new answer, all within the screen's width. Marked ``browser``; no timing asserted."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .browser import ANSWER_TIMEOUT_MS, PAD_CANVAS, PAD_CLEAR, SEVEN, answer, mouse_draw, screenshot

pytestmark = pytest.mark.browser


def test_a_visitor_fools_the_model_on_a_phone(phone_page):
    page = phone_page
    mouse_draw(page, SEVEN, PAD_CANVAS)
    expect(answer(page)).to_have_attribute("data-label", "7", timeout=ANSWER_TIMEOUT_MS)
    page.get_by_text("Fool it: make it read something else").click()
    expect(page.locator("#fool-button")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    page.locator("#fool-target input[value='3']").check()
    page.locator("#fool-button").click()
    text = page.locator("#fool-text")
    expect(text).to_contain_text("now reads a 3", timeout=ANSWER_TIMEOUT_MS)
    expect(text).to_contain_text("where it read a 7")
    expect(text).to_contain_text("Why this matters")
    expect(page.locator("#fool-probs")).to_contain_text("3")
    width = page.viewport_size["width"]
    for part in ("#fool-seen img", "#fool-altered img", "#fool-diff img"):
        image = page.locator(part)
        expect(image).to_be_visible()
        box = image.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, part  # nothing off the side of a phone
    screenshot(page, "fool-phone")
    # A new drawing clears the stale result.
    page.locator(PAD_CLEAR).click()
    expect(text).not_to_contain_text("now reads", timeout=ANSWER_TIMEOUT_MS)
