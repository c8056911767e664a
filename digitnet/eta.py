"""How long a run will take here: a step's cost by model and batch, learned from the runs that finished.

The queue (``digitnet.scheduler``) asks this before a run joins it (a run estimated over the
deployment's limit is refused) and while visitors wait (their start estimate). It knows runs only
by their ``RunState``-like facts: kind, model, config, epochs.
"""

from __future__ import annotations

import math
from dataclasses import replace

from .training import TrainConfig, TrainResult, run_steps

MNIST_TRAIN_IMAGES = 60_000  # train + validation images in MNIST's training file
# Seconds per training image (one pass) on two cores, used to guess a waiting run's length
# before any run of that model has finished here; each finished run replaces the guess with
# what this machine really did. From benchmarks/RESULTS-speed.md: an epoch of 55,000 images
# takes ~1 s (MLP), ~5 s (CNNNet) and ~3.7 s (LeNet).
SECONDS_PER_IMAGE = {"mlp": 1.0 / 55_000, "cnnnet": 5.0 / 55_000, "lenet": 3.7 / 55_000}
# ...at the batch of the model's fast recipe. A step also costs a fixed time whatever its batch (~100
# operator calls, slicing the batch): LeNet's is ~2 ms at batch 8 on 2 threads (RESULTS-speed.md,
# "Cost of a LeNet sample by batch"), the MLP's ~1.2 ms (its sample costs at 256, 384 and 512), and a
# batch-1 LeNet run was seen at 2.5-3 ms a step. So a step of batch B costs STEP_SECONDS + B x the rest
# of SECONDS_PER_IMAGE: batch 1 is ~40x dearer an image than the recipe's 128, not the same.
STEP_SECONDS = {"mlp": 1.5e-3, "cnnnet": 3.0e-3, "lenet": 2.5e-3}
RECIPE_BATCH = {"mlp": 384, "cnnnet": 128, "lenet": 128}  # training.FAST_RECIPES' batch sizes
RUN_OVERHEAD_SECONDS = 3.0  # loading MNIST, the test evaluation: paid once per run
# How far one finished run may move the estimates from the constants above: a run slowed by a busy
# machine (or one a test held at its first batch) must not make every later run look ten times dearer.
SPEED_RANGE = (1 / 3, 3.0)


def train_images(cfg: TrainConfig) -> int:
    """How many images one epoch of ``cfg`` goes through."""
    n_train = MNIST_TRAIN_IMAGES - cfg.val_size
    return n_train if cfg.train_limit is None else min(n_train, cfg.train_limit)


def run_shape(s) -> tuple[int, int]:
    """(optimiser steps, images a step) of a run (a ``RunState``: kind, config, epochs)."""
    c = s.config
    if s.kind == "finetune":
        return c["epochs"] * c["steps_per_epoch"], c["personal_per_batch"] + c["mnist_per_batch"]
    cfg = TrainConfig.from_dict(c)
    return run_steps(s.epochs, math.ceil(train_images(cfg) / cfg.batch_size)), cfg.batch_size


class Estimator:
    """Seconds a run takes on this machine: the constants above, scaled per model by what finished runs took."""

    def __init__(self) -> None:
        self.speed = dict.fromkeys(SECONDS_PER_IMAGE, 1.0)  # this machine's time / the constants' (learned)

    def step_seconds(self, model: str, batch: int) -> float:
        """A training step of ``batch`` images of ``model``: a fixed cost plus a cost an image."""
        fixed = STEP_SECONDS[model]
        per_image = max(SECONDS_PER_IMAGE[model] - fixed / RECIPE_BATCH[model], 0.0)
        return self.speed[model] * (fixed + batch * per_image)

    def expected(self, s) -> float:
        """How long a run takes from its start: its steps x a step's time at its batch, plus overhead."""
        steps, batch = run_shape(s)
        return RUN_OVERHEAD_SECONDS + steps * self.step_seconds(s.model, batch)

    def remaining(self, s) -> float:
        """What is left of a running run (its own ETA once it has one), or all of a waiting one."""
        if s.state == "running":
            if s.eta_seconds is not None:
                return s.eta_seconds
            return max(0.0, self.expected(s) - s.elapsed)
        return self.expected(s)

    def learn(self, s, result: TrainResult) -> None:
        """Keep how this machine's speed for a model compares with the constants, from its last finished
        training run: every later estimate of that model (any batch) is scaled by it."""
        if s.kind != "training" or not result.history:
            return
        steps, batch = run_shape(replace(s, epochs=result.history[-1].epoch))  # 1.5: 1.5 passes
        seconds = sum(m.seconds for m in result.history)
        predicted = steps * self.step_seconds(s.model, batch) / self.speed[s.model]
        if steps and seconds > 0 and predicted > 0:
            self.speed[s.model] = min(max(seconds / predicted, SPEED_RANGE[0]), SPEED_RANGE[1])
