"""Fool it: the smallest change to the 28x28 a model saw that makes it read another digit.

Projected gradient descent (PGD) under an L∞ bound, on the preprocessed drawing (the (28, 28)
image in [0, 1] of ``digitnet.preprocess.to_mnist_array``, i.e. ``Prediction.seen``): starting
from the drawing itself, ``STEPS`` signed-gradient steps that lower the cross-entropy of the
target digit, each followed by a projection back into the box ``|x' - x| <= eps`` and into the
valid pixel range [0, 1]. A step is ``STEP_FACTOR * eps / STEPS``, so the last steps can still
move inside the box.

The smallest bound that works is searched, not guessed: every bound of a geometric ladder
(``LADDER`` values from ``MIN_LINF`` to ``MAX_LINF``, ``CHUNK`` at a time, the smaller first) and
every target digit are one batch, one forward and one backward per step; the first bound that works
is then narrowed by bisection (``REFINE`` halvings) between it and the rung below, for the
``FINALISTS`` targets nearest to being read there. "The easiest other digit" is the one that needs
the smallest bound; a picked target is searched alone. The change reported is the L∞
distance actually used (``linf``, 0..1 pixel scale), never more than the bound it was found at.

The model reads the altered image exactly as ``predict`` would read a preprocessed drawing
(normalised with its checkpoint's mean and std, probabilities calibrated with its temperature).
Never imports gradio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import DEFAULT_TEMPERATURE
from .errors import Refusal
from .explain import upscale
from .models import NUM_CLASSES, check_model_name
from .predict import CACHE, WeightSource, single_thread
from .preprocess import MNIST_SIZE, to_mnist_array

MAX_LINF = 0.3  # the largest change tried: 30% of full ink on any one pixel (the usual MNIST bound)
MIN_LINF = 0.01  # the smallest bound of the ladder (2.5 grey levels of 255)
LADDER = 10  # bounds tried, geometric from MIN_LINF to MAX_LINF...
CHUNK = 5  # ...this many at once, the smaller first: most drawings change at the lower half, and the rest is skipped
FINALISTS = 3  # the targets the bisection narrows: those closest to being read at the first bound that works
REFINE = 4  # bisections between the first bound that works and the one below it
STEPS = 20  # PGD steps per bound
STEP_FACTOR = 2.5  # step size = STEP_FACTOR * eps / STEPS
UPSCALE = 8  # the pictures: 28x28 shown as 224x224


class FoolError(Refusal, ValueError):
    """A request that cannot be answered: a bad target digit, or the digit the model reads already."""


@dataclass
class FoolResult:
    """What a small change made one model read."""

    model: str
    original: int  # the digit the model read in the drawing
    target: int  # the digit aimed at (the visitor's, or the easiest one)
    label: int  # the digit the model reads in the altered image
    fooled: bool  # label == target (and != original) within MAX_LINF
    linf: float  # max |altered - seen|, 0..1 pixel scale
    bound: float  # the L∞ bound the change was found under (linf <= bound <= MAX_LINF)
    probs: list[float]  # the altered image's 10 calibrated probabilities
    original_probs: list[float]  # the drawing's
    seen: np.ndarray  # (28, 28) float32 in [0, 1]: the drawing as the model saw it
    altered: np.ndarray  # (28, 28) float32 in [0, 1]: the fooling image

    @property
    def difference(self) -> np.ndarray:
        """altered - seen, (28, 28), in [-linf, linf]."""
        return self.altered - self.seen

    @property
    def altered_image(self) -> np.ndarray:
        """The altered 28x28 enlarged, white ink on black, uint8 (H, W)."""
        return upscale((np.clip(self.altered, 0, 1) * 255 + 0.5).astype(np.uint8), UPSCALE)

    @property
    def difference_image(self) -> np.ndarray:
        """The change, amplified so that the largest one is full strength: red where ink was added, blue where
        it was taken away, black where nothing changed; uint8 RGB."""
        return difference_image(self.difference)


def difference_image(diff: np.ndarray, factor: int = UPSCALE) -> np.ndarray:
    """A signed change as uint8 RGB, amplified to its largest absolute value: red +, blue -, black 0."""
    d = np.asarray(diff, np.float32)
    top = float(np.abs(d).max()) or 1.0
    strength = np.clip(np.abs(d) / top, 0.0, 1.0)[..., None]
    colour = np.where((d >= 0)[..., None], np.array([1.0, 0.15, 0.1]), np.array([0.2, 0.45, 1.0]))
    return upscale((colour * strength * 255 + 0.5).astype(np.uint8), factor)


def ladder() -> torch.Tensor:
    """The bounds tried first: LADDER values, geometric from MIN_LINF to MAX_LINF."""
    return torch.logspace(np.log10(MIN_LINF), np.log10(MAX_LINF), LADDER)


def pgd(model: torch.nn.Module, seen: torch.Tensor, targets: torch.Tensor, eps: torch.Tensor, mean: float, std: float,
        steps: int = STEPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Targeted PGD for every (bound, target) pair at once.

    ``seen`` (28, 28) in [0, 1]; ``targets`` (T,) digits; ``eps`` (E,) bounds. Returns the altered
    images (E, T, 28, 28) in [0, 1], each within its bound of ``seen``, and their logits (E, T, 10).
    """
    E, T = len(eps), len(targets)
    x0 = seen.expand(E * T, 1, MNIST_SIZE, MNIST_SIZE)
    box = eps.repeat_interleave(T).view(-1, 1, 1, 1)
    aim = targets.repeat(E)
    alpha = STEP_FACTOR * box / steps
    x = x0.clone()
    with torch.enable_grad():
        for _ in range(steps):
            x.requires_grad_(True)
            loss = F.cross_entropy(model((x - mean) / std), aim, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x)
            x = x.detach() - alpha * grad.sign()  # towards the target: lower its loss
            x = torch.clamp(torch.minimum(torch.maximum(x, x0 - box), x0 + box), 0.0, 1.0)
    with torch.no_grad():
        logits = model((x - mean) / std)
    return x.view(E, T, MNIST_SIZE, MNIST_SIZE), logits.view(E, T, -1)


def _check_target(target: Any) -> int | None:
    """None (the easiest) or a digit 0-9; a digit given as a string is accepted; anything else is refused."""
    if target is None or (isinstance(target, str) and target.strip().lower() in ("", "none", "easiest")):
        return None
    digit = None
    if isinstance(target, (int, float)) and not isinstance(target, bool) and float(target).is_integer():
        digit = int(target)  # 3 or 3.0 (a JSON number)
    elif isinstance(target, str) and target.strip().isdigit():
        digit = int(target.strip())
    if digit is None or not 0 <= digit < NUM_CLASSES:
        raise FoolError.because("fool.bad_target", "The target must be a digit from 0 to 9, or empty for the easiest; "
                                "got {target!r}.", target=target)
    return digit


def fool(seen: np.ndarray, model: str, weights: WeightSource | None = None, target: Any = None) -> FoolResult:
    """The smallest change (L∞, up to MAX_LINF) to ``seen`` found by PGD that makes ``model`` read ``target``
    (None: whichever other digit needs the least). When even MAX_LINF is not enough, the result at
    MAX_LINF with ``fooled`` False. ValueError (FoolError) for a bad target or model name; a target equal
    to the digit read now is refused too."""
    name = check_model_name(model)
    aim = _check_target(target)
    net, ckpt = (weights or CACHE).get(name)
    mean, std = float(ckpt["mean"]), float(ckpt["std"])
    temperature = float(ckpt.get("temperature", DEFAULT_TEMPERATURE))
    x0 = torch.from_numpy(np.ascontiguousarray(seen, dtype=np.float32))
    with single_thread():
        with torch.no_grad():
            original_logits = net(((x0 - mean) / std)[None, None])[0]
        original = int(original_logits.argmax())
        if aim == original:
            raise FoolError.because("fool.reads_it_already", "The model already reads a {digit}: pick another target "
                                    "digit.", digit=original)
        targets = torch.tensor([aim] if aim is not None else [d for d in range(NUM_CLASSES) if d != original])
        bounds = ladder()
        for start in range(0, LADDER, CHUNK):  # the smaller bounds first; stop at the chunk that works
            images, logits = pgd(net, x0, targets, bounds[start:start + CHUNK], mean, std)
            rungs = (logits.argmax(-1) == targets).any(1).nonzero()
            if len(rungs):
                break
        if len(rungs) == 0:  # not even MAX_LINF: show the best try at the largest bound
            best = int(logits[-1].log_softmax(-1).gather(1, targets[:, None]).argmax())
            chosen, bound = images[-1, best], float(bounds[-1])
            target_digit = int(targets[best])
        else:
            k = int(rungs[0])
            low, high = (float(bounds[start + k - 1]) if start + k else 0.0), float(bounds[start + k])
            chosen, target_digit = _first_hit(images[k], logits[k], targets)
            bound = high
            near = logits[k].log_softmax(-1).gather(1, targets[:, None])[:, 0].argsort(descending=True)
            targets = targets[near[:FINALISTS]]
            for _ in range(REFINE):  # narrow the bound: the easiest target may change on the way
                mid = (low + high) / 2
                imgs, lgts = pgd(net, x0, targets, torch.tensor([mid]), mean, std)
                if (lgts[0].argmax(-1) == targets).any():
                    chosen, target_digit = _first_hit(imgs[0], lgts[0], targets)
                    high = bound = mid
                else:
                    low = mid
        with torch.no_grad():
            probs = torch.softmax(net(((chosen - mean) / std)[None, None])[0] / temperature, dim=0)
    original_probs = torch.softmax(original_logits / temperature, dim=0)
    label = int(probs.argmax())
    altered = chosen.numpy().astype(np.float32)
    return FoolResult(model=name, original=original, target=target_digit, label=label,
                      fooled=label == target_digit and label != original,
                      linf=float(np.abs(altered - x0.numpy()).max()), bound=bound,
                      probs=[float(p) for p in probs], original_probs=[float(p) for p in original_probs],
                      seen=x0.numpy(), altered=altered)


def _first_hit(images: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Of one bound's tries, the target reached with the highest probability: (its image, the digit)."""
    hit = logits.argmax(-1) == targets
    margin = logits.log_softmax(-1).gather(1, targets[:, None])[:, 0].masked_fill(~hit, -float("inf"))
    best = int(margin.argmax())
    return images[best].detach(), int(targets[best])


def fool_drawing(image: Any, model: str, weights: WeightSource | None = None, target: Any = None) -> FoolResult | None:
    """``fool`` on a drawing, photo or array as ``predict`` takes it; None for a blank one."""
    check_model_name(model)
    _check_target(target)
    seen = to_mnist_array(image)
    return None if seen is None else fool(seen, model, weights=weights, target=target)
