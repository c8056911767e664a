"""The one run loop: ``TrainingRun.run`` and the steps it is made of.

``training.Trainer`` (a run from scratch) and ``finetune.FineTuner`` (my digits) only say how to
prepare, step, validate and finish. The loop serves the command line (``python -m digitnet.train``)
and the app's training queue (``scheduler.py``). It never imports gradio: it reports through a
callback that receives ``BatchProgress``, ``EpochMetrics`` and finally ``TrainResult`` objects.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Collection, Iterable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data as mdata
from .checkpoint import checkpoint_path, checkpoint_payload, write_checkpoint
from .config import Config
from .events import PROBE_INDICES, BatchProgress, EpochMetrics, TrainResult
from .models import folded
from .system import keep_freed_memory, resolve_device, usable_cores


def run_steps(epochs: float, steps_per_epoch: int) -> int:
    """The optimiser steps of a run of ``epochs`` (1.5 = one pass and half of another); at least one."""
    return max(1, round(epochs * steps_per_epoch))



def training_loss(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0,
                  softmax_before_loss: bool = False) -> torch.Tensor:
    """Cross-entropy of the logits; with ``softmax_before_loss``, the seed article's mistake: cross-entropy of
    the *probabilities* (``CrossEntropyLoss`` applies log-softmax again, so the loss can never fall below
    ~1.46 and its gradients shrink as the model grows sure)."""
    return F.cross_entropy(torch.softmax(logits, dim=1) if softmax_before_loss else logits, y,
                           label_smoothing=label_smoothing)


def supervised_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                    label_smoothing: float = 0.0, extra_loss: Callable[[torch.Tensor], torch.Tensor] | None = None,
                    softmax_before_loss: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a batch: ``training_loss`` (plus ``extra_loss(logits)``); return (loss, logits), detached."""
    logits = model(x)
    loss = training_loss(logits, y, label_smoothing, softmax_before_loss)
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
        # ...and the run's start: seconds from the run's start to its first loss report, and the steps done then
        # (the pace after it is the ETA's, and what the queue learns a model's speed from: ``eta.Estimator``).
        self.timings.update(start_seconds=0.0, start_steps=0)
        self._stop = threading.Event()
        # What each validation point shows beside the curves (``watched``), normalised, on the device: the
        # PROBE_INDICES digits, then the visitor's drawing ``own`` if there is one (made at the first point).
        self._watched_x: torch.Tensor | None = None
        # Their logits, when ``validate`` ran them in its own pass (``watched`` then takes them, once).
        self._watched_logits: torch.Tensor | None = None
        # The visitor's own last drawing, as the model sees it (28x28, ink 1 on 0), and the digit it
        # shows: each validation point also gives the model's probability for that digit.
        self.own: tuple[np.ndarray, int] | None = None

    # ---- what a subclass provides --------------------------------------------------------------

    def prepare(self) -> int:
        """Load the data (its seconds into ``timings["data_seconds"]``), build the model and the optimiser;
        return the steps per epoch."""
        raise NotImplementedError

    def passes(self) -> float:
        """How many times the run goes through ``batches()``: a run from scratch, its epochs (1.5 = one pass and
        half of another); a fine-tune, its rounds. Progress reports it as ``epochs``."""
        return self.config.epochs

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

    def watched_inputs(self) -> torch.Tensor:
        """What ``watched`` runs through the model, normalised, on the device: the ``PROBE_INDICES`` test digits,
        then the visitor's drawing ``own`` if there is one (made once, at the first call)."""
        if self._watched_x is None:
            images = mdata.load_mnist(self.data_root).test_images[list(PROBE_INDICES)]  # cached: no second read
            x = mdata.normalize(images, self.mean, self.std)
            if self.own is not None:
                drawing = torch.as_tensor(self.own[0], dtype=torch.float32).reshape(1, 1, 28, 28) * 255
                x = torch.cat([x, mdata.normalize(drawing, self.mean, self.std)])
            self._watched_x = x.to(self.device)
        return self._watched_x

    def watched(self) -> tuple[list[int], float | None]:
        """What the page shows beside the curves at each validation point, from what validation sees: the
        model's answers for the ``PROBE_INDICES`` test digits, and its probability (softmax) for the digit of
        the visitor's drawing ``own`` (None without one). From the logits ``validate`` left if it ran
        ``watched_inputs`` in its own pass, else in a pass of their own."""
        logits, self._watched_logits = self._watched_logits, None
        if logits is None:
            with torch.inference_mode():
                logits = folded(getattr(self, "eval_model", None) or self.model)(self.watched_inputs()).float()
        probe = logits[:len(PROBE_INDICES)].argmax(1).tolist()
        return probe, None if self.own is None else float(torch.softmax(logits[-1], 0)[self.own[1]])

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
        passes = self.passes()
        total_steps = run_steps(passes, steps)
        # Dense curves whatever the run's length: a loss report at least every total/loss_points steps,
        # and validation points at evenly spaced steps (the last one at the run's last step).
        log_every = min(cfg.log_every, max(1, total_steps // max(1, getattr(cfg, "loss_points", 1))))
        points = min(total_steps, self.validation_points(total_steps, steps))
        validate_steps = {max(1, round(total_steps * k / points)) for k in range(1, points + 1)}
        segment = Segment()
        stopped = False
        last_report = [time.perf_counter()]
        # The ETA's pace: seconds a step since the first report. The steps before it carry the run's start
        # (first-touch memory, the thread pool waking, a burst of requests the server answers first, as
        # training runs "nicer"): measured in the visitors benchmark, the first run of a burst of 8 /train
        # calls reported its first step 0.4-0.5 s after starting and then took ~12 ms a step, so an ETA
        # extrapolated from the start read 9.9 s with 0.7 s to go. No ETA (None) until a second report. The first
        # report's seconds and steps are kept in ``timings`` (start_seconds, start_steps: 0 until then).
        last_point = [time.perf_counter()]

        def validation_point(done_steps: int, epoch_end: bool) -> None:
            v0 = time.perf_counter()
            final = done_steps == total_steps
            val_loss, val_acc, val_images = self.validate(full=final)
            probe, own = self.watched()
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
                start = self.timings
                if not start["start_steps"]:
                    start.update(start_seconds=now - t0, start_steps=done)
                    eta = None
                else:
                    eta = ((now - t0 - start["start_seconds"]) / max(done - start["start_steps"], 1)
                           * (total_steps - done))
                self.callback(BatchProgress(
                    epoch=epoch, epochs=passes, batch=step, batches=epoch_steps, train_loss=loss,
                    samples_per_second=rate, eta_seconds=eta, elapsed=now - t0, done=done / steps,
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
