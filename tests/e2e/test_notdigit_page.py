"""The page says "That doesn't look like a digit" for a letter, as the server does for the same 28x28 (issue 23).

Marked ``browser``. The page's 28x28 is the server's (tests/e2e/test_inpage_math.py); here the page's
verdict on it is checked against ``digitnet.detector``'s, for letters and digits drawn with the mouse.
"""

from __future__ import annotations

import numpy as np
import pytest
from playwright.sync_api import expect

from digitnet.detector import DETECTOR
from digitnet.nondigits import STROKE_LETTERS

from .browser import ANSWER_TIMEOUT_MS, DIGIT_STROKES, PAD_CANVAS, PAD_CLEAR, answer, label, mouse_draw
from .browser import LAPTOP, open_page

pytestmark = pytest.mark.browser


def letter_strokes(letter: str) -> list[list[tuple[float, float]]]:
    """A capital letter's unit-box strokes in the browser helpers' box (-1..1, y down)."""
    return [[(1.5 * x - 0.75, 1.7 * y - 0.85) for x, y in stroke] for stroke in STROKE_LETTERS[letter]]


def test_letters_are_not_digits_on_the_page_as_on_the_server(browser, app_server):
    context = browser.new_context(viewport=LAPTOP)
    try:
        page = open_page(context, app_server.url)
        page.wait_for_function("() => window.DigitNetAnswer !== undefined")
        drawings = [("H", letter_strokes("H"), True), ("1", DIGIT_STROKES["1"], False), ("W", letter_strokes("W"), True),
                    ("7", DIGIT_STROKES["7"], False), ("M", letter_strokes("M"), True)]
        for i, (name, strokes, flagged) in enumerate(drawings):
            if i:
                page.locator(PAD_CLEAR).click()
            mouse_draw(page, strokes, PAD_CANVAS)
            want = "not a digit" if flagged else name
            expect(answer(page)).to_have_attribute("data-label", want, timeout=ANSWER_TIMEOUT_MS)
            if flagged:
                assert answer(page).inner_text().strip() == "That doesn't look like a digit"
            seen = np.asarray(page.evaluate("() => window.DigitNetAnswer.seen()"), dtype=np.float32).reshape(28, 28)
            assert DETECTOR.not_digit(seen)[0] == flagged, name  # the server's verdict on the page's 28x28
            assert label(page) == want
    finally:
        context.close()
