"""Shared fixtures: MNIST location, drawings rendered like the Sketchpad makes them, a launched app.

``running_app(**build_demo_options)`` launches ``app.build_demo`` on a free local port and
yields a ``RunningApp`` (url, demo, the app's ``Context``: the training queue and the
visitors, ``client()``); it always empties the queue and closes the server at the end. The
``served_app`` fixture is one such app per test module, on a small MNIST slice, with
``DIGITNET_CHECKPOINTS`` in a temp folder (the app must never write there, nor into the
repo's ``checkpoints/``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from digitnet import data as mdata

# A slice of MNIST big enough that LeNet learns something in one epoch, small enough that a
# run takes a couple of seconds on two CPU cores.
SMALL_TRAIN = dict(train_limit=2000, val_size=500, test_limit=500)
RUN_TIMEOUT = 120  # seconds a test waits for a training run on the small slice (a few, idle)
POLL = 0.05  # seconds between /status polls
CANVAS = 800  # the size of the canvas a drawing is rendered on (the Sketchpad's default)
BLANK_SKETCH = {"background": None, "layers": [], "composite": None}  # an untouched Sketchpad


def wait_until_finished(client, timeout: float = RUN_TIMEOUT) -> tuple[dict, list[dict]]:
    """Poll /status until this client's run ends; return (final status, every status seen while queued or running)."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = client.predict(api_name="/status")
        if s["state"] not in ("queued", "running"):
            return s, seen
        seen.append(s)
        time.sleep(POLL)
    raise AssertionError(f"training did not finish in {timeout} s: {seen[-1] if seen else None}")


class Gate:
    """Holds every training run inside its first batch until ``open()``: runs stay 'running' without sleeps.
    ``allow(n)`` lets n more training batches through first (a run then waits before the one after them; its
    evaluation passes go on meanwhile)."""

    def __init__(self, monkeypatch, timeout: float = RUN_TIMEOUT) -> None:
        from digitnet import training

        self.entered = threading.Event()  # a run reached its first batch
        self._cond = threading.Condition()
        self._allowed: int | None = 0  # training batches that may still pass; None once open
        self._released = False  # allow() or open() was called: evaluation passes go through
        batches = training.mdata.iterate_batches

        def gated(*args, **kwargs):
            counted = kwargs.get("shuffle", True)  # a training batch, not one of an evaluation pass
            for batch in batches(*args, **kwargs):
                self.entered.set()
                with self._cond:
                    if counted:
                        self._cond.wait_for(lambda: self._allowed != 0, timeout)
                        if self._allowed:
                            self._allowed -= 1
                    else:
                        self._cond.wait_for(lambda: self._released, timeout)
                yield batch

        monkeypatch.setattr(training.mdata, "iterate_batches", gated)

    def allow(self, batches: int) -> None:
        with self._cond:
            self._released = True
            if self._allowed is not None:
                self._allowed += batches
                self._cond.notify_all()

    def open(self) -> None:
        with self._cond:
            self._allowed, self._released = None, True
            self._cond.notify_all()


@pytest.fixture
def gate(monkeypatch) -> Gate:
    """Training runs wait at their first batch until ``gate.open()`` (``gate.entered`` says one got there)."""
    return Gate(monkeypatch)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_ci() -> bool:
    """True where the run is CI's (``CI=true``, as GitHub Actions and most CI services set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI, a skipped browser test is a failure: CI must not go green without a browser."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci() and item.get_closest_marker("browser") is not None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"a browser test was skipped under CI=true, which must run it: {reason}"


def pytest_sessionstart(session) -> None:
    """Get MNIST the way the app does (DIGITNET_DATA, else a download), or stop the whole run saying how.

    Most tests need real digits; a run that skipped them would pass while testing little.
    """
    try:
        mdata.ensure_mnist()
    except mdata.DataNotFoundError as exc:
        pytest.exit(f"The tests need MNIST and could not get it. Set DIGITNET_DATA to the folder that holds "
                    f"MNIST/raw/ (or allow the download). {exc}", returncode=1)


@pytest.fixture(scope="session")
def mnist() -> mdata.MNISTTensors:
    """All of MNIST as tensors (pytest_sessionstart made sure the files are there)."""
    return mdata.load_mnist()


def render_digit(image28: np.ndarray, path: Path, size: int = 420, left: int = 190, top: int = 160) -> Path:
    """Paint a 28x28 MNIST digit as black ink on a transparent 800x800 canvas, as the Sketchpad sends it."""
    ink = Image.fromarray(np.asarray(image28, dtype=np.uint8)).resize((size, size), Image.BICUBIC)
    alpha = Image.new("L", (CANVAS, CANVAS), 0)
    alpha.paste(ink, (left, top))
    canvas = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    canvas.putalpha(alpha)  # RGB stays black: the ink is in the alpha channel
    canvas.save(path)
    return path


def sketch_value(path: Path) -> dict:
    """A Sketchpad value for gradio_client: one drawn layer, which is also the composite."""
    from gradio_client import handle_file

    return {"background": None, "layers": [handle_file(str(path))], "composite": handle_file(str(path))}


def pad_drawing(path: Path) -> str:
    """What the drawing pad sends for a drawing saved as a transparent RGBA png: its ink as a pad payload."""
    from digitnet.preprocess import pad_payload

    return pad_payload(np.asarray(Image.open(path).convert("RGBA"))[..., 3])


@dataclass
class RunningApp:
    """A launched app: its URL, the Blocks, and its Context (the training queue and the visitors)."""

    url: str
    demo: object
    ctx: object

    @property
    def scheduler(self):
        """The app's one training queue."""
        return self.ctx.scheduler

    def wait_idle(self, timeout: float = RUN_TIMEOUT) -> None:
        """Stop whatever runs or waits in the queue, so that the next test starts with an empty one."""
        for run in self.scheduler.waiting():
            self.scheduler.cancel(run)
        running = self.scheduler.running
        if running is not None:
            self.scheduler.cancel(running, wait=timeout)

    def client(self):
        """A new gradio_client Client (one per thread: a shared one fails under parallel calls)."""
        from gradio_client import Client

        return Client(self.url, verbose=False)


@contextlib.contextmanager
def running_app(**options) -> Iterator[RunningApp]:
    """Launch ``app.build_demo(**options)`` on a free port; stop training and close it afterwards."""
    import app

    demo = app.build_demo(**options)
    port = free_port()
    launch = {k: v for k, v in app.LAUNCH_OPTIONS.items() if k != "share"}
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch)
    try:
        yield RunningApp(url=f"http://127.0.0.1:{port}/", demo=demo, ctx=demo.ctx)
    finally:
        try:
            demo.ctx.scheduler.close(wait=30)
        finally:
            demo.close()


@pytest.fixture(scope="module")
def checkpoints_dir(tmp_path_factory) -> Iterator[Path]:
    """A temp DIGITNET_CHECKPOINTS for one test module (trained checkpoints land here)."""
    folder = tmp_path_factory.mktemp("checkpoints")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIGITNET_CHECKPOINTS", str(folder))
        mp.delenv("DIGITNET_ALLOW_TRAINING", raising=False)
        mp.delenv("DIGITNET_MAX_EPOCHS", raising=False)
        yield folder


@pytest.fixture(scope="module")
def served_app(mnist, checkpoints_dir) -> Iterator[RunningApp]:
    """The app on a small MNIST slice with a temp checkpoint folder, shared by one test module."""
    with running_app(train_overrides=SMALL_TRAIN) as running:
        yield running


@pytest.fixture
def client(served_app):
    """A fresh Client for the module's app."""
    return served_app.client()


@pytest.fixture
def idle_queue(served_app):
    """Make sure no run is waiting or running before (and after) a test that trains; yields the scheduler."""
    served_app.wait_idle()
    yield served_app.scheduler
    served_app.wait_idle()


@pytest.fixture(scope="session")
def drawn_digits(mnist, tmp_path_factory) -> list[tuple[int, Path]]:
    """A few MNIST *test* digits rendered on a Sketchpad-sized canvas, as (label, png path)."""
    folder = tmp_path_factory.mktemp("drawn")
    out = []
    for i in range(6):  # test images 0..5: 7, 2, 1, 0, 4, 1
        label = int(mnist.test_labels[i])
        out.append((label, render_digit(mnist.test_images[i].numpy(), folder / f"test{i}.png")))
    return out

