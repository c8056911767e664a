"""The Train tab in a real browser: a run's view is pushed to its visitor; the queue is shared and fair.

A short run grows the curves and finishes; Stop ends a long one; two visitors (two browser
contexts, two Gradio sessions) share the one training queue: the second waits, sees its
place, and its Stop leaves the first visitor's run alone. An idle open page asks the
server for nothing (no timer: the view is a stream started by the Train click).

Trains LeNet on the small MNIST slice of tests/conftest.py (2,000 images); the app never
writes a checkpoint (DIGITNET_CHECKPOINTS is a temp folder, which stays empty).
"""

from __future__ import annotations

import re
import time
from typing import Iterator

import pytest
from playwright.sync_api import expect

from .browser import PAGE_TIMEOUT_MS, screenshot

VIEWPORT = {"width": 1280, "height": 1000}
RUN_TIMEOUT_S = 300  # a 3-epoch run on the slice takes seconds idle, minutes on a crowded CI machine
POLL_MS = 500  # between two looks at the page (page.wait_for_timeout: playwright delivers events meanwhile)
LONG_EPOCHS, LONG_BATCH = 30, 16  # 125 batches an epoch on the slice, 30 epochs: a run that is still going when stopped
IDLE_WATCH_MS = 15_000
IDLE_REQUESTS_MAX = 1  # a page nobody touches costs the shared server at most 1 request in 15 s (no polling timer)
STATE = re.compile(r"· (idle|queued|running|done|stopped|error)$")
STATUS_STRONG = "#train-status strong"  # "run 2: LeNet · running" (train.status_line), or "idle"
RUN_ROWS = "#runs-table [role=row][data-index]"  # gr.Dataframe's body rows (a virtual table of divs)

# What the charts hold (digitnet/ui/static/curves.js keeps these data attributes current).
CURVES = "#train-curves .curves"
OVERLAY = "#overlay-curves .curves"
TICK_LABEL = re.compile(r"^-?\d+(\.\d{1,2})?$")  # at most 2 decimals


def open_train_tab(browser, url: str, **context_options):
    """A new visitor (own browser context, own session) on the Train tab: (context, page)."""
    context = browser.new_context(**(context_options or {"viewport": VIEWPORT}))
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto(url)
    page.get_by_role("tab", name="Train").click()
    expect(page.get_by_role("button", name="Train", exact=True)).to_be_visible()
    return context, page


pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(browser, app_server, mnist) -> Iterator[object]:
    """The app's Train tab (training needs MNIST: skipped without it)."""
    context, page = open_train_tab(browser, app_server.url)
    yield page
    app_server.wait_idle()
    context.close()


def state(page) -> str:
    """The state word of the visitor's status line ("idle" before their first run)."""
    text = page.locator(STATUS_STRONG).first.inner_text().strip()
    match = STATE.search(text)
    return match.group(1) if match else text


def expect_state(page, word: str, timeout: float | None = None) -> None:
    """Wait until the status line says ``word`` ("queued", "running", "stopped", ...)."""
    expect(page.locator(STATUS_STRONG).first).to_have_text(re.compile(rf"· {word}$"), timeout=timeout)


def chart_data(page, selector: str = CURVES) -> dict:
    """The chart's data attributes: lossPoints, valPoints, series, lastEpoch, probeAnswers, ..."""
    return page.locator(selector).evaluate("(e) => ({...e.dataset})")


def plot_points(page, kind: str) -> int:
    """How many training-loss ("loss") or validation ("val") points the live chart holds right now."""
    return int(chart_data(page)[f"{kind}Points"])


def overlay_points(page) -> int:
    """How many validation points the overlay of the visitor's runs holds right now (all runs together)."""
    return int(chart_data(page, OVERLAY)["valPoints"])


def open_settings(page) -> None:
    """Unfold the form's settings (folded so that a phone shows Train and the curves first)."""
    batch = page.get_by_role("spinbutton", name="Batch size", exact=True)
    if not batch.is_visible():
        page.get_by_text(re.compile(r"^Settings: ")).click()
        expect(batch).to_be_visible()


SETTLE_MS = 300  # a box just shown by opening its fold can be reset to its initial value right after a fill


def set_number(box, value: int, tries: int = 5) -> None:
    """Type ``value`` into a number box and check that it stays there. Gradio mounts a fold's boxes when
    the fold first opens, and now and then (1 run of this module in 3 here) puts a box's initial value
    back just after the first fill: the run then trained with batch 128, not the 16 typed. So type again
    until the value holds."""
    for _ in range(tries):
        box.fill(str(value))
        box.press("Enter")
        box.page.wait_for_timeout(SETTLE_MS)
        if box.input_value() == str(value):
            return
    raise AssertionError(f"the box kept {box.input_value()!r} after typing {value} {tries} times")


def click_train(page, epochs: int, batch_size: int = 128) -> int:
    """Set the epochs and batch size and click Train; wait for the answer that the run was queued; its number."""
    number = page.locator(RUN_ROWS).count() + 1  # the visitor's runs are numbered 1, 2, ...
    set_number(page.get_by_label("number input for Epochs"), epochs)  # the slider's number box
    open_settings(page)
    batch = page.get_by_role("spinbutton", name="Batch size", exact=True)
    set_number(batch, batch_size)
    expect(batch).to_have_value(str(batch_size))  # what the click sends (the page reads the boxes at the click)
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.get_by_text(re.compile(rf"^(Queued as your|Your) run {number}: LeNet"))).to_be_visible()
    return number


def start(page, epochs: int, batch_size: int = 128) -> int:
    """Click Train and wait until the visitor's run has started (the queue is empty in these tests); its number.
    A 1-epoch run of 16 steps can be done before the page is looked at (seen with two copies of this module
    at once), so "done" counts as started too."""
    number = click_train(page, epochs, batch_size)
    expect(page.locator(STATUS_STRONG).first).to_have_text(re.compile(rf"^run {number}: LeNet · (running|done)$"))
    return number


def watch(page, until, timeout: float = RUN_TIMEOUT_S) -> list[tuple[str, int, int]]:
    """Sample (state, loss points, validation points) until ``until(sample)`` holds; return every sample."""
    samples = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sample = (state(page), plot_points(page, "loss"), plot_points(page, "val"))
        samples.append(sample)
        if until(sample):
            return samples
        page.wait_for_timeout(POLL_MS)
    raise AssertionError(f"gave up after {timeout} s; last samples: {samples[-5:]}")


def wait_for_points(page, count, points: int, timeout: float = 60) -> None:
    """Give a plot's last update time to arrive (the run's end also draws the results)."""
    deadline = time.monotonic() + timeout
    while count() < points and time.monotonic() < deadline:
        page.wait_for_timeout(POLL_MS)


def run_rows(page, count: int) -> list[str]:
    """The ``count`` rows of the visitor's run table (waiting until it has that many), newest first, as text."""
    expect(page.locator(RUN_ROWS)).to_have_count(count)
    return [row.inner_text() for row in page.locator(RUN_ROWS).all()]


def test_a_short_run_draws_dense_curves_and_shows_results(page, checkpoints_dir, gate):
    # Batch 16: 125 steps an epoch on the slice, a loss report every 6 steps (375 // 60). The run is held at its
    # first batch, let through 18 steps, and held again until the page shows their 3 points: points from the
    # first seconds, not per epoch (looked at while it ran free, a crowded machine's page could miss epoch 1).
    assert start(page, epochs=3, batch_size=LONG_BATCH) == 1
    assert gate.entered.wait(RUN_TIMEOUT_S)
    gate.allow(18)
    expect(page.locator(CURVES)).to_have_attribute("data-loss-points", "3", timeout=RUN_TIMEOUT_S * 1000)
    assert 0 < float(chart_data(page)["lastEpoch"]) < 1
    gate.open()
    samples = watch(page, lambda s: s[0] not in ("queued", "running"))
    assert samples[-1][0] == "done", samples[-5:]
    expect(page.get_by_role("heading", name=re.compile(r"^run 1, LeNet: test accuracy \d+\.\d+%$"))).to_be_visible()
    expect(page.locator("#confusion img").first).to_be_visible()
    expect(page.locator("#misclassified img").first).to_be_visible()
    # 3 epochs of 125 steps on the slice: a loss point every 6 steps (>= 40), 12 validation points
    wait_for_points(page, lambda: plot_points(page, "loss"), 48)
    assert plot_points(page, "loss") >= 40 and plot_points(page, "val") >= 10, chart_data(page)
    # Drawn: a line per curve, a marker per validation point, ticks with at most 2 decimals.
    acc = page.locator("#train-curves [data-chart=acc]")
    assert acc.locator("circle").count() >= 10 and acc.locator("path").count() >= 2
    ticks = page.locator("#train-curves text.tick").evaluate_all("(els) => els.map((e) => e.textContent)")
    assert ticks and all(TICK_LABEL.match(t) for t in ticks), ticks
    # The run joins the visitor's history, and its curves the overlay.
    assert re.search(r"^1\s+LeNet\s+3 ep .*\s+done\s+\d+\.\d\d%\s+\d+ s$", run_rows(page, 1)[0]), run_rows(page, 1)
    expect(page.locator("#overlay-pick").get_by_label("run 1: LeNet")).to_be_checked()
    wait_for_points(page, lambda: overlay_points(page), 12)
    assert overlay_points(page) == 12 and chart_data(page, OVERLAY)["series"] == "1"
    assert list(checkpoints_dir.iterdir()) == []  # the weights stay in the visitor's session
    # The x-axis switches to wall seconds in the page (no request).
    page.locator("#train-curves input[value=seconds]").check()
    expect(page.locator("#train-curves .curves")).to_have_attribute("data-x", "seconds")
    expect(page.locator("#train-curves text.title").first).to_contain_text("wall seconds")
    page.locator("#train-curves input[value=epoch]").check()
    screenshot(page, "train", full_page=True)


def test_a_second_run_is_overlaid_with_the_first_and_downloads_in_one_click(page):
    # Runs after the 3-epoch run above: a 1-epoch run, then both in the overlay, each its own line.
    assert start(page, epochs=1) == 2
    watch(page, lambda s: s[0] not in ("queued", "running"))
    wait_for_points(page, lambda: int(chart_data(page, OVERLAY)["series"]), 2)
    data = chart_data(page, OVERLAY)
    assert data["series"] == "2" and int(data["valPoints"]) == 24, data
    assert page.locator("#overlay-curves [data-chart=acc] g.series").count() >= 2  # both drawn, not one
    page.get_by_text("Your models: download or load weights").click()
    with page.expect_download() as download:
        page.locator("#download-weights").click()  # one click, the file
    assert download.value.suggested_filename == "lenet-run2.pt"


def test_the_test_digit_grid_changes_while_the_model_learns(browser, app_server, gate):
    """The run is held at its first batch until the page is watching, and again after its first validation point
    until the page shows it; then the 16 digits' answers change by the end (on a crowded machine the page's
    looks can miss every point but the last few, whose answers are the same)."""
    context, page = open_train_tab(browser, app_server.url)
    try:
        # Batch 16 on the slice: 125 steps an epoch, 500 in 4 epochs, 12 validation points (TrainConfig.val_points)
        # at evenly spaced steps, the first after step round(500 / 12).
        click_train(page, epochs=4, batch_size=LONG_BATCH)
        assert gate.entered.wait(RUN_TIMEOUT_S)
        expect(page.locator(STATUS_STRONG).first).to_have_text(re.compile(r"· running$"))
        assert chart_data(page).get("probeAnswers", "") == ""  # no answer before the first validation point
        expect(page.locator("#train-curves .curves-probe-grid figure")).to_have_count(16)
        # The progress's ETA: none before the first loss report (every 8 steps: 500 // 60), then "measuring"
        # until a second report gives the pace without the run's start (loop.TrainingRun.run).
        progress = page.locator("#train-curves .curves-progress-text")
        expect(progress).to_contain_text("loading data...")
        gate.allow(8)
        expect(progress).to_contain_text("batch 8/125 · ETA: measuring...", timeout=RUN_TIMEOUT_S * 1000)
        gate.allow(round(4 * 125 / 12) - 8)  # the run makes its first validation point, then waits at its next batch
        expect(page.locator(CURVES)).to_have_attribute("data-val-points", "1", timeout=RUN_TIMEOUT_S * 1000)
        expect(page.locator(CURVES)).to_have_attribute("data-probe-answers", re.compile(r"^\d{16}$"))
        first = chart_data(page)["probeAnswers"]
        assert page.locator("#train-curves [data-chart=acc] circle").count() >= 1  # a single point shows as a marker
        expect(progress).to_contain_text(re.compile(r"batch 40/125 · ETA \d+:\d\d"))  # the last report before it
        gate.open()
        seen = [first]
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while state(page) in ("queued", "running") and time.monotonic() < deadline:
            answers = chart_data(page).get("probeAnswers")
            if answers and answers != seen[-1]:
                seen.append(answers)
            page.wait_for_timeout(POLL_MS // 2)
        expect_state(page, "done")
        wait_for_points(page, lambda: plot_points(page, "val"), 12)
        final = chart_data(page)["probeAnswers"]  # the run's last point
        if final != seen[-1]:
            seen.append(final)
        assert len(seen) >= 2, f"the grid never changed while running: {seen}"
        assert all(len(a) == 16 for a in seen)
        assert page.locator("#train-curves .curves-probe-grid figure.right").count() + \
            page.locator("#train-curves .curves-probe-grid figure.wrong").count() == 16  # green or red
    finally:
        gate.open()
        app_server.wait_idle()
        context.close()


def test_the_curves_grow_while_training_and_stop_ends_the_run(browser, app_server):
    # A visitor of its own, whose plots start empty: every point drawn is this run's.
    context, page = open_train_tab(browser, app_server.url)
    try:
        # Batch 16: 125 batches per epoch on the slice, so a running-loss point every 50 batches and
        # epochs slow enough that the stream's half-second looks show the curves between two epochs.
        assert start(page, epochs=LONG_EPOCHS, batch_size=LONG_BATCH) == 1
        seen_loss = set()

        def grown_for_two_epochs(sample) -> bool:
            if sample[0] == "running" and sample[1]:
                seen_loss.add(sample[1])
            return sample[0] != "running" or (sample[2] >= 1 and len(seen_loss) >= 2)

        # Watch until a validation point is on the chart (one per epoch in a 30-epoch run) and the loss
        # curve has been seen at two different lengths.
        samples = watch(page, grown_for_two_epochs)
        assert samples[-1][0] == "running", f"the run ended before it could be stopped: {samples[-5:]}"
        running_loss = [loss for st, loss, _ in samples if st == "running"]
        running_acc = [acc for st, _, acc in samples if st == "running"]
        assert running_loss == sorted(running_loss), f"the loss curve shrank while running: {running_loss}"
        assert running_acc == sorted(running_acc), f"the accuracy curves shrank while running: {running_acc}"
        assert len(set(running_loss) - {0}) >= 2, f"the loss curve never grew while running: {running_loss}"
        expect(page.get_by_text(re.compile(rf"^epoch \d+/{LONG_EPOCHS} · batch \d+/\d+"))).to_be_visible()  # progress
        page.get_by_role("button", name="Stop", exact=True).click()
        expect_state(page, "stopped", timeout=60_000)
        stopped = re.compile(r"LeNet stopped after \d+ full epochs?; your drawings keep the weights they had")
        expect(page.locator("#train-status")).to_contain_text(stopped)  # the status line...
        expect(page.get_by_text(stopped).first).to_be_visible()  # ...and the answer under the Stop button
        expect(page.get_by_text("The last run did not finish: no test results, and your drawings keep their "
                                "weights.")).to_be_visible()
        assert plot_points(page, "loss") >= running_loss[-1]  # the curves of the stopped run stay on screen
        rows = run_rows(page, 1)
        assert re.search(rf"^1\s+LeNet\s+{LONG_EPOCHS} ep .* batch {LONG_BATCH}\s+stopped", rows[0]), rows
        screenshot(page, "train-stopped", full_page=True)
    finally:
        context.close()


def test_a_second_visitor_waits_in_the_queue_and_its_stop_leaves_the_first_alone(browser, app_server, page):
    # Visitor B opens the app first (a page load takes seconds here), so that A's long run is
    # surely still going when B clicks Train.
    b_context, b_page = open_train_tab(browser, app_server.url)
    try:
        expect(b_page.locator(STATUS_STRONG).first).to_have_text("idle")  # nothing of A's runs shows for B
        a_runs = page.locator(RUN_ROWS).count()
        start(page, epochs=LONG_EPOCHS, batch_size=LONG_BATCH)  # visitor A
        click_train(b_page, epochs=2)
        expect(b_page.get_by_text("Queued as your run 1: LeNet (number 1 in the queue).")).to_be_visible()
        expect_state(b_page, "queued")
        expect(b_page.get_by_text(re.compile(r"waiting: number 1 in the queue · starts in about \d+:\d\d"))
               ).to_be_visible()
        assert state(page) == "running", "A's run ended before B's could wait behind it: make it longer"
        waiting = app_server.scheduler.waiting()
        assert len(waiting) == 1 and waiting[0].owner != app_server.scheduler.running.owner

        b_page.get_by_role("button", name="Stop", exact=True).click()
        expect_state(b_page, "stopped")
        expect(b_page.get_by_text("LeNet: taken out of the queue before it started.").first).to_be_visible()
        assert app_server.scheduler.waiting() == []
        assert state(page) == "running"  # A's run goes on
        b_rows = run_rows(b_page, 1)  # B's history: its own run only
        assert re.search(r"^1\s+LeNet\s+2 ep .*\s+stopped", b_rows[0]), b_rows
        screenshot(b_page, "train-queued-stopped", full_page=True)

        page.get_by_role("button", name="Stop", exact=True).click()
        expect_state(page, "stopped", timeout=60_000)
        a_rows = run_rows(page, a_runs + 1)  # A's history: A's runs only
        assert re.search(rf"^{a_runs + 1}\s+LeNet\s+{LONG_EPOCHS} ep .*\s+stopped", a_rows[0]), a_rows
        assert app_server.scheduler.running is None or app_server.scheduler.running.snapshot().ended
    finally:
        b_context.close()


def test_the_fast_recipe_follows_the_model_until_the_visitor_changes_it(browser, app_server):
    """CNNNet's fast recipe is one epoch at lr 0.01, LeNet's 1.5 at lr 0.015 (both at batch 128): picking
    a model shows its recipe while the form shows a fast one; a visitor's own settings are never overwritten."""
    context, page = open_train_tab(browser, app_server.url)
    try:
        epochs = page.get_by_label("number input for Epochs")
        batch = page.get_by_role("spinbutton", name="Batch size", exact=True)
        lr = page.get_by_role("spinbutton", name="Learning rate", exact=True)
        open_settings(page)
        expect(epochs).to_have_value("1.5")
        expect(batch).to_have_value("128")
        expect(lr).to_have_value("0.015")
        page.get_by_role("radio", name="CNNNet").check()
        expect(epochs).to_have_value("1")
        expect(lr).to_have_value("0.01")
        set_number(batch, 64)  # the visitor's own choice...
        # Picking a model asks the server (an unqueued POST to /run/...); wait for its answer, which would
        # carry the new recipe's values had the form been a fast one, and check that it carries none.
        with page.expect_response(lambda r: "/run/" in r.url and r.request.method == "POST") as answered:
            page.get_by_role("radio", name="LeNet").check()
        updates = answered.value.json()["data"]
        assert updates and all(u.get("__type__") == "update" and "value" not in u for u in updates), updates
        expect(epochs).to_have_value("1")  # ...so picking another model leaves the form alone
        expect(batch).to_have_value("64")
        expect(lr).to_have_value("0.01")
        page.get_by_role("button", name="Fast recipe").click()  # LeNet's fast recipe on request
        expect(epochs).to_have_value("1.5")
        expect(batch).to_have_value("128")
        expect(lr).to_have_value("0.015")
    finally:
        context.close()


def test_a_phone_shows_a_finished_run_whole(browser, app_server):
    """390x844: the run table, the mistakes and their captions fit the screen, nothing cut off."""
    from .browser import PHONE

    context, page = open_train_tab(browser, app_server.url, **PHONE)
    try:
        start(page, epochs=1)
        watch(page, lambda s: s[0] not in ("queued", "running"))
        assert re.search(r"^1\s+LeNet\s+1 ep .*\s+done\s+\d+\.\d\d%\s+\d+ s$", run_rows(page, 1)[0])
        expect(page.locator("#misclassified .caption-label").first).to_be_visible()
        cut = page.evaluate("""() => {
          const width = window.innerWidth, out = [];
          const box = (e) => e.getBoundingClientRect();
          const table = document.querySelector('#runs-table table'), frame = document.querySelector('#runs-table');
          for (const row of document.querySelectorAll('#runs-table .virtual-row'))
            if (box(row).right > box(frame).right + 1) out.push(['runs row', box(row).right, box(frame).right]);
          if (box(table).right > box(frame).right + 1) out.push(['runs table', box(table).right, box(frame).right]);
          // The visible cells (Gradio's table also keeps a hidden one to size its columns).
          for (const e of document.querySelectorAll('#runs-table .virtual-row span.text, #runs-table th span.header, #misclassified .caption-label'))
            if (e.scrollWidth > e.clientWidth + 1) out.push(['text cut', e.textContent, e.scrollWidth, e.clientWidth]);
          for (const e of document.querySelectorAll('#misclassified .gallery-item, #runs-table, #train-curves'))
            if (box(e).left < 0 || box(e).right > width) out.push(['off screen', e.className, box(e).left, box(e).right]);
          return out;
        }""")
        assert cut == [], cut
        assert re.fullmatch(r"\d → \d · \d+%", page.locator("#misclassified .caption-label").first.inner_text())
        page.locator("#runs-table").scroll_into_view_if_needed()
        screenshot(page, "train-phone")
    finally:
        app_server.wait_idle()
        context.close()


def test_a_run_follows_the_visitors_last_drawing(browser, app_server):
    """Beside the test digits: the 7 the visitor drew, with the model's probability for a 7 at every point."""
    from .browser import ANSWER_TIMEOUT_MS, PAD_CANVAS, SEVEN, answer, mouse_draw, open_pad

    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = open_pad(context, app_server.url)
        mouse_draw(page, SEVEN, PAD_CANVAS)
        expect(answer(page)).to_have_attribute("data-label", "7", timeout=ANSWER_TIMEOUT_MS)
        page.get_by_role("tab", name="Train").click()
        start(page, epochs=1, batch_size=LONG_BATCH)  # 125 steps: 12 validation points
        watch(page, lambda s: s[0] not in ("queued", "running"))
        wait_for_points(page, lambda: len(chart_data(page).get("ownProbs", "").split()), 12)
        probs = [int(p) for p in chart_data(page)["ownProbs"].split()]
        assert len(probs) == 12 and all(0 <= p <= 100 for p in probs) and probs[-1] > probs[0], probs
        caption = page.locator("#train-curves .curves-own figcaption").inner_text()
        assert caption.startswith("your 7: ") and caption.endswith(f" → {probs[-1]}%"), caption
        expect(page.locator("#train-curves .curves-own img")).to_have_attribute("alt", "your drawing of a 7")
        page.locator("#train-curves .curves-own").scroll_into_view_if_needed()
        screenshot(page, "train-own")
    finally:
        app_server.wait_idle()
        context.close()


def settle(page, requests: list, quiet_ms: int = 2_000, limit_s: float = 60) -> None:
    """Wait until the page has loaded what it loads on opening (its scripts, fonts, ...): until ``requests``
    stops growing for ``quiet_ms``. A page that never goes quiet is left after ``limit_s`` (and then fails)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        seen = len(requests)
        page.wait_for_timeout(quiet_ms)
        if len(requests) == seen:
            return


@pytest.mark.parametrize("tab", ["Draw", "Train"])
def test_an_idle_open_page_asks_the_server_for_nothing(browser, app_server, tab):
    context = browser.new_context(viewport=VIEWPORT)
    try:
        idle = context.new_page()
        idle.set_default_timeout(PAGE_TIMEOUT_MS)
        requests = []  # every request to the app, from the page's first one on
        idle.on("request", lambda r: requests.append(r.url) if r.url.startswith(app_server.url) else None)
        idle.goto(app_server.url)
        idle.get_by_role("tab", name=tab).click()
        expect(idle.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true")
        settle(idle, requests)
        opened = len(requests)
        idle.wait_for_timeout(IDLE_WATCH_MS)  # nobody touches the page; playwright delivers its events meanwhile
        assert len(requests) - opened <= IDLE_REQUESTS_MAX, requests[opened:]
    finally:
        context.close()
