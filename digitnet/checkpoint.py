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
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .models import MODELS, build_model

FORMAT_VERSION = 1
DEFAULT_TEMPERATURE = 1.0  # no calibration: the plain softmax of the logits
# Where the repo's own trained weights live, whatever DIGITNET_CHECKPOINTS says.
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
CHECKPOINT_MODE = 0o644  # readable by all, writable by the owner, like any file the user writes


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or not ours."""


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
    """A real number (not a bool), finite and > 0."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load and validate a checkpoint dict; raise ``CheckpointError`` naming the file on any fault."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} could not be read (truncated, corrupt, or not a safe digitnet "
            f"checkpoint): {first[:300]}"
        ) from exc
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "arch" not in ckpt:
        raise CheckpointError(f"checkpoint {path} is not a digitnet checkpoint (no 'arch'/'state_dict')")
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format_version {ckpt.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    if ckpt["arch"] not in MODELS:
        raise CheckpointError(f"checkpoint {path} is for unknown model {ckpt['arch']!r}")
    for key in ("mean", "std"):
        value = ckpt.get(key)
        if not isinstance(value, (int, float)) or not math.isfinite(value) or (key == "std" and value <= 0):
            raise CheckpointError(f"checkpoint {path} has an invalid {key!r}: {value!r}")
    temperature = ckpt.get("temperature", DEFAULT_TEMPERATURE)
    if not _valid_temperature(temperature):
        raise CheckpointError(f"checkpoint {path} has an invalid 'temperature' (a number > 0 expected): {temperature!r}")
    ckpt["temperature"] = float(temperature)  # files from before calibration: T = 1
    ckpt.setdefault("metrics", {})
    ckpt.setdefault("config", {})
    return ckpt


def model_from_checkpoint(ckpt: dict, path: str | os.PathLike = "<checkpoint>") -> nn.Module:
    """Rebuild the model a checkpoint describes, in eval mode; a mismatching state_dict is a CheckpointError."""
    model = build_model(ckpt["arch"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} does not fit the {ckpt['arch']} model: {str(exc)[:300]}") from exc
    return model.eval()


def load_model(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Load a checkpoint file and return (model in eval mode, checkpoint dict)."""
    ckpt = load_checkpoint(path)
    return model_from_checkpoint(ckpt, path), ckpt
