"""MNIST as whole-dataset uint8 tensors, the train/validation split, batches and augmentation.

The seed used a per-sample ``Dataset`` + ``ToTensor``/``Normalize`` + ``DataLoader``:
60,000 PIL round trips an epoch. Here the four raw files are read once into uint8
tensors (55 MB: 70,000 images of 784 bytes); a batch is one tensor index, one float conversion and, when asked
for, one batched affine warp. "It is faster to load+process uint8 data than to load
preprocessed fp16 data" (airbench).
"""

from __future__ import annotations

import gzip
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .settings import download_allowed

# Mean and std of the MNIST training pixels scaled to [0, 1]; every model expects
# its input normalised with these (they travel in each checkpoint too).
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

DEFAULT_DATA_DIR = "./data"
DEFAULT_VAL_SIZE = 5_000  # 55,000 / 5,000 train/validation split of the 60,000 training images
DEFAULT_SPLIT_SEED = 0  # the split is fixed by this seed, independent of the training seed

_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class DataNotFoundError(RuntimeError):
    """MNIST is missing and could not be downloaded."""


def data_dir(root: str | os.PathLike | None = None) -> Path:
    """The MNIST root: ``root``, else ``$DIGITNET_DATA``, else ``./data``."""
    return Path(root or os.environ.get("DIGITNET_DATA") or DEFAULT_DATA_DIR)


def _raw_dir(root: Path) -> Path:
    return root / "MNIST" / "raw"


def _have_files(root: Path) -> bool:
    raw = _raw_dir(root)
    return all((raw / f).is_file() or (raw / (f + ".gz")).is_file() for f in _FILES.values())


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally .gz) into a uint8 numpy array of its stated shape."""
    if not path.is_file():
        path = path.with_name(path.name + ".gz")
    if path.suffix == ".gz":
        data = gzip.decompress(path.read_bytes())
        size = len(data)
    else:
        with open(path, "rb") as f:
            data = f.read(4 + 4 * 4)  # the header only: the body is read straight into its array below
        size = path.stat().st_size
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataNotFoundError(f"{path} is not an MNIST IDX file of unsigned bytes")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = offset + int(np.prod(dims))
    if size != expected:
        raise DataNotFoundError(f"{path} is truncated or corrupt ({size} bytes, expected {expected})")
    if path.suffix == ".gz":
        return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims).copy()
    # One writable allocation (np.fromfile), not the file's bytes plus a copy: 47 MB less at the peak.
    return np.fromfile(path, dtype=np.uint8, offset=offset).reshape(dims)


def ensure_mnist(root: str | os.PathLike | None = None, download: bool | None = None) -> Path:
    """Return the MNIST root, downloading it with torchvision when missing and allowed."""
    root = data_dir(root)
    download = download_allowed() if download is None else download
    if _have_files(root):
        return root
    error = None
    if download:
        try:
            from torchvision.datasets import MNIST

            MNIST(str(root), train=True, download=True)
            MNIST(str(root), train=False, download=True)
        except Exception as exc:  # no network, no disk space, a mirror down...
            error = exc
    if _have_files(root):
        return root
    reason = f" (download failed: {error})" if error else ""
    raise DataNotFoundError(
        f"MNIST not found in {_raw_dir(root.resolve())}{reason}. Set DIGITNET_DATA (or --data) "
        "to the folder that holds MNIST/raw/ with the four files "
        f"{', '.join(_FILES.values())}, or allow network access (and DIGITNET_DOWNLOAD=1) so torchvision "
        "can download them."
    )


@dataclass
class MNISTTensors:
    """The whole of MNIST as uint8 tensors: images (N, 28, 28), labels (N,) int64."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


_CACHE: dict[str, MNISTTensors] = {}


def load_mnist(root: str | os.PathLike | None = None, download: bool | None = None) -> MNISTTensors:
    """Load all 70,000 MNIST images once (cached per folder) as uint8 tensors."""
    root = ensure_mnist(root, download=download)
    key = str(root.resolve())
    if key not in _CACHE:
        raw = _raw_dir(root)
        arrays = {k: _read_idx(raw / f) for k, f in _FILES.items()}
        _CACHE[key] = MNISTTensors(  # _read_idx returns writable arrays: no copy needed
            train_images=torch.from_numpy(arrays["train_images"]),
            train_labels=torch.from_numpy(arrays["train_labels"].astype(np.int64)),
            test_images=torch.from_numpy(arrays["test_images"]),
            test_labels=torch.from_numpy(arrays["test_labels"].astype(np.int64)),
        )
    return _CACHE[key]


@dataclass
class Split:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of one part of the data."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


def train_val_split(
    data: MNISTTensors, val_size: int = DEFAULT_VAL_SIZE, seed: int = DEFAULT_SPLIT_SEED, limit: int | None = None
) -> tuple[Split, Split]:
    """Split the 60,000 training images into train and validation, reproducibly.

    ``limit`` keeps only the first ``limit`` images of the shuffled train part
    (for tests and quick runs); the validation part always has ``val_size`` images,
    whatever ``limit`` says (ValueError unless 0 <= val_size < the number of images).
    """
    n = len(data.train_labels)
    if not 0 <= val_size < n:
        raise ValueError(f"val_size must be between 0 and {n - 1}, got {val_size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = perm[:val_size], perm[val_size:]
    if limit is not None:
        train_idx = train_idx[:limit]
    return (
        Split(data.train_images[train_idx], data.train_labels[train_idx]),
        Split(data.train_images[val_idx], data.train_labels[val_idx]),
    )


def test_split(data: MNISTTensors, limit: int | None = None) -> Split:
    """The 10,000 test images (or the first ``limit``), never used for training or model choice."""
    return Split(data.test_images[:limit], data.test_labels[:limit])


def random_test_digit(
    rng: np.random.Generator | None = None, data_root: str | os.PathLike | None = None
) -> tuple[np.ndarray, int, int]:
    """A random MNIST test image: ((28, 28) float32 in [0, 1], white ink on black, its label, its index).

    The image is exactly what the models see for a drawing (``Prediction.seen``): the raw
    pixels scaled to [0, 1], before the mean/std normalisation. ``rng`` makes it repeatable.
    """
    data = load_mnist(data_root)
    rng = rng if rng is not None else np.random.default_rng()
    index = int(rng.integers(len(data.test_labels)))
    image = data.test_images[index].numpy().astype(np.float32) / 255.0
    return image, int(data.test_labels[index]), index


def normalize(images: torch.Tensor, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> torch.Tensor:
    """uint8 (B, 28, 28) or (B, 1, 28, 28) -> float (B, 1, 28, 28), normalised."""
    x = images.float().div_(255.0)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return x.sub_(mean).div_(std)


@dataclass
class AugmentConfig:
    """Ranges of the random affine warp applied to training batches."""

    max_rotation: float = 12.0  # degrees; digits drawn by people lean a little either way
    max_shift: float = 0.12  # fraction of the image (about 3 px); MNIST is centred by mass only
    min_scale: float = 0.85  # people draw digits thicker, thinner, larger, smaller
    max_scale: float = 1.15
    max_shear: float = 0.15  # slanted handwriting


def augment(x: torch.Tensor, generator: torch.Generator | None = None, cfg: AugmentConfig | None = None) -> torch.Tensor:
    """Random small rotation/scale/shear/shift of a whole float batch (B, 1, H, W), in one warp.

    Never flips: a mirrored 3 is not a 3. Padding is the background value
    (the batch minimum), so normalised inputs stay consistent.
    """
    cfg = cfg or AugmentConfig()
    b = x.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(b, generator=generator) * (hi - lo) + lo

    angle = uniform(-cfg.max_rotation, cfg.max_rotation) * (math.pi / 180.0)
    scale = uniform(cfg.min_scale, cfg.max_scale)
    shear = uniform(-cfg.max_shear, cfg.max_shear)
    tx, ty = uniform(-cfg.max_shift, cfg.max_shift) * 2, uniform(-cfg.max_shift, cfg.max_shift) * 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # affine_grid maps output coords to input coords: the inverse of the wanted warp.
    theta = torch.stack(
        [torch.stack([cos, -sin + shear, tx], 1), torch.stack([sin, cos, ty], 1)], 1
    ).to(x.dtype)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    background = x.amin()
    out = F.grid_sample(x - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + background


def random_hflip(x: torch.Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> torch.Tensor:
    """The seed article's ``RandomHorizontalFlip``: each image of a (B, 1, H, W) batch mirrored left-right with
    probability ``p``. A mistake for digits (a mirrored 3 is no digit, a mirrored 7 half a 7), kept as the
    ``hflip`` training setting so that a visitor can see what it costs."""
    flip = (torch.rand(len(x), generator=generator) < p).view(-1, 1, 1, 1).to(x.device)
    return torch.where(flip, x.flip(-1), x)


def iterate_batches(
    split: Split,
    batch_size: int,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
    augment_batches: bool = False,
    mean: float = MNIST_MEAN,
    std: float = MNIST_STD,
    hflip: bool = False,
):
    """Yield (x, y) batches: x float (B, 1, 28, 28) normalised, y int64 (B,); ``hflip``: ``random_hflip``'d."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else None
    for start in range(0, n, batch_size):
        # In order (an evaluation pass): a slice, not a gather of the same rows
        idx = slice(start, start + batch_size) if order is None else order[start : start + batch_size]
        x = normalize(split.images[idx], mean, std)
        if augment_batches:
            x = augment(x, generator)
        if hflip:
            x = random_hflip(x, generator)
        yield x, split.labels[idx]
