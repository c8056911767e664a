"""The three models of the seed article, fixed for 1x28x28 MNIST input.

Every model takes a float tensor of shape (B, 1, 28, 28), normalised with the
MNIST mean/std, and returns *logits* of shape (B, 10). Softmax is applied only
where probabilities are shown (see ``digitnet.predict``), never inside a model:
``nn.CrossEntropyLoss`` already applies log-softmax.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

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


MODELS: dict[str, type[nn.Module]] = {"mlp": MLP, "cnnnet": CNNNet, "lenet": LeNet}

# Names shown to people (the UI, progress lines); keys are the contract names above.
DISPLAY_NAMES = {"mlp": "MLP", "cnnnet": "CNNNet", "lenet": "LeNet"}


def check_model_name(name: str) -> str:
    """Return the canonical model name, or raise ValueError naming the valid choices."""
    key = str(name).strip().lower() if name is not None else ""
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    return key


# Each model's feature blocks, input side first: what FreezeOut stops training one after another
# (``TrainConfig.freeze``), while the classifier after them trains to the end.
FEATURE_BLOCKS: dict[str, tuple[tuple[str, ...], ...]] = {
    "mlp": (("fc1", "bn1"), ("fc2", "bn2")),
    "cnnnet": (("conv1", "bn1"), ("conv2", "bn2")),
    "lenet": (("conv1", "bn1"), ("conv2", "bn2")),
}


def build_model(name: str, dropout: float = 0.0) -> nn.Module:
    """Build a fresh, untrained model by name ('mlp', 'cnnnet' or 'lenet')."""
    return MODELS[check_model_name(name)](dropout=dropout)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
