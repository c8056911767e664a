"""From the pointer moving to the updated answer, in a real browser: the page's own reading vs the server pad.

Headless Chromium (driven by the ``playwright`` package) draws ``-n`` digits (1, 7, 4 in turn,
with the mouse, Clear between them) on two apps launched here, digit by digit in turn (paired,
so both see the same machine load):

- ``page``: digitnet's app (``app.build_demo``): the pad hands its ink to the answer panel on
  every animation frame, and the page runs the preprocessing and all three models itself;
- ``server``: the server pad it replaces (``build_server_pad_demo``): the same pad sending its
  value while drawing (every 125 ms, as the Draw tab did) through Gradio's queue to
  ``preprocess`` + LeNet, the answer into a ``gr.Label``. One model and one output: the old
  Draw tab answered with all three models and seven outputs, so this is the server's best case.

What is timed: for every ``pointermove`` event the page receives while drawing, from the event's
timestamp to the answer that includes it (``#prediction``, watched by a MutationObserver in the
page). The page's panel changes ``#prediction`` (its ``data-version``) on each answer it
computes, so that is the first change after the move. The server's answer to a move is the one
to the first queue request sent after it (``always_last``: no request is in flight then), so the
first change after that request left. Also counted: the requests to the server's queue while
drawing (the page must make none).

    DIGITNET_DATA=/path/to/mnist python -m benchmarks.browser_latency -n 12 --json benchmarks/results/browser_latency.json
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gradio as gr

from benchmarks import record
from benchmarks.drawn import free_port
from digitnet.predict import CACHE, ModelUnavailable, label_value, predict
from digitnet.ui.pad import SERVER_PAD_INTERVAL_MS, drawing_pad, pad_value
from tests.e2e.browser import (  # one set of strokes and drawing helpers for tests and benchmark
    BLANK_MESSAGE, CHROMIUM, CHROMIUM_ARGS, DIGIT_STROKES, PAD_CANVAS, PAD_CLEAR, PREDICTION,
    chromium_missing_reason, mouse_draw,
)

ROOT = Path(__file__).resolve().parent.parent
MODEL = "lenet"
TARGET_MEDIAN_MS = 16.0  # issue 19: within one animation frame (60 Hz), median, headless Chromium here
SETTLE_MS = 1500  # after the stroke, wait this long with no change of the answer (the server's last answer)
PAGE_TIMEOUT_MS = 180_000

# Installed in each page: the timestamp of every pointermove, every change of the answer, every queue request.
WATCH_JS = """
(selector) => {
  const target = document.querySelector(selector);
  window.__latency = { moves: [], changes: [] };
  document.addEventListener('pointermove', (e) => { if (e.buttons) window.__latency.moves.push(e.timeStamp); }, true);
  new MutationObserver(() => window.__latency.changes.push(performance.now()))
    .observe(target, { subtree: true, childList: true, characterData: true, attributes: true });
}
"""


def read_pad(value: Any) -> Any:
    """The server pad's handler: its value checked (never a file path), preprocess + LeNet -> a gr.Label value."""
    try:
        pred = predict(pad_value(value), MODEL)
    except (ValueError, ModelUnavailable) as exc:
        raise gr.Error(str(exc)) from exc
    return BLANK_MESSAGE if pred is None else label_value(pred)


def build_server_pad_demo() -> gr.Blocks:
    """A bare app: the pad sending its value while drawing, a gr.Label(elem_id="prediction"), wired as the Draw tab was."""
    with gr.Blocks(title="digitnet server pad") as demo:
        pad = drawing_pad(send_interval_ms=SERVER_PAD_INTERVAL_MS)
        label = gr.Label(value=BLANK_MESSAGE, num_top_classes=3, label="Prediction", elem_id="prediction")
        pad.change(read_pad, pad, label, trigger_mode="always_last", show_progress="hidden", api_visibility="private")
    return demo


def launch(demo: gr.Blocks) -> str:
    """Launch an app in this process on a free local port, as app.py does; its URL."""
    import app

    port = free_port()
    options = {k: v for k, v in app.LAUNCH_OPTIONS.items() if k != "share"}
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **options)
    return f"http://127.0.0.1:{port}/"


class Page:
    """One browser page on one app: draws on the pad, times the answer in ``#prediction``."""

    def __init__(self, browser, url: str):
        self.context = browser.new_context(viewport={"width": 1000, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(PAGE_TIMEOUT_MS)
        self.joins: list = []  # the page's requests to the server's queue
        self.page.on("request", self._request)
        self.page.goto(url)
        self.page.locator(PAD_CANVAS).wait_for(state="visible")
        self.page.locator(PREDICTION).filter(has_text=BLANK_MESSAGE).wait_for()
        self.page.wait_for_function("() => !window.DigitNetAnswer || ['mlp', 'cnnnet', 'lenet']"
                                    ".every(m => window.DigitNetAnswer.ready(m))")
        self.page.evaluate(WATCH_JS, PREDICTION)

    def _request(self, request) -> None:
        if "queue/join" in request.url:
            self.joins.append(request)

    def settle(self) -> None:
        """Wait (in the page's time) until the answer has not changed for SETTLE_MS."""
        while True:
            self.page.wait_for_timeout(200)
            now, changes = self.page.evaluate("() => [performance.now(), window.__latency.changes]")
            if not changes or now - changes[-1] >= SETTLE_MS:
                return

    def measure(self, strokes) -> dict:
        """Draw a digit (after Clear); per pointermove, ms to the next change of the answer; queue requests."""
        if self.page.locator(PAD_CLEAR).is_enabled():
            self.page.locator(PAD_CLEAR).click()
            self.page.locator(PREDICTION).filter(has_text=BLANK_MESSAGE).wait_for()
            self.settle()
        self.page.evaluate("() => { window.__latency.moves = []; window.__latency.changes = []; }")
        before = len(self.joins)
        mouse_draw(self.page, strokes, PAD_CANVAS)
        self.settle()
        log = self.page.evaluate("() => ({ origin: performance.timeOrigin, ...window.__latency })")
        # When each queue request left, on the page's clock (request.timing: wall-clock ms).
        sent = sorted(r.timing["startTime"] - log["origin"] for r in self.joins[before:])
        changes = sorted(log["changes"])
        ms = []
        for t in log["moves"]:
            # The page answers in place. The server answers a move with the first request sent after
            # it (always_last: none is in flight then), so its answer is the first change after that.
            start = t
            if sent:
                i = bisect.bisect_left(sent, t)
                if i == len(sent):
                    continue
                start = sent[i]
            i = bisect.bisect_left(changes, start)
            if i < len(changes):
                ms.append(changes[i] - t)
        return {"ms": ms, "moves": len(log["moves"]), "joins": len(self.joins) - before,
                "answer": self.page.locator(PREDICTION).get_attribute("data-label")
                or self.page.locator(f"{PREDICTION} [data-testid=label-output-value]").first.inner_text().strip()}

    def close(self) -> None:
        self.context.close()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, -(-len(ordered) * q // 100) - 1))]


def summary(runs: list[dict], expected: list[str]) -> dict:
    """Median and p95 over every pointermove of every digit; queue requests; correct final answers."""
    ms = [m for r in runs for m in r["ms"]]
    return {"digits": len(runs), "pointermoves": sum(r["moves"] for r in runs), "answered_moves": len(ms),
            "median_ms": round(statistics.median(ms), 2) if ms else None,
            "p95_ms": round(percentile(ms, 95), 2) if ms else None,
            "queue_joins_while_drawing": sum(r["joins"] for r in runs),
            "correct": sum(r["answer"] == e for r, e in zip(runs, expected))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=12, help="digits drawn on each path (default: 12)")
    p.add_argument("--warmup", type=int, default=1, help="digits drawn on each path first, not counted (default: 1)")
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = p.parse_args(argv)
    reason = chromium_missing_reason()
    if reason:
        raise SystemExit(reason)
    from playwright.sync_api import sync_playwright

    import app

    header = record.start(argv)  # the machine may be shared: the figures mean little without its load
    load_before = os.getloadavg()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)} on {os.cpu_count()} CPUs")
    CACHE.status()
    demos = [app.build_demo(), build_server_pad_demo()]
    urls = {"page": launch(demos[0]), "server": launch(demos[1])}
    digits = [list(DIGIT_STROKES)[i % len(DIGIT_STROKES)] for i in range(args.n)]
    runs: dict[str, list[dict]] = {name: [] for name in urls}
    started = time.time()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            pages = {name: Page(browser, url) for name, url in urls.items()}
            for i in range(args.warmup):
                for page in pages.values():
                    page.measure(DIGIT_STROKES[digits[i % len(digits)]])
            for i, digit in enumerate(digits):  # paired: each digit on every path before the next
                for name, page in pages.items():
                    run = page.measure(DIGIT_STROKES[digit])
                    runs[name].append(run)
                    med = f"{statistics.median(run['ms']):7.1f} ms" if run["ms"] else "  no answer"
                    print(f"{i + 1:3d} {digit} {name:7s} median {med} over {run['moves']} moves, "
                          f"{run['joins']} queue requests, answer {run['answer']}", flush=True)
            browser.close()
    finally:
        for demo in demos:
            demo.close()

    figures = {
        "benchmark": "browser_latency", "browser": "headless Chromium (Debian), no GPU",
        "load": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]},
        "seconds": round(time.time() - started, 1), "n": args.n,
        "paths": {name: summary(r, digits) for name, r in runs.items()},
        "target_median_ms": TARGET_MEDIAN_MS,
    }
    print(json.dumps({k: figures[k] for k in ("load", "paths")}, indent=2))
    record.write(args.json, header, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
