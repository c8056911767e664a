"""Fixtures for the browser tests: one Chromium per module, one launched app per module.

Every test here is marked ``browser`` (``python -m pytest -m "not browser"`` leaves them out) and
is skipped, with the reason, when Chromium or playwright is missing, before any app is launched;
with ``CI=true`` such a skip fails the run instead (tests/conftest.py). The app runs on a small MNIST slice with DIGITNET_CHECKPOINTS in a
temp folder (``checkpoints_dir`` from tests/conftest.py), so a run never writes into the
repo's checkpoints/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from conftest import SMALL_TRAIN, RunningApp, running_app

from .browser import CHROMIUM, CHROMIUM_ARGS, PHONE, chromium_missing_reason, open_page

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook deselects by mark (-m "not browser")
def pytest_collection_modifyitems(config, items) -> None:
    """Mark this folder's tests ``browser``; skip them cleanly when there is no browser to drive."""
    reason = chromium_missing_reason()
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.browser)
            if reason is not None:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's headless Chromium, driven by playwright (one per test module: page loads are heavy)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def pad_app_url(checkpoints_dir) -> Iterator[str]:
    """URL of the app, whose Draw tab has the drawing pad (#digit-pad) and its answer (#prediction)."""
    with running_app(train_overrides=SMALL_TRAIN) as running:
        yield running.url


@pytest.fixture(scope="module")
def app_server(checkpoints_dir) -> Iterator[RunningApp]:
    """The app on a free local port, a small MNIST slice for training, checkpoints in a temp folder."""
    with running_app(train_overrides=SMALL_TRAIN) as running:
        yield running


@pytest.fixture
def phone_page(browser, app_server) -> Iterator[object]:
    """The app's Draw tab on a phone (390x844, touch, 2x pixels), shipped weights loaded, in a browser context
    of its own, closed after the test (touches: ``page.context.new_cdp_session(page)``)."""
    context = browser.new_context(**PHONE)
    try:
        yield open_page(context, app_server.url)
    finally:
        context.close()
