"""A model on a split: loss, accuracy, probabilities, the confusion matrix and the most confident mistakes."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data as mdata
from .events import TrainResult
from .models import NUM_CLASSES, folded


# Images per forward pass: a default LeNet run's test pass took 0.11 s at 250 against 0.15 s at 500 (paired).
EVAL_BATCH = 250


@torch.inference_mode()
def logits_of(model: nn.Module, split: mdata.Split, device: torch.device | str = "cpu", batch_size: int = EVAL_BATCH,
              mean: float = mdata.MNIST_MEAN, std: float = mdata.MNIST_STD) -> torch.Tensor:
    """Logits (N, 10), on the CPU, of ``model`` (in eval mode, BatchNorm folded, the convolutional models in
    oneDNN's layout: ``models.FoldedNet``) on every image of ``split``, in order.

    (Sharing the batches among threads of one core each was tried: 10,000 test images through LeNet took
    0.13 s on 2 idle cores either way, as the convolutions already use both cores.)"""
    net = folded(model)
    out = [net(x.to(device)).float().cpu()
           for x, _ in mdata.iterate_batches(split, batch_size, shuffle=False, mean=mean, std=std)]
    return torch.cat(out) if out else torch.zeros(0, NUM_CLASSES)


@torch.inference_mode()
def logits_of_inputs(model: nn.Module, x: torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """``logits_of`` for inputs already normalised (N, 1, 28, 28) and on the model's device: what a run
    that looks at the same images many times (its validation points) prepares once."""
    if not len(x):
        return torch.zeros(0, NUM_CLASSES)
    net = folded(model)  # in batches of equal size, at most batch_size: 517 images as 3 of ~173, not 250, 250, 17
    return torch.cat([net(chunk).float().cpu() for chunk in torch.tensor_split(x, math.ceil(len(x) / batch_size))])


def loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``logits`` (N, 10) against ``labels`` (N,); N > 0."""
    n = len(labels)
    return (F.cross_entropy(logits, labels, reduction="sum").item() / n,
            (logits.argmax(1) == labels).float().sum().item() / n)


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    split: mdata.Split,
    device: torch.device,
    batch_size: int = EVAL_BATCH,
    mean: float = mdata.MNIST_MEAN,
    std: float = mdata.MNIST_STD,
) -> tuple[float, float, torch.Tensor]:
    """Return (mean loss, accuracy, probabilities (N, 10)) of ``model`` on ``split``."""
    logits = logits_of(model, split, device, batch_size, mean, std)
    if not len(split):
        return 0.0, 0.0, logits
    return (*loss_and_accuracy(logits, split.labels), logits.softmax(1))


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
