"""Training: the configs' settings, the one-epoch and evaluation steps, and the run loop.

``TrainingRun.run`` is the one loop: ``Trainer`` (a run from scratch) and
``finetune.FineTuner`` (my digits) only say how to prepare, step, validate and finish.
The same ``Trainer`` serves the command line (``python -m digitnet.train``) and the app's
training queue (``scheduler.py``). It never imports gradio: it reports through a callback
that receives ``BatchProgress``, ``EpochMetrics`` and finally ``TrainResult`` objects.
"""

from __future__ import annotations

import copy
import ctypes
import itertools
import math
import os
import platform
import threading
import time
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Collection, Iterable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data as mdata
from .checkpoint import checkpoint_path, checkpoint_payload, load_checkpoint, write_checkpoint
from .models import DISPLAY_NAMES, FEATURE_BLOCKS, MODELS, build_model

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
# page by page, on every step. Keeping blocks up to 32 MB in the heap, and freed memory up to 64 MB
# before it is given back, makes the step reuse its pages: the CNNs' steps get faster, for a little
# more peak memory (figures: benchmarks/RESULTS-speed.md).
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


# ---------------------------------------------------------------------------- configs
#
# A config is a dataclass whose fields are made with ``setting()``. Everything else about a
# setting is derived from its field: validation (``Config.validate``), the command line's
# flags (``digitnet.train``), the Train tab's form and presets and ``/train``'s keywords
# (``digitnet.ui.train``), and which settings a visitor may choose (``visitor_settings``).
# Adding a hyperparameter means adding one field (and a test of what it does).


def setting(default, help: str, *, label: str | None = None, lo=None, hi=None, lo_open: bool = False,
            hi_open: bool = False, choices: tuple | None = None, visitor: bool = False, advanced: bool = False,
            step: float | None = None, cli: bool = True, required: bool = False):
    """A config field and what may be set in it.

    ``lo``/``hi`` bound a number (inclusive unless ``lo_open``/``hi_open``); ``hi`` may name another
    field (epochs <= max_epochs). ``choices`` are (shown, value) pairs. ``visitor`` settings are the
    Train tab's controls and ``/train``'s keywords (``advanced`` ones folded away; a ``step`` makes a
    slider). ``label`` names the setting in messages and the form (default: the field's name in words).
    ``cli=False`` keeps a setting off the command line; a ``required`` one has no default in ``/train``.
    """
    return field(default=default, metadata=dict(
        help=help, label=label, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, choices=choices,
        visitor=visitor, advanced=advanced, step=step, cli=cli, required=required))


@dataclass(frozen=True)
class Setting:
    """One config field as validation, the command line and the form see it."""

    name: str
    kind: type  # int, float, bool or str
    optional: bool  # None is allowed
    default: object
    help: str
    label: str
    lo: object = None
    hi: object = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple | None = None
    visitor: bool = False
    advanced: bool = False
    step: float | None = None
    cli: bool = True
    required: bool = False

    @property
    def values(self) -> tuple:
        """The allowed values of a choice."""
        return tuple(value for _, value in self.choices or ())

    def check(self, value, config=None):
        """``value`` converted to this setting's type, or ValueError saying what is wrong."""
        if value is None and self.optional:
            return None
        if self.choices:
            key = str(value).strip().lower() if value is not None else ""
            if key not in self.values:
                raise ValueError(f"unknown {self.label} {value!r}: choose one of {', '.join(self.values)}")
            return key
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{self.label} must be true or false, got {value!r}")
            return value
        if self.kind is str:
            if not isinstance(value, str):
                raise ValueError(f"{self.label} must be a text, got {value!r}")
            return value
        return self._number(value, config)

    def _number(self, value, config):
        integer = self.kind is int
        try:
            ok = not isinstance(value, bool) and math.isfinite(float(value))
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok or (integer and float(value) != int(float(value))):
            raise ValueError(f"{self.label} must be {'a whole number' if integer else 'a finite number'}, got {value!r}")
        v = int(float(value)) if integer else float(value)
        hi = getattr(config, self.hi) if isinstance(self.hi, str) else self.hi
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            raise ValueError(f"{self.label} must be {'greater than' if self.lo_open else 'at least'} {self.lo}, "
                             f"got {value!r}")
        if hi is not None and (v >= hi if self.hi_open else v > hi):
            raise ValueError(f"{self.label} must be {'below' if self.hi_open else 'at most'} {hi}, got {value!r}")
        return v


@dataclass
class Config:
    """Base of the config dataclasses: their settings, ``from_dict`` and ``validate``."""

    @classmethod
    def settings(cls) -> list[Setting]:
        """Every field of this config as a ``Setting``, in field order."""
        hints = typing.get_type_hints(cls)
        out = []
        for f in fields(cls):
            types = typing.get_args(hints[f.name]) or (hints[f.name],)
            meta = dict(f.metadata)
            meta["label"] = meta.get("label") or f.name.replace("_", " ")
            out.append(Setting(name=f.name, kind=next(t for t in types if t is not type(None)),
                               optional=type(None) in types, default=f.default, **meta))
        return out

    @classmethod
    def from_dict(cls, values: dict):
        """Build one from a dict, ignoring keys it has no field for."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def validate(self):
        """Check and convert every field; raise ``ValueError`` with a message a person can act on."""
        # Bounds that name another field (epochs <= max_epochs) are checked after that field.
        for s in sorted(self.settings(), key=lambda s: isinstance(s.hi, str)):
            setattr(self, s.name, s.check(getattr(self, s.name), self))
        return self


def visitor_settings(cls: type[Config]) -> list[Setting]:
    """The settings a visitor of the app may choose (the Train tab's controls, ``/train``'s keywords)."""
    return [s for s in cls.settings() if s.visitor]


MODEL_CHOICES = tuple((DISPLAY_NAMES[name], name) for name in MODELS)
OPTIMIZER_CHOICES = (("SGD + momentum", "sgd"), ("Adam", "adam"), ("AdamW", "adamw"))
SCHEDULE_CHOICES = (("constant", "none"), ("StepLR (the seed article's)", "step"), ("one-cycle", "onecycle"))
DEVICE_CHOICES = (("auto", "auto"), ("CPU", "cpu"), ("CUDA", "cuda"))


# The fast recipe, per model: the shortest one-cycle run, at the batch and peak learning rate that make
# it cheapest on 2 cores, that reaches 99% test accuracy (the MLP: 98%) on every seed 0-9 at the
# command line's two threads. Among the candidates cheap enough for the speed target, the one with
# the best MEAN VALIDATION accuracy over those seeds is chosen; test is the check, never the criterion.
# The candidates, their figures and why each was kept or dropped: benchmarks/RESULTS-speed.md; the
# runs: benchmarks/results/seeds-*.json (python -m benchmarks.seeds).
# - LeNet: 1.5 epochs (one pass and half of another) with FreezeOut: its first conv block stops
#   training halfway, its second at three quarters (later than thirds: a margin above 99% for a
#   little more time).
# - CNNNet: one epoch; FreezeOut does not pay for it.
# - MLP: 2 epochs at batch 384 (a sample costs less there than at 256).
# A TrainConfig whose epochs, batch_size, lr, freeze or freeze_from is None takes its model's value here.
FAST_RECIPES = {
    "mlp": {"epochs": 2, "batch_size": 384, "lr": 0.02, "freeze": False},
    "cnnnet": {"epochs": 1, "batch_size": 128, "lr": 0.01, "freeze": False},
    "lenet": {"epochs": 1.5, "batch_size": 128, "lr": 0.015, "freeze": True, "freeze_from": 0.5},
}


@dataclass
class TrainConfig(Config):
    """Everything that defines a training run. The defaults are the fast recipe (``FAST_RECIPES``: each model's
    length, batch, learning rate and FreezeOut)."""

    model: str = setting("lenet", "model to train", choices=MODEL_CHOICES, visitor=True, required=True)
    # A part of an epoch is allowed: 1.5 = one pass over the training images and half of another.
    epochs: float | None = setting(None, "number of epochs, 1.5 = one pass and half of another (default: the "
                                   "model's fast recipe, FAST_RECIPES)", lo=0.5, hi="max_epochs", visitor=True,
                                   step=0.5, required=True)
    batch_size: int | None = setting(None, "images per training step (default: the model's fast recipe)", lo=1,
                                     visitor=True)
    optimizer: str = setting("adamw", "SGD with momentum (the seed's), Adam or AdamW", choices=OPTIMIZER_CHOICES,
                             visitor=True)
    # The peak of the one-cycle schedule (the seed: SGD at 0.01).
    lr: float | None = setting(None, "(peak) learning rate (default: the model's fast recipe)", label="learning rate",
                               lo=0, lo_open=True, hi=10, visitor=True)
    schedule: str = setting("onecycle", "learning-rate schedule: constant, the seed's StepLR, or one-cycle (per batch)",
                            choices=SCHEDULE_CHOICES, visitor=True)
    weight_decay: float = setting(5e-4, "weight decay", lo=0, hi=1, visitor=True)
    # Cross-entropy against (1 - s) one-hot + s uniform: +0.1 point of validation accuracy in
    # one- and two-epoch runs (it keeps the short run from chasing over-confident logits).
    label_smoothing: float = setting(0.1, "cross-entropy label smoothing", lo=0, hi=0.5, visitor=True, step=0.05)
    dropout: float = setting(0.0, "dropout probability", lo=0, hi=0.9, visitor=True, step=0.05)
    # Off by default: in a run of an epoch or two it cost LeNet accuracy and time (measured on test by an
    # earlier session, not re-checked on validation); it pays in longer runs (the shipped files use it).
    augment: bool = setting(False, "random small rotations/shifts/scales/shears of each batch (never flips)",
                            label="augmentation", visitor=True)
    # FreezeOut (Brock et al., 2017): a model's first layers settle early, and once they stop training
    # the backward pass skips them: a LeNet step with both conv blocks frozen costs about half of a
    # full one (benchmarks/RESULTS-speed.md).
    freeze: bool | None = setting(None, "FreezeOut: stop training the feature blocks one after another during "
                                  "the run, from freeze_from on (default: the model's fast recipe)",
                                  label="FreezeOut", visitor=True)
    # Where FreezeOut starts: the first block stops after this part of the run's steps, the others at
    # even steps from there to the end (None and no recipe value: block k of K at k/(K+1), i.e. thirds).
    freeze_from: float | None = setting(None, "FreezeOut: the part of the run after which the first feature block "
                                        "stops training, the next ones evenly spaced after it (default: the "
                                        "model's fast recipe, else thirds)",
                                        label="FreezeOut start", lo=0, hi=1, lo_open=True, hi_open=True)
    seed: int = setting(0, "random seed", lo=0, hi=2**31 - 1, visitor=True)
    momentum: float = setting(0.9, "momentum (SGD only)", lo=0, hi=1, visitor=True, advanced=True)
    step_size: int = setting(5, "StepLR: epochs between decays (the seed: 5)", label="StepLR step size", lo=1,
                             visitor=True, advanced=True)
    gamma: float = setting(0.5, "StepLR: decay factor (the seed: 0.5)", label="StepLR gamma", lo=0, lo_open=True,
                           hi=1, visitor=True, advanced=True)
    beta1: float = setting(0.9, "Adam/AdamW first-moment decay", lo=0, hi=1, hi_open=True)
    beta2: float = setting(0.999, "Adam/AdamW second-moment decay", lo=0, hi=1, hi_open=True)
    # When on, validation, test and the saved checkpoint use the averaged weights.
    ema: float = setting(0.0, "decay of an average of the weights that is evaluated and saved, 0 = off",
                         label="EMA decay", lo=0, hi=0.99999)
    # A continued run (the 99.5% tier's recipe): the same architecture and MNIST's normalisation.
    init: str | None = setting(None, "start from this checkpoint's weights (default: a random init)")
    # 0 = every core this process may use (usable_cores(): CPU affinity and a container's CPU
    # quota, not the host's count). The app keeps drawing quick another way: its training thread
    # runs at a lower priority (scheduler.py).
    threads: int = setting(0, "torch threads, 0 = every core this process may use", lo=0, hi=256)
    device: str = setting("auto", "auto = CUDA when available (as in the seed), else CPU", choices=DEVICE_CHOICES)
    val_size: int = setting(mdata.DEFAULT_VAL_SIZE, "validation images held out of training", lo=0)
    train_limit: int | None = setting(None, "use only this many training images (tests, quick demos; default: all 55,000)",
                                      lo=1)
    test_limit: int | None = setting(None, "evaluate on only this many test images (default: all 10,000)", lo=1)
    log_every: int = setting(50, "batches between running-loss reports at most (a run makes at least loss_points)",
                             lo=1)
    # Curves a visitor can watch whatever the run's length (0.5 to 30 epochs): the report interval
    # shrinks below log_every so that a run has at least this many training-loss points...
    loss_points: int = setting(60, "training-loss points per run, at least", lo=1)
    # ...and at least this many validation points, at evenly spaced steps (and one per epoch in
    # longer runs), each on the first val_subset validation images; the run's last point, its result
    # and its checkpoint use the whole validation split (and its logits fit the temperature). On 2 idle
    # cores LeNet evaluates ~80,000 images/s (benchmarks/results/speed.json): 11 points on 1,000 images
    # would cost ~5% of a default LeNet run, on 500 ~3.3% (the old schedule, one whole split per
    # epoch: ~3%); a point's accuracy on 500 images is within ~0.6 point of the whole split's at 98%.
    val_points: int = setting(12, "validation points per run, at least (one per epoch in longer runs)", lo=1)
    val_subset: int = setting(500, "validation images at each point but the last (which uses them all)", lo=1)
    max_epochs: int = setting(1000, "upper bound on epochs (the app lowers it for public deployments)", lo=1,
                              cli=False)

    def __post_init__(self) -> None:
        recipe = FAST_RECIPES.get(str(self.model).strip().lower(), FAST_RECIPES["lenet"])  # a bad model: validate says
        self._from_recipe = {name for name in recipe if getattr(self, name) is None}
        for name in self._from_recipe:
            setattr(self, name, recipe[name])

    def validate(self, n_train: int | None = None) -> "TrainConfig":
        """Check every field, and a batch no larger than ``n_train`` images (the recipe's batch shrinks to
        fit; one that was asked for is refused); ValueError if one is wrong."""
        super().validate()
        if float(self.epochs).is_integer():  # 2.0 -> 2: whole epochs read as such everywhere
            self.epochs = int(self.epochs)
        if n_train is not None and self.batch_size > n_train and "batch_size" in self._from_recipe:
            self.batch_size = n_train  # the recipe's batch, on a small slice: the whole slice
        if n_train is not None and self.batch_size > n_train:
            raise ValueError(f"batch size must be at most {n_train}, got {self.batch_size!r}")
        return self


OPTIMIZERS = tuple(value for _, value in OPTIMIZER_CHOICES)
SCHEDULES = tuple(value for _, value in SCHEDULE_CHOICES)


# The seed article's recipe, as a preset (the Train tab's "seed's recipe" button, the benchmark).
SEED_RECIPE = dict(
    epochs=20, batch_size=64, optimizer="sgd", lr=0.01, momentum=0.9, schedule="step",
    step_size=5, gamma=0.5, weight_decay=0.0, dropout=0.0, augment=False, label_smoothing=0.0, ema=0.0,
    freeze=False,
)


@dataclass
class BatchProgress:
    """Reported every ``log_every`` batches and at the end of each epoch."""

    epoch: int  # 1-based
    epochs: float  # the run's length: 1.5 ends halfway through epoch 2
    batch: int  # 1-based, within the epoch
    batches: int  # this epoch's batches (fewer in a last, partial epoch)
    train_loss: float  # mean loss over the batches since the last report
    samples_per_second: float
    eta_seconds: float  # until the end of the whole run
    elapsed: float  # seconds since training started
    done: float  # epochs done so far, e.g. 1.25 (the x of a curve point)


@dataclass
class EpochMetrics:
    """A validation point: the history that curves and ``/status`` show (several per epoch in short runs)."""

    epoch: float  # epochs done at this point: 0.125, ..., 1, ... (1.5 after a last half epoch)
    train_loss: float  # mean training loss since the previous point
    train_acc: float  # 0..1, since the previous point
    val_loss: float
    val_acc: float  # 0..1
    seconds: float  # wall time since the previous point (the start of training for the first), validation included
    lr: float  # learning rate at this point
    val_images: int = 0  # validation images it used: a fixed subset, all of them at the run's last point
    epoch_end: bool = True  # the point closes an epoch (or the run's last, partial one)
    probe: list[int] | None = None  # the model's answers for the PROBE_INDICES test digits
    own: float | None = None  # the model's probability for the visitor's own drawing's digit (TrainingRun.own)
    elapsed: float = 0.0  # seconds since the run started (data loading included), as BatchProgress.elapsed


# A fixed grid of MNIST test digits whose answers the Train tab shows changing as a model learns:
# the first 0, 1, ..., 9 of the test set, then six hard ones (a 6, 5, 4, 9, 8 and 2 that one or two
# of the three shipped models misread; LeNet reads them right, with 60-95% confidence). Test images
# are only shown, never used to choose anything.
PROBE_INDICES = (3, 2, 1, 18, 4, 8, 11, 0, 61, 7, 445, 674, 1242, 2582, 2896, 1790)


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
    # fused: one kernel for all parameters instead of a few per tensor (MLP step 13.7 -> 10.6 us a sample).
    adam = dict(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay, fused=True)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), **adam)
    return torch.optim.AdamW(model.parameters(), **adam)


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


def run_steps(epochs: float, steps_per_epoch: int) -> int:
    """The optimiser steps of a run of ``epochs`` (1.5 = one pass and half of another); at least one."""
    return max(1, round(epochs * steps_per_epoch))


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Return (scheduler or None, True if it steps per batch)."""
    total = run_steps(cfg.epochs, steps_per_epoch)
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


def supervised_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                    label_smoothing: float = 0.0, extra_loss: Callable[[torch.Tensor], torch.Tensor] | None = None,
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a batch: cross-entropy (plus ``extra_loss(logits)``); return (loss, logits), detached."""
    logits = model(x)
    loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    if extra_loss is not None:
        loss = loss + extra_loss(logits)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), logits.detach()


class Segment:
    """Loss and correct-answer sums since the last validation point, kept on the device until read."""

    def __init__(self) -> None:
        self.loss_sum = self.correct = None
        self.seen = 0

    def add(self, loss: torch.Tensor, hits: torch.Tensor, n: int) -> None:
        """One step's mean loss, correct answers and images."""
        self.loss_sum = loss * n if self.loss_sum is None else self.loss_sum + loss * n
        self.correct = hits if self.correct is None else self.correct + hits
        self.seen += n

    def take(self) -> tuple[float, float]:
        """(mean loss, accuracy) since the last call; NaNs when no step was taken."""
        means = _epoch_means(self.loss_sum, self.correct, self.seen)
        self.__init__()
        return means


def train_one_epoch(
    batches: Iterable,
    step: Callable[[object], tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    steps: int,
    log_every: int = 50,
    on_log: Callable[[int, int, float, int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    segment: Segment | None = None,
    validate_at: Collection[int] = (),
    on_validate: Callable[[int], None] | None = None,
) -> tuple[float, float, bool]:
    """Run ``step(batch)`` (which returns loss, logits and labels) over ``batches``; return (mean loss, accuracy, stopped).

    ``on_log(step, steps, mean loss since the last report, images since the last report)`` runs every
    ``log_every`` steps and after the last; ``on_validate(step)`` after each step in ``validate_at``
    (after that step's report). Each step is also added to ``segment``. Losses and correct counts
    stay on the device until a report: a ``.item()`` per step would wait for every step to finish.
    """
    loss_sum = correct = window = None
    window_steps = window_images = seen = 0
    for i, batch in enumerate(batches, 1):
        if should_stop():
            return _epoch_means(loss_sum, correct, seen) + (True,)
        loss, logits, y = step(batch)
        n = len(y)
        hits = (logits.argmax(1) == y).sum()
        loss_sum = loss * n if loss_sum is None else loss_sum + loss * n
        correct = hits if correct is None else correct + hits
        window = loss if window is None or window_steps == 0 else window + loss
        seen += n
        window_steps += 1
        window_images += n
        if segment is not None:
            segment.add(loss, hits, n)
        if on_log is not None and (i % log_every == 0 or i == steps):
            on_log(i, steps, window.item() / window_steps, window_images)
            window_steps = window_images = 0
        if on_validate is not None and i in validate_at:
            on_validate(i)
    return _epoch_means(loss_sum, correct, seen) + (False,)


def _epoch_means(loss_sum, correct, seen: int) -> tuple[float, float]:
    if not seen:
        return float("nan"), float("nan")
    return loss_sum.item() / seen, correct.item() / seen


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


class TrainingRun:
    """The run that ``Trainer`` and ``finetune.FineTuner`` share: epochs of steps, progress with an ETA,
    validation points at evenly spaced steps, the test pass, the result and the checkpoint.

    ``run()`` works in the caller's thread (the scheduler's worker, the command line); ``stop()``,
    from any thread, ends it before its next step. ``callback`` receives ``BatchProgress`` several
    times per epoch, ``EpochMetrics`` at each validation point and the ``TrainResult`` at the end.

    A subclass says what is particular to it: ``prepare()`` (model, data, optimiser; returns the
    steps per epoch), ``batches()``, ``step(batch)``, ``validate()``, ``finish(result)`` (test
    pass and temperature), and what its checkpoint records (``checkpoint_metrics``,
    ``checkpoint_config``). With ``save`` the checkpoint is written to ``<checkpoint_dir>/<model>.pt``.
    """

    def __init__(self, config: Config, callback: Callable[[object], None] | None = None,
                 checkpoint_dir: str | Path | None = None, data_root: str | Path | None = None,
                 save: bool = True) -> None:
        self.config = config
        self.callback = callback or (lambda event: None)
        self.checkpoint_dir = checkpoint_dir
        self.data_root = data_root
        self.save = save
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.mean, self.std = mdata.MNIST_MEAN, mdata.MNIST_STD  # the input normalisation the weights expect
        self.device = resolve_device(config.device)
        self.result: TrainResult | None = None
        # Where the time goes (the benchmark and --metrics-json report it): reading the data, the rest
        # of prepare() (model, optimiser: torch.optim imports torch._dynamo the first time, ~1 s), the
        # validation passes, and the test pass with the checkpoint; training is the epochs' time less
        # validation.
        self.timings = dict.fromkeys(("data_seconds", "setup_seconds", "validate_seconds", "test_and_save_seconds"),
                                     0.0)
        self._stop = threading.Event()
        self._probe_x: torch.Tensor | None = None  # the PROBE_INDICES digits, normalised, on the device
        # The visitor's own last drawing, as the model sees it (28x28, ink 1 on 0), and the digit it
        # shows: each validation point also gives the model's probability for that digit.
        self.own: tuple[np.ndarray, int] | None = None

    # ---- what a subclass provides --------------------------------------------------------------

    def prepare(self) -> int:
        """Load the data (its seconds into ``timings["data_seconds"]``), build the model and the optimiser;
        return the steps per epoch."""
        raise NotImplementedError

    def batches(self) -> Iterable:
        """One epoch's batches, as ``step`` takes them."""
        raise NotImplementedError

    def step(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One optimiser step; return (loss, logits, labels), detached."""
        raise NotImplementedError

    def train_mode(self) -> None:
        """Put the model in training mode at the start of each epoch."""
        self.model.train()

    def end_epoch(self) -> None:
        """After each epoch's steps, before its validation."""

    def validate(self, full: bool = True) -> tuple[float, float, int]:
        """(loss, accuracy, images) on the validation images (a fixed subset unless ``full``); NaNs where
        there are none."""
        raise NotImplementedError

    def validation_points(self, total_steps: int, steps: int) -> int:
        """How many validation points the run makes (evenly spaced): one per epoch unless a subclass says more."""
        return math.ceil(total_steps / steps)

    def probe(self) -> list[int]:
        """The model's answers (what validation sees) for the ``PROBE_INDICES`` test digits."""
        if self._probe_x is None:
            images = mdata.load_mnist(self.data_root).test_images[list(PROBE_INDICES)]  # cached: no second read
            self._probe_x = mdata.normalize(images, self.mean, self.std).to(self.device)
        model = getattr(self, "eval_model", None) or self.model
        model.eval()
        with torch.inference_mode():
            return model(self._probe_x).argmax(1).tolist()

    def own_probability(self) -> float | None:
        """The model's probability (softmax) for the digit of the visitor's drawing ``own``; None without one."""
        if self.own is None:
            return None
        image, digit = self.own
        x = mdata.normalize(torch.as_tensor(image, dtype=torch.float32).reshape(1, 1, 28, 28) * 255, self.mean,
                            self.std).to(self.device)
        model = getattr(self, "eval_model", None) or self.model
        model.eval()
        with torch.inference_mode():
            return float(torch.softmax(model(x).float(), dim=1)[0, digit])

    def finish(self, result: TrainResult) -> None:
        """After the last epoch of a run that was not stopped: test results and temperature into ``result``."""
        raise NotImplementedError

    def checkpoint_metrics(self, result: TrainResult) -> dict:
        """The checkpoint's ``metrics``."""
        return {
            "test_acc": result.test_acc, "test_loss": result.test_loss,
            "val_acc": result.history[-1].val_acc if result.history else None,
            "train_seconds": result.train_seconds, "epochs": result.history[-1].epoch if result.history else 0,
            "history": [asdict(m) for m in result.history], "confusion": result.confusion,
        }

    def checkpoint_config(self) -> dict:
        """The checkpoint's ``config``."""
        return asdict(self.config)

    # ---- the run -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the run to stop before its next step."""
        self._stop.set()

    def checkpoint(self, result: TrainResult) -> dict:
        """The finished run's checkpoint dict (the shipped checkpoints' format)."""
        return checkpoint_payload(self.model, self.config.model, self.mean, self.std, self.checkpoint_metrics(result),
                                  self.checkpoint_config(), result.temperature)

    def run(self) -> TrainResult:
        """Train, test, save (with ``save``); return the result."""
        cfg = self.config
        t0 = time.perf_counter()
        torch.set_num_threads(cfg.threads or usable_cores())
        keep_freed_memory()
        steps = self.prepare()  # notes data_seconds itself
        self.timings["setup_seconds"] = time.perf_counter() - t0 - self.timings["data_seconds"]
        history: list[EpochMetrics] = []
        total_steps = run_steps(cfg.epochs, steps)
        # Dense curves whatever the run's length: a loss report at least every total/loss_points steps,
        # and validation points at evenly spaced steps (the last one at the run's last step).
        log_every = min(cfg.log_every, max(1, total_steps // max(1, getattr(cfg, "loss_points", 1))))
        points = min(total_steps, self.validation_points(total_steps, steps))
        validate_steps = {max(1, round(total_steps * k / points)) for k in range(1, points + 1)}
        segment = Segment()
        stopped = False
        last_report = [time.perf_counter()]
        last_point = [time.perf_counter()]

        def validation_point(done_steps: int, epoch_end: bool) -> None:
            v0 = time.perf_counter()
            final = done_steps == total_steps
            val_loss, val_acc, val_images = self.validate(full=final)
            probe, own = self.probe(), self.own_probability()
            self.timings["validate_seconds"] += time.perf_counter() - v0
            if not final:
                self.train_mode()  # evaluation put the model in eval mode
            train_loss, train_acc = segment.take()
            now = time.perf_counter()
            epoch = done_steps // steps if done_steps % steps == 0 else round(done_steps / steps, 4)
            metrics = EpochMetrics(
                epoch=epoch, train_loss=train_loss, train_acc=train_acc, val_loss=val_loss, val_acc=val_acc,
                seconds=now - last_point[0], lr=self.optimizer.param_groups[0]["lr"], val_images=val_images,
                epoch_end=epoch_end or final, probe=probe, own=own, elapsed=now - t0,
            )
            last_point[0] = now
            history.append(metrics)
            self.callback(metrics)

        for epoch in range(1, math.ceil(total_steps / steps) + 1):
            first = (epoch - 1) * steps  # steps done before this epoch
            epoch_steps = min(steps, total_steps - first)  # fewer in a last, partial epoch
            if epoch == 1:
                last_point[0] = time.perf_counter()

            def on_log(step: int, epoch_steps: int, loss: float, images: int, epoch=epoch, first=first) -> None:
                now = time.perf_counter()
                done = first + step
                rate = images / max(now - last_report[0], 1e-9)
                last_report[0] = now
                self.callback(BatchProgress(
                    epoch=epoch, epochs=cfg.epochs, batch=step, batches=epoch_steps, train_loss=loss,
                    samples_per_second=rate, eta_seconds=(now - t0) / done * (total_steps - done), elapsed=now - t0,
                    done=done / steps,
                ))

            self.train_mode()
            batches = self.batches() if epoch_steps == steps else itertools.islice(self.batches(), epoch_steps)
            inside = {g - first for g in validate_steps if first < g < first + epoch_steps}  # the end comes below
            train_loss, train_acc, stopped = train_one_epoch(
                batches, self.step, epoch_steps, log_every, on_log, self._stop.is_set, segment, inside,
                lambda step, first=first: validation_point(first + step, epoch_end=False))
            if stopped:
                break
            self.end_epoch()
            if first + epoch_steps in validate_steps:
                validation_point(first + epoch_steps, epoch_end=True)

        result = TrainResult(config=asdict(cfg), history=history, state="stopped" if stopped else "done",
                             train_seconds=time.perf_counter() - t0)
        if not stopped:
            f0 = time.perf_counter()
            self.finish(result)
            if self.save:
                path = checkpoint_path(cfg.model, self.checkpoint_dir)
                write_checkpoint(path, self.checkpoint(result))
                result.checkpoint = str(path)
            self.timings["test_and_save_seconds"] = time.perf_counter() - f0
        self.result = result
        self.callback(result)
        return result


class Trainer(TrainingRun):
    """A training run from a random init (or ``config.init``) on MNIST's training images."""

    def __init__(self, config: TrainConfig, callback: Callable[[object], None] | None = None,
                 checkpoint_dir: str | Path | None = None, data_root: str | Path | None = None,
                 save: bool = True) -> None:
        super().__init__(config.validate(), callback, checkpoint_dir, data_root, save)

    def prepare(self) -> int:
        cfg = self.config
        d0 = time.perf_counter()
        dataset = mdata.load_mnist(self.data_root)
        self.train_split, self.val = mdata.train_val_split(dataset, cfg.val_size, limit=cfg.train_limit)
        self.test = mdata.test_split(dataset, cfg.test_limit)
        self.timings["data_seconds"] = time.perf_counter() - d0
        cfg.validate(n_train=len(self.train_split))
        self.generator = torch.Generator().manual_seed(cfg.seed)
        with torch.random.fork_rng(devices=[]):  # seeded init without touching others' RNG
            torch.manual_seed(cfg.seed)
            model = build_model(cfg.model, dropout=cfg.dropout).to(self.device)
        if cfg.init:
            start = load_checkpoint(cfg.init)
            if start["arch"] != cfg.model or (start["mean"], start["std"]) != (mdata.MNIST_MEAN, mdata.MNIST_STD):
                raise ValueError(f"{cfg.init} holds a {start['arch']} normalised with {start['mean']}/{start['std']}, "
                                 f"not a {cfg.model} with MNIST's {mdata.MNIST_MEAN}/{mdata.MNIST_STD}")
            model.load_state_dict(start["state_dict"])
        self.model = model
        self.optimizer = make_optimizer(model, cfg)
        steps = math.ceil(len(self.train_split) / cfg.batch_size)
        self.scheduler, self.per_batch = make_scheduler(self.optimizer, cfg, steps)
        self.ema = WeightEMA(model, cfg.ema) if cfg.ema else None
        # FreezeOut: block k of K stops training once f + (1 - f)(k - 1)/K of the run's steps are done
        # (f = freeze_from; by default 1/(K+1), which puts block k at k/(K+1))
        blocks = FEATURE_BLOCKS[cfg.model] if cfg.freeze else ()
        total = run_steps(cfg.epochs, steps)
        start = cfg.freeze_from if cfg.freeze_from is not None else 1 / (len(blocks) + 1)
        self.freeze_plan = {round(total * (start + (1 - start) * (k - 1) / len(blocks))): block
                            for k, block in enumerate(blocks, 1)}
        self.steps_done = 0
        # What validation sees: the average, when on (the benchmark's per-epoch test pass reads it too).
        self.eval_model = copy.deepcopy(model) if self.ema else model
        return steps

    def batches(self) -> Iterable:
        cfg = self.config
        return mdata.iterate_batches(self.train_split, cfg.batch_size, generator=self.generator,
                                     augment_batches=cfg.augment)

    def step(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        for name in self.freeze_plan.get(self.steps_done, ()):  # no gradient: the optimiser leaves them be
            getattr(self.model, name).requires_grad_(False)
        self.steps_done += 1
        x, y = (t.to(self.device, non_blocking=True) for t in batch)
        loss, logits = supervised_step(self.model, self.optimizer, x, y, self.config.label_smoothing)
        if self.ema is not None:
            self.ema.update()
        if self.per_batch:
            self.scheduler.step()
        return loss, logits, y

    def end_epoch(self) -> None:
        if self.scheduler is not None and not self.per_batch:
            self.scheduler.step()

    def validation_points(self, total_steps: int, steps: int) -> int:
        return max(self.config.val_points, math.ceil(total_steps / steps))

    def validate(self, full: bool = True) -> tuple[float, float, int]:
        if self.ema is not None:
            self.ema.copy_to(self.eval_model)
        split = self.val if full else mdata.Split(self.val.images[:self.config.val_subset],
                                                  self.val.labels[:self.config.val_subset])
        if not len(split):
            return float("nan"), float("nan"), 0
        if not full:
            return (*evaluate(self.eval_model, split, self.device)[:2], len(split))
        # The last point: its logits also fit the temperature in finish() (the same weights), so the
        # whole validation split goes through the model once, as before the points were dense.
        from .calibrate import model_logits  # here: calibrate imports this module (see finish)

        with torch.inference_mode():
            logits = model_logits(self.eval_model, split, device=self.device)
        self._val_logits = logits
        loss = F.cross_entropy(logits, split.labels).item()
        return loss, (logits.argmax(1) == split.labels).float().mean().item(), len(split)

    def finish(self, result: TrainResult) -> None:
        self.model.requires_grad_(True)  # what FreezeOut froze: the delivered model is a plain one
        if self.ema is not None:  # the averaged weights are the result
            self.ema.copy_to(self.model)
        add_test_results(result, self.model, self.test, self.device)
        if len(self.val):  # calibrate on the held-out validation images, never the test set
            # Imported here: calibrate imports this module (resolve_device), and since digitnet/__init__
            # imports this one, a top-level import would also make `python -m digitnet.calibrate` warn
            # that the module was imported before it ran.
            from .calibrate import fit_split_temperature, fit_temperature

            logits = getattr(self, "_val_logits", None)  # the last validation point's: the same weights
            result.temperature = (fit_temperature(logits, self.val.labels) if logits is not None
                                  else fit_split_temperature(self.model, self.val, self.device))


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
