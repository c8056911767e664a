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


class _GreyConvFunction(torch.autograd.Function):
    """``F.conv2d`` on a one-channel batch, with a faster weight gradient on CPU.

    PyTorch's CPU kernel for the weight gradient of a convolution with ONE input channel is
    slow: 4.2 ms of a 19.8 ms LeNet training step (batch 128, two threads). The same numbers
    come from one ordinary convolution that treats the batch as channels: the padded images
    (1, B, H, W) correlated with the output gradient (C, B, h, w). That takes 1.9 ms, and a
    LeNet step 15.2 ms (CNNNet: 27.6 -> 22.7 ms). Figures: benchmarks/RESULTS-speed.md;
    tests/test_models.py checks the gradients against PyTorch's.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, padding: int):
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        return F.conv2d(x, weight, bias, padding=padding)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        p = ctx.padding
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:  # saliency maps (digitnet.explain) need the input's gradient
            grad_x = torch.nn.grad.conv2d_input(x.shape, weight, grad_out, padding=p)
        if ctx.needs_input_grad[1]:
            padded = F.pad(x, (p, p, p, p)).transpose(0, 1)  # (1, B, H + 2p, W + 2p)
            grad_w = F.conv2d(padded, grad_out.transpose(0, 1)).transpose(0, 1)  # (C, 1, k, k)
        if ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None


class GreyConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` for the first layer: one input channel, stride 1, square zero padding.

    Same parameters and state-dict keys as ``nn.Conv2d`` (checkpoints do not change); only
    training on the CPU is faster (see ``_GreyConvFunction``). Without autograd, or off the CPU,
    it is plain ``nn.Conv2d``.
    """

    def __init__(self, out_channels: int, kernel_size: int, padding: int = 0) -> None:
        super().__init__(1, out_channels, kernel_size, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled() or x.device.type != "cpu":
            return super().forward(x)
        return _GreyConvFunction.apply(x, self.weight, self.bias, self.padding[0])


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
        self.conv1 = GreyConv2d(16, 5)  # 28 -> 24
        self.bn1 = nn.BatchNorm2d(16)
        self.pool1 = nn.MaxPool2d(2, 2)  # 24 -> 12
        self.conv2 = nn.Conv2d(16, 30, 5)  # 12 -> 8
        self.bn2 = nn.BatchNorm2d(30)
        self.pool2 = nn.MaxPool2d(2, 2)  # 8 -> 4
        self.drop = nn.Dropout(dropout)
        self.fc1 = nn.Linear(30 * 4 * 4, 100)
        self.fc2 = nn.Linear(100, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(F.relu(self.bn1(self.conv1(x))))  # (B, 16, 12, 12)
        x = self.pool2(F.relu(self.bn2(self.conv2(x))))  # (B, 30, 4, 4)
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
        self.conv1 = GreyConv2d(6, 5, padding=2)  # 28 -> 28
        self.bn1 = nn.BatchNorm2d(6)
        self.pool1 = nn.MaxPool2d(2, 2)  # 28 -> 14
        self.conv2 = nn.Conv2d(6, 16, 5)  # 14 -> 10
        self.bn2 = nn.BatchNorm2d(16)
        self.pool2 = nn.MaxPool2d(2, 2)  # 10 -> 5
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, NUM_CLASSES)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(F.relu(self.bn1(self.conv1(x))))  # (B, 6, 14, 14)
        x = self.pool2(F.relu(self.bn2(self.conv2(x))))  # (B, 16, 5, 5)
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


def build_model(name: str, dropout: float = 0.0) -> nn.Module:
    """Build a fresh, untrained model by name ('mlp', 'cnnnet' or 'lenet')."""
    return MODELS[check_model_name(name)](dropout=dropout)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
