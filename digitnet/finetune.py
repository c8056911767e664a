"""Teach a model your handwriting: "my digits" (collect, save, load) and the ``FineTuner``.

"My digits" is plain data, kept in each visitor's ``workspace.Workspace`` (``my_digits``) and
nowhere else: a list of ``(image, label)`` pairs, ``image`` the (28, 28)
float32 array in [0, 1] that ``digitnet.preprocess.to_mnist_array`` made of a drawing
(what the model saw), ``label`` the digit the person says it is. ``save_my_digits``
writes it to an ``.npz`` the person downloads; ``load_my_digits`` reads one back and
refuses anything else with a message that says what is wrong.

``FineTuner`` is a ``digitnet.loop.TrainingRun`` like the ``Trainer`` (the same loop,
progress events, result and checkpoint), so the app's training queue runs it like a
training run. It starts from the model's current checkpoint and takes a few hundred quick steps
whose batches mix the person's digits (augmented: a handful of drawings become many)
with MNIST training images, so the model learns the style without forgetting MNIST.

Forgetting is what a naive fine-tune does: measured on the 2-epoch LeNet, 100 Adam
steps of cross-entropy on 48 MNIST + 16 personal digits cost 0.6-0.9 points of MNIST
test accuracy. Two things keep it near zero here (``benchmarks/finetune.py``):

- distillation on the MNIST half of each batch: besides the labels, the model is held
  to the starting model's own output distribution there (a KL term, "learning without
  forgetting"), which keeps the decision boundaries it had on MNIST where the personal
  digits do not need them moved;
- BatchNorm layers keep their running statistics (eval mode): batches that are a
  quarter one person's thick or slanted strokes would otherwise shift the statistics
  every MNIST digit is normalised with.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data as mdata
from .calibrate import fit_split_temperature, validation_split
from .checkpoint import load_checkpoint, model_from_checkpoint
from .errors import Refusal
from .models import DEFAULT_MODEL, NUM_CLASSES
from .predict import checkpoint_for
from .training import (DEVICE_CHOICES, MODEL_CHOICES, Config, TrainingRun, TrainResult, add_test_results, evaluate,
                       setting, supervised_step)

MNIST_SIZE = 28
MAX_MY_DIGITS = 1000  # a person draws tens, not thousands; bounds upload size and fine-tune cost
# An honest file of MAX_MY_DIGITS float32 images is ~3.2 MB uncompressed; anything that
# unpacks to far more is not a my-digits file (or is a zip bomb) and is refused unread.
MAX_UNPACKED_BYTES = 8 * 1024 * 1024
MY_DIGITS_FORMAT = "digitnet-my-digits-1"  # stored in the file, so a foreign .npz is told apart
MY_DIGITS_FILENAME = "my-digits.npz"

MyDigits = list[tuple[np.ndarray, int]]


class MyDigitsError(Refusal, ValueError):
    """A my-digits file or entry is not valid; the message says what is wrong, its ``reason`` and ``fields`` why."""


# ----------------------------------------------------------------------------- my digits


def _check_label(label: Any) -> int:
    """A digit 0..9 given as int, numpy int or a string like "7"."""
    try:
        value = int(str(label).strip()) if isinstance(label, str) else int(label)
        ok = not isinstance(label, bool) and float(label) == value
    except (TypeError, ValueError):
        ok = False
    if not ok or not 0 <= value <= 9:
        raise MyDigitsError.because("digits.label", "the label must be a digit from 0 to 9, got {label!r}", label=label)
    return value


def _check_image(image: Any) -> np.ndarray:
    """A (28, 28) array in [0, 1] (as ``to_mnist_array`` makes) -> float32 copy."""
    arr = np.asarray(image)
    if arr.shape != (MNIST_SIZE, MNIST_SIZE):
        raise MyDigitsError.because("digits.image_shape", "a digit must be a 28x28 image (the preprocessed drawing), "
                                    "got shape {shape}", shape=arr.shape)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise MyDigitsError.because("digits.image_dtype", "a digit image must hold numbers, got dtype {dtype}",
                                    dtype=arr.dtype)
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise MyDigitsError.because("digits.image_values", "a digit image must hold values between 0 and 1 (white ink "
                                    "on black)")
    return arr


def add_digit(digits: MyDigits | None, image: Any, label: Any) -> MyDigits:
    """Return a new "my digits" list with (image, label) appended; MyDigitsError if invalid or full.

    ``image`` is ``Prediction.seen`` / ``to_mnist_array(sketch)``. A new list, not an
    in-place append, so a list another thread still reads is never mutated.
    """
    digits = list(digits or [])
    if len(digits) >= MAX_MY_DIGITS:
        raise MyDigitsError.because("digits.full", "you already have {count} digits, the most this app keeps ({limit})",
                                    count=len(digits), limit=MAX_MY_DIGITS)
    digits.append((_check_image(image), _check_label(label)))
    return digits


def my_digits_summary(digits: MyDigits | None) -> str:
    """'12 digits: 0 x2, 3 x1, 7 x9' (or 'no digits yet') for a status line."""
    digits = digits or []
    if not digits:
        return "no digits yet"
    counts = np.bincount([label for _, label in digits], minlength=NUM_CLASSES)
    parts = ", ".join(f"{d} x{c}" for d, c in enumerate(counts) if c)
    return f"{len(digits)} digit{'s' if len(digits) != 1 else ''}: {parts}"


def save_my_digits(digits: MyDigits | None, path: str | os.PathLike | None = None) -> Path:
    """Write "my digits" to an .npz (images (N,28,28) float32, labels (N,) int64); return its path.

    ``path`` None writes ``my-digits.npz`` in a new temp folder (what a download button serves).
    """
    digits = list(digits or [])
    if len(digits) > MAX_MY_DIGITS:
        raise MyDigitsError.because("digits.too_many_to_save", "{count} digits are more than the {limit} a file may "
                                    "hold", count=len(digits), limit=MAX_MY_DIGITS)
    images = np.stack([_check_image(im) for im, _ in digits]) if digits else np.zeros((0, MNIST_SIZE, MNIST_SIZE), np.float32)
    labels = np.array([_check_label(lb) for _, lb in digits], dtype=np.int64)
    if path is None:
        path = Path(tempfile.mkdtemp(prefix="digitnet-")) / MY_DIGITS_FILENAME
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # a file object: np.savez would append .npz to a name without it
        np.savez_compressed(f, images=images, labels=labels, format=np.array(MY_DIGITS_FORMAT))
    return path


def _check_npy_headers(z: zipfile.ZipFile, name: str) -> None:
    """Refuse an .npz whose arrays claim more data than their entries hold (a header claiming 10^9 digits
    made ``np.load`` try to allocate 2.85 TiB), reading only each entry's .npy header."""
    for info in z.infolist():
        if not info.filename.endswith(".npy"):
            continue
        try:
            with z.open(info) as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read(f)
        except Exception:  # not an .npy header at all: np.load will say so
            continue
        if dtype.hasobject:
            continue  # allow_pickle=False refuses it with its own message
        claimed = math.prod(shape) * dtype.itemsize
        if claimed > MAX_UNPACKED_BYTES or claimed > info.file_size:
            raise MyDigitsError.because("digits.claims_too_much", "{name} is not a my-digits file: its {array!r} claims "
                                        "{count}entries ({mb:,.0f} MB) that the file does not hold (at most {limit} "
                                        "digits are kept)", name=name, array=info.filename[:-4],
                                        count=f"{shape[0]:,} " if shape else "", mb=claimed / 1e6, limit=MAX_MY_DIGITS)


def load_my_digits(path: str | os.PathLike) -> MyDigits:
    """Read a file written by ``save_my_digits``; MyDigitsError naming the fault for anything else."""
    p = Path(path)
    name = p.name
    if not p.is_file():
        raise MyDigitsError.because("digits.missing", "{name}: no such file", name=name)
    try:
        with zipfile.ZipFile(p) as z:
            unpacked = sum(info.file_size for info in z.infolist())
            if unpacked <= MAX_UNPACKED_BYTES:
                _check_npy_headers(z, name)
    except (zipfile.BadZipFile, OSError):
        raise MyDigitsError.because("digits.not_npz", "{name} is not a my-digits file (expected the .npz this app lets "
                                    "you download)", name=name) from None
    if unpacked > MAX_UNPACKED_BYTES:
        raise MyDigitsError.because("digits.too_large", "{name} is too large to be a my-digits file ({mb:.0f} MB "
                                    "unpacked; at most {limit} digits are kept)", name=name, mb=unpacked / 1e6,
                                    limit=MAX_MY_DIGITS)
    try:
        with np.load(p, allow_pickle=False) as npz:
            keys = set(npz.files)
            if not keys:
                raise MyDigitsError.because("digits.no_arrays", "{name} is not a my-digits file: it has no 'images' and "
                                            "'labels' arrays (found: nothing)", name=name)
            if not {"images", "labels"} <= keys:
                raise MyDigitsError.because("digits.other_arrays", "{name} is not a my-digits file: it has no 'images' "
                                            "and 'labels' arrays (found: {found})", name=name,
                                            found=", ".join(sorted(keys)))
            if "format" in keys and str(npz["format"]) != MY_DIGITS_FORMAT:
                raise MyDigitsError.because("digits.format", "{name} has format {found!r}, expected {expected!r}",
                                            name=name, found=str(npz["format"]), expected=MY_DIGITS_FORMAT)
            images, labels = npz["images"], npz["labels"]
    except MyDigitsError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, MemoryError) as exc:  # pickled objects, truncated members
        raise MyDigitsError.because("digits.unreadable", "{name} could not be read as a my-digits file: {error}",
                                    name=name, error=str(exc)[:200]) from None
    if images.ndim != 3 or images.shape[1:] != (MNIST_SIZE, MNIST_SIZE):
        raise MyDigitsError.because("digits.images_shape", "{name}: images must have shape (N, 28, 28), got {shape}",
                                    name=name, shape=images.shape)
    if labels.shape != (len(images),):
        raise MyDigitsError.because("digits.labels_shape", "{name}: expected {count} labels, one per image, got shape "
                                    "{shape}", name=name, count=len(images), shape=labels.shape)
    if len(images) > MAX_MY_DIGITS:
        raise MyDigitsError.because("digits.file_too_many", "{name} holds {count} digits, more than the {limit} this "
                                    "app keeps", name=name, count=len(images), limit=MAX_MY_DIGITS)
    if len(labels) and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > 9):
        bad = labels[(labels < 0) | (labels > 9)] if np.issubdtype(labels.dtype, np.number) else labels
        raise MyDigitsError.because("digits.labels", "{name}: labels must be whole numbers from 0 to 9, found {found}",
                                    name=name, found=bad[:5].tolist())
    try:
        return [(_check_image(im), int(lb)) for im, lb in zip(images, labels)]
    except MyDigitsError as exc:
        raise MyDigitsError.because("digits.in_file", "{name}: {error}", name=name, error=exc) from None


# ----------------------------------------------------------------------------- fine-tuning


@dataclass
class FineTuneConfig(Config):
    """A fine-tune run. The defaults take 4-15 seconds on two CPU cores (``benchmarks/finetune.py``)."""

    model: str = setting(DEFAULT_MODEL, "model to fine-tune", choices=MODEL_CHOICES)
    # The recipe below came out of a comparison on two synthetic styles x three models x three
    # draws of 20 digits (benchmarks/RESULTS-explain.md): the style's accuracy rises by 5 to 10
    # points on average in every case, MNIST test drops by at most 0.13 points. The first one
    # (4x25 steps, lr 3e-4, distill 10, 64 MNIST images) forgot nothing but taught LeNet only
    # +2 points; a higher learning rate alone taught more but forgot up to 0.3 points, which
    # twice as many MNIST images per batch bring back down.
    rounds: int = setting(12, "rounds of steps_per_round steps, each ending with a validation point on the curves",
                          lo=1, hi="max_rounds")
    # 300 steps in all: seconds on 2 cores (benchmarks/RESULTS-explain.md).
    steps_per_round: int = setting(25, "steps per round", lo=1, hi=100_000)
    personal_per_batch: int = setting(16, "my digits per batch, drawn with replacement, each freshly augmented",
                                      label="personal digits per batch", lo=1, hi=4096)
    mnist_per_batch: int = setting(128, "MNIST training images in the rest of each batch, so MNIST is not forgotten",
                                   label="MNIST images per batch", lo=0, hi=4096)
    lr: float = setting(1e-3, "Adam's learning rate", label="learning rate", lo=0, lo_open=True, hi=1)
    distill: float = setting(3.0, "weight of the KL to the starting model's outputs on the MNIST images",
                             label="distillation weight", lo=0, hi=1000)
    augment: bool = setting(True, "random small rotations/shifts/scales/shears of both halves (never flips)",
                            label="augmentation")
    seed: int = setting(0, "random seed", lo=0, hi=2**31 - 1)
    threads: int = setting(0, "torch threads, 0 = every core this process may use", lo=0, hi=256)
    device: str = setting("auto", "auto = CUDA when available, else CPU", choices=DEVICE_CHOICES)
    # Cheap, and enough to show forgetting on the curves.
    val_limit: int = setting(1000, "MNIST validation images behind each round's validation point", lo=0)
    test_limit: int | None = setting(None, "evaluate on only this many test images (default: all 10,000)", lo=1)
    log_every: int = setting(5, "steps between running-loss reports", lo=1)
    max_rounds: int = setting(1000, "upper bound on rounds", lo=1, cli=False)


def _freeze_batchnorm(model: nn.Module) -> None:
    """BatchNorm layers to eval mode: normalise with the running statistics, never update them."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def personal_tensors(digits: MyDigits) -> tuple[torch.Tensor, torch.Tensor]:
    """My digits -> (images (N, 1, 28, 28) float in [0, 1], labels (N,) int64), validated."""
    if not digits:
        raise MyDigitsError.because("digits.none", "there are no digits to learn from yet: correct a few predictions "
                                    "first")
    images = np.stack([_check_image(im) for im, _ in digits])
    labels = np.array([_check_label(lb) for _, lb in digits], dtype=np.int64)
    return torch.from_numpy(images)[:, None], torch.from_numpy(labels)


@torch.inference_mode()
def accuracy_on(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, mean: float, std: float) -> float:
    """Accuracy of ``model`` (eval mode) on images in [0, 1] (N, 1, 28, 28)."""
    was_training = model.training
    model.eval()
    try:
        return float((model((images - mean) / std).argmax(1) == labels).float().mean()) if len(labels) else float("nan")
    finally:
        model.train(was_training)


class FineTuner(TrainingRun):
    """Fine-tunes one model on "my digits" mixed with MNIST, through the same run loop as ``training.Trainer``.

    ``source`` is the checkpoint to start from: a file (default: the shipped one,
    ``digitnet.predict.checkpoint_for(model)``) or a checkpoint dict (a visitor's weights, in
    memory). Its checkpoint keeps the base run's metrics (per-epoch ``history`` included), updates
    ``test_acc``/``test_loss``/``confusion``/``val_acc``, and adds ``finetune``: how many personal
    digits, steps, seconds, accuracy on them before/after, the MNIST test accuracy before. The
    app does not save: its scheduler keeps the weights in the visitor's workspace. The model is
    a fresh copy of the source: nothing is shared with the app's model cache.
    """

    def __init__(
        self,
        config: FineTuneConfig,
        digits: MyDigits,
        callback: Callable[[object], None] | None = None,
        checkpoint_dir: str | Path | None = None,
        data_root: str | Path | None = None,
        save: bool = True,
        source: str | Path | dict | None = None,
    ) -> None:
        super().__init__(config.validate(), callback, checkpoint_dir, data_root, save)
        self.images, self.labels = personal_tensors(digits)  # validated now: errors reach the caller, not a thread
        if source is None:
            source = checkpoint_for(self.config.model)
        # A checkpoint dict (a visitor's own weights, in memory) or a checkpoint file.
        self.base = source if isinstance(source, dict) else None
        self.source = Path(source) if self.base is None else Path(f"<{self.config.model} weights in memory>")
        if self.base is not None and self.base.get("arch") != self.config.model:
            raise ValueError(f"these weights are for {self.base.get('arch')!r}, not {self.config.model!r}")
        self.finetune_info: dict | None = None  # what a finished run adds to the checkpoint's metrics

    def prepare(self) -> int:
        cfg, device = self.config, self.device
        if self.base is None:
            self.base = load_checkpoint(self.source)
        if self.base["arch"] != cfg.model:
            raise ValueError(f"{self.source} holds a {self.base['arch']} model, not {cfg.model}")
        self.mean, self.std = float(self.base["mean"]), float(self.base["std"])
        self.teacher = model_from_checkpoint(self.base, self.source).to(device).eval().requires_grad_(False)
        self.model = copy.deepcopy(self.teacher)
        for p in self.model.parameters():
            p.requires_grad_(True)
        d0 = time.perf_counter()
        self.dataset = mdata.load_mnist(self.data_root)
        self.train_split, val = mdata.train_val_split(self.dataset)
        self.val = mdata.Split(val.images[: cfg.val_limit], val.labels[: cfg.val_limit])
        self.test = mdata.test_split(self.dataset, cfg.test_limit)
        self.timings["data_seconds"] = time.perf_counter() - d0
        self.personal_x = (self.images - self.mean) / self.std  # batches are built and augmented on the CPU, then moved
        self.personal_before = accuracy_on(self.teacher, self.images.to(device), self.labels.to(device),
                                           self.mean, self.std)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        return cfg.steps_per_round

    def passes(self) -> float:
        return self.config.rounds  # reported as the run's "epochs" (/status), worded as rounds on the page

    def train_mode(self) -> None:
        self.model.train()
        _freeze_batchnorm(self.model)

    def batches(self) -> Iterable:
        return (self._batch() for _ in range(self.config.steps_per_round))

    def step(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y, n_mnist = batch
        distill = self.config.distill
        if distill and n_mnist:
            with torch.no_grad():
                target = self.teacher(x[:n_mnist]).log_softmax(1)
            extra = lambda logits: distill * F.kl_div(  # noqa: E731
                logits[:n_mnist].log_softmax(1), target, log_target=True, reduction="batchmean")
        else:
            extra = None
        loss, logits = supervised_step(self.model, self.optimizer, x, y, extra_loss=extra)
        return loss, logits, y

    def validate(self, full: bool = True) -> tuple[float, float, int]:
        if not len(self.val):  # one point per round, each on the same few hundred images: no subset
            return float("nan"), float("nan"), 0
        return (*evaluate(self.model, self.val, self.device, mean=self.mean, std=self.std)[:2], len(self.val))

    def finish(self, result: TrainResult) -> None:
        cfg, device = self.config, self.device
        add_test_results(result, self.model, self.test, device, self.mean, self.std)
        # Refit the temperature rather than keep the base's: the weights moved, and a refit on
        # the MNIST validation images neither run trained on costs one forward pass (~1 s).
        held_out = validation_split(self.dataset, {**(self.base.get("config") or {}), "finetune": True})
        if len(held_out):
            result.temperature = fit_split_temperature(self.model, held_out, device, self.mean, self.std)
        else:
            result.temperature = float(self.base["temperature"])
        self.finetune_info = {
            "personal_digits": len(self.labels),
            "steps": cfg.rounds * cfg.steps_per_round,
            "seconds": result.train_seconds,
            "personal_acc_before": self.personal_before,
            "personal_acc_after": accuracy_on(self.model, self.images.to(device), self.labels.to(device),
                                              self.mean, self.std),
            "base_test_acc": (self.base.get("metrics") or {}).get("test_acc"),
            "test_acc": result.test_acc,
            "test_images": len(self.test),
            "source": str(self.source),
        }

    def checkpoint_metrics(self, result: TrainResult) -> dict:
        metrics = dict(self.base.get("metrics") or {})
        previous = metrics.get("finetune") or {}
        metrics.update(test_acc=result.test_acc, test_loss=result.test_loss, confusion=result.confusion,
                       val_acc=result.history[-1].val_acc if result.history else None)
        metrics["finetune"] = {**self.finetune_info, "history": [asdict(m) for m in result.history],
                               "rounds": previous.get("rounds", 0) + 1}  # fine-tunes since training
        return metrics

    def checkpoint_config(self) -> dict:
        return {**(self.base.get("config") or {}), "finetune": asdict(self.config)}

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """One mixed batch: (x, y, number of MNIST images first in it)."""
        cfg, train, generator = self.config, self.train_split, self.generator
        mnist_idx = torch.randint(len(train), (cfg.mnist_per_batch,), generator=generator)
        mine_idx = torch.randint(len(self.labels), (cfg.personal_per_batch,), generator=generator)
        xm = mdata.normalize(train.images[mnist_idx], self.mean, self.std)  # (M, 1, 28, 28)
        xp = self.personal_x[mine_idx]  # (P, 1, 28, 28)
        if cfg.augment:
            # Augmented apart: augment() pads with the batch minimum, the same background value in both.
            xm = mdata.augment(xm, generator) if len(xm) else xm
            xp = mdata.augment(xp, generator)
        x = torch.cat([xm, xp]).to(self.device, non_blocking=True)
        y = torch.cat([train.labels[mnist_idx], self.labels[mine_idx]]).to(self.device, non_blocking=True)
        return x, y, len(xm)
