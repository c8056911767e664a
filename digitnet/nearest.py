"""The training digits a model thinks a drawing is like: nearest neighbours in its penultimate layer.

A model's penultimate features are the input of its last linear layer (the MLP's 100 hidden
units, CNNNet's ``fc1`` (100), LeNet's ``fc2`` (84)): what the classifier's last step reads.
``nearest(image, model)`` compares the drawing's features with those of all 60,000 MNIST
training images by cosine similarity and returns the 8 closest, with their labels.

The training set's features are computed once per set of weights (a few seconds for LeNet on
2 cores) and kept, L2-normalised as float32 (60,000 x 100 x 4 bytes = 24 MB):

- in memory, for the last ``MEMORY_ENTRIES`` sets of weights (the three shipped ones and a few
  visitors' own), keyed by a hash of the weights, so a visitor's own weights are rebuilt once;
- on disk, for the shipped ones and any other, in ``feature_cache_dir()``
  (``$DIGITNET_CACHE``, else ``<MNIST root>/digitnet-features``), written atomically; a folder
  that cannot be written is skipped (memory only).

A query is then one matrix-vector product (60,000 x 100) and a partial sort: milliseconds.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .data import data_dir, load_mnist, normalize
from .models import check_model_name
from .predict import CACHE, WeightSource, single_thread
from .preprocess import to_mnist_array, to_tensor
from .settings import feature_cache

NEIGHBOURS = 8  # how many training digits /nearest returns
MEMORY_ENTRIES = 6  # feature matrices kept in memory (24 MB each for 100 features)
FEATURE_BATCH = 2_000  # training images per forward pass while building
FORMAT = 1  # bump when the stored features change meaning


class NothingDrawn(ValueError):
    """The drawing is blank: there is nothing to compare."""


@dataclass(frozen=True)
class Neighbour:
    """One MNIST training image close to the drawing."""

    label: int
    train_index: int  # index into MNIST's 60,000 training images (train-images-idx3-ubyte)
    similarity: float  # cosine similarity of penultimate features, -1..1

    def as_dict(self) -> dict:
        return {"label": self.label, "train_index": self.train_index, "similarity": self.similarity}


def last_linear(model: nn.Module) -> nn.Linear:
    """The model's output layer (its last nn.Linear): its input is the penultimate features."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no linear layer")
    return linears[-1]


def penultimate(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, F) penultimate features of a normalised batch (B, 1, 28, 28): the last linear layer's input."""
    seen: list[torch.Tensor] = []
    hook = last_linear(model).register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0]))
    try:
        with torch.inference_mode():
            model(x)
    finally:
        hook.remove()
    return seen[0].float()


def weights_key(model: nn.Module, ckpt: dict) -> str:
    """A hash of what decides the features: architecture, normalisation and every tensor of the weights."""
    h = hashlib.sha256(f"{FORMAT}|{ckpt.get('arch')}|{ckpt.get('mean')}|{ckpt.get('std')}".encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def feature_cache_dir(root: str | os.PathLike | None = None) -> Path:
    """Where training-set features are kept on disk: ``$DIGITNET_CACHE`` or ``<MNIST root>/digitnet-features``."""
    folder = feature_cache()
    return Path(folder) if folder else data_dir(root) / "digitnet-features"


def _normalised(features: torch.Tensor) -> np.ndarray:
    f = features.float()
    return (f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)).numpy().astype(np.float32)


def build_features(model: nn.Module, ckpt: dict, images: torch.Tensor) -> np.ndarray:
    """L2-normalised penultimate features (N, F) float32 of uint8 images (N, 28, 28)."""
    out = []
    model.eval()
    for start in range(0, len(images), FEATURE_BATCH):
        x = normalize(images[start:start + FEATURE_BATCH], ckpt["mean"], ckpt["std"])
        out.append(penultimate(model, x))
    return _normalised(torch.cat(out))


class FeatureIndex:
    """The training set's features per set of weights: memory (LRU) first, then disk, else built."""

    def __init__(self, data_root: str | os.PathLike | None = None, folder: str | os.PathLike | None = None,
                 limit: int | None = None) -> None:
        self.data_root = data_root
        self.folder = Path(folder) if folder else None
        self.limit = limit  # the first `limit` training images only (tests)
        self._lock = threading.Lock()
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._keys: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model object -> weights_key
        self._building: dict[str, threading.Lock] = {}
        self.builds = 0  # how many times features were computed (tests: once per weights)

    def labels(self) -> np.ndarray:
        labels = load_mnist(self.data_root).train_labels
        return labels[: self.limit].numpy() if self.limit else labels.numpy()

    def _path(self, arch: str, key: str) -> Path:
        folder = self.folder or feature_cache_dir(self.data_root)
        return folder / f"{arch}-{key}-{self.limit or 'all'}.npy"

    def _key(self, model: nn.Module, ckpt: dict) -> str:
        key = self._keys.get(model)  # models are replaced, never changed in place (predict.ModelCache)
        if key is None:
            key = weights_key(model, ckpt)
            self._keys[model] = key
        return key

    def features(self, model: nn.Module, ckpt: dict) -> np.ndarray:
        """(N, F) normalised training features for these weights, built at most once."""
        key = self._key(model, ckpt)
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return self._memory[key]
            building = self._building.setdefault(key, threading.Lock())
        with building:  # one build per weights, however many requests wait for it
            with self._lock:
                if key in self._memory:
                    return self._memory[key]
            feats = self._load_or_build(model, ckpt, key)
            with self._lock:
                self._memory[key] = feats
                while len(self._memory) > MEMORY_ENTRIES:
                    self._memory.popitem(last=False)
                self._building.pop(key, None)
        return feats

    def _load_or_build(self, model: nn.Module, ckpt: dict, key: str) -> np.ndarray:
        path = self._path(str(ckpt.get("arch")), key)
        try:
            feats = np.load(path, allow_pickle=False)
            if feats.ndim == 2 and feats.dtype == np.float32 and len(feats) == len(self.labels()):
                return feats
        except (OSError, ValueError):
            pass
        images = load_mnist(self.data_root).train_images
        self.builds += 1
        feats = build_features(model, ckpt, images[: self.limit] if self.limit else images)
        self._store(path, feats)
        return feats

    @staticmethod
    def _store(path: Path, feats: np.ndarray) -> None:
        """Write atomically; a folder we cannot write is not an error (the features stay in memory)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
            with os.fdopen(fd, "wb") as f:
                np.save(f, feats, allow_pickle=False)
            os.replace(tmp, path)
        except OSError:
            pass


INDEX = FeatureIndex()


def nearest_to(seen: np.ndarray, model: nn.Module, ckpt: dict, index: FeatureIndex,
               k: int = NEIGHBOURS) -> list[Neighbour]:
    """The ``k`` training images whose penultimate features are closest (cosine) to a 28x28's."""
    feats = index.features(model, ckpt)
    with single_thread():
        query = _normalised(penultimate(model, to_tensor(seen, ckpt["mean"], ckpt["std"])))[0]
        sims = feats @ query  # (N,)
    k = min(k, len(sims))
    top = np.argpartition(-sims, k - 1)[:k]
    top = top[np.lexsort((top, -sims[top]))]  # most similar first; ties: the lower index
    labels = index.labels()
    return [Neighbour(int(labels[i]), int(i), round(float(sims[i]), 6)) for i in top]


def nearest(image: Any, model: str, weights: WeightSource | None = None, index: FeatureIndex | None = None,
            k: int = NEIGHBOURS) -> list[Neighbour]:
    """The training digits ``model`` finds most like a drawing (any input ``preprocess`` reads).

    NothingDrawn for a blank drawing; ValueError for an unknown model, ModelUnavailable for a
    broken checkpoint, ``preprocess.ImageError`` for input that is not an image.
    """
    name = check_model_name(model)
    seen = to_mnist_array(image)
    if seen is None:
        raise NothingDrawn("Draw a digit first: a blank drawing looks like nothing.")
    net, ckpt = (weights or CACHE).get(name)
    return nearest_to(seen, net, ckpt, index or INDEX, k)


def train_image(index: int, data_root: str | os.PathLike | None = None) -> np.ndarray:
    """MNIST training image ``index`` as a (28, 28) float32 in [0, 1]."""
    images = load_mnist(data_root).train_images
    if not 0 <= int(index) < len(images):
        raise IndexError(f"no MNIST training image {index}")
    return images[int(index)].numpy().astype(np.float32) / 255.0
