"""Training: the config, one-epoch and evaluation steps, and the background ``Trainer``.

The same ``Trainer`` serves the command line (``python -m digitnet.train``) and the
app's Train tab. It never imports gradio: it reports through a callback that
receives ``BatchProgress``, ``EpochMetrics`` and finally ``TrainResult`` objects.
"""

from __future__ import annotations

import copy
import ctypes
import math
import os
import platform
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data as mdata
from .checkpoint import CheckpointError, checkpoint_path, load_checkpoint, save_checkpoint
from .models import DISPLAY_NAMES, build_model, check_model_name

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "step", "onecycle")


# Where a container's CPU quota lives: cgroup v2 ("QUOTA PERIOD" or "max PERIOD" in one file),
# cgroup v1 (quota and period in two files, quota -1 for none).
CGROUP_CPU_QUOTA_FILES = (
    ("/sys/fs/cgroup/cpu.max", None),
    ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
)


def usable_cores() -> int:
    """CPU cores this process may really use: its CPU affinity, capped by a cgroup CPU quota.

    In a container (a Hugging Face Space, CI) ``os.cpu_count()`` and torch's default thread
    count follow the host's cores, often many more than the two the container may use; that
    many OpenMP threads on two cores wait on each other and train several times slower.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    for quota_file, period_file in CGROUP_CPU_QUOTA_FILES:
        try:
            parts = Path(quota_file).read_text().split()
            quota, period = (parts[0], parts[1]) if period_file is None else (parts[0], Path(period_file).read_text())
            if quota not in ("max", "-1"):
                cores = min(cores, math.ceil(int(quota) / int(period)))
        except (OSError, ValueError, IndexError):
            continue
    return max(1, cores)


# glibc's malloc hands blocks above 128 kB to mmap and returns them to the system when freed, so a
# training step's activations (LeNet at batch 256: ~1-10 MB each) arrive as fresh pages that fault in,
# page by page, on every step: ~800,000 page faults in 160 LeNet steps. Keeping blocks up to 32 MB
# in the heap, and freed memory up to 64 MB before it is given back, makes the step reuse its pages:
# LeNet 24 -> 20 ms a step, CNNNet 38 -> 29 ms, the MLP unchanged; peak RSS +50 MB
# (benchmarks/RESULTS-speed.md).
MALLOC_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's upper limit for this setting on 64-bit
MALLOC_TRIM_THRESHOLD = 64 * 1024 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
_malloc_tuned = False


def keep_freed_memory() -> bool:
    """Tune glibc's malloc (once per process) so training steps reuse their memory; False where it is not glibc."""
    global _malloc_tuned
    if _malloc_tuned:
        return True
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD) == 1 and ok
    except (OSError, AttributeError):
        return False
    _malloc_tuned = ok
    return ok


class FromDict:
    """For config dataclasses: ``from_dict`` builds one from a dict, ignoring keys it has no field for."""

    @classmethod
    def from_dict(cls, values: dict):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


@dataclass
class TrainConfig(FromDict):
    """Everything that defines a training run. The defaults are the fast recipe."""

    model: str = "lenet"
    # Two one-cycle epochs at batch 256: LeNet reaches 99.07 +- 0.09% test over seeds 0-4
    # (98.97-99.18), in 0.8 of the CPU time of the earlier 2 x 128 recipe (a sample costs 0.8x
    # at batch 256). One epoch at 128 stops at 98.7-98.9% whatever else is tried
    # (benchmarks/RESULTS-speed.md).
    epochs: int = 2
    batch_size: int = 256  # per-sample cost is ~20% lower than at 128 on 2 cores; 430 steps in all
    optimizer: str = "adamw"  # "sgd" (with momentum, the seed's), "adam" or "adamw"
    lr: float = 0.01  # peak learning rate of the one-cycle schedule, scaled with the batch (the seed: SGD 0.01)
    momentum: float = 0.9  # SGD only
    schedule: str = "onecycle"  # "none", "step" (the seed's StepLR) or "onecycle" (per batch)
    step_size: int = 5  # StepLR: epochs between decays (the seed: 5)
    gamma: float = 0.5  # StepLR: decay factor (the seed: 0.5)
    weight_decay: float = 5e-4
    beta1: float = 0.9  # Adam/AdamW first-moment decay
    beta2: float = 0.999  # Adam/AdamW second-moment decay
    # Cross-entropy against (1 - s) one-hot + s uniform: +0.1 point of validation accuracy in
    # one- and two-epoch runs (it keeps the short run from chasing over-confident logits).
    label_smoothing: float = 0.1
    # Exponential moving average of the weights (and BatchNorm statistics) with this decay,
    # 0 = off. When on, validation, test and the saved checkpoint use the averaged weights.
    ema: float = 0.0
    dropout: float = 0.0
    # Random small rotations/shifts/scales/shears (never flips). Off by default: in a
    # two-epoch run it lowers LeNet's test accuracy (99.19% -> 99.01%) and costs ~10% time;
    # it pays in longer runs (the shipped checkpoints are trained with it on).
    augment: bool = False
    seed: int = 0
    # Start from this checkpoint's weights instead of a random init (a continued run: the
    # 99.5% tier's recipe). It must hold the same architecture and MNIST's normalisation.
    init: str | None = None
    # torch intra-op threads; 0 = every core this process may use (usable_cores(): CPU
    # affinity and a container's CPU quota, not the host's count). On an idle 2-core machine
    # two threads train LeNet ~1.4x faster than one (7 vs 10 s an epoch). The app keeps
    # drawing quick another way: its training thread runs at a lower priority (scheduler.py).
    threads: int = 0
    device: str = "auto"  # "auto" (CUDA when available, as in the seed), "cpu" or "cuda"
    val_size: int = mdata.DEFAULT_VAL_SIZE
    train_limit: int | None = None  # use only this many training images (tests, quick demos)
    test_limit: int | None = None  # evaluate on only this many test images
    log_every: int = 50  # batches between running-loss reports
    max_epochs: int = 1000  # upper bound on epochs (the app lowers it for public deployments)

    def validate(self, n_train: int | None = None) -> "TrainConfig":
        """Check every field; raise ``ValueError`` with a message a person can act on."""
        self.model = check_model_name(self.model)

        def number(name: str, value, lo=None, hi=None, integer=False, lo_open=False):
            try:
                ok = not isinstance(value, bool) and math.isfinite(float(value))
            except (TypeError, ValueError):
                ok = False
            if not ok or (integer and float(value) != int(float(value))):
                kind = "a whole number" if integer else "a finite number"
                raise ValueError(f"{name} must be {kind}, got {value!r}")
            v = int(float(value)) if integer else float(value)
            if lo is not None and (v <= lo if lo_open else v < lo):
                raise ValueError(f"{name} must be {'greater than' if lo_open else 'at least'} {lo}, got {value!r}")
            if hi is not None and v > hi:
                raise ValueError(f"{name} must be at most {hi}, got {value!r}")
            return v

        self.epochs = number("epochs", self.epochs, 1, self.max_epochs, integer=True)
        self.batch_size = number("batch size", self.batch_size, 1, n_train, integer=True)
        self.lr = number("learning rate", self.lr, 0, 10, lo_open=True)
        self.momentum = number("momentum", self.momentum, 0, 1)
        self.weight_decay = number("weight decay", self.weight_decay, 0, 1)
        self.dropout = number("dropout", self.dropout, 0, 0.9)
        self.beta1 = number("beta1", self.beta1, 0, 1)
        self.beta2 = number("beta2", self.beta2, 0, 1)
        if self.beta1 >= 1 or self.beta2 >= 1:
            raise ValueError(f"Adam betas must be below 1, got {self.beta1!r} and {self.beta2!r}")
        self.label_smoothing = number("label smoothing", self.label_smoothing, 0, 0.5)
        self.ema = number("EMA decay", self.ema, 0, 0.99999)
        self.step_size = number("StepLR step size", self.step_size, 1, integer=True)
        self.gamma = number("StepLR gamma", self.gamma, 0, 1, lo_open=True)
        self.seed = number("seed", self.seed, 0, 2**31 - 1, integer=True)
        self.threads = number("threads", self.threads, 0, 256, integer=True)
        self.log_every = number("log_every", self.log_every, 1, integer=True)
        self.optimizer = str(self.optimizer).lower()
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        self.schedule = str(self.schedule).lower()
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}: choose one of {', '.join(SCHEDULES)}")
        check_device(self.device)
        return self


def check_device(name: str) -> str:
    """Return ``name`` if it is a device choice ('auto', 'cpu', 'cuda'), else raise a clear ValueError."""
    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}: choose auto, cpu or cuda")
    return name


# The seed article's recipe, as a preset (the Train tab's "seed's recipe" button, the benchmark).
SEED_RECIPE = dict(
    epochs=20, batch_size=64, optimizer="sgd", lr=0.01, momentum=0.9, schedule="step",
    step_size=5, gamma=0.5, weight_decay=0.0, dropout=0.0, augment=False, label_smoothing=0.0, ema=0.0,
)


@dataclass
class BatchProgress:
    """Reported every ``log_every`` batches and at the end of each epoch."""

    epoch: int  # 1-based
    epochs: int
    batch: int  # 1-based, within the epoch
    batches: int
    train_loss: float  # mean loss over the batches since the last report
    samples_per_second: float
    eta_seconds: float  # until the end of the whole run
    elapsed: float  # seconds since training started


@dataclass
class EpochMetrics:
    """Per-epoch results: the history that curves and ``/status`` show."""

    epoch: int
    train_loss: float
    train_acc: float  # 0..1
    val_loss: float
    val_acc: float  # 0..1
    seconds: float  # wall time of this epoch, validation included
    lr: float  # learning rate at the end of the epoch


@dataclass
class TrainResult:
    """What a finished (or stopped) run produced."""

    config: dict
    history: list[EpochMetrics]
    state: str  # "done" or "stopped"
    train_seconds: float
    test_acc: float | None = None
    test_loss: float | None = None
    confusion: list[list[int]] | None = None  # [true][predicted], 10x10
    misclassified: list[dict] = field(default_factory=list)  # {index, true, pred, prob}
    checkpoint: str | None = None
    # Softmax temperature fitted on the validation split after the run (digitnet.calibrate);
    # 1.0 (uncalibrated) when there was no validation split or the run stopped.
    temperature: float = 1.0

    def to_dict(self) -> dict:
        """A JSON-friendly dict."""
        out = asdict(self)
        out["history"] = [asdict(m) for m in self.history]
        return out


def resolve_device(name: str = "auto") -> torch.device:
    """CUDA when available and asked for (or 'auto'), else CPU."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum, Adam or AdamW, as the config says."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    betas = (cfg.beta1, cfg.beta2)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay)


class WeightEMA:
    """An exponential moving average of a model's parameters and floating-point buffers.

    ``update`` after each optimiser step: ``avg = d * avg + (1 - d) * current``, with the decay
    ``d`` warmed up as ``min(decay, (1 + n) / (10 + n))`` after n updates so that the random
    initial weights are forgotten quickly. BatchNorm's running statistics are averaged too
    (they are floating-point buffers); its integer step counter is left alone.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.tensors = [t for t in self._tensors(model)]
        self.average = [t.detach().clone() for t in self.tensors]

    @staticmethod
    def _tensors(model: nn.Module) -> list[torch.Tensor]:
        return [*model.parameters(), *(b for b in model.buffers() if b.is_floating_point())]

    def current_decay(self) -> float:
        """The decay the next ``update`` uses."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Fold the model's current weights into the average."""
        torch._foreach_lerp_(self.average, [t.detach() for t in self.tensors], 1.0 - self.current_decay())
        self.updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Write the averaged weights into ``model`` (the same architecture)."""
        for target, avg in zip(self._tensors(model), self.average):
            target.copy_(avg)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Return (scheduler or None, True if it steps per batch)."""
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "onecycle" and total >= 3:  # OneCycleLR divides by zero on shorter runs
        sched = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=total,
            # a short warm-up (BatchNorm nets tolerate the peak early), at least one step long
            pct_start=max(0.25, 2.0 / total),
            div_factor=10.0, final_div_factor=100.0,
        )
        return sched, True
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma), False
    return None, False


def train_one_epoch(
    model: nn.Module,
    split: mdata.Split,
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig,
    generator: torch.Generator,
    device: torch.device,
    scheduler=None,
    per_batch_scheduler: bool = False,
    on_log: Callable[[int, int, float], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    ema: WeightEMA | None = None,
) -> tuple[float, float, bool]:
    """Train for one epoch; return (mean loss, accuracy, stopped). ``ema`` is updated after each step.

    Losses and correct counts are accumulated on the device and read back only
    every ``cfg.log_every`` batches: a ``.item()`` per batch would sync each step.
    """
    model.train()
    batches = math.ceil(len(split) / cfg.batch_size)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    window = torch.zeros((), device=device)
    window_batches, seen = 0, 0
    for i, (x, y) in enumerate(
        mdata.iterate_batches(split, cfg.batch_size, generator=generator, augment_batches=cfg.augment), 1
    ):
        if should_stop():
            return (loss_sum / max(seen, 1)).item(), correct.item() / max(seen, 1), True
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema.update()
        if per_batch_scheduler:
            scheduler.step()
        detached = loss.detach()
        loss_sum += detached * len(y)
        window += detached
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
        window_batches += 1
        if on_log is not None and (i % cfg.log_every == 0 or i == batches):
            on_log(i, batches, window.item() / window_batches)
            window.zero_()
            window_batches = 0
    return (loss_sum / max(seen, 1)).item(), correct.item() / max(seen, 1), False


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    split: mdata.Split,
    device: torch.device,
    batch_size: int = 500,  # bigger batches are no faster here and cost ~100 MB more peak memory
    mean: float = mdata.MNIST_MEAN,
    std: float = mdata.MNIST_STD,
) -> tuple[float, float, torch.Tensor]:
    """Return (mean loss, accuracy, probabilities (N, 10)) of ``model`` on ``split``."""
    model.eval()
    probs, loss_sum = [], 0.0
    for x, y in mdata.iterate_batches(split, batch_size, shuffle=False, mean=mean, std=std):
        logits = model(x.to(device))
        loss_sum += F.cross_entropy(logits, y.to(device), reduction="sum").item()
        probs.append(logits.softmax(1).cpu())
    p = torch.cat(probs) if probs else torch.zeros(0, 10)
    n = max(len(split), 1)
    return loss_sum / n, (p.argmax(1) == split.labels).float().sum().item() / n, p


def confusion_matrix(labels: torch.Tensor, preds: torch.Tensor, classes: int = 10) -> torch.Tensor:
    """(classes, classes) counts, rows = true label, columns = prediction."""
    return torch.bincount(labels * classes + preds, minlength=classes * classes).reshape(classes, classes)


def add_test_results(result: TrainResult, model: nn.Module, test: mdata.Split, device: torch.device,
                     mean: float = mdata.MNIST_MEAN, std: float = mdata.MNIST_STD) -> None:
    """Evaluate ``model`` on ``test``; fill ``result``'s test loss and accuracy, confusion matrix and
    ``misclassified`` (the 32 most confident mistakes first: what the Train tab's gallery shows)."""
    result.test_loss, result.test_acc, probs = evaluate(model, test, device, mean=mean, std=std)
    preds = probs.argmax(1)
    result.confusion = confusion_matrix(test.labels, preds).tolist()
    wrong = (preds != test.labels).nonzero().flatten()
    conf = probs[wrong, preds[wrong]]
    order = conf.argsort(descending=True)[:32]
    result.misclassified = [
        {"index": int(wrong[j]), "true": int(test.labels[wrong[j]]), "pred": int(preds[wrong[j]]),
         "prob": float(conf[j])}
        for j in order
    ]


class TrainingStopped(Exception):
    """Raised internally when a stop was requested."""


class BackgroundRun:
    """What the Trainer and the FineTuner share: run in a daemon thread, stop, join, report errors.

    Subclasses set ``config`` (with a ``model`` name) and implement ``run()``. ``state`` goes
    idle -> running -> done | stopped | error; an exception in the thread ends in ``error``
    with ``error`` set (known errors by their message alone) and is passed to ``callback``.
    """

    thread_name = "digitnet-run"
    known_errors: tuple[type[Exception], ...] = (ValueError, mdata.DataNotFoundError, CheckpointError)

    def __init__(self, callback: Callable[[object], None] | None = None) -> None:
        self.callback = callback or (lambda event: None)
        self.state = "idle"
        self.error: str | None = None
        self.result: TrainResult | None = None
        self.model: nn.Module | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> TrainResult:
        """Do the work in the caller's thread: ``_begin()``, the run, ``_finish(result)``."""
        raise NotImplementedError

    def _begin(self) -> tuple[float, torch.device]:
        """Start of ``run()``: state running, the run's torch threads set; return (start time, device)."""
        self.state = "running"
        t0 = time.perf_counter()
        torch.set_num_threads(self.config.threads or usable_cores())
        keep_freed_memory()
        return t0, resolve_device(self.config.device)

    def _finish(self, result: TrainResult) -> TrainResult:
        """End of ``run()``: keep and report the result."""
        self.result = result
        self.state = result.state
        self.callback(result)
        return result

    def start(self) -> threading.Thread:
        """Run in a daemon thread and return it at once."""
        if self._thread is not None:
            raise RuntimeError(f"this {type(self).__name__} was already started")
        self.state = "running"
        self._thread = threading.Thread(target=self._run_catching, name=f"{self.thread_name}-{self.config.model}",
                                        daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        """Ask the run to stop before its next batch."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        """True once ``stop()`` was called."""
        return self._stop.is_set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the background thread; True when it has ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def describe(self) -> str:
        """'LeNet' etc., for messages."""
        return DISPLAY_NAMES[self.config.model]

    def _run_catching(self) -> None:
        try:
            self.run()
        except Exception as exc:  # reported through state/error; the thread ends cleanly
            self.error = str(exc) if isinstance(exc, self.known_errors) else f"{type(exc).__name__}: {exc}"
            self.state = "error"
            try:
                self.callback(exc)
            except Exception:
                pass


class Trainer(BackgroundRun):
    """Runs one training job, in the caller's thread (``run``) or a background one (``start``).

    ``callback`` receives ``BatchProgress`` several times per epoch, ``EpochMetrics``
    after each epoch and the ``TrainResult`` at the end; it runs in the training thread.
    ``state`` goes idle -> running -> done | stopped | error.
    """

    thread_name = "digitnet-train"

    def __init__(
        self,
        config: TrainConfig,
        callback: Callable[[object], None] | None = None,
        checkpoint_dir: str | Path | None = None,
        data_root: str | Path | None = None,
        save: bool = True,
    ) -> None:
        super().__init__(callback)
        self.config = config.validate()
        self.checkpoint_dir = checkpoint_dir
        self.data_root = data_root
        self.save = save

    def run(self) -> TrainResult:
        """Train, evaluate on the test set, save the checkpoint; return the result."""
        cfg = self.config
        t0, device = self._begin()
        dataset = mdata.load_mnist(self.data_root)
        train, val = mdata.train_val_split(dataset, cfg.val_size, limit=cfg.train_limit)
        test = mdata.test_split(dataset, cfg.test_limit)
        cfg.validate(n_train=len(train))
        # Where the run's time goes (the benchmark and --metrics-json report it): data preparation,
        # then the validation passes; training is the epochs' time less validation.
        self.timings = {"data_seconds": time.perf_counter() - t0, "validate_seconds": 0.0}
        generator = torch.Generator().manual_seed(cfg.seed)
        with torch.random.fork_rng(devices=[]):  # seeded init without touching others' RNG
            torch.manual_seed(cfg.seed)
            model = build_model(cfg.model, dropout=cfg.dropout).to(device)
        if cfg.init:
            start = load_checkpoint(cfg.init)
            if start["arch"] != cfg.model or (start["mean"], start["std"]) != (mdata.MNIST_MEAN, mdata.MNIST_STD):
                raise ValueError(f"{cfg.init} holds a {start['arch']} normalised with {start['mean']}/{start['std']}, "
                                 f"not a {cfg.model} with MNIST's {mdata.MNIST_MEAN}/{mdata.MNIST_STD}")
            model.load_state_dict(start["state_dict"])
        self.model = model
        optimizer = make_optimizer(model, cfg)
        steps = math.ceil(len(train) / cfg.batch_size)
        scheduler, per_batch = make_scheduler(optimizer, cfg, steps)
        ema = WeightEMA(model, cfg.ema) if cfg.ema else None
        # What validation sees: the average, when on (the benchmark's per-epoch test pass reads it too).
        self.eval_model = evaluated = copy.deepcopy(model) if ema else model
        history: list[EpochMetrics] = []
        total_steps = cfg.epochs * steps
        stopped = False
        log_t = [time.perf_counter(), 0]  # time and global step of the last report

        for epoch in range(1, cfg.epochs + 1):
            e0 = time.perf_counter()

            def on_log(batch: int, batches: int, loss: float, epoch=epoch) -> None:
                now = time.perf_counter()
                step = (epoch - 1) * batches + batch
                rate = (step - log_t[1]) * cfg.batch_size / max(now - log_t[0], 1e-9)
                log_t[:] = [now, step]
                per_step = (now - t0) / step
                self.callback(BatchProgress(
                    epoch=epoch, epochs=cfg.epochs, batch=batch, batches=batches, train_loss=loss,
                    samples_per_second=rate, eta_seconds=per_step * (total_steps - step), elapsed=now - t0,
                ))

            train_loss, train_acc, stopped = train_one_epoch(
                model, train, optimizer, cfg, generator, device, scheduler, per_batch, on_log,
                should_stop=self._stop.is_set, ema=ema,
            )
            if stopped:
                break
            if scheduler is not None and not per_batch:
                scheduler.step()
            if ema is not None:
                ema.copy_to(evaluated)
            v0 = time.perf_counter()
            val_loss, val_acc, _ = evaluate(evaluated, val, device) if len(val) else (float("nan"), float("nan"), None)
            self.timings["validate_seconds"] += time.perf_counter() - v0
            metrics = EpochMetrics(
                epoch=epoch, train_loss=train_loss, train_acc=train_acc, val_loss=val_loss, val_acc=val_acc,
                seconds=time.perf_counter() - e0, lr=optimizer.param_groups[0]["lr"],
            )
            history.append(metrics)
            self.callback(metrics)
        if ema is not None and not stopped:  # the averaged weights are the result
            ema.copy_to(model)

        result = TrainResult(config=asdict(cfg), history=history, state="stopped" if stopped else "done",
                             train_seconds=time.perf_counter() - t0)
        if not stopped:
            add_test_results(result, model, test, device)
            if len(val):  # calibrate on the held-out validation images, never the test set
                # Imported here: digitnet/__init__ imports this module, and a top-level import would make
                # `python -m digitnet.calibrate` warn that the module was imported before it ran.
                from .calibrate import fit_split_temperature

                result.temperature = fit_split_temperature(model, val, device)
            if self.save:
                metrics = {
                    "test_acc": result.test_acc, "test_loss": result.test_loss,
                    "val_acc": history[-1].val_acc if history else None,
                    "train_seconds": result.train_seconds, "epochs": len(history),
                    "history": [asdict(m) for m in history], "confusion": result.confusion,
                }
                path = checkpoint_path(cfg.model, self.checkpoint_dir)
                save_checkpoint(path, model.cpu(), cfg.model, mdata.MNIST_MEAN, mdata.MNIST_STD, metrics, asdict(cfg),
                                temperature=result.temperature)
                result.checkpoint = str(path)
        return self._finish(result)


def misclassified_images(result: TrainResult, data_root: str | os.PathLike | None = None,
                         limit: int = 24) -> list[tuple[np.ndarray, str]]:
    """The most confident test mistakes of a run as (28x28 uint8 image, "true 4, predicted 9 (87%)")."""
    if not result.misclassified:
        return []
    images = mdata.load_mnist(data_root).test_images  # cached: no second read of the files
    return [
        (images[m["index"]].numpy(), f"true {m['true']}, predicted {m['pred']} ({m['prob']:.0%})")
        for m in result.misclassified[:limit]
    ]
