"""Remake the README's screenshots (docs/draw.png, docs/train.png, docs/mobile.png) from a normal session.

The app runs here with the shipped models and the whole of MNIST, as a visitor meets it:
a digit drawn with the mouse on the Draw tab (laptop size), the Train tab after a run of the
default recipe (what a visitor gets by clicking Train), and a digit drawn with a finger on a
390x844 phone screen. Needs Chromium (apt-get install chromium) and MNIST (DIGITNET_DATA).

    DIGITNET_DATA=/path/to/mnist python -m benchmarks.screenshots
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tests.e2e.browser import (ANSWER_TIMEOUT_MS, BLANK_MESSAGE, CHROMIUM, CHROMIUM_ARGS, DIGIT_STROKES, PAD_CANVAS, PHONE,
                               mouse_draw, screenshot, settled_answer, touch_draw)

DOCS = Path(__file__).resolve().parent.parent / "docs"
LAPTOP = {"width": 1280, "height": 1000}  # the README's pictures: wider than the tests' laptop
RUN_TIMEOUT_MS = 600_000  # the default recipe on the whole of MNIST: well under a minute on 2 idle cores


def open_app(browser, url: str, **context):
    """A new page on the app, its pad ready."""
    page = browser.new_context(**context).new_page()
    page.set_default_timeout(ANSWER_TIMEOUT_MS)
    page.goto(url)
    page.locator(PAD_CANVAS).wait_for(state="visible")
    return page


def draw(page, digit: str, cdp=None) -> str:
    """Draw ``digit`` (mouse, or a finger through ``cdp``) and return the answer once it has settled."""
    (touch_draw(page, cdp, DIGIT_STROKES[digit], PAD_CANVAS) if cdp is not None
     else mouse_draw(page, DIGIT_STROKES[digit], PAD_CANVAS))
    page.wait_for_function(f"() => !document.querySelector('#prediction').innerText.includes('{BLANK_MESSAGE}')",
                           timeout=ANSWER_TIMEOUT_MS)
    return settled_answer(page)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DOCS, help=f"folder for the PNGs (default: {DOCS})")
    p.add_argument("--no-train", action="store_true", help="only the Draw tab's screenshots (no training run)")
    args = p.parse_args(argv)

    import app
    from playwright.sync_api import sync_playwright

    from benchmarks.drawn import free_port

    demo = app.build_demo()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **{k: v for k, v in app.LAUNCH_OPTIONS.items() if k != "share"})
    url = f"http://127.0.0.1:{port}/"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = open_app(browser, url, viewport=LAPTOP)
            print("draw tab: read", draw(page, "4"))
            print(screenshot(page, "draw", full_page=False, folder=args.out))

            if not args.no_train:
                page.get_by_role("tab", name="Train").click()
                page.get_by_role("button", name="Train", exact=True).click()
                page.wait_for_function("() => /done|error|stopped/.test(document.querySelector('#train-status')"
                                       ".innerText)", timeout=RUN_TIMEOUT_MS)
                page.wait_for_timeout(2000)  # the last redraw of the curves
                print("train tab:", page.locator("#train-status").inner_text().strip()[:120])
                print(screenshot(page, "train", full_page=True, folder=args.out))

            phone = open_app(browser, url, **PHONE)
            print("phone: read", draw(phone, "7", cdp=phone.context.new_cdp_session(phone)))
            print(screenshot(phone, "mobile", folder=args.out))
            browser.close()
    finally:
        demo.ctx.scheduler.close()
        demo.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
