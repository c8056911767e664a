"""Training from scratch: ``Trainer`` (a ``loop.TrainingRun``), its optimiser and its learning-rate schedule.

The parts of a run live by concern: ``config`` (the settings framework), ``recipes`` (``TrainConfig``
and the recipes), ``loop`` (the run loop and its steps), ``events`` (what a run reports),
``evaluation`` (test pass, confusion), ``ema`` (the weight average) and ``system`` (cores, malloc,
device). The names most callers want are importable from here too.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn as nn

from . import data as mdata
from .calibrate import fit_split_temperature, fit_temperature, model_logits
from .checkpoint import load_checkpoint
from .config import Config, Setting, setting, visitor_settings
from .ema import copy_average, weight_average
from .evaluation import add_test_results, confusion_matrix, evaluate, logits_of_inputs, loss_and_accuracy
from .events import PROBE_INDICES, BatchProgress, EpochMetrics, TrainResult
from .loop import Segment, TrainingRun, run_steps, supervised_step, train_one_epoch
from .models import FEATURE_BLOCKS, build_model
from .recipes import (DEVICE_CHOICES, FAST_RECIPES, MODEL_CHOICES, OPTIMIZER_CHOICES, OPTIMIZERS, SCHEDULE_CHOICES,
                      SCHEDULES, SEED_RECIPE, TrainConfig)
from .system import resolve_device, usable_cores

__all__ = [  # re-exported: what the app, the tests, the benchmarks and the command line import from here
    "Config", "Setting", "setting", "visitor_settings", "add_test_results", "confusion_matrix",
    "evaluate", "PROBE_INDICES", "BatchProgress", "EpochMetrics", "TrainResult", "Segment", "TrainingRun",
    "run_steps", "supervised_step", "train_one_epoch", "DEVICE_CHOICES", "FAST_RECIPES", "MODEL_CHOICES",
    "OPTIMIZER_CHOICES", "OPTIMIZERS", "SCHEDULE_CHOICES", "SCHEDULES", "SEED_RECIPE", "TrainConfig",
    "resolve_device", "usable_cores", "make_optimizer", "make_lr_schedule", "Trainer",
]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum, Adam or AdamW, as the config says."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    # fused: one kernel for all parameters instead of a few per tensor (MLP step 13.7 -> 10.6 us a sample).
    adam = dict(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay, fused=True)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), **adam)
    return torch.optim.AdamW(model.parameters(), **adam)



def make_lr_schedule(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Return (the learning-rate schedule or None, True if it steps per batch)."""
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
        self.lr_schedule, self.per_batch = make_lr_schedule(self.optimizer, cfg, steps)
        self.ema = weight_average(model, cfg.ema) if cfg.ema else None
        # FreezeOut: block k of K stops training once f + (1 - f)(k - 1)/K of the run's steps are done
        # (f = freeze_from; by default 1/(K+1), which puts block k at k/(K+1))
        blocks = FEATURE_BLOCKS[cfg.model] if cfg.freeze else ()
        total = run_steps(cfg.epochs, steps)
        start = cfg.freeze_from if cfg.freeze_from is not None else 1 / (len(blocks) + 1)
        self.freeze_plan = {round(total * (start + (1 - start) * (k - 1) / len(blocks))): block
                            for k, block in enumerate(blocks, 1)}
        self.steps_done = 0
        self._subset_x = None  # the validation subset and the watched digits, normalised (the first point makes it)
        # What validation sees: the average, when on (the benchmark's per-epoch test pass reads it too).
        self.eval_model = self.ema.module if self.ema is not None else model
        return steps

    def batches(self) -> Iterable:
        cfg = self.config
        return mdata.iterate_batches(self.train_split, cfg.batch_size, generator=self.generator,
                                     augment_batches=cfg.augment, hflip=cfg.hflip)

    def step(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        for name in self.freeze_plan.get(self.steps_done, ()):  # no gradient: the optimiser leaves them be
            getattr(self.model, name).requires_grad_(False)
        self.steps_done += 1
        x, y = (t.to(self.device, non_blocking=True) for t in batch)
        loss, logits = supervised_step(self.model, self.optimizer, x, y, self.config.label_smoothing,
                                       softmax_before_loss=self.config.softmax_before_loss)
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        if self.per_batch:
            self.lr_schedule.step()
        return loss, logits, y

    def end_epoch(self) -> None:
        if self.lr_schedule is not None and not self.per_batch:
            self.lr_schedule.step()

    def validation_points(self, total_steps: int, steps: int) -> int:
        return max(self.config.val_points, math.ceil(total_steps / steps))

    def validate(self, full: bool = True) -> tuple[float, float, int]:
        if not len(self.val):
            return float("nan"), float("nan"), 0
        if full:
            # The last point: its logits also fit the temperature in finish() (the same weights), so the
            # whole validation split goes through the model once, as before the points were dense.
            with torch.inference_mode():
                self._val_logits = model_logits(self.eval_model, self.val, device=self.device)
            return (*loss_and_accuracy(self._val_logits, self.val.labels), len(self.val))
        # A point on the subset: its images, normalised once a run, go through the model in one pass with
        # the watched digits after them (``watched`` takes their logits): 5.9 -> 4.9 ms a point here,
        # against a pass of each with images normalised each time.
        labels = self.val.labels[:self.config.val_subset]
        if self._subset_x is None:
            subset = mdata.normalize(self.val.images[:len(labels)], self.mean, self.std).to(self.device)
            self._subset_x = torch.cat([subset, self.watched_inputs()])
        logits = logits_of_inputs(self.eval_model, self._subset_x)
        self._watched_logits = logits[len(labels):]
        return (*loss_and_accuracy(logits[:len(labels)], labels), len(labels))

    def finish(self, result: TrainResult) -> None:
        self.model.requires_grad_(True)  # what FreezeOut froze: the delivered model is a plain one
        if self.ema is not None:  # the averaged weights are the result
            copy_average(self.ema, self.model)
        add_test_results(result, self.model, self.test, self.device)
        if len(self.val):  # calibrate on the held-out validation images, never the test set
            logits = getattr(self, "_val_logits", None)  # the last validation point's: the same weights
            result.temperature = (fit_temperature(logits, self.val.labels) if logits is not None
                                  else fit_split_temperature(self.model, self.val, self.device))
