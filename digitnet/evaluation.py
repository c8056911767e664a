"""A model on a split: loss, accuracy, probabilities, the confusion matrix and the most confident mistakes."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data as mdata
from .events import TrainResult
from .models import folded


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    split: mdata.Split,
    device: torch.device,
    batch_size: int = 500,  # bigger batches are no faster here and cost ~100 MB more peak memory
    mean: float = mdata.MNIST_MEAN,
    std: float = mdata.MNIST_STD,
) -> tuple[float, float, torch.Tensor]:
    """Return (mean loss, accuracy, probabilities (N, 10)) of ``model`` on ``split``."""
    model = folded(model)  # eval mode, BatchNorm folded: the same answers, faster
    probs, loss_sum = [], 0.0
    for x, y in mdata.iterate_batches(split, batch_size, shuffle=False, mean=mean, std=std):
        logits = model(x.to(device))
        loss_sum += F.cross_entropy(logits, y.to(device), reduction="sum").item()
        probs.append(logits.softmax(1).cpu())
    p = torch.cat(probs) if probs else torch.zeros(0, 10)
    n = max(len(split), 1)
    return loss_sum / n, (p.argmax(1) == split.labels).float().sum().item() / n, p


def confusion_matrix(labels: torch.Tensor, preds: torch.Tensor, classes: int = 10) -> torch.Tensor:
    """(classes, classes) counts, rows = true label, columns = prediction."""
    return torch.bincount(labels * classes + preds, minlength=classes * classes).reshape(classes, classes)


def add_test_results(result: TrainResult, model: nn.Module, test: mdata.Split, device: torch.device,
                     mean: float = mdata.MNIST_MEAN, std: float = mdata.MNIST_STD) -> None:
    """Evaluate ``model`` on ``test``; fill ``result``'s test loss and accuracy, confusion matrix and
    ``misclassified`` (the 32 most confident mistakes first: what the Train tab's gallery shows)."""
    result.test_loss, result.test_acc, probs = evaluate(model, test, device, mean=mean, std=std)
    preds = probs.argmax(1)
    result.confusion = confusion_matrix(test.labels, preds).tolist()
    wrong = (preds != test.labels).nonzero().flatten()
    conf = probs[wrong, preds[wrong]]
    order = conf.argsort(descending=True)[:32]
    result.misclassified = [
        {"index": int(wrong[j]), "true": int(test.labels[wrong[j]]), "pred": int(preds[wrong[j]]),
         "prob": float(conf[j])}
        for j in order
    ]
