"""Recognise a drawn digit: a thread-safe cache of the trained models and ``predict()``.

Never imports gradio: the app, scripts and tests all call this module.

Threads: one 28x28 image is far too small for torch's intra-op parallelism to pay
off (LeNet is ~0.4 MFLOP). Worse, on a busy 2-core machine (a training run next to
the app) OpenMP's worker threads wait on each other: measured here, one LeNet forward
took 100 ms with 2 threads and 0.5 ms with 1. So each forward runs with one thread
(``single_thread``) and the calling thread's count is restored right after:
``torch.set_num_threads`` also sets the default that threads started later (a Trainer)
inherit, and training should keep every core it can get. The pair of calls costs ~1 us.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn as nn

from .calibrate import checkpoint_probs
from .detector import DETECTOR, Detector
from .checkpoint import SHIPPED_DIR, CheckpointError, checkpoint_path, load_model
from .models import DEFAULT_MODEL, MODELS, check_model_name
from .preprocess import to_mnist_array, to_tensor

# A drawing whose calibrated top probability is below this is "not sure": the UI shows the two
# likeliest digits instead of one. Chosen on data by benchmarks/calibration.py's rule: the highest
# threshold that flags at most 5% of the correctly read drawn VALIDATION digits (mean of the three
# models); what it flags of drawn test digits and of non-digits is reported in the README's figures
# and benchmarks/RESULTS-calibration.md. Temperature scaling alone cannot do more: a network that
# has only seen digits gives a drawn letter a high probability of being some digit.
UNSURE_BELOW = 0.97


class ModelUnavailable(RuntimeError):
    """A model's checkpoint is missing or broken; the message names the file."""


@dataclass
class Prediction:
    """What one model made of one drawing."""

    probs: list[float]  # 10 calibrated probabilities (softmax of logits / the checkpoint's temperature)
    digit: int  # argmax of probs
    confidence: float  # probs[digit]
    seen: np.ndarray  # (28, 28) float32 in [0, 1]: what the model saw, white ink on black
    model: str  # 'mlp', 'cnnnet' or 'lenet'
    runner_up: int = -1  # the second most likely digit (never ``digit``)
    unsure: bool = False  # confidence < UNSURE_BELOW: "4 or 9?" rather than one answer
    not_digit: bool = False  # the detector (digitnet.detector) says it is no digit at all: letters, scribbles, "42"
    not_digit_p: float = 0.0  # the detector's P(not a digit), the same for every model

    @property
    def verdict(self) -> str:
        """What the page says, in one word: "not a digit", "not sure", or the digit."""
        return "not a digit" if self.not_digit else "not sure" if self.unsure else str(self.digit)


def checkpoint_for(name: str) -> Path:
    """Where the cache reads ``name`` from: ``$DIGITNET_CHECKPOINTS/<name>.pt`` if that file
    exists (a model trained here), else the repo's shipped ``checkpoints/<name>.pt``."""
    name = check_model_name(name)
    if os.environ.get("DIGITNET_CHECKPOINTS"):
        trained = checkpoint_path(name)
        if trained.is_file():
            return trained
    return SHIPPED_DIR / f"{name}.pt"


def _signature(path: Path) -> tuple[str, int, int, int] | None:
    """(path, inode, mtime, size) of a file, or None when missing: tells a new file from the old.

    save_checkpoint's os.replace gives every new checkpoint a new inode.
    """
    try:
        st = path.stat()
    except OSError:
        return None
    return str(path), st.st_ino, st.st_mtime_ns, st.st_size


@dataclass
class _Entry:
    signature: tuple[str, int, int, int] | None
    model: nn.Module | None = None
    ckpt: dict | None = None
    error: str | None = None


class WeightSource(Protocol):
    """Where a model's weights come from: the shipped ones (``ModelCache``) or a visitor's (``workspace.Workspace``)."""

    def get(self, name: str) -> tuple[nn.Module, dict]:
        """(model in eval mode, checkpoint dict) for ``name``; ModelUnavailable when it cannot be loaded."""
        ...


class ModelCache:
    """Loads each model once, lazily, and swaps in a new checkpoint file atomically.

    ``get`` compares the checkpoint file's (path, inode, mtime, size) with what it loaded, so a
    checkpoint written by a training run (or a new ``$DIGITNET_CHECKPOINTS``) is picked up
    even without ``reload``; the stat costs microseconds. An in-flight prediction keeps
    the model object it already holds: entries are replaced, never mutated.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def _load(self, name: str, path: Path) -> _Entry:
        """Read one checkpoint file into a new entry (no lock held: loading takes ~10 ms)."""
        signature = _signature(path)
        try:
            model, ckpt = load_model(path)
        except CheckpointError as exc:
            return _Entry(signature, error=f"{name}: {exc}")
        if ckpt["arch"] != name:
            return _Entry(signature, error=f"{name}: checkpoint {path} holds a {ckpt['arch']!r} model, not {name!r}")
        return _Entry(signature, model=model.eval().requires_grad_(False), ckpt=ckpt)

    def _entry(self, name: str, force: bool = False) -> _Entry:
        name = check_model_name(name)
        path = checkpoint_for(name)
        with self._lock:
            entry = self._entries.get(name)
        if entry is not None and not force and entry.signature == _signature(path):
            return entry
        fresh = self._load(name, path)
        with self._lock:
            self._entries[name] = fresh
        return fresh

    def get(self, name: str) -> tuple[nn.Module, dict]:
        """(model in eval mode, checkpoint dict) for ``name``; ModelUnavailable when its file is broken."""
        entry = self._entry(name)
        if entry.error is not None:
            raise ModelUnavailable(entry.error)
        return entry.model, entry.ckpt

    def status(self) -> dict[str, str]:
        """Per model: "ok (test acc 99.3%)", or the error message of an unavailable model."""
        out = {}
        for name in MODELS:
            entry = self._entry(name)
            if entry.error is not None:
                out[name] = entry.error
                continue
            acc = (entry.ckpt.get("metrics") or {}).get("test_acc")
            out[name] = f"ok (test acc {100 * acc:.1f}%)" if isinstance(acc, (int, float)) else "ok"
        return out



CACHE = ModelCache()

@contextmanager
def single_thread():
    """Run a block with one torch intra-op thread, then restore this thread's count.

    See the module docstring for why; the pair of calls costs about a microsecond.
    """
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _run(name: str, seen: np.ndarray, weights: WeightSource) -> Prediction:
    """One model on one preprocessed 28x28 image."""
    model, ckpt = weights.get(name)
    x = to_tensor(seen, ckpt["mean"], ckpt["std"])  # (1, 1, 28, 28)
    with torch.inference_mode(), single_thread():
        probs = checkpoint_probs(model(x), ckpt)[0]  # (10,)
    return prediction_from_probs(probs, seen, name)


def prediction_from_probs(probs: torch.Tensor, seen: np.ndarray, model: str) -> Prediction:
    """A Prediction from 10 calibrated probabilities: top digit, runner-up, and whether to be unsure."""
    values = [float(p) for p in probs]
    order = sorted(range(len(values)), key=lambda i: (-values[i], i))  # ties: the lower digit first, as argmax
    digit, runner_up = order[0], order[1]
    return Prediction(probs=values, digit=digit, confidence=values[digit], seen=seen, model=model,
                      runner_up=runner_up, unsure=values[digit] < UNSURE_BELOW)


def _flag(predictions: list[Prediction], seen: np.ndarray, detector: Detector) -> None:
    """Mark every model's answer on one drawing with the detector's verdict (it does not depend on the model)."""
    with single_thread():
        flagged, p = detector.not_digit(seen)
    for pred in predictions:
        pred.not_digit, pred.not_digit_p = flagged, p


def predict(image: Any, model: str = DEFAULT_MODEL, weights: WeightSource | None = None,
            detector: Detector = DETECTOR) -> Prediction | None:
    """Classify a drawing with one model; None for a blank canvas.

    ``weights``: where the model comes from (default: the shipped ones, ``CACHE``). ValueError for an
    unknown model name, ModelUnavailable if its checkpoint is broken,
    ``preprocess.ImageError`` for input that is not an image.
    """
    name = check_model_name(model)
    seen = to_mnist_array(image)
    if seen is None:
        return None
    pred = _run(name, seen, weights or CACHE)
    _flag([pred], seen, detector)
    return pred


def predict_all(image: Any, weights: WeightSource | None = None,
                detector: Detector = DETECTOR) -> dict[str, Prediction | str] | None:
    """Classify with every model (the drawing is preprocessed once); None for a blank canvas.

    A model whose checkpoint is broken maps to its error message instead of a Prediction.
    """
    seen = to_mnist_array(image)
    if seen is None:
        return None
    out: dict[str, Prediction | str] = {}
    for name in MODELS:
        try:
            out[name] = _run(name, seen, weights or CACHE)
        except ModelUnavailable as exc:
            out[name] = str(exc)
    _flag([p for p in out.values() if isinstance(p, Prediction)], seen, detector)
    return out


def label_value(pred: Prediction) -> dict[str, float]:
    """{"0": p0, ..., "9": p9}: the value a gr.Label shows (all ten classes)."""
    return {str(i): float(p) for i, p in enumerate(pred.probs)}
