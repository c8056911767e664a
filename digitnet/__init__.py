"""digitnet: draw a digit, recognise it, and train MNIST models with live curves."""

from .checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from .data import MNIST_MEAN, MNIST_STD, DataNotFoundError, load_mnist
from .models import MODELS, build_model
from .training import EpochMetrics, TrainConfig, Trainer, TrainResult, evaluate, train_one_epoch

__all__ = [
    "MODELS", "build_model", "MNIST_MEAN", "MNIST_STD", "load_mnist", "DataNotFoundError",
    "save_checkpoint", "load_checkpoint", "load_model", "CheckpointError",
    "TrainConfig", "Trainer", "TrainResult", "EpochMetrics", "train_one_epoch", "evaluate",
]
