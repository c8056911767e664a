"""The three models of the seed article, fixed for 1x28x28 MNIST input, and the registry of models.

Every model takes a float tensor of shape (B, 1, 28, 28), normalised with the
MNIST mean/std, and returns *logits* of shape (B, 10). Softmax is applied only
where probabilities are shown (see ``digitnet.predict``), never inside a model:
``nn.CrossEntropyLoss`` already applies log-softmax.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights

NUM_CLASSES = 10


class _MaxPool2x2Function(torch.autograd.Function):
    """2x2 max pooling (stride 2) on the CPU as four strided views, with a cheap backward.

    PyTorch's CPU ``max_pool2d`` on small NCHW maps is slow: 3.1 ms forward for LeNet's first
    (256, 6, 28, 28) map at two threads, 4 ms with its backward, while an elementwise maximum
    of the four strided quarters takes 0.4 ms. The forward keeps which quarter won, as float
    0/1 masks (``gt_`` in place: float masks multiply fast, bool ones do not), and the backward
    routes the gradient there: 2.6 instead of 4 ms for that map. Ties go to the first of the
    four in row-major order, as in PyTorch; ``tests/test_models.py`` compares both.
    """

    @staticmethod
    def forward(ctx, x):
        a, b, c, d = x[..., 0::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 0::2], x[..., 1::2, 1::2]
        top, bottom = torch.maximum(a, b), torch.maximum(c, d)
        right_top = torch.sub(b, a).gt_(0)  # 1 where b beat a
        right_bottom = torch.sub(d, c).gt_(0)
        lower = torch.sub(bottom, top).gt_(0)  # 1 where the bottom row won
        ctx.save_for_backward(right_top, right_bottom, lower)
        ctx.shape = x.shape
        return torch.maximum(top, bottom)

    @staticmethod
    def backward(ctx, grad_out):
        right_top, right_bottom, lower = ctx.saved_tensors
        g_bottom = grad_out * lower
        g_top = grad_out - g_bottom
        g_b = g_top * right_top
        g_d = g_bottom * right_bottom
        grad_x = grad_out.new_empty(ctx.shape)
        grad_x[..., 0::2, 0::2] = g_top - g_b
        grad_x[..., 0::2, 1::2] = g_b
        grad_x[..., 1::2, 0::2] = g_bottom - g_d
        grad_x[..., 1::2, 1::2] = g_d
        return grad_x


class MaxPool2x2(nn.Module):
    """``nn.MaxPool2d(2, 2)`` for even-sized maps, faster on the CPU (see ``_MaxPool2x2Function``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.shape[-1] % 2 or x.shape[-2] % 2:
            return F.max_pool2d(x, 2)
        if torch.is_grad_enabled() and x.requires_grad:
            return _MaxPool2x2Function.apply(x)
        return torch.maximum(torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2]),
                             torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2]))


class MLP(nn.Module):
    """784-300-100-10 fully connected net with BatchNorm, as in the seed.

    Differences from the seed's ``Net``:
    - ``forward`` returns logits. The seed applied ``softmax`` and then
      ``CrossEntropyLoss``, which applies log-softmax a second time: the
      gradients shrink and training stalls around 90-95%.
    - optional dropout after each hidden layer, i.e. twice (regularisation for
      longer runs with augmentation).
    """

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(28 * 28, 300)
        self.bn1 = nn.BatchNorm1d(300)
        self.fc2 = nn.Linear(300, 100)
        self.bn2 = nn.BatchNorm1d(100)
        self.out = nn.Linear(100, NUM_CLASSES)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(x)  # (B, 784)
        x = self.drop(F.relu(self.bn1(self.fc1(x))))  # (B, 300)
        x = self.drop(F.relu(self.bn2(self.fc2(x))))  # (B, 100)
        return self.out(x)  # (B, 10) logits


class CNNNet(nn.Module):
    """Two 5x5 conv blocks (16 and 30 channels, as in the seed) and a small classifier.

    Differences from the seed's ``CNNNet``:
    - one input channel (MNIST is grey), not three (the seed was written for CIFAR-10).
    - ``fc3 = nn.Linear(30, 10)`` did not match the flattened conv output; on
      28x28 input it is 30 x 4 x 4 = 480 features. We add a 100-unit hidden layer
      (``fc1``) before the output (``fc2``): the single linear layer on 480 features
      plateaus below the 99.4% we ship.
    - BatchNorm after each convolution: it lets a high one-cycle learning rate
      converge in one or two epochs, which is what makes "99% in seconds" possible.
    - optional dropout, applied twice with the same rate: on the 480 flattened conv
      features (before ``fc1``) and on ``fc1``'s 100 outputs (before ``fc2``).
    """

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5)  # 28 -> 24
        self.bn1 = nn.BatchNorm2d(16)
        self.pool1 = MaxPool2x2()  # 24 -> 12
        self.conv2 = nn.Conv2d(16, 30, 5)  # 12 -> 8
        self.bn2 = nn.BatchNorm2d(30)
        self.pool2 = MaxPool2x2()  # 8 -> 4
        self.drop = nn.Dropout(dropout)
        self.fc1 = nn.Linear(30 * 4 * 4, 100)
        self.fc2 = nn.Linear(100, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.pool1(self.bn1(self.conv1(x))))  # (B, 16, 12, 12)
        x = F.relu(self.pool2(self.bn2(self.conv2(x))))  # (B, 30, 4, 4)
        x = torch.flatten(x, 1)  # (B, 480)
        x = self.drop(F.relu(self.fc1(self.drop(x))))  # (B, 100)
        return self.fc2(x)  # (B, 10) logits


class LeNet(nn.Module):
    """LeNet-5: 6 and 16 channels of 5x5 convolutions, then 120-84-10.

    Differences from the seed's ``LeNet``:
    - ``forward`` used ``self.pool1``/``self.pool2`` that ``__init__`` never
      defined (AttributeError on the first batch); they are defined here.
    - one input channel; ``conv1`` pads by 2 so the 28x28 digit is seen as the
      32x32 input of the original LeNet-5 and ``16 * 5 * 5`` stays right.
    - BatchNorm after each convolution, for fast convergence (see ``CNNNet``).
    - ``torch.flatten(x, 1)`` instead of ``x.view(-1, 400)``, which silently
      reshapes a wrong-sized input into a wrong batch size.
    - optional dropout after each hidden layer of the classifier (``fc1`` and ``fc2``).
    """

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)  # 28 -> 28
        self.bn1 = nn.BatchNorm2d(6)
        self.pool1 = MaxPool2x2()  # 28 -> 14
        self.conv2 = nn.Conv2d(6, 16, 5)  # 14 -> 10
        self.bn2 = nn.BatchNorm2d(16)
        self.pool2 = MaxPool2x2()  # 10 -> 5
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, NUM_CLASSES)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # ReLU after the pool: max and ReLU commute, so the numbers are the seed's order's, for a
        # quarter of the ReLU's work (the same in CNNNet).
        x = F.relu(self.pool1(self.bn1(self.conv1(x))))  # (B, 6, 14, 14)
        x = F.relu(self.pool2(self.bn2(self.conv2(x))))  # (B, 16, 5, 5)
        x = torch.flatten(x, 1)  # (B, 400)
        x = self.drop(F.relu(self.fc1(x)))  # (B, 120)
        x = self.drop(F.relu(self.fc2(x)))  # (B, 84)
        return self.fc3(x)  # (B, 10) logits


# ---------------------------------------------------------------------------- the registry
#
# One record per model holds every fact about it that the rest of the code needs. Adding a model is
# a class above and one ``register(ModelEntry(...))`` below: the command line, the Train form, the
# Draw tab, Compare, /predict and the page read the registry (CONTRIBUTING.md, "A new model").

# A page layer: (name, kind "conv"/"linear", BatchNorm folded into it or None, conv padding, 2x2 max
# pool after it, ReLU after it); digitnet.webmodel turns a checkpoint into these for the page.
PageLayer = tuple[str, str, "str | None", int, bool, bool]


@dataclass(frozen=True)
class ModelEntry:
    """Everything about one model: what it is, how it is shown, trained, timed and run in the page."""

    name: str  # the contract name: /predict's and /train's model, --model, a checkpoint's arch
    cls: type[nn.Module]  # built as cls(dropout=...)
    display_name: str  # shown to people (the UI, progress lines)
    # Feature blocks, input side first: what FreezeOut stops training one after another
    # (TrainConfig.freeze), while the classifier after them trains to the end.
    feature_blocks: tuple[tuple[str, ...], ...]
    # The fast recipe: TrainConfig's epochs, batch_size, lr, freeze (and freeze_from) when not given.
    recipe: dict
    # Speed prior, before any run of the model has finished on this machine (the scheduler's ETA):
    # seconds per training image at the recipe's batch on two cores, and the fixed cost of a step.
    seconds_per_image: float
    step_seconds: float
    # The page's forward pass: the layers in forward order (PageLayer above), and where each hidden
    # layer's output comes from in the PyTorch model (that module's output, then ReLU).
    page_layers: tuple[PageLayer, ...]
    page_probes: dict[str, str]


REGISTRY: dict[str, ModelEntry] = {}
DEFAULT_MODEL = "lenet"  # the model the Draw and Train tabs, /train and the command line start with


def register(entry: ModelEntry) -> ModelEntry:
    """Add a model to every part of digitnet (register before the app or the command line is built)."""
    REGISTRY[entry.name] = entry
    return entry


class RegistryField(Mapping):
    """One field of every registered model, by name: a read-only view of ``REGISTRY``."""

    def __init__(self, attr: str) -> None:
        self.attr = attr

    def __getitem__(self, name: str):
        return getattr(REGISTRY[name], self.attr)

    def __iter__(self):
        return iter(REGISTRY)

    def __len__(self) -> int:
        return len(REGISTRY)

    def __repr__(self) -> str:
        return repr(dict(self))


MODELS: Mapping[str, type[nn.Module]] = RegistryField("cls")
DISPLAY_NAMES: Mapping[str, str] = RegistryField("display_name")
FEATURE_BLOCKS: Mapping[str, tuple[tuple[str, ...], ...]] = RegistryField("feature_blocks")
FAST_RECIPES: Mapping[str, dict] = RegistryField("recipe")
SECONDS_PER_IMAGE: Mapping[str, float] = RegistryField("seconds_per_image")
STEP_SECONDS: Mapping[str, float] = RegistryField("step_seconds")


def check_model_name(name: str) -> str:
    """Return the canonical model name, or raise ValueError naming the valid choices."""
    key = str(name).strip().lower() if name is not None else ""
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    return key


# The fast recipe, per model: the shortest one-cycle run, at the batch and peak learning rate that make
# it cheapest on 2 cores, that reaches 99% test accuracy (the MLP: 98%) on every seed 0-9 at the
# command line's two threads. Among the candidates cheap enough for the speed target, the one with
# the best MEAN VALIDATION accuracy over those seeds is chosen; test is the check, never the criterion.
# The candidates, their figures and why each was kept or dropped: benchmarks/RESULTS-speed.md; the
# runs: benchmarks/results/seeds-*.json (python -m benchmarks.seeds).
# - LeNet: 1.5 epochs (one pass and half of another) with FreezeOut: its first conv block stops
#   training halfway, its second at three quarters (later than thirds: a margin above 99% for a
#   little more time).
# - CNNNet: one epoch; FreezeOut does not pay for it.
# - MLP: 2 epochs at batch 384 (a sample costs less there than at 256).
# The speed priors: an epoch of 55,000 images takes ~1 s (MLP), ~5 s (CNNNet) and ~3.7 s (LeNet)
# (benchmarks/RESULTS-speed.md). A step also costs a fixed time whatever its batch (~100 operator
# calls, slicing the batch): LeNet's is ~2 ms at batch 8 on 2 threads (RESULTS-speed.md, "Cost of a
# LeNet sample by batch"), the MLP's ~1.2 ms (its sample costs at 256, 384 and 512), and a batch-1
# LeNet run was seen at 2.5-3 ms a step.
register(ModelEntry(
    "mlp", MLP, "MLP", feature_blocks=(("fc1", "bn1"), ("fc2", "bn2")),
    recipe={"epochs": 2, "batch_size": 384, "lr": 0.02, "freeze": False},
    seconds_per_image=1.0 / 55_000, step_seconds=1.5e-3,
    page_layers=(
        ("fc1", "linear", "bn1", 0, False, True),  # 784 -> 300
        ("fc2", "linear", "bn2", 0, False, True),  # 300 -> 100
        ("out", "linear", None, 0, False, False),  # 100 -> 10 logits
    ),
    page_probes={"fc1": "bn1", "fc2": "bn2"},
))
register(ModelEntry(
    "cnnnet", CNNNet, "CNNNet", feature_blocks=(("conv1", "bn1"), ("conv2", "bn2")),
    recipe={"epochs": 1, "batch_size": 128, "lr": 0.01, "freeze": False},
    seconds_per_image=5.0 / 55_000, step_seconds=3.0e-3,
    page_layers=(
        ("conv1", "conv", "bn1", 0, True, True),  # (16, 12, 12)
        ("conv2", "conv", "bn2", 0, True, True),  # (30, 4, 4)
        ("fc1", "linear", None, 0, False, True),  # 480 -> 100
        ("fc2", "linear", None, 0, False, False),  # 100 -> 10 logits
    ),
    page_probes={"conv1": "pool1", "conv2": "pool2", "fc1": "fc1"},
))
register(ModelEntry(
    "lenet", LeNet, "LeNet", feature_blocks=(("conv1", "bn1"), ("conv2", "bn2")),
    recipe={"epochs": 1.5, "batch_size": 128, "lr": 0.015, "freeze": True, "freeze_from": 0.5},
    seconds_per_image=3.7 / 55_000, step_seconds=2.5e-3,
    page_layers=(
        ("conv1", "conv", "bn1", 2, True, True),  # (6, 14, 14)
        ("conv2", "conv", "bn2", 0, True, True),  # (16, 5, 5)
        ("fc1", "linear", None, 0, False, True),  # 400 -> 120
        ("fc2", "linear", None, 0, False, True),  # 120 -> 84
        ("fc3", "linear", None, 0, False, False),  # 84 -> 10 logits
    ),
    page_probes={"conv1": "pool1", "conv2": "pool2", "fc1": "fc1", "fc2": "fc2"},
))


def build_model(name: str, dropout: float = 0.0) -> nn.Module:
    """Build a fresh, untrained model by name (one of ``MODELS``)."""
    return MODELS[check_model_name(name)](dropout=dropout)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters, frozen ones included (a loaded model's are frozen; Compare shows this count)."""
    return sum(p.numel() for p in model.parameters())


class FoldedNet(nn.Module):
    """A registered model's forward pass for evaluation, walked from its registry ``page_layers`` (the
    layers the page runs) with each BatchNorm folded into the layer before it (eval mode). No module is
    copied: each layer's fused weight and bias are computed once, from the model as it is now.

    On the CPU in float32, the feature maps stay in oneDNN's blocked layout (``Tensor.to_mkldnn``) from
    the first convolution to the last pool, instead of changing layout around every convolution: the
    same numbers (the same oneDNN kernels; ``tests/test_models.py`` compares with the model's own
    forward), in less time: the 10,000 test images at batch 500, paired on 2 idle cores, a folded copy of
    the model against this walk: LeNet 123 -> 87 ms, CNNNet 196 -> 130 ms. (Before, the model as it was
    against the folded copy, CPU seconds under load: LeNet 0.47 -> 0.34, CNNNet 0.66 -> 0.43.) A deep
    copy of the model per pass, with fused modules, cost 1.5 ms, 13 times a run."""

    def __init__(self, model: nn.Module, layers: tuple[PageLayer, ...]) -> None:
        super().__init__()
        self.plan = []
        with torch.no_grad():
            for name, kind, bn, padding, pool, relu in layers:
                layer = getattr(model, name)
                weight, bias = layer.weight.detach(), None if layer.bias is None else layer.bias.detach()
                if bn:
                    norm = getattr(model, bn)
                    fuse = fuse_conv_bn_weights if kind == "conv" else fuse_linear_bn_weights
                    weight, bias = (t.detach() for t in fuse(weight, bias, norm.running_mean, norm.running_var,
                                                               norm.eps, norm.weight, norm.bias))
                self.plan.append((kind, weight, bias, padding, pool, relu))
        self.blocked = (torch.backends.mkldnn.is_available() and any(kind == "conv" for kind, *_ in self.plan)
                        and all(w.device.type == "cpu" and w.dtype == torch.float32 for _, w, *_ in self.plan))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to_mkldnn() if self.blocked else x
        for kind, weight, bias, padding, pool, relu in self.plan:
            if kind == "conv":
                x = F.conv2d(x, weight, bias, padding=padding)
                x = F.max_pool2d(x, 2) if pool else x
            else:
                x = torch.flatten(x.to_dense() if x.is_mkldnn else x, 1)
                x = F.linear(x, weight, bias)
            x = F.relu(x) if relu else x
        return x


def folded(model: nn.Module) -> nn.Module:
    """What a pass over many images runs: ``FoldedNet`` for a registered model, the same answers up to float
    rounding in less time; any other model as it is. Either way ``model`` is put in eval mode, and left
    otherwise as it was."""
    model.eval()
    entry = next((e for e in REGISTRY.values() if type(model) is e.cls), None)
    return model if entry is None else FoldedNet(model, entry.page_layers)
