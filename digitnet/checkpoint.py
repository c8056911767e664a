"""Checkpoints: a plain dict saved atomically, loaded with ``weights_only=True``.

Format, which scripts and tests rely on: ``{"format_version": 1, "arch": "lenet", "state_dict": {...},
"mean": 0.1307, "std": 0.3081, "metrics": {...}, "config": {...}, "temperature": 1.23}``.

``temperature`` (optional, a finite float > 0) is the softmax temperature that calibrates the
model's probabilities (``digitnet.calibrate``): probabilities are ``softmax(logits / T)``.
Files written before it existed have no key and load with T = 1 (the raw softmax), so the
format version stays 1.
"""

from __future__ import annotations

import math
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .errors import Refusal
from .models import MODELS, build_model

FORMAT_VERSION = 1
DEFAULT_TEMPERATURE = 1.0  # no calibration: the plain softmax of the logits
# Where the repo's own trained weights live, whatever DIGITNET_CHECKPOINTS says.
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
CHECKPOINT_MODE = 0o644  # readable by all, writable by the owner, like any file the user writes
# What a checkpoint file may unpack to, checked on its zip entries before ``torch.load`` reads a byte:
# the largest model's (the MLP's) is 1.1 MB, its pickled dict (history, config) ~5 kB. A file
# whose deflated entries unpack to far more is not a digitnet checkpoint (a 1.2 MB upload held 1 GB).
MAX_UNPACKED_BYTES = 16 * 1024 * 1024
MAX_PICKLE_BYTES = 1024 * 1024  # the dict's own pickle: a big one is a memory bomb of Python objects
# A calibration temperature outside this range is not a calibration: the shipped ones are 1.1-1.5;
# T near 0 overflows softmax(logits / T) into NaN, a huge T makes every answer 10%.
TEMPERATURE_RANGE = (0.05, 20.0)
MEAN_RANGE = (-1.0, 1.0)  # the input normalisation of images in [0, 1]
STD_RANGE = (0.01, 10.0)
# What a checkpoint's metrics and config may carry: a run's history has one entry per epoch
# (at most DIGITNET_MAX_EPOCHS, 30 here); the rest is dropped, not kept in memory.
MAX_HISTORY = 1000
MAX_CONFIG_KEYS = 100
MAX_TEXT = 200


class CheckpointError(Refusal, RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or not ours; its ``reason`` says which."""


def checkpoint_dir(folder: str | os.PathLike | None = None) -> Path:
    """The checkpoint folder: ``folder``, else ``$DIGITNET_CHECKPOINTS``, else the repo's ``checkpoints/``.

    The repo's folder whatever the working directory: a command-line run from elsewhere must
    write where the app reads.
    """
    return Path(folder or os.environ.get("DIGITNET_CHECKPOINTS") or SHIPPED_DIR)


def checkpoint_path(name: str, folder: str | os.PathLike | None = None) -> Path:
    """``<folder>/<name>.pt``."""
    return checkpoint_dir(folder) / f"{name}.pt"


def _plain(value: Any) -> Any:
    """Turn config/metrics values into types that ``weights_only`` loading accepts."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def checkpoint_payload(
    model: nn.Module,
    arch: str,
    mean: float,
    std: float,
    metrics: dict | None = None,
    config: dict | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
) -> dict:
    """The checkpoint dict (the format above) of ``model``: weights copied to the CPU, plain values only.

    ``temperature`` is the calibration temperature (``digitnet.calibrate``); ValueError unless it
    is finite and > 0.
    """
    if not _valid_temperature(temperature):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return {
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "mean": float(mean),
        "std": float(std),
        "metrics": _plain(metrics or {}),
        "config": _plain(config or {}),
        "temperature": float(temperature),
    }


def write_checkpoint(path: str | os.PathLike, payload: dict) -> Path:
    """Write a checkpoint dict to a temp file in the same folder, fsync it, then ``os.replace`` it into place.

    A crash or a full disk mid-write leaves the previous file untouched. The file gets the
    usual ``CHECKPOINT_MODE`` (mkstemp makes 0600 files), set on the file itself: reading the
    umask would mean changing it, process-wide, inside a threaded server.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, CHECKPOINT_MODE)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    arch: str,
    mean: float,
    std: float,
    metrics: dict | None = None,
    config: dict | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
) -> Path:
    """Save ``model`` as a checkpoint file, atomically (see ``write_checkpoint``)."""
    return write_checkpoint(path, checkpoint_payload(model, arch, mean, std, metrics, config, temperature))


def _valid_temperature(value: Any) -> bool:
    """A real number (not a bool), finite and in TEMPERATURE_RANGE."""
    return _number_in(value, *TEMPERATURE_RANGE)


def _number_in(value: Any, lo: float, hi: float) -> bool:
    """A real number (not a bool), finite, with lo <= value <= hi."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and lo <= value <= hi


def check_archive(path: str | os.PathLike, name: str, limit: int = MAX_UNPACKED_BYTES) -> None:
    """Refuse a checkpoint file that would unpack to more than ``limit`` bytes (or its pickle to more than
    MAX_PICKLE_BYTES), from its zip directory alone: nothing is inflated. A file that is not a zip (the
    legacy format, or junk) is bounded by its own size and left to ``torch.load`` to judge."""
    try:
        with zipfile.ZipFile(path) as z:
            entries = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return
    unpacked = sum(e.file_size for e in entries)
    pickled = sum(e.file_size for e in entries if e.filename.endswith(".pkl"))
    if unpacked > limit or pickled > MAX_PICKLE_BYTES:
        raise CheckpointError.because("checkpoint.unpacks_too_large", "{name} unpacks to {mb:.1f} MB; a digitnet "
                                      "checkpoint unpacks to at most {limit} MB (the largest model's weights are "
                                      "1.1 MB)", name=name, mb=unpacked / 2**20, limit=limit // 2**20)


def load_checkpoint(path: str | os.PathLike, name: str | None = None) -> dict:
    """Load and validate a checkpoint dict; raise ``CheckpointError`` naming the file on any fault.

    ``name`` is how messages name the file (default: its path); give a visitor's upload its file name,
    so that no message shows where the server keeps it. The zip's unpacked size is checked first
    (``check_archive``); the state_dict itself is checked by ``model_from_checkpoint``.
    """
    path = Path(path)
    name = str(path) if name is None else name
    if not path.is_file():
        raise CheckpointError.because("checkpoint.missing", "checkpoint {name} does not exist", name=name)
    check_archive(path, name)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # MemoryError included: no file may take the server down
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = first.replace(str(path), name).replace(str(path.parent), "")
        raise CheckpointError.because("checkpoint.unreadable", "checkpoint {name} could not be read (truncated, "
                                      "corrupt, or not a safe digitnet checkpoint): {error}",
                                      name=name, error=first[:300]) from exc
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "arch" not in ckpt:
        raise CheckpointError.because("checkpoint.not_ours", "checkpoint {name} is not a digitnet checkpoint (no "
                                      "'arch'/'state_dict')", name=name)
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise CheckpointError.because("checkpoint.format_version", "checkpoint {name} has format_version {found}, "
                                      "expected {expected}", name=name, found=_short(ckpt.get("format_version")),
                                      expected=FORMAT_VERSION)
    if not isinstance(ckpt["arch"], str) or ckpt["arch"] not in MODELS:
        raise CheckpointError.because("checkpoint.unknown_model", "checkpoint {name} is for unknown model {found} "
                                      "(one of {models} expected)", name=name, found=_short(ckpt["arch"]),
                                      models=", ".join(MODELS))
    if not isinstance(ckpt["state_dict"], dict):
        raise CheckpointError.because("checkpoint.state_dict", "checkpoint {name} has a 'state_dict' that is a "
                                      "{kind}, not a dict of tensors", name=name, kind=type(ckpt["state_dict"]).__name__)
    for key, (lo, hi) in (("mean", MEAN_RANGE), ("std", STD_RANGE)):
        value = ckpt.get(key)
        if not _number_in(value, lo, hi):
            raise CheckpointError.because("checkpoint.bad_number", "checkpoint {name} has an invalid {key!r} (a number "
                                          "from {lo:g} to {hi:g} expected): {found}", name=name, key=key, lo=lo, hi=hi,
                                          found=_short(value))
    temperature = ckpt.get("temperature", DEFAULT_TEMPERATURE)
    if not _valid_temperature(temperature):
        lo, hi = TEMPERATURE_RANGE
        raise CheckpointError.because("checkpoint.bad_number", "checkpoint {name} has an invalid {key!r} (a number "
                                      "from {lo:g} to {hi:g} expected): {found}", name=name, key="temperature", lo=lo,
                                      hi=hi, found=_short(temperature))
    # The format's keys only: anything else a file carries (an `extra` tensor, say) is not kept.
    return {"format_version": FORMAT_VERSION, "arch": ckpt["arch"], "state_dict": ckpt["state_dict"],
            "mean": float(ckpt["mean"]), "std": float(ckpt["std"]),
            "metrics": _bounded(ckpt.get("metrics")) if isinstance(ckpt.get("metrics"), dict) else {},
            "config": _bounded(ckpt.get("config")) if isinstance(ckpt.get("config"), dict) else {},
            "temperature": float(temperature)}  # files from before calibration: T = 1


def _short(value: Any) -> str:
    """A value as a message shows it: its repr, cut to MAX_TEXT characters."""
    text = repr(value)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "..."


def _bounded(value: Any, depth: int = 0) -> Any:
    """A checkpoint's metrics/config kept within bounds: plain values, short strings, at most MAX_HISTORY
    items a list and MAX_CONFIG_KEYS keys a dict, three levels deep (history -> epoch -> value); the rest
    is dropped."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if depth >= 3:
        return None
    if isinstance(value, dict):
        items = [(k, v) for k, v in value.items() if isinstance(k, str)][:MAX_CONFIG_KEYS]
        return {k[:MAX_TEXT]: _bounded(v, depth + 1) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [_bounded(v, depth + 1) for v in list(value)[:MAX_HISTORY]]
    return None  # tensors and anything else: not metrics


def model_from_checkpoint(ckpt: dict, path: str | os.PathLike = "<checkpoint>") -> nn.Module:
    """Rebuild the model a checkpoint describes, in eval mode; CheckpointError unless its state_dict holds
    exactly the model's tensors at their shapes, with finite values.

    Keys the model does not have (an ``extra`` tensor, say) are a mismatch too; ``own_state_dict``
    keeps just the model's own for a file a visitor uploads.
    """
    model = build_model(ckpt["arch"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except Exception as exc:
        raise CheckpointError.because("checkpoint.does_not_fit", "checkpoint {name} does not fit the {arch} model: "
                                      "{error}", name=path, arch=ckpt["arch"], error=str(exc)[:300]) from exc
    for key, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError.because("checkpoint.not_finite", "checkpoint {name} has weights that are not finite "
                                          "numbers (NaN or inf in {key})", name=path, key=key)
    return model.eval()


def own_state_dict(ckpt: dict, path: str | os.PathLike = "<checkpoint>") -> dict:
    """``ckpt`` with its state_dict cut to the model's own tensors (unknown keys dropped); CheckpointError
    when one is missing, is not a tensor or has another shape or kind. Shapes are checked before any tensor
    is kept, so a bloated upload keeps nothing but the model's ~0.25-1.1 MB."""
    expected = build_model(ckpt["arch"]).state_dict()
    given = ckpt["state_dict"]
    kept = {}
    for key, want in expected.items():
        have = given.get(key)
        if not isinstance(have, torch.Tensor):
            if have is None:
                raise CheckpointError.because("checkpoint.no_tensor", "checkpoint {name} does not fit the {arch} model: "
                                              "no {key!r}", name=path, arch=ckpt["arch"], key=key)
            raise CheckpointError.because("checkpoint.not_tensor", "checkpoint {name} does not fit the {arch} model: "
                                          "a non-tensor {key!r}", name=path, arch=ckpt["arch"], key=key)
        if have.shape != want.shape or have.is_floating_point() != want.is_floating_point():
            raise CheckpointError.because("checkpoint.shape", "checkpoint {name} does not fit the {arch} model: {key!r} "
                                          "has shape {shape} ({dtype}), expected {expected} ({expected_dtype})",
                                          name=path, arch=ckpt["arch"], key=key, shape=tuple(have.shape),
                                          dtype=have.dtype, expected=tuple(want.shape), expected_dtype=want.dtype)
        kept[key] = have.detach().to(want.dtype).clone()  # its own storage, not a view of a bigger one
    return {**ckpt, "state_dict": kept}


def load_model(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Load a checkpoint file and return (model in eval mode, checkpoint dict)."""
    ckpt = load_checkpoint(path)
    return model_from_checkpoint(ckpt, path), ckpt
