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

Why not Gradio's own queue (``concurrency_limit=1``): CONTRIBUTING.md, "Why a queue of our own"
(``benchmarks/gradio_queue.py`` measures it).
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from dataclasses import asdict

import torch

from . import data as mdata
from .eta import RUN_OVERHEAD_SECONDS, Estimator, run_shape, train_images  # noqa: F401 (RUN_OVERHEAD: tests)
from .evaluation import EVAL_BATCH, logits_of
from .finetune import FineTuneConfig, FineTuner, MyDigits
from .models import FAST_RECIPES, MODELS, build_model
from .run import ENDED, News, Run, RunState  # noqa: F401 (Run and RunState: where callers have found them)
from .settings import DEFAULT_MAX_EPOCHS, DEFAULT_MAX_QUEUE, DEFAULT_MAX_RUN_SECONDS
from .training import TrainConfig, Trainer, TrainingRun, usable_cores, visitor_settings

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
# A run still going at this many times DIGITNET_MAX_RUN_SECONDS is stopped (the estimate that let it
# in may be off when many visitors draw at once; past this it is not the estimate's noise).
OVERRUN_FACTOR = 1.5


class TrainingDisabled(RuntimeError):
    """This deployment does not allow training (DIGITNET_ALLOW_TRAINING=0)."""

    def __init__(self) -> None:
        super().__init__("Training is turned off on this deployment (DIGITNET_ALLOW_TRAINING=0).")


class QueueFull(RuntimeError):
    """The training queue already holds as many waiting runs as the deployment allows."""

    def __init__(self, waiting: int) -> None:
        self.waiting = waiting
        super().__init__(f"The training queue is full ({waiting} runs are waiting). Nothing was queued.")


class TooCostly(ValueError):
    """A run estimated to take longer than the deployment allows (``seconds`` > ``limit``)."""

    def __init__(self, seconds: float, steps: int, batch: int, limit: float) -> None:
        self.seconds, self.steps, self.batch, self.limit = seconds, steps, batch, limit
        super().__init__(f"This run would take about {seconds:.0f} s here ({steps:,} steps of {batch}); runs may "
                         f"take at most {limit:g} s (DIGITNET_MAX_RUN_SECONDS). Use fewer epochs or a larger batch.")


class TooFewDigits(ValueError):
    """A fine-tune asked for with fewer than ``need`` personal digits."""

    def __init__(self, have: int, need: int) -> None:
        self.have, self.need = have, need
        super().__init__(f"Fine-tuning needs at least {need} of your digits; you have {have}.")


_WARM_LOCK, _WARMED = threading.Lock(), []  # warm_up's work is done once per process


def warm_up(data_root: str | os.PathLike | None = None) -> None:
    """What the first run of a process would otherwise pay before its estimate holds (run at start-up, in a
    thread, at the worker's priority): torch.optim's first use imports torch._dynamo (1-1.7 s on 2 cores); MNIST
    read from disk, where it is already there (0.15 s; nothing is downloaded here); and each model's first
    training step and evaluation pass, which set up their kernels (a 5,000-image LeNet run took 1.1 s as a
    process's first, 0.43 s after), for every registered model. Once a process."""
    with _WARM_LOCK:
        if _WARMED:
            return
        _WARMED.append(True)
    lower_thread_priority(TRAINER_NICENESS)
    p = torch.nn.Parameter(torch.zeros(1))
    torch.optim.SGD([p], lr=0.1)
    try:
        mdata.load_mnist(data_root, download=False)
    except Exception:  # not here yet: the first run downloads it (and says so)
        pass
    for name in MODELS:
        model = build_model(name)
        batch = FAST_RECIPES[name]["batch_size"]
        optimizer = torch.optim.AdamW(model.parameters())
        x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        logits_of(model, mdata.Split(torch.zeros(EVAL_BATCH, 28, 28, dtype=torch.uint8),
                                     torch.zeros(EVAL_BATCH, dtype=torch.int64)))


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
            ({"model", "max_rounds", "threads"} & set(finetune_overrides or {}))
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
        self.eta = Estimator()  # how long runs take here, learned from the ones that finished
        if allow:  # the first visitor's run should not pay torch.optim's first use (its start estimate assumes so)
            threading.Thread(target=warm_up, args=(data_root,), name="digitnet-warm-up", daemon=True).start()

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
        return cfg.validate(n_train=train_images(cfg))

    def finetune_config(self, model: str) -> FineTuneConfig:
        """The FineTuneConfig for ``model`` with this deployment's overrides; ValueError if invalid."""
        return FineTuneConfig.from_dict({**self.finetune_overrides, "model": model, "threads": self.threads}).validate()

    # ---- submitting ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if not self.allow:
            raise TrainingDisabled()

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
            raise TooFewDigits(len(digits), MIN_FINETUNE_DIGITS)
        cfg = self.finetune_config(model)
        # Validates the digits and the base weights now: errors reach the visitor, not a thread.
        tuner = FineTuner(cfg, digits, data_root=self.data_root, save=False, source=base)

        def work(run: Run) -> TrainingRun:
            tuner.callback = run.on_event
            return tuner

        run = Run(owner, number, "finetune", cfg.model, asdict(cfg), cfg.rounds, work)
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
        """TooCostly for a run estimated to take longer than ``max_run_seconds``; else the run gets its
        deadline (stopped past OVERRUN_FACTOR times the limit)."""
        seconds = self.expected_seconds(run)
        if seconds > self.max_run_seconds:
            raise TooCostly(seconds, *run_shape(run.snapshot()), self.max_run_seconds)
        run.deadline = OVERRUN_FACTOR * self.max_run_seconds

    def _enqueue(self, run: Run) -> Run:
        with self._cond:
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(len(self._waiting))
            self._waiting.append(run)
            self._start_worker()
            run.update(news=News.QUEUED)
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

    def expected_seconds(self, run: Run) -> float:
        """How long ``run`` will take from its start (``eta.Estimator.expected``)."""
        return self.eta.expected(run.snapshot())

    def remaining_seconds(self, run: Run) -> float:
        """What is left of a running run (its own ETA once it has one), or all of a waiting one."""
        return self.eta.remaining(run.snapshot())

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
            run._end("stopped", News.DROPPED)
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
            run._end("stopped", News.SHUTDOWN)
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
        if run.stop_requested:
            run._end("stopped", News.NOT_STARTED)
            return
        started = time.perf_counter()
        run.started_at = time.monotonic()
        run.update(state="running", news=News.LOADING)
        run._started.set()
        try:
            runner = run.work(run)
            run._attach(runner)
            result = runner.run()
        except Exception as exc:  # reported to the owner; the worker goes on with the next run
            known = isinstance(exc, (ValueError, mdata.DataNotFoundError))
            run._end("error", News.FAILED, error=str(exc) if known else f"{type(exc).__name__}: {exc}")
            return
        if result.state != "done":
            done = sum(1 for m in result.history if m.epoch_end)  # several validation points an epoch
            overran = dict(limit_seconds=self.max_run_seconds) if run.overran else {}
            run._end("stopped", News.OVERRAN if run.overran else News.STOPPED, full_epochs=done, **overran)
            return
        run.weights = runner.checkpoint(result)
        self.eta.learn(run.snapshot(), result, wall_seconds=time.perf_counter() - started, timings=runner.timings)
        info = getattr(runner, "finetune_info", None)
        run._end("done", News.DONE, result, finetune=None if info is None else dict(info))
