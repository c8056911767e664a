"""What one visitor owns: their runs, the weights those runs made, which weights they draw with, their digits.

A visitor is one Gradio session (a browser tab, or one ``gradio_client.Client``). Nothing
here is shared between visitors, and nothing is written to disk: the shipped checkpoints
are read by ``digitnet.predict.CACHE`` and never change inside the app. A ``Workspace``
is also what ``digitnet.predict.predict(image, model, weights=workspace)`` reads models
from: for each model, the visitor's chosen weights, else the shipped ones.

``digitnet.visitors.Visitors`` maps session ids to workspaces and frees them (when a visitor
leaves, idles, or the server's budget needs the memory).
"""

from __future__ import annotations

import io
import math
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from .checkpoint import CheckpointError, model_from_checkpoint, write_checkpoint
from .errors import Refusal
from .finetune import MyDigits
from .models import DISPLAY_NAMES, check_model_name
from .predict import CACHE, ModelCache
from .run import News, Run, RunState
from .scheduler import STOP_WAIT_SECONDS, Scheduler
from .upload import MAX_UPLOAD_BYTES, read_upload  # noqa: F401 (MAX_UPLOAD_BYTES: where callers found it)

MAX_RUNS_KEPT = 20  # a visitor's run history; the oldest finished runs (and their weights) go first
# What one visitor may make the server hold: their runs' weights, the models built from them for
# drawing, their digits. Twenty MLP runs in use are ~45 MB; a thousand digits 3 MB.
VISITOR_BUDGET_BYTES = 64 * 1024 * 1024
DIGIT_BYTES = 28 * 28 * 4  # one of "my digits": a float32 28x28 image
def tensor_bytes(tensors) -> int:
    """Bytes held by an iterable of tensors (and non-tensors, which count nothing)."""
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


class NoSuchRun(Refusal, ValueError):
    """A run number the visitor does not have, or one without weights for the model asked for."""


class AlreadyTraining(RuntimeError):
    """The visitor already has a run waiting or running (``run``, at ``position`` while it waits)."""

    def __init__(self, run: RunState, position: int | None) -> None:
        self.run, self.position = run, position
        where = f"waiting in the queue (position {position})" if run.state == "queued" else "training now"
        super().__init__(f"Your run {run.number} ({DISPLAY_NAMES[run.model]}) is {where}; one run at a time.")


class OverBudget(CheckpointError):
    """Loading a file would make a visitor hold more than their budget (``held`` of ``limit`` bytes)."""

    def __init__(self, held: int, limit: int) -> None:
        self.held, self.limit = held, limit
        super().__init__(f"Not loaded: you hold {held / 2**20:.0f} MB; one visitor may hold at most "
                         f"{limit // 2**20} MB here.")


@dataclass
class WeightsInUse:
    """Which weights a visitor's drawings use for one model."""

    model: str
    run: int | None  # the visitor's run number, None for the shipped weights
    test_acc: float | None
    kind: str | None = None  # the run's kind ("training", "finetune", "upload"); None for the shipped weights


class Workspace:
    """One visitor's runs, weights and digits; thread-safe (handlers and the worker both touch it)."""

    def __init__(self, owner: str, scheduler: Scheduler, shipped: ModelCache = CACHE) -> None:
        self.owner = owner
        self.scheduler = scheduler
        self.shipped = shipped
        self.last_seen = time.monotonic()  # the last request of this visitor (Visitors.get)
        self.budget = VISITOR_BUDGET_BYTES
        self._lock = threading.RLock()
        self._digits: MyDigits = []
        self._bytes = 0  # what memory_bytes() counted at the last change
        self._runs: list[Run] = []
        self._numbers = 0
        self._choice: dict[str, int] = {}  # model -> run number whose weights the drawings use
        self._models: dict[int, nn.Module] = {}  # run number -> built model, for predictions
        self._exports: dict[tuple[str, int | None], Path] = {}  # (model, run or None) -> its checkpoint file

    # ---- memory -------------------------------------------------------------------------------

    @property
    def my_digits(self) -> MyDigits:
        """The visitor's digits ((28x28 float32 image, label) pairs)."""
        return self._digits

    @my_digits.setter
    def my_digits(self, digits: MyDigits) -> None:
        with self._lock:
            self._digits = digits
            self._recount()

    def memory_bytes(self) -> int:
        """What this visitor makes the server hold now: runs' weights, models built for drawing, digits."""
        with self._lock:
            weights = sum(tensor_bytes(r.weights["state_dict"].values()) for r in self._runs if r.weights is not None)
            models = sum(tensor_bytes(m.state_dict().values()) for m in self._models.values())
            return weights + models + len(self._digits) * DIGIT_BYTES

    @property
    def held_bytes(self) -> int:
        """memory_bytes() as counted at the last change (cheap: Visitors adds these up on requests)."""
        return self._bytes

    def _recount(self) -> None:
        self._bytes = self.memory_bytes()

    # ---- runs ---------------------------------------------------------------------------------

    def runs(self) -> list[Run]:
        """Every run of this visitor, oldest first."""
        with self._lock:
            return list(self._runs)

    def run(self, number: int) -> Run:
        """The run with this number; ValueError when there is none."""
        with self._lock:
            for run in self._runs:
                if run.number == number:
                    return run
        raise NoSuchRun.because("run.missing", "you have no run {number}", number=number)

    def latest(self) -> Run | None:
        """The visitor's most recent training or fine-tune run (uploads aside)."""
        with self._lock:
            for run in reversed(self._runs):
                if run.snapshot().kind != "upload":
                    return run
        return None

    def active(self) -> Run | None:
        """The run that is waiting or running, if any (a visitor has at most one)."""
        latest = self.latest()
        return latest if latest is not None and not latest.snapshot().ended else None

    def _refuse_second(self) -> None:
        """Each visitor has at most one run queued or running: say so, and what to do."""
        run = self.active()
        if run is None:
            return
        raise AlreadyTraining(run.snapshot(), self.scheduler.position(run))

    def _add(self, submit) -> Run:
        with self._lock:
            self._refuse_second()
            run = submit(self._numbers + 1)
            self._numbers += 1
            run.on_end.append(self._adopt)
            self._runs.append(run)
            self._trim()
            return run

    def train(self, **params) -> Run:
        """Queue a training run; AlreadyTraining, TrainingDisabled, QueueFull or ValueError refuse it."""
        return self._add(lambda number: self.scheduler.submit_training(self.owner, number, **params))

    def finetune(self, model: str) -> Run:
        """Queue a fine-tune of the weights this visitor draws with on their own digits."""
        name = check_model_name(model)
        base = self.weights_dict(name)
        digits = list(self.my_digits)
        return self._add(lambda number: self.scheduler.submit_finetune(self.owner, number, name, digits, base))

    def stop(self, wait: float = STOP_WAIT_SECONDS) -> RunState | None:
        """Stop this visitor's waiting or running run (None when there is none)."""
        run = self.active()
        if run is None:
            return None
        return self.scheduler.cancel(run, wait)

    def _adopt(self, run: Run) -> None:
        """A finished run's weights become the ones this visitor draws with (worker thread)."""
        if run.weights is None:
            return
        with self._lock:
            self._choice[run.model] = run.number
            self._trim()
            self._recount()

    def _trim(self) -> None:
        """Forget the oldest ended runs beyond MAX_RUNS_KEPT, or while this visitor holds more than their
        budget, except those whose weights are in use."""
        in_use = set(self._choice.values())
        while len(self._runs) > MAX_RUNS_KEPT or self.memory_bytes() > self.budget:
            old = next((r for r in self._runs if r.snapshot().ended and r.number not in in_use), None)
            if old is None:
                return
            self._runs.remove(old)
            self._models.pop(old.number, None)

    def _run_bytes(self, run: Run) -> int:
        """What one run holds: its weights and, once built for drawing, its model."""
        weights = tensor_bytes(run.weights["state_dict"].values()) if run.weights is not None else 0
        model = self._models.get(run.number)
        return weights + (tensor_bytes(model.state_dict().values()) if model is not None else 0)

    # ---- weights ------------------------------------------------------------------------------

    def use(self, model: str, run: int | None) -> WeightsInUse:
        """Draw with a run's weights for ``model`` (None: the shipped ones)."""
        name = check_model_name(model)
        with self._lock:
            if run is None:
                self._choice.pop(name, None)
            else:
                chosen = self.run(int(run))
                if chosen.model != name or chosen.weights is None:
                    raise NoSuchRun.because("run.no_weights", "run {run} has no {model} weights to use", run=run,
                                            model=DISPLAY_NAMES[name])
                self._choice[name] = chosen.number
        return self.in_use(name)

    def in_use(self, model: str) -> WeightsInUse:
        """Which weights the drawings use for ``model`` now."""
        name = check_model_name(model)
        with self._lock:
            number = self._choice.get(name)
        if number is None:
            try:
                acc = (self.shipped.get(name)[1].get("metrics") or {}).get("test_acc")
            except Exception:  # an unavailable shipped model is reported where it is used
                acc = None
            return WeightsInUse(name, None, acc)
        s = self.run(number).snapshot()
        return WeightsInUse(name, number, s.test_acc, s.kind)

    def choices(self, model: str) -> list[RunState]:
        """This visitor's runs that have ``model`` weights to draw with, oldest first."""
        name = check_model_name(model)
        return [r.snapshot() for r in self.runs() if r.model == name and r.weights is not None]

    def weights_dict(self, model: str) -> dict:
        """The checkpoint dict of the weights in use for ``model`` (the visitor's or the shipped ones)."""
        name = check_model_name(model)
        with self._lock:
            number = self._choice.get(name)
        if number is None:
            return self.shipped.get(name)[1]
        return self.run(number).weights

    def get(self, name: str) -> tuple[nn.Module, dict]:
        """(model in eval mode, checkpoint dict) for ``name``: what ``digitnet.predict`` calls."""
        name = check_model_name(name)
        with self._lock:
            number = self._choice.get(name)
            if number is None:
                return self.shipped.get(name)
            run = self.run(number)
            model = self._models.get(number)
            if model is None:
                model = model_from_checkpoint(run.weights, f"run {number}").requires_grad_(False)
                self._models[number] = model
                self._recount()
            return model, run.weights

    def export(self, model: str) -> bytes:
        """The weights in use for ``model`` as a checkpoint file's bytes (the shipped format)."""
        buffer = io.BytesIO()
        torch.save(self.weights_dict(model), buffer)
        return buffer.getvalue()

    def export_file(self, model: str, folder: str | os.PathLike) -> Path:
        """The weights in use for ``model`` as a checkpoint file in a new folder under ``folder``: written
        once per run (``torch.save`` straight to the file, no copy in memory) and the same file on every
        later download while it exists."""
        name = check_model_name(model)
        with self._lock:
            number = self._choice.get(name)
            path = self._exports.get((name, number))
            if path is not None and path.is_file():
                return path
            path = Path(tempfile.mkdtemp(dir=folder)) / f"{name}-{'shipped' if number is None else f'run{number}'}.pt"
            write_checkpoint(path, self.weights_dict(name))
            self._exports[(name, number)] = path
            return path

    def load(self, path: str | os.PathLike, model: str | None = None, name: str | None = None) -> Run:
        """Load a checkpoint file a visitor uploads (``upload.read_upload`` checks it): it becomes a run of kind
        "upload" whose weights are in use; OverBudget past the visitor's memory budget."""
        name = name or Path(path).name
        upload = read_upload(path, model, name)
        ckpt = upload.checkpoint
        cost = 2 * tensor_bytes(ckpt["state_dict"].values())  # the weights, and the model built from them
        with self._lock:
            # What trimming could free once this file's weights replace the ones in use for its model.
            in_use = {number for arch, number in self._choice.items() if arch != ckpt["arch"]}
            freeable = sum(self._run_bytes(r) for r in self._runs if r.snapshot().ended and r.number not in in_use)
            if self.memory_bytes() - freeable + cost > self.budget:
                raise OverBudget(self.memory_bytes(), self.budget)
            self._numbers += 1
            run = Run(self.owner, self._numbers, "upload", ckpt["arch"], dict(ckpt.get("config") or {}), 0)
            run.weights = ckpt
            run._end("done", News.LOADED, None, source=name, test_acc=upload.test_acc, history=upload.history,
                     epochs=upload.epochs, epoch=math.ceil(upload.epochs), done=upload.epochs)
            self._models[run.number] = upload.model
            self._runs.append(run)
            self._choice[run.model] = run.number
            self._trim()
            self._recount()
        return run

    # ---- leaving ------------------------------------------------------------------------------

    def idle_for(self, now: float) -> float | None:
        """Seconds since this visitor's last request, if the workspace may be freed for idleness; else None.

        Never while a run waits or runs: its owner may be watching it.
        """
        if self.active() is not None:
            return None
        return now - self.last_seen

    def holds_nothing(self) -> bool:
        """True when freeing this workspace loses nothing (no runs, no digits, shipped weights)."""
        with self._lock:
            return not self._runs and not self._digits

    def close(self) -> None:
        """The visitor left: drop a waiting run, stop a running one (without waiting), forget everything."""
        run = self.active()
        if run is not None:
            self.scheduler.cancel(run, wait=0)
        with self._lock:
            self._runs.clear()
            self._models.clear()
            self._choice.clear()
            self._digits = []
            self._bytes = 0
            for path in self._exports.values():
                shutil.rmtree(path.parent, ignore_errors=True)
            self._exports.clear()


def run_status(workspace: Workspace, word=None) -> dict:
    """The documented /status JSON of a visitor's latest run, with its queue position while it waits, but for its
    "message", which ``word(state or None)`` writes when given (digitnet/ui's ``facts.run_message``)."""
    run = workspace.latest()
    if run is None:
        return {"state": "idle", "run": None, "model": None, "epoch": 0, "epochs": 0, "batch": 0, "batches": 0,
                "position": None, "starts_in_seconds": None, "eta_seconds": None, "elapsed_seconds": 0.0,
                "history": [], "running_loss": [], "running_loss_seconds": [], "test_acc": None, "kind": None, "finetune": None,
                "news": None, **({"message": word(None)} if word else {})}
    s = run.snapshot()
    waiting = workspace.scheduler.seconds_until_start(run) if s.state == "queued" else None
    return {
        "state": s.state,
        "run": s.number,
        "model": s.model,
        "epoch": s.epoch,
        "epochs": s.epochs,
        "batch": s.batch,
        "batches": s.batches,
        "position": workspace.scheduler.position(run),
        "starts_in_seconds": None if waiting is None else round(waiting, 1),
        "eta_seconds": None if s.eta_seconds is None else round(s.eta_seconds, 1),
        "elapsed_seconds": round(s.elapsed, 1),
        "history": s.history,
        "running_loss": [[round(x, 4), loss] for x, loss in s.loss_points],
        "running_loss_seconds": s.loss_seconds,  # each running_loss point's seconds since the run started
        "test_acc": s.test_acc,
        "kind": s.kind,
        "finetune": s.finetune,
        "news": s.news.value,  # what happened last (run.News); ``word`` words it as /status's "message"
        **({"message": word(s)} if word else {}),
    }


def __getattr__(name: str):
    """``Visitors`` (and its constants) moved to ``digitnet.visitors``; old imports keep working."""
    from . import visitors

    if hasattr(visitors, name):
        return getattr(visitors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
