"""The Train tab in a real browser: a short run grows the curves and finishes; Stop ends a long one.

Trains LeNet on the small MNIST slice of tests/conftest.py (2,000 images), with
DIGITNET_CHECKPOINTS in a temp folder, so the repo's checkpoints/ are never written.
"""

from __future__ import annotations

import re
import time
from typing import Iterator

import pytest
from playwright.sync_api import expect

from .browser import PAGE_TIMEOUT_MS, block, screenshot

VIEWPORT = {"width": 1280, "height": 1000}
RUN_TIMEOUT_S = 300  # a 3-epoch run on the slice takes seconds idle, minutes on a crowded CI machine
POLL_S = 0.5
STATE_WORDS = re.compile(r"^(idle|running|done|stopped|error)$")

# Vertices of every line drawn in a Vega-Lite plot's SVG ("M" starts a line, "L" adds a point).
LINE_VERTICES_JS = """
(el) => Array.from(el.querySelectorAll('g.mark-line path'))
  .map(p => (p.getAttribute('d') || '').match(/[ML]/g) || []).reduce((n, m) => n + m.length, 0)
"""


LINE_PATHS_JS = "(el) => Array.from(el.querySelectorAll('g.mark-line path')).map(p => p.getAttribute('d'))"


@pytest.fixture(scope="module")
def page(browser, app_server, mnist) -> Iterator[object]:
    """The app's Train tab (training needs MNIST: skipped without it)."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto(app_server.url)
    page.get_by_role("tab", name="Train").click()
    expect(page.get_by_role("button", name="Train", exact=True)).to_be_visible()
    yield page
    app_server.job.stop(wait=30)
    context.close()


def state(page):
    """The status line's state word (the bold "running" in "⏳ **running** · ...")."""
    return page.locator("strong").filter(has_text=STATE_WORDS)


def plot_points(page, label: str) -> int:
    """How many points the named line plot ("Loss", "Accuracy (%)") draws right now."""
    return block(page, label).evaluate(LINE_VERTICES_JS)


def set_number(box, value: int) -> None:
    box.fill(str(value))
    box.press("Enter")


def start(page, epochs: int, batch_size: int = 128) -> None:
    """Set the epochs and batch size, click Train and wait until the status line says running."""
    set_number(page.get_by_label("number input for Epochs"), epochs)  # the slider's number box
    set_number(page.get_by_role("spinbutton", name="Batch size", exact=True), batch_size)
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.get_by_text(re.compile(r"^Started: "))).to_be_visible()
    expect(state(page)).to_have_text("running")


def watch(page, until, timeout: float = RUN_TIMEOUT_S) -> list[tuple[str, int, int]]:
    """Poll (state, loss points, accuracy points) until ``until(sample)`` holds; return every sample."""
    samples = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sample = (state(page).inner_text(), plot_points(page, "Loss"), plot_points(page, "Accuracy (%)"))
        samples.append(sample)
        if until(sample):
            return samples
        time.sleep(POLL_S)
    raise AssertionError(f"gave up after {timeout} s; last samples: {samples[-5:]}")


def wait_for_points(page, label: str, points: int, timeout: float = 60) -> None:
    """Give the plot's last update time to arrive (the final tick also draws the results)."""
    deadline = time.monotonic() + timeout
    while plot_points(page, label) < points and time.monotonic() < deadline:
        time.sleep(POLL_S)


def test_a_short_run_draws_its_curves_and_shows_results(page):
    start(page, epochs=3)
    samples = watch(page, lambda s: s[0] != "running")
    assert samples[-1][0] == "done", samples[-5:]
    expect(page.get_by_role("heading", name=re.compile(r"^LeNet: test accuracy \d+\.\d+%$"))).to_be_visible()
    expect(block(page, "Confusion matrix").locator("img, svg, canvas").first).to_be_visible()
    expect(page.locator("#misclassified img").first).to_be_visible()
    assert plot_points(page, "Loss") >= 2 and plot_points(page, "Accuracy (%)") >= 2  # curves on screen
    wait_for_points(page, "Accuracy (%)", 6)  # checked by the next test; here for a complete screenshot
    screenshot(page, "train", full_page=True)


def test_the_plots_of_the_finished_run_show_every_epoch(page):
    # Runs after the 3-epoch run above. Accuracy: one point per epoch for train and validation,
    # so 6; loss: the running train loss (at least one point per epoch on this small slice,
    # several on full MNIST) plus one validation point per epoch.
    wait_for_points(page, "Accuracy (%)", 6)
    assert plot_points(page, "Accuracy (%)") == 6, block(page, "Accuracy (%)").evaluate(LINE_PATHS_JS)
    wait_for_points(page, "Loss", 6)
    assert plot_points(page, "Loss") >= 6, block(page, "Loss").evaluate(LINE_PATHS_JS)


def test_the_curves_grow_while_training_and_stop_ends_the_run(page):
    before = plot_points(page, "Accuracy (%)")  # the previous run's curves, until the new run resets them
    # Batch 16: 125 batches per epoch on the slice, so a running-loss point every 50 batches and
    # epochs slow enough that the 1-second timer sees the curves between two epochs even on a
    # fast machine (at batch 128 a fast CI machine ran two epochs between two ticks).
    start(page, epochs=30, batch_size=16)
    reset, seen_loss = [], set()

    def grown_for_two_epochs(sample) -> bool:
        if sample[2] < before or sample[2] == 0:
            reset.append(sample)
        if reset and sample[0] == "running" and sample[1]:
            seen_loss.add(sample[1])
        return sample[0] != "running" or (bool(reset) and sample[2] >= 4 and len(seen_loss) >= 2)

    # Watch until the new run's two epochs are on the accuracy plot (two curves: 4 points) and
    # the loss plot has been seen at two different lengths.
    samples = watch(page, grown_for_two_epochs)
    assert samples[-1][0] == "running", f"the run ended before it could be stopped: {samples[-5:]}"
    running_loss = [loss for st, loss, _ in samples if st == "running"]
    # The first samples may still show the previous run's curves; after the new run resets them,
    # a live curve only grows.
    drops = [i for i in range(1, len(running_loss)) if running_loss[i] < running_loss[i - 1]]
    assert len(drops) <= 1, f"the loss curve shrank while running: {running_loss}"
    running_loss = running_loss[drops[0]:] if drops else running_loss
    assert len(set(running_loss) - {0}) >= 2, f"the loss curve never grew while running: {running_loss}"
    expect(page.get_by_text(re.compile(r"^epoch \d+/30 · batch \d+/\d+"))).to_be_visible()  # the progress line
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(state(page)).to_have_text("stopped", timeout=60_000)
    expect(page.get_by_text("The last run was stopped: no test results, nothing saved.")).to_be_visible()
    points_when_stopped = plot_points(page, "Loss")
    assert points_when_stopped >= running_loss[-1]  # the curves of the stopped run stay on screen
    screenshot(page, "train-stopped", full_page=True)
