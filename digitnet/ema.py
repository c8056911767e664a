"""An exponential moving average of a model's weights (``TrainConfig.ema``)."""

from __future__ import annotations

import torch
import torch.nn as nn


class WeightEMA:
    """An exponential moving average of a model's parameters and floating-point buffers.

    ``update`` after each optimiser step: ``avg = d * avg + (1 - d) * current``, with the decay
    ``d`` warmed up as ``min(decay, (1 + n) / (10 + n))`` after n updates so that the random
    initial weights are forgotten quickly. BatchNorm's running statistics are averaged too
    (they are floating-point buffers); its integer step counter is left alone.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.tensors = [t for t in self._tensors(model)]
        self.average = [t.detach().clone() for t in self.tensors]

    @staticmethod
    def _tensors(model: nn.Module) -> list[torch.Tensor]:
        return [*model.parameters(), *(b for b in model.buffers() if b.is_floating_point())]

    def current_decay(self) -> float:
        """The decay the next ``update`` uses."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Fold the model's current weights into the average."""
        torch._foreach_lerp_(self.average, [t.detach() for t in self.tensors], 1.0 - self.current_decay())
        self.updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Write the averaged weights into ``model`` (the same architecture)."""
        for target, avg in zip(self._tensors(model), self.average):
            target.copy_(avg)
