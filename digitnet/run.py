"""One run of one visitor and its live state: what the queue runs, the owner's workspace reads, /status reports.

A ``Run`` holds the request (a function that builds its Trainer/FineTuner), its weights once it
finished, and its ``RunState`` behind a lock: the worker thread writes it, readers get copies.
The state holds facts only (a ``News`` value and numbers); ``digitnet/ui/words.py`` words them.
"""

from __future__ import annotations

import enum
import math
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

from .training import BatchProgress, EpochMetrics, TrainingRun, TrainResult

ENDED = ("done", "stopped", "error")


class News(str, enum.Enum):
    """The latest fact about a run, which ``digitnet.ui.words`` words for its owner (with the state's numbers)."""

    QUEUED = "queued"  # waiting in the queue
    LOADING = "loading"  # left the queue, loading its data
    TRAINING = "training"  # a batch done: epoch, batch, images_per_second
    DROPPED = "dropped"  # its owner took it out of the queue before it started
    SHUTDOWN = "shutdown"  # the server closed the queue while it waited
    NOT_STARTED = "not_started"  # stopped before it started
    FAILED = "failed"  # error: ``error`` says what went wrong
    OVERRAN = "overran"  # stopped for running far past ``limit_seconds``
    STOPPED = "stopped"  # stopped by its owner after ``full_epochs``
    DONE = "done"  # finished: test_acc, train_seconds (and ``finetune``)
    LOADED = "loaded"  # weights a visitor loaded from the file ``source``


def _json_float(value):
    """NaN/inf (e.g. validation loss with no validation set) become None in JSON."""
    return float(value) if value is not None and math.isfinite(value) else None


@dataclass
class RunState:
    """A copy of one run's state at one moment: what the owner's view and /status read."""

    number: int  # the owner's run number: 1, 2, ...
    kind: str  # "training", "finetune" or "upload" (weights a visitor loaded from a file)
    model: str
    config: dict
    state: str = "queued"  # queued, running, done, stopped, error
    version: int = 0  # grows with every change; a view redraws only when it moved
    epoch: int = 0
    epochs: float = 0  # 1.5 = one epoch and half of another
    done: float = 0.0  # epochs done so far
    batch: int = 0
    batches: int = 0
    eta_seconds: float | None = None
    elapsed: float = 0.0
    news: News = News.QUEUED  # the latest fact, worded in digitnet/ui/words.py
    images_per_second: float = 0.0
    full_epochs: int = 0  # epochs (fine-tune: rounds) finished when the run stopped
    error: str | None = None  # what went wrong, for News.FAILED
    limit_seconds: float | None = None  # the deployment's limit a run overran (News.OVERRAN)
    source: str | None = None  # the file an upload came from (News.LOADED)
    history: list[dict] = field(default_factory=list)  # EpochMetrics (validation points) as dicts
    loss_points: list[tuple[float, float]] = field(default_factory=list)  # (epochs done, running loss)
    loss_seconds: list[float] = field(default_factory=list)  # each loss point's seconds since the run started
    result: TrainResult | None = None
    finetune: dict | None = None  # a finished fine-tune: personal digits, accuracy before/after, ...
    test_acc: float | None = None
    train_seconds: float | None = None
    own: tuple | None = None  # (28x28 drawing, its digit) whose probability each validation point gives

    @property
    def ended(self) -> bool:
        """True once the run is done, stopped or failed."""
        return self.state in ENDED


class Run:
    """One run of one visitor: its request, and its live state behind a lock (copies handed out)."""

    def __init__(self, owner: str, number: int, kind: str, model: str, config: dict, epochs: float,
                 work: Callable[["Run"], TrainingRun] | None = None, own: tuple | None = None) -> None:
        self.owner = owner
        self.work = work  # builds the Trainer/FineTuner when the worker reaches this run
        self.weights: dict | None = None  # the checkpoint dict of a finished run
        self.on_end: list[Callable[["Run"], None]] = []  # called once, in the worker thread, when it ends
        self.queued_at = time.monotonic()
        self.started_at: float | None = None  # when the worker took it (time.monotonic); None while it waits
        self._lock = threading.Lock()
        self._started = threading.Event()  # left the queue (running, or ended while waiting)
        self._ended = threading.Event()
        self._stop = threading.Event()
        self._runner: TrainingRun | None = None
        self._state = RunState(number=number, kind=kind, model=model, config=config, epochs=epochs, own=own)
        self.deadline: float | None = None  # seconds of running after which the run is stopped (Scheduler)
        self.overran = False  # stopped for running past the deadline

    # ---- reading ------------------------------------------------------------------------------

    def snapshot(self) -> RunState:
        """A consistent copy of the live state (lists copied, so callers may keep it)."""
        with self._lock:
            s = self._state
            # While it runs, its elapsed seconds are now's, not those of its last progress report (none yet
            # while it loads): /status reports the time it has really run.
            elapsed = s.elapsed if s.state != "running" or self.started_at is None else \
                max(s.elapsed, time.monotonic() - self.started_at)
            return replace(s, history=list(s.history), loss_points=list(s.loss_points),
                           loss_seconds=list(s.loss_seconds), config=dict(s.config), elapsed=elapsed)

    @property
    def number(self) -> int:
        """The owner's run number (fixed at submission)."""
        return self._state.number

    @property
    def model(self) -> str:
        """'mlp', 'cnnnet' or 'lenet' (fixed at submission)."""
        return self._state.model

    def wait_started(self, timeout: float | None = None) -> bool:
        """Wait until the run has left the queue (it runs, or it ended); True if it has."""
        return self._started.wait(timeout)

    def wait_ended(self, timeout: float | None = None) -> bool:
        """Wait until the run is done, stopped or failed; True if it has."""
        return self._ended.wait(timeout)

    # ---- changing -----------------------------------------------------------------------------

    def update(self, **changes) -> None:
        """Set fields of the state and move its version on."""
        with self._lock:
            for name, value in changes.items():
                setattr(self._state, name, value)
            self._state.version += 1

    def stop(self) -> None:
        """Ask a running run to stop before its next batch (a queued one is the scheduler's to drop)."""
        with self._lock:
            self._stop.set()
            runner = self._runner
        if runner is not None:
            runner.stop()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def _attach(self, runner: TrainingRun) -> None:
        """The worker made this run's Trainer/FineTuner: a stop asked for before now reaches it."""
        with self._lock:
            self._runner = runner
            stop = self._stop.is_set()
        if stop:
            runner.stop()

    def _end(self, state: str, news: News, result: TrainResult | None = None, **more) -> None:
        """Publish the end of the run and call the on_end hooks (once)."""
        if self._ended.is_set():
            return
        fields = dict(state=state, news=news, result=result, eta_seconds=None,
                      test_acc=None if result is None else result.test_acc,
                      train_seconds=None if result is None else result.train_seconds)
        self.update(**{**fields, **more})
        with self._lock:  # its Trainer held the run's copies of the data, model and optimiser: ~59 MB a full run
            self._runner = None
        self._started.set()
        self._ended.set()
        for hook in self.on_end:
            hook(self)

    def on_event(self, event: object) -> None:
        """Trainer/FineTuner callback (worker thread): fold each progress event into the state."""
        with self._lock:
            s = self._state
            if isinstance(event, BatchProgress):
                if self.deadline is not None and event.elapsed > self.deadline and not self.overran:
                    self.overran = True
                    self._stop.set()
                    if self._runner is not None:
                        self._runner.stop()  # before its next batch
                s.epoch, s.epochs, s.batch, s.batches = event.epoch, event.epochs, event.batch, event.batches
                s.done, s.eta_seconds, s.elapsed = event.done, event.eta_seconds, event.elapsed
                s.loss_points.append((event.done, event.train_loss))
                s.loss_seconds.append(round(event.elapsed, 2))
                s.news, s.images_per_second = News.TRAINING, event.samples_per_second
            elif isinstance(event, EpochMetrics):
                s.history.append({k: _json_float(v) if isinstance(v, float) else v for k, v in asdict(event).items()})
            else:
                return  # TrainResult and errors: the worker publishes the end itself
            s.version += 1
