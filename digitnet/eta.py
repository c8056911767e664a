"""How long a run will take here: a step's cost by model and batch, learned from the runs that finished.

The queue (``digitnet.scheduler``) asks this before a run joins it (a run estimated over the
deployment's limit is refused) and while visitors wait (their start estimate). It knows runs only
by their ``RunState``-like facts: kind, model, config, epochs.
"""

from __future__ import annotations

import math
from dataclasses import replace

from .models import FAST_RECIPES, SECONDS_PER_IMAGE, STEP_SECONDS
from .training import TrainConfig, TrainResult, run_steps

MNIST_TRAIN_IMAGES = 60_000  # train + validation images in MNIST's training file
# The speed prior (each model's registry entry, models.py): seconds per training image (one pass) on
# two cores at its fast recipe's batch, and the fixed cost of a step, to guess a waiting run's length
# before any run of that model has finished here; each finished run replaces the guess with what this
# machine really did. A step of batch B costs STEP_SECONDS + B x the rest of SECONDS_PER_IMAGE: batch 1
# is ~40x dearer an image than the recipe's 128, not the same.
# What a run costs beyond its steps and validation points, before any run of its model has finished
# here: the worker taking it, the data (cached after the first run), the optimiser, the test pass, the
# checkpoint. Measured in one process on 2 cores: 0.04 s (a 5,000-image LeNet run) to 0.44 s (a default
# LeNet run), and ~1.3 s for the first run of a process (torch.optim's first import). Each finished run
# replaces it, for its model, with what this machine really took (``Estimator.learn``).
RUN_OVERHEAD_SECONDS = 1.0
FINISH_SECONDS = 0.3  # of which after the last validation point (the test pass, the checkpoint)
OVERHEAD_RANGE = (0.0, 30.0)  # a learned overhead is kept within these seconds
# How far one finished run may move the estimates from the constants above: a run slowed by a busy
# machine (or one a test held at its first batch) must not make every later run look ten times dearer.
SPEED_RANGE = (1 / 3, 3.0)
# Each finished run moves a model's learned speed and overheads this far towards what it took (the first
# one all the way from the constants): the runs just before are a better guess than the last one alone,
# as a run's cost swings with what else the server did meanwhile (the visitors polling beside the queue,
# the first of a burst of /train calls).
LEARN_WEIGHT = 0.5


def train_images(cfg: TrainConfig) -> int:
    """How many images one epoch of ``cfg`` goes through."""
    n_train = MNIST_TRAIN_IMAGES - cfg.val_size
    return n_train if cfg.train_limit is None else min(n_train, cfg.train_limit)


def run_shape(s) -> tuple[int, int]:
    """(optimiser steps, images a step) of a run (a ``RunState``: kind, config, epochs)."""
    c = s.config
    if s.kind == "finetune":
        return c["rounds"] * c["steps_per_round"], c["personal_per_batch"] + c["mnist_per_batch"]
    cfg = TrainConfig.from_dict(c)
    return run_steps(s.epochs, math.ceil(train_images(cfg) / cfg.batch_size)), cfg.batch_size


class Estimator:
    """Seconds a run takes on this machine: the constants above, scaled per model by what finished runs took."""

    def __init__(self) -> None:
        # A model's time on this machine / its constants' (learned; 1 until then, also for a model registered later).
        self.speed: dict[str, float] = dict.fromkeys(SECONDS_PER_IMAGE, 1.0)
        # Seconds a run of a model takes beyond its steps, and of those after its last validation point
        # (learned from its finished runs; the constants above until then).
        self.overhead: dict[str, float] = {}
        self.finish: dict[str, float] = {}
        self.learned: set[str] = set()  # models with a finished run here

    def step_seconds(self, model: str, batch: int) -> float:
        """A training step of ``batch`` images of ``model``: a fixed cost plus a cost an image."""
        fixed = STEP_SECONDS[model]
        per_image = max(SECONDS_PER_IMAGE[model] - fixed / FAST_RECIPES[model]["batch_size"], 0.0)
        return self.speed.get(model, 1.0) * (fixed + batch * per_image)

    def expected(self, s) -> float:
        """How long a run takes from its start: its steps x a step's time at its batch, plus overhead."""
        steps, batch = run_shape(s)
        return self.overhead.get(s.model, RUN_OVERHEAD_SECONDS) + steps * self.step_seconds(s.model, batch)

    def remaining(self, s) -> float:
        """What is left of a running run, plus its test pass, or all of a waiting one (or of one that has not
        reported its pace yet).

        A running run's steps left are its own ETA and this estimator's guess for them, each weighted by the
        share of the run done: early on, a few steps' pace says little (the first run of a burst of /train
        calls keeps waiting for the CPU while the server answers the burst, then goes at the usual pace, and
        its own ETA read 2-3x what was left for the visitors behind it); by the end, the run's own pace is all."""
        finish = self.finish.get(s.model, FINISH_SECONDS)
        if s.state == "running" and s.eta_seconds is not None:
            steps, batch = run_shape(s)
            share = min(max(s.done / s.epochs, 0.0), 1.0) if s.epochs else 1.0
            guess = (1 - share) * steps * self.step_seconds(s.model, batch)
            return share * s.eta_seconds + (1 - share) * guess + finish
        # Waiting, or running without a progress report yet: all of it, as how far its set-up got cannot be
        # seen (the seconds it has run say little: under load, the first run of a burst of /train calls
        # spends them waiting for the CPU).
        return self.expected(s)

    def learn(self, s, result: TrainResult, wall_seconds: float | None = None, timings: dict | None = None) -> None:
        """Move how this machine's speed for a model compares with the constants towards what a finished
        training run took (``LEARN_WEIGHT``; the first run of a model sets it): every later estimate of that
        model (any batch) is scaled by it. With the run's ``wall_seconds`` (from leaving the queue to its
        weights being ready), also learn what it took beyond its steps and validation points, and of that
        what came after its last validation point.

        With the run's ``timings`` (``TrainingRun.timings``: its first loss report's seconds and steps), the
        speed is its pace after that report, and its start is learned from by neither the speed nor the
        overhead: the first run of a burst of /train calls reported its first step 0.4-0.6 s after starting
        against 0.02 s for the runs after it (the server answers the burst first; training runs nicer), then
        went at their pace. A run that waited starts when the burst is over."""
        if s.kind != "training" or not result.history:
            return
        weight = LEARN_WEIGHT if s.model in self.learned else 1.0
        self.learned.add(s.model)
        seconds = sum(m.seconds for m in result.history)  # first step to last validation point
        if wall_seconds is not None:
            lo, hi = OVERHEAD_RANGE
            for known, seen in ((self.overhead, wall_seconds - seconds),
                                (self.finish, wall_seconds - result.history[-1].elapsed)):
                before = known.get(s.model, seen)
                known[s.model] = min(max(before + weight * (seen - before), lo), hi)
        steps, batch = run_shape(replace(s, epochs=result.history[-1].epoch))  # 1.5: 1.5 passes
        # The steps' seconds the speed is learned from: at their pace after the first report, where the run's
        # timings say when that was (the overhead above is the run's time beyond its steps as they went, the
        # start's slow ones among them: so neither learns the start); else as they went.
        paced = seconds
        start_steps = (timings or {}).get("start_steps") or 0
        if 0 < start_steps < steps:
            paced = (result.history[-1].elapsed - timings["start_seconds"]) / (steps - start_steps) * steps
        before = self.speed.get(s.model, 1.0)
        predicted = steps * self.step_seconds(s.model, batch) / before
        if steps and paced > 0 and predicted > 0:
            seen = paced / predicted
            self.speed[s.model] = min(max(before + weight * (seen - before), SPEED_RANGE[0]), SPEED_RANGE[1])
