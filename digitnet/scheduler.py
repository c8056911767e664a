"""The one shared training queue and its worker: every visitor's runs, first come first served.

A public Space has two cores and many visitors. Two runs side by side would each get one
core and both finish later than one after the other (a LeNet epoch takes ~7 s on two
threads, ~10 s on one), so the scheduler runs one run at a time, in the order they were
asked for, in one worker thread that runs at a lower priority than the server's threads
(a drawing's few milliseconds preempt it). Each run is a ``Run``: the request, its place
in the queue and its live state, which only its owner's workspace reads. The scheduler
never imports gradio and knows nothing of visitors beyond an owner id on each run.

A run is a training run (``training.Trainer``) or a fine-tune on a visitor's digits
(``finetune.FineTuner``). Neither writes a file: a finished run's weights stay in memory,
in ``Run.weights`` (a checkpoint dict), until the owner downloads them or leaves.
"""

from __future__ import annotations

import collections
import math
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

from . import data as mdata
from .finetune import FineTuneConfig, FineTuner, MyDigits
from .models import DISPLAY_NAMES, FAST_RECIPES, SECONDS_PER_IMAGE, STEP_SECONDS
from .settings import DEFAULT_MAX_EPOCHS, DEFAULT_MAX_QUEUE, DEFAULT_MAX_RUN_SECONDS
from .training import (BatchProgress, EpochMetrics, TrainConfig, Trainer, TrainingRun, TrainResult, run_steps,
                       usable_cores, visitor_settings)

MNIST_TRAIN_IMAGES = 60_000  # train + validation images in MNIST's training file
STOP_WAIT_SECONDS = 10.0  # stop() waits this long for a running run; it stops before its next batch
# The worker thread runs this much "nicer" than the server's threads (Linux: nice is per
# thread, and the OpenMP workers it starts inherit it): drawing preempts training at once,
# while training alone still gets every core.
TRAINER_NICENESS = 10
# Fewer digits than this teach a model nothing it keeps (each batch would repeat the same
# three drawings 16 times).
MIN_FINETUNE_DIGITS = 5
# Deployment-wide TrainConfig overrides that also bound a fine-tune's MNIST evaluation.
SHARED_EVAL_OVERRIDES = ("test_limit",)
# The parameters a visitor may set (the Train tab's controls and /train's keywords): TrainConfig's
# visitor settings. Everything else (data slices, threads, device) is the deployment's choice.
TRAIN_PARAMS = tuple(s.name for s in visitor_settings(TrainConfig))
# The speed prior (each model's registry entry, models.py): seconds per training image (one pass) on
# two cores at its fast recipe's batch, and the fixed cost of a step, to guess a waiting run's length
# before any run of that model has finished here; each finished run replaces the guess with what this
# machine really did. A step of batch B costs STEP_SECONDS + B x the rest of SECONDS_PER_IMAGE: batch 1
# is ~40x dearer an image than the recipe's 128, not the same.
RUN_OVERHEAD_SECONDS = 3.0  # loading MNIST, the test evaluation: paid once per run
# A run still going at this many times DIGITNET_MAX_RUN_SECONDS is stopped (the estimate that let it
# in may be off when many visitors draw at once; past this it is not the estimate's noise).
OVERRUN_FACTOR = 1.5
# How far one finished run may move the estimates from the constants above: a run slowed by a busy
# machine (or one a test held at its first batch) must not make every later run look ten times dearer.
SPEED_RANGE = (1 / 3, 3.0)
ENDED = ("done", "stopped", "error")


class TrainingDisabled(RuntimeError):
    """This deployment does not allow training (DIGITNET_ALLOW_TRAINING=0)."""


class QueueFull(RuntimeError):
    """The training queue already holds as many waiting runs as the deployment allows."""


def lower_thread_priority(increment: int) -> bool:
    """Raise the calling thread's nice value by ``increment`` (Linux only); False where unsupported."""
    if increment <= 0 or not sys.platform.startswith("linux"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment))
        return True
    except (AttributeError, OSError):  # a sandbox without setpriority: run at normal priority
        return False


def _minutes(seconds: float) -> str:
    """300 -> '5 min', 75 -> '1 min 15 s', 40 -> '40 s'."""
    minutes, secs = divmod(int(round(seconds)), 60)
    if not minutes:
        return f"{secs} s"
    return f"{minutes} min" + (f" {secs} s" if secs else "")


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
    message: str = ""
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

    def title(self) -> str:
        """'run 2: LeNet' (the same words in the run list, the overlay and the Draw tab)."""
        how = {"finetune": " fine-tuned", "upload": " from a file"}.get(self.kind, "")
        return f"run {self.number}: {DISPLAY_NAMES[self.model]}{how}"


class Run:
    """One run of one visitor: its request, and its live state behind a lock (copies handed out)."""

    def __init__(self, owner: str, number: int, kind: str, model: str, config: dict, epochs: float,
                 work: Callable[["Run"], TrainingRun] | None = None, own: tuple | None = None) -> None:
        self.owner = owner
        self.work = work  # builds the Trainer/FineTuner when the worker reaches this run
        self.weights: dict | None = None  # the checkpoint dict of a finished run
        self.on_end: list[Callable[["Run"], None]] = []  # called once, in the worker thread, when it ends
        self.queued_at = time.monotonic()
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
            return replace(s, history=list(s.history), loss_points=list(s.loss_points),
                           loss_seconds=list(s.loss_seconds), config=dict(s.config))

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

    def _end(self, state: str, message: str, result: TrainResult | None = None, **more) -> None:
        """Publish the end of the run and call the on_end hooks (once)."""
        if self._ended.is_set():
            return
        fields = dict(state=state, message=message, result=result, eta_seconds=None,
                      test_acc=None if result is None else result.test_acc,
                      train_seconds=None if result is None else result.train_seconds)
        self.update(**{**fields, **more})
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
                unit = "round" if s.kind == "finetune" else "epoch"
                s.message = (f"{DISPLAY_NAMES[s.model]}: {unit} {event.epoch}/{math.ceil(event.epochs)}, batch "
                             f"{event.batch}/{event.batches}, {event.samples_per_second:,.0f} images/s")
            elif isinstance(event, EpochMetrics):
                s.history.append({k: _json_float(v) if isinstance(v, float) else v for k, v in asdict(event).items()})
            else:
                return  # TrainResult and errors: the worker publishes the end itself
            s.version += 1


class Scheduler:
    """The shared queue of runs and the one worker thread that runs them in order."""

    def __init__(
        self,
        data_root: str | os.PathLike | None = None,
        overrides: dict | None = None,
        finetune_overrides: dict | None = None,
        max_epochs: int = DEFAULT_MAX_EPOCHS,
        max_queue: int = DEFAULT_MAX_QUEUE,
        threads: int | None = None,
        niceness: int = TRAINER_NICENESS,
        allow: bool = True,
        max_run_seconds: float = DEFAULT_MAX_RUN_SECONDS,
    ) -> None:
        """``overrides`` are deployment-side TrainConfig fields (tests: ``train_limit`` and the like);
        ``finetune_overrides`` FineTuneConfig fields (``overrides``' ``test_limit`` applies to both);
        ``threads`` None means every usable core; a run estimated to take longer than ``max_run_seconds``
        is refused, and one that runs past OVERRUN_FACTOR times it is stopped."""
        self.data_root = data_root
        self.overrides = dict(overrides or {})
        unknown = set(self.overrides) - set(TrainConfig.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown TrainConfig override(s): {', '.join(sorted(unknown))}")
        shared = {k: v for k, v in self.overrides.items() if k in SHARED_EVAL_OVERRIDES}
        self.finetune_overrides = {**shared, **(finetune_overrides or {})}
        unknown = set(self.finetune_overrides) - set(FineTuneConfig.__dataclass_fields__) | \
            ({"model", "max_epochs", "threads"} & set(finetune_overrides or {}))
        if unknown:
            raise ValueError(f"unknown or reserved FineTuneConfig override(s): {', '.join(sorted(unknown))}")
        self.max_epochs = max_epochs
        self.max_queue = max_queue
        self.max_run_seconds = max_run_seconds
        self.threads = usable_cores() if threads is None else threads
        self.niceness = niceness
        self.allow = allow
        self._cond = threading.Condition()
        self._waiting: collections.deque[Run] = collections.deque()
        self._running: Run | None = None
        self._closed = False
        self._worker: threading.Thread | None = None
        self._speed = dict.fromkeys(SECONDS_PER_IMAGE, 1.0)  # this machine's time / the constants' (learned)

    # ---- configs ------------------------------------------------------------------------------

    def training_config(self, **params) -> TrainConfig:
        """Validate a visitor's parameters into a TrainConfig; ValueError with a clear message."""
        unknown = set(params) - set(TRAIN_PARAMS)
        if unknown:
            raise ValueError(f"unknown training parameter(s): {', '.join(sorted(unknown))}")
        values = {k: v for k, v in params.items() if v is not None}
        cfg = TrainConfig(**{**values, **self.overrides, "max_epochs": self.max_epochs, "threads": self.threads})
        # The Trainer knows the training-set size only after loading MNIST; compute it here so a
        # batch larger than the data is refused before the run joins the queue.
        return cfg.validate(n_train=self.train_images(cfg))

    @staticmethod
    def train_images(cfg: TrainConfig) -> int:
        """How many images one epoch of ``cfg`` goes through."""
        n_train = MNIST_TRAIN_IMAGES - cfg.val_size
        return n_train if cfg.train_limit is None else min(n_train, cfg.train_limit)

    def finetune_config(self, model: str) -> FineTuneConfig:
        """The FineTuneConfig for ``model`` with this deployment's overrides; ValueError if invalid."""
        return FineTuneConfig.from_dict({**self.finetune_overrides, "model": model, "threads": self.threads}).validate()

    # ---- submitting ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if not self.allow:
            raise TrainingDisabled("Training is turned off on this deployment (DIGITNET_ALLOW_TRAINING=0).")

    def submit_training(self, owner: str, number: int, own: tuple | None = None, **params) -> Run:
        """Queue a training run for ``owner``; TrainingDisabled, QueueFull or ValueError refuse it. ``own``:
        the visitor's drawing and its digit (``TrainingRun.own``), followed at every validation point."""
        self._check_open()
        cfg = self.training_config(**params)

        def work(run: Run) -> TrainingRun:
            trainer = Trainer(cfg, callback=run.on_event, data_root=self.data_root, save=False)
            trainer.own = own
            return trainer

        run = Run(owner, number, "training", cfg.model, asdict(cfg), cfg.epochs, work, own=own)
        self._check_cost(run)
        return self._enqueue(run)

    def submit_finetune(self, owner: str, number: int, model: str, digits: MyDigits, base: dict) -> Run:
        """Queue a fine-tune of ``base`` (a checkpoint dict) on a visitor's digits, mixed with MNIST."""
        self._check_open()
        digits = list(digits or [])
        if len(digits) < MIN_FINETUNE_DIGITS:
            raise ValueError(f"Fine-tuning needs at least {MIN_FINETUNE_DIGITS} of your digits; you have "
                             f"{len(digits)}. Correct a few more predictions with \"Add to my digits\" first.")
        cfg = self.finetune_config(model)
        # Validates the digits and the base weights now: errors reach the visitor, not a thread.
        tuner = FineTuner(cfg, digits, data_root=self.data_root, save=False, source=base)

        def work(run: Run) -> TrainingRun:
            tuner.callback = run.on_event
            return tuner

        run = Run(owner, number, "finetune", cfg.model, asdict(cfg), cfg.epochs, work)
        self._check_cost(run)
        return self._enqueue(run)

    def estimate_training(self, **params) -> float:
        """Seconds a training run with these parameters should take here, from its steps and batch; ValueError
        if a parameter is invalid or the estimate is over ``max_run_seconds``. Nothing is queued."""
        cfg = self.training_config(**params)
        run = Run("", 0, "training", cfg.model, asdict(cfg), cfg.epochs)
        self._check_cost(run)
        return self.expected_seconds(run)

    def _check_cost(self, run: Run) -> None:
        """ValueError, naming the limit, for a run estimated to take longer than ``max_run_seconds``; else
        the run gets its deadline (stopped past OVERRUN_FACTOR times the limit)."""
        seconds = self.expected_seconds(run)
        if seconds > self.max_run_seconds:
            s = run.snapshot()
            steps, batch = self.run_shape(s)
            raise ValueError(
                f"This run would take about {_minutes(seconds)} here ({steps:,} steps of {batch} image"
                f"{'s' if batch != 1 else ''}); runs may take at most {_minutes(self.max_run_seconds)} on this "
                f"server (DIGITNET_MAX_RUN_SECONDS={self.max_run_seconds:g}). Use fewer epochs or a larger batch.")
        run.deadline = OVERRUN_FACTOR * self.max_run_seconds

    def _enqueue(self, run: Run) -> Run:
        with self._cond:
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(f"The training queue is full ({len(self._waiting)} runs are waiting, the most "
                                f"this server allows). Nothing was queued: try again in a few minutes.")
            self._waiting.append(run)
            self._start_worker()
            run.update(message=f"{DISPLAY_NAMES[run.model]}: waiting in the queue...")
            self._cond.notify_all()
        return run

    # ---- queries ------------------------------------------------------------------------------

    def position(self, run: Run) -> int | None:
        """1 for the next run to start, 2 behind it, ...; None when ``run`` is not waiting."""
        with self._cond:
            for i, waiting in enumerate(self._waiting, 1):
                if waiting is run:
                    return i
        return None

    def waiting(self) -> list[Run]:
        """The waiting runs, next first."""
        with self._cond:
            return list(self._waiting)

    @property
    def running(self) -> Run | None:
        """The run in progress, if any."""
        return self._running

    def run_shape(self, s: RunState) -> tuple[int, int]:
        """(optimiser steps, images a step) of a run."""
        c = s.config
        if s.kind == "finetune":
            return c["epochs"] * c["steps_per_epoch"], c["personal_per_batch"] + c["mnist_per_batch"]
        cfg = TrainConfig.from_dict(c)
        return run_steps(s.epochs, math.ceil(self.train_images(cfg) / cfg.batch_size)), cfg.batch_size

    def step_seconds(self, model: str, batch: int) -> float:
        """A training step of ``batch`` images of ``model`` on this machine: a fixed cost plus a cost an image,
        both from the constants above scaled by what finished runs here measured."""
        fixed = STEP_SECONDS[model]
        per_image = max(SECONDS_PER_IMAGE[model] - fixed / FAST_RECIPES[model]["batch_size"], 0.0)
        return self._speed[model] * (fixed + batch * per_image)

    def expected_seconds(self, run: Run) -> float:
        """How long ``run`` will take from its start: its steps x a step's time at its batch, plus overhead."""
        s = run.snapshot()
        steps, batch = self.run_shape(s)
        return RUN_OVERHEAD_SECONDS + steps * self.step_seconds(s.model, batch)

    def remaining_seconds(self, run: Run) -> float:
        """What is left of a running run (its own ETA once it has one), or all of a waiting one."""
        s = run.snapshot()
        if s.state == "running":
            if s.eta_seconds is not None:
                return s.eta_seconds
            return max(0.0, self.expected_seconds(run) - s.elapsed)
        return self.expected_seconds(run)

    def starts_now(self, run: Run) -> bool:
        """True when ``run`` is next and nothing runs: the worker is about to take it."""
        with self._cond:
            return self._running is None and bool(self._waiting) and self._waiting[0] is run

    def seconds_until_start(self, run: Run) -> float | None:
        """Estimated seconds until ``run`` starts: the running run's rest plus every run ahead of it."""
        with self._cond:
            ahead = []
            for waiting in self._waiting:
                if waiting is run:
                    break
                ahead.append(waiting)
            else:
                return None
            running = self._running
        total = sum(self.remaining_seconds(r) for r in ahead)
        return total + (self.remaining_seconds(running) if running is not None else 0.0)

    # ---- stopping -----------------------------------------------------------------------------

    def cancel(self, run: Run, wait: float = STOP_WAIT_SECONDS) -> RunState:
        """Take a waiting run out of the queue, or stop a running one (waiting up to ``wait`` s)."""
        with self._cond:
            if run in self._waiting:
                self._waiting.remove(run)
                self._cond.notify_all()
                dropped = True
            else:
                dropped = False
        if dropped:
            run._end("stopped", f"{DISPLAY_NAMES[run.model]}: taken out of the queue before it started.")
        elif not run.snapshot().ended:
            run.stop()
            run.wait_ended(wait)
        return run.snapshot()

    def close(self, wait: float = 30.0) -> None:
        """Drop every waiting run, stop the running one and end the worker (tests, shutdown)."""
        with self._cond:
            self._closed = True
            waiting, self._waiting = list(self._waiting), collections.deque()
            running = self._running
            self._cond.notify_all()
        for run in waiting:
            run._end("stopped", "The server is shutting down: the run was taken out of the queue.")
        if running is not None:
            running.stop()
            running.wait_ended(wait)
        if self._worker is not None:
            self._worker.join(wait)

    # ---- the worker ---------------------------------------------------------------------------

    def _start_worker(self) -> None:
        """Start the worker thread on the first run (call with the condition held)."""
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name="digitnet-scheduler", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        lower_thread_priority(self.niceness)
        while True:
            with self._cond:
                while not self._waiting and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                run = self._waiting.popleft()
                self._running = run
                self._cond.notify_all()
            try:
                self._execute(run)
            finally:
                with self._cond:
                    self._running = None
                    self._cond.notify_all()

    def _execute(self, run: Run) -> None:
        """Run one run to its end in this thread, and publish how it ended."""
        name = DISPLAY_NAMES[run.model]
        if run.stop_requested:
            run._end("stopped", f"{name}: stopped before it started.")
            return
        run.update(state="running", message=f"{name}: loading data...")
        run._started.set()
        try:
            runner = run.work(run)
            run._attach(runner)
            result = runner.run()
        except Exception as exc:  # reported to the owner; the worker goes on with the next run
            known = isinstance(exc, (ValueError, mdata.DataNotFoundError))
            detail = str(exc) if known else f"{type(exc).__name__}: {exc}"
            run._end("error", f"{name} training failed: {detail}")
            return
        if result.state != "done" and run.overran:
            run._end("stopped", f"{name} was stopped after {result.train_seconds:.0f} s: a run may take at most "
                                f"{_minutes(self.max_run_seconds)} here (DIGITNET_MAX_RUN_SECONDS), and this one ran "
                                "far past it. Your drawings keep the weights they had.")
            return
        if result.state != "done":
            done = sum(1 for m in result.history if m.epoch_end)  # several validation points an epoch
            unit = "round" if run.snapshot().kind == "finetune" else "epoch"
            run._end("stopped", f"{name} stopped after {done} full {unit}{'s' if done != 1 else ''}; "
                                "your drawings keep the weights they had.")
            return
        self._learn_speed(run, result)
        run.weights = runner.checkpoint(result)
        info = getattr(runner, "finetune_info", None)
        run._end("done", self._done_message(run, result, info), result,
                 finetune=None if info is None else dict(info))

    def _learn_speed(self, run: Run, result: TrainResult) -> None:
        """Keep how this machine's speed for a model compares with the constants, from its last finished
        training run: every later estimate of that model (any batch) is scaled by it."""
        s = run.snapshot()
        if s.kind != "training" or not result.history:
            return
        steps, batch = self.run_shape(replace(s, epochs=result.history[-1].epoch))  # 1.5: 1.5 passes
        seconds = sum(m.seconds for m in result.history)
        predicted = steps * self.step_seconds(s.model, batch) / self._speed[s.model]
        if steps and seconds > 0 and predicted > 0:
            self._speed[s.model] = min(max(seconds / predicted, SPEED_RANGE[0]), SPEED_RANGE[1])

    @staticmethod
    def _done_message(run: Run, result: TrainResult, info: dict | None) -> str:
        name = DISPLAY_NAMES[run.model]
        acc = f"test accuracy {result.test_acc:.2%}" if result.test_acc is not None else "no test set"
        if info is None:
            return f"{name} finished in {result.train_seconds:.0f} s: {acc}. Your drawings use it now."
        return (f"{name} fine-tuned on {info['personal_digits']} of your digits in {result.train_seconds:.0f} s: "
                f"they are read {info['personal_acc_before']:.0%} -> {info['personal_acc_after']:.0%} right, "
                f"MNIST {acc}. Your drawings use it now.")
