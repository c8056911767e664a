"""A checkpoint file a visitor uploads: checked, loaded and read into what their run list shows.

Nothing here trusts the file: ``weights_only`` loading, limits on its size packed and unpacked
(``checkpoint.py``), the model's own tensors only (at their shapes, finite), an architecture
check, and a history kept only where its entries are numbers the Train tab can plot. Errors are
``CheckpointError``s that name the file by the name the visitor gave it, never by where the server
keeps it; ``digitnet/ui/facts.py`` words them for the page.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch.nn as nn

from .checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, own_state_dict
from .models import DISPLAY_NAMES, check_model_name

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # a checkpoint of the largest model (the MLP) is ~1.1 MB


class UploadTooLarge(CheckpointError):
    """The file is larger than any digitnet checkpoint (``size`` > ``limit`` bytes)."""

    def __init__(self, name: str, size: int, limit: int = MAX_UPLOAD_BYTES) -> None:
        self.name, self.size, self.limit = name, size, limit
        super().__init__(f"{name} is {size / 2**20:.1f} MB; a digitnet checkpoint is at most {limit // 2**20} MB")


class WrongModel(CheckpointError):
    """The file holds weights of another model than the one asked for."""

    def __init__(self, name: str, found: str, wanted: str) -> None:
        self.name, self.found, self.wanted = name, found, wanted
        super().__init__(f"{name} holds a {DISPLAY_NAMES[found]} model, not {DISPLAY_NAMES[wanted]}")


@dataclass
class Upload:
    """What a checked file brings: its checkpoint (own tensors only), the model built from it, and what its
    run shows (the file's own word where it makes sense)."""

    checkpoint: dict
    model: nn.Module  # in eval mode, no gradients
    test_acc: float | None
    history: list[dict]  # the entries the Train tab can plot
    epochs: float


def _finite(value, optional: bool = False) -> bool:
    if value is None:
        return optional
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def history_entry(h) -> bool:
    """Whether a history entry is one the Train tab can plot (EpochMetrics' numbers)."""
    return (isinstance(h, dict) and all(_finite(h.get(k)) for k in ("epoch", "train_loss", "train_acc"))
            and all(_finite(h.get(k), optional=True) for k in ("val_loss", "val_acc")))


def read_upload(path: str | os.PathLike, model: str | None = None, name: str | None = None) -> Upload:
    """Check and load an uploaded checkpoint (``model``, when given, must match); CheckpointError says what
    is wrong, naming the file by ``name`` (default: its file name)."""
    path = Path(path)
    name = name or path.name
    size = path.stat().st_size if path.is_file() else 0
    if size > MAX_UPLOAD_BYTES:
        raise UploadTooLarge(name, size)
    ckpt = load_checkpoint(path, name)
    if model is not None and ckpt["arch"] != check_model_name(model):
        raise WrongModel(name, ckpt["arch"], model)
    ckpt = own_state_dict(ckpt, name)  # an `extra` tensor, or any other key, is not kept
    built = model_from_checkpoint(ckpt, name)  # finite weights that fit the architecture
    built.requires_grad_(False)
    metrics = ckpt.get("metrics") or {}
    acc = metrics.get("test_acc")
    given = metrics.get("history") if isinstance(metrics.get("history"), list) else []
    last = given[-1].get("epoch") if given and isinstance(given[-1], dict) else None
    epochs = last if _finite(last) and last > 0 else len(given)
    ok_acc = isinstance(acc, float) and math.isfinite(acc) and 0.0 <= acc <= 1.0
    return Upload(ckpt, built, acc if ok_acc else None, [h for h in given if history_entry(h)], epochs)
