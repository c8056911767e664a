"""An exponential moving average of a model's weights (``TrainConfig.ema``), on torch's ``AveragedModel``.

``weight_average(model, decay)`` averages the parameters and the floating-point buffers (BatchNorm's
running statistics): ``avg = d * avg + (1 - d) * current`` after each optimiser step
(``average.update_parameters(model)``), with the decay warmed up as ``min(decay, (1 + k) / (10 + k))``
at the k-th update so that the random initial weights are forgotten quickly. Why not
``get_ema_multi_avg_fn(decay)`` alone: its decay is fixed, so a run of a few hundred steps at 0.999
would deliver mostly its first weights; and it averages integer buffers too (BatchNorm's step counter),
which are left alone here. The update itself is ``get_ema_multi_avg_fn``'s, at the warmed-up decay.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def warmed_up_decay(decay: float, updates: int) -> float:
    """The decay of the update after ``updates`` earlier ones (the initial weights count as none)."""
    return min(decay, (1 + updates) / (10 + updates))


def _warmed_up_ema(decay: float):
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        if averaged[0].is_floating_point():  # one group per dtype: integer buffers are not averaged
            # num_averaged counts the initial weights (weight_average's first update) as one
            get_ema_multi_avg_fn(warmed_up_decay(decay, int(num_averaged) - 1))(averaged, current, num_averaged)
    return update


def weight_average(model: nn.Module, decay: float) -> AveragedModel:
    """An average of ``model``'s weights, starting at its current ones; ``update_parameters(model)`` after each step.

    ``average.module`` is the averaged model (what validation evaluates)."""
    average = AveragedModel(model, multi_avg_fn=_warmed_up_ema(decay), use_buffers=True)
    average.update_parameters(model)  # the first call copies: the average starts at the initial weights
    return average


@torch.no_grad()
def copy_average(average: AveragedModel, model: nn.Module) -> None:
    """Write the averaged parameters and floating-point buffers into ``model`` (the same architecture)."""
    def tensors(m: nn.Module) -> list[torch.Tensor]:
        return [*m.parameters(), *(b for b in m.buffers() if b.is_floating_point())]

    for target, avg in zip(tensors(model), tensors(average.module)):
        target.copy_(avg)
