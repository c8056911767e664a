"""Why this answer: a saliency map, what the first layer saw, and what it has learned.

For one preprocessed drawing (the (28, 28) image in [0, 1] that
``digitnet.preprocess.to_mnist_array`` makes, i.e. ``Prediction.seen``) and one model:

- **saliency** for the predicted class by *integrated gradients* (IG): the gradient of
  the class logit, averaged along the straight path from a blank canvas to the drawing,
  times the drawing. Chosen over occlusion because (1) it is exact bookkeeping: the
  attributions add up to logit(drawing) - logit(blank canvas) ("completeness"), so red
  and blue pixels are the evidence for and against the class in the model's own units;
  (2) it is per pixel, where occlusion is as coarse as its patch; (3) it is cheap: the
  32 path points are one batch, one forward and one backward (~10 ms on one core for the
  CNNs), where occlusion with a 4x4 patch at stride 2 is 169 forwards. The baseline is
  the blank canvas (MNIST's black background), so the map answers "which ink made it a
  7": pixels without ink get no attribution.
- **first layer, CNNs**: the feature maps of ``conv1`` (after its BatchNorm and ReLU:
  what the second layer sees), captured with a forward hook, and the learned 5x5
  ``conv1`` filters.
- **first layer, MLP**: the weight patterns (784 weights as a 28x28 image) of the
  ``fc1`` units this drawing activates most.

Every array comes with a ready-to-show uint8 RGB image (``gr.Image`` shows numpy arrays).

Never touches the shared model of ``digitnet.predict.CACHE``: each model is explained
with a private copy (parameters frozen, eval mode), made once per loaded model, under a
lock (the forward hook must see only its own forward). Never imports gradio.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torchvision.utils import make_grid

from .calibrate import checkpoint_probs
from .models import check_model_name
from .predict import CACHE, single_thread
from .preprocess import MNIST_SIZE, to_tensor

IG_STEPS = 32  # path points; completeness holds to ~1% of the logit on these models at 32
UPSCALE = 8  # 28x28 shown as 224x224, nearest neighbour: every input pixel stays a visible square
MLP_UNITS = 16  # fc1 units shown for the MLP
CELL = 56  # side of one map in a grid image (a 24x24 or 28x28 map at 2x, a 5x5 filter at ~11x)
GRID_PAD = 4  # pixels between grid cells
GRID_BACKGROUND = 255  # white gaps between cells
MAP_CMAP = "magma"  # activations (>= 0): dark = silent, bright = strongly active
SIGNED_CMAP = "RdBu_r"  # weights and filters: red positive, blue negative, white zero
SALIENCY_CLIP = 99.0  # percentile of |saliency| mapped to full colour; a few extreme pixels don't wash out the rest
INK_SHADE = 0.45  # brightness of the drawing under the saliency colours


@dataclass
class Explanation:
    """Everything the Explain view shows for one drawing and one model."""

    model: str  # 'mlp', 'cnnnet' or 'lenet'
    digit: int  # the predicted class the saliency explains (or the ``target`` asked for)
    probs: list[float]  # the model's ten calibrated probabilities for the drawing (as predict gives them)
    saliency: np.ndarray  # (28, 28) float32 IG attributions in logit units; sum ~ logit(x) - logit(blank)
    saliency_image: np.ndarray  # (224, 224, 3) uint8: red = for the class, blue = against, over the drawing
    maps: np.ndarray  # CNNs: (C, H, W) conv1 feature maps >= 0; MLP: (16, 28, 28) fc1 weight patterns
    maps_image: np.ndarray  # uint8 RGB grid of ``maps``
    maps_title: str  # what ``maps`` shows, for a caption
    filters: np.ndarray | None = None  # CNNs: (C, 5, 5) conv1 filters; MLP: None
    filters_image: np.ndarray | None = None  # uint8 RGB grid of ``filters``
    units: list[int] = field(default_factory=list)  # MLP: the fc1 units shown, most active first
    seconds: float = 0.0  # wall time of the computation


# ----------------------------------------------------------------------------- images


def _colormap(name: str) -> np.ndarray:
    """(256, 3) uint8 lookup table of a matplotlib colour map."""
    from matplotlib import colormaps  # lazily: only the Explain view needs it

    return (colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255 + 0.5).astype(np.uint8)


_LUTS: dict[str, np.ndarray] = {}


def colorize(values: np.ndarray, cmap: str = MAP_CMAP, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """2-D array -> (H, W, 3) uint8 through a colour map; vmin/vmax default to the array's range."""
    if cmap not in _LUTS:
        _LUTS[cmap] = _colormap(cmap)
    v = np.asarray(values, np.float32)
    lo = float(v.min()) if vmin is None else vmin
    hi = float(v.max()) if vmax is None else vmax
    scaled = np.zeros_like(v) if hi <= lo else (v - lo) / (hi - lo)
    return _LUTS[cmap][np.clip(scaled * 255 + 0.5, 0, 255).astype(np.uint8)]


def upscale(image: np.ndarray, factor: int = UPSCALE) -> np.ndarray:
    """Nearest-neighbour enlargement of an (H, W) or (H, W, C) image: pixels stay sharp squares."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def saliency_overlay(seen: np.ndarray, saliency: np.ndarray, factor: int = UPSCALE) -> np.ndarray:
    """The drawing in grey with the attributions over it: red for the class, blue against; uint8 RGB."""
    s = np.asarray(saliency, np.float32)
    top = float(np.percentile(np.abs(s), SALIENCY_CLIP)) or float(np.abs(s).max()) or 1.0
    strength = np.clip(np.abs(s) / top, 0.0, 1.0)[..., None]  # (28, 28, 1)
    base = (np.asarray(seen, np.float32) * INK_SHADE)[..., None].repeat(3, axis=2)
    colour = np.where((s >= 0)[..., None], np.array([1.0, 0.1, 0.05]), np.array([0.1, 0.35, 1.0]))
    rgb = base * (1.0 - strength) + colour * strength
    return upscale((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8), factor)


def grid_image(maps: np.ndarray, cols: int | None = None, cmap: str = MAP_CMAP, symmetric: bool = False,
               shared_scale: bool = True, cell: int = CELL) -> np.ndarray:
    """(N, h, w) maps -> one uint8 RGB grid image, each map enlarged (nearest) to about ``cell`` px.

    ``symmetric``: a diverging scale centred on 0 (weights); ``shared_scale``: one scale for
    all maps, so a silent map looks silent (activations), else each map uses its own range.
    """
    maps = np.asarray(maps, np.float32)
    n, h, w = maps.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    factor = max(1, round(cell / max(h, w)))
    absmax = float(np.abs(maps).max()) or 1.0
    cells = []
    for m in maps:
        if symmetric:
            limit = absmax if shared_scale else (float(np.abs(m).max()) or 1.0)
            vmin, vmax = -limit, limit
        else:
            vmin, vmax = (float(maps.min()), float(maps.max())) if shared_scale else (None, None)
        cells.append(torch.from_numpy(upscale(colorize(m, cmap, vmin, vmax), factor)).permute(2, 0, 1))
    # Blank cells to the end of the grid's rows: make_grid narrows a grid of fewer maps than columns, and
    # returns a lone map without its border.
    blank = torch.full_like(cells[0], GRID_BACKGROUND)
    lone = n == 1 and cols == 1
    cells += [blank] * (-n % cols + lone)
    grid = make_grid(torch.stack(cells), nrow=cols + lone, padding=GRID_PAD, pad_value=GRID_BACKGROUND)
    return grid[:, :, : cols * (cells[0].shape[2] + GRID_PAD) + GRID_PAD].permute(1, 2, 0).numpy()


# ----------------------------------------------------------------------------- private model copies


class _Private:
    """A frozen copy of one loaded model and the lock its explanations take turns on."""

    def __init__(self, source: nn.Module) -> None:
        self.source = source  # kept so a new model (after training) is told from the old one
        # gradients flow to the input only; nothing accumulates on weights
        self.model = copy.deepcopy(source).eval().requires_grad_(False)
        self.lock = threading.Lock()


_PRIVATE: dict[str, _Private] = {}
_PRIVATE_LOCK = threading.Lock()


def _private(name: str, source: nn.Module) -> _Private:
    """The private copy for ``name``, made again when the cache hands out a different model object."""
    with _PRIVATE_LOCK:
        entry = _PRIVATE.get(name)
        if entry is None or entry.source is not source:
            entry = _PRIVATE[name] = _Private(source)
        return entry


def _first(model: nn.Module, kind: type) -> nn.Module | None:
    return next((m for m in model.modules() if isinstance(m, kind)), None)


def _activation_layer(model: nn.Module, first: nn.Module) -> nn.Module:
    """The first layer's BatchNorm when it has one (``bn1`` in all three models), else the layer itself."""
    bn = getattr(model, "bn1", None)
    return bn if isinstance(bn, nn.modules.batchnorm._BatchNorm) else first


# ----------------------------------------------------------------------------- explanations


def integrated_gradients(model: nn.Module, x: torch.Tensor, baseline: torch.Tensor, target: int,
                         steps: int = IG_STEPS) -> np.ndarray:
    """IG attributions (28, 28) of class ``target`` for input x (1, 1, 28, 28), all path points in one batch.

    Midpoint rule: alphas (k + 0.5) / steps. ``model`` must be in eval mode (BatchNorm with
    running statistics), so the points of the batch do not influence one another.
    """
    alphas = (torch.arange(steps, dtype=x.dtype) + 0.5).div_(steps).view(-1, 1, 1, 1)  # (S, 1, 1, 1)
    with torch.enable_grad():
        path = (baseline + alphas * (x - baseline)).requires_grad_(True)  # (S, 1, 28, 28)
        logits = model(path)  # (S, 10)
        (grads,) = torch.autograd.grad(logits[:, target].sum(), path)
    return ((x - baseline) * grads.mean(0, keepdim=True))[0, 0].numpy().astype(np.float32)


def explain(seen: np.ndarray, model: str, weights: Any = None, target: int | None = None) -> Explanation:
    """Explain one model's answer for a preprocessed drawing ((28, 28) in [0, 1], ``Prediction.seen``).

    ``target`` explains another class than the predicted one. ``weights`` (a
    ``predict.WeightSource``) defaults to ``digitnet.predict.CACHE``; ModelUnavailable / ValueError as its ``get`` raises them.
    """
    t0 = time.perf_counter()
    name = check_model_name(model)
    weights = CACHE if weights is None else weights

    seen = np.asarray(seen, np.float32)
    if seen.shape != (MNIST_SIZE, MNIST_SIZE):
        raise ValueError(f"explain() takes the preprocessed 28x28 drawing, got shape {seen.shape}")
    shared, ckpt = weights.get(name)
    private = _private(name, shared)
    net = private.model
    mean, std = float(ckpt["mean"]), float(ckpt["std"])
    x = to_tensor(seen, mean, std)  # (1, 1, 28, 28)
    baseline = to_tensor(np.zeros_like(seen), mean, std)  # the blank canvas
    conv = _first(net, nn.Conv2d)
    first = conv if conv is not None else _first(net, nn.Linear)
    captured: list[torch.Tensor] = []

    with private.lock, single_thread():  # one image: one thread is fastest (see digitnet/predict.py)
        hook = _activation_layer(net, first).register_forward_hook(lambda m, i, out: captured.append(out.detach()))
        try:
            with torch.no_grad():
                logits = net(x)  # (1, 10)
        finally:
            hook.remove()
        probs = checkpoint_probs(logits, ckpt)[0]  # calibrated, as predict()
        digit = int(probs.argmax()) if target is None else int(target)
        if not 0 <= digit < logits.shape[1]:
            raise ValueError(f"target must be a class from 0 to {logits.shape[1] - 1}, got {target!r}")
        saliency = integrated_gradients(net, x, baseline, digit)
        activation = torch.relu(captured[0][0])  # CNNs (C, H, W); MLP (300,)

        if conv is not None:
            maps = activation.numpy()
            filters = conv.weight.detach()[:, 0].numpy().copy()  # (C, 5, 5)
            units: list[int] = []
            maps_title = f"conv1 feature maps ({maps.shape[0]} channels, after BatchNorm and ReLU)"
        else:
            order = torch.argsort(activation, descending=True)[:MLP_UNITS]
            units = [int(u) for u in order]
            maps = first.weight.detach()[order].reshape(-1, MNIST_SIZE, MNIST_SIZE).numpy().copy()
            filters = None
            maps_title = f"weights of the {len(units)} fc1 units this drawing activates most (red +, blue -)"

    return Explanation(
        model=name, digit=digit, probs=[float(p) for p in probs],
        saliency=saliency, saliency_image=saliency_overlay(seen, saliency),
        maps=maps,
        maps_image=grid_image(maps, cmap=MAP_CMAP) if conv is not None
        else grid_image(maps, cmap=SIGNED_CMAP, symmetric=True, shared_scale=False),
        maps_title=maps_title,
        filters=filters,
        filters_image=None if filters is None else grid_image(filters, cmap=SIGNED_CMAP, symmetric=True, shared_scale=False),
        units=units,
        seconds=time.perf_counter() - t0,
    )
