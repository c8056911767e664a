"""Command line: ``python -m digitnet.train --model lenet --epochs 3``.

Trains with the same ``Trainer`` as the app, shows a progress bar with ETA,
prints one summary line per epoch, writes ``<checkpoints>/<model>.pt`` and,
on request, a metrics JSON and a PNG of the curves.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .checkpoint import CheckpointError
from .data import DataNotFoundError
from .models import DISPLAY_NAMES, MODELS
from .training import OPTIMIZERS, SCHEDULES, BatchProgress, EpochMetrics, TrainConfig, Trainer, TrainResult

D = TrainConfig()  # defaults, quoted in --help


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser (defaults shown in each help line)."""
    p = argparse.ArgumentParser(prog="python -m digitnet.train", description="Train an MNIST model and save its checkpoint.")
    p.add_argument("--model", default=D.model, choices=list(MODELS), help=f"model to train (default: {D.model})")
    p.add_argument("--epochs", type=int, default=D.epochs, help=f"number of epochs (default: {D.epochs})")
    p.add_argument("--batch-size", type=int, default=D.batch_size, help=f"batch size (default: {D.batch_size})")
    p.add_argument("--optimizer", default=D.optimizer, choices=OPTIMIZERS, help=f"optimizer (default: {D.optimizer})")
    p.add_argument("--lr", type=float, default=D.lr, help=f"(peak) learning rate (default: {D.lr})")
    p.add_argument("--momentum", type=float, default=D.momentum, help=f"SGD momentum (default: {D.momentum})")
    p.add_argument("--schedule", default=D.schedule, choices=SCHEDULES, help=f"learning-rate schedule (default: {D.schedule})")
    p.add_argument("--step-size", type=int, default=D.step_size, help=f"StepLR step in epochs (default: {D.step_size})")
    p.add_argument("--gamma", type=float, default=D.gamma, help=f"StepLR decay (default: {D.gamma})")
    p.add_argument("--weight-decay", type=float, default=D.weight_decay, help=f"weight decay (default: {D.weight_decay})")
    p.add_argument("--beta1", type=float, default=D.beta1, help=f"Adam/AdamW beta1 (default: {D.beta1})")
    p.add_argument("--beta2", type=float, default=D.beta2, help=f"Adam/AdamW beta2 (default: {D.beta2})")
    p.add_argument("--label-smoothing", type=float, default=D.label_smoothing,
                   help=f"cross-entropy label smoothing (default: {D.label_smoothing})")
    p.add_argument("--ema", type=float, default=D.ema,
                   help=f"decay of an average of the weights that is evaluated and saved, 0 = off (default: {D.ema})")
    p.add_argument("--dropout", type=float, default=D.dropout, help=f"dropout probability (default: {D.dropout})")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=D.augment,
                   help=f"random small rotations/shifts/scales/shears of each batch (default: {'on' if D.augment else 'off'})")
    p.add_argument("--seed", type=int, default=D.seed, help=f"random seed (default: {D.seed})")
    p.add_argument("--init", default=None, help="start from this checkpoint's weights (default: a random init)")
    p.add_argument("--threads", type=int, default=D.threads, help="torch threads (default: 0 = every core this process may use)")
    p.add_argument("--device", default=D.device, choices=["auto", "cpu", "cuda"], help="device (default: auto = CUDA if available)")
    p.add_argument("--train-limit", type=int, default=None, help="use only this many training images (default: all 55,000)")
    p.add_argument("--val-size", type=int, default=D.val_size, help=f"validation images held out of training (default: {D.val_size})")
    p.add_argument("--test-limit", type=int, default=None, help="evaluate on only this many test images (default: all 10,000)")
    p.add_argument("--data", default=None, help="MNIST root holding MNIST/raw/ (default: $DIGITNET_DATA or ./data)")
    p.add_argument("--checkpoints", default=None, help="checkpoint folder (default: $DIGITNET_CHECKPOINTS, else the repo's checkpoints/)")
    p.add_argument("--no-save", dest="save", action="store_false", help="do not write a checkpoint")
    p.add_argument("--metrics-json", default=None, help="write per-epoch history, test_acc and train_seconds here")
    p.add_argument("--plot", default=None, help="save the loss and accuracy curves to this PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bar, only the summary lines")
    return p


class ConsoleReporter:
    """Progress bar with ETA on stderr, one summary line per epoch on stdout."""

    def __init__(self, name: str, quiet: bool = False, stream=None) -> None:
        self.name = name
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()

    def __call__(self, event: object) -> None:
        if isinstance(event, BatchProgress) and not self.quiet:
            width = 30
            done = int(width * event.batch / event.batches)
            line = (f"{self.name} epoch {event.epoch}/{event.epochs} [{'#' * done}{'.' * (width - done)}] "
                    f"{event.batch}/{event.batches} loss {event.train_loss:.4f} "
                    f"{event.samples_per_second:,.0f} img/s ETA {event.eta_seconds:5.1f}s")
            if self.tty:
                print("\r" + line, end="", file=self.stream, flush=True)
            elif event.batch == event.batches:
                print(line, file=self.stream, flush=True)
        elif isinstance(event, EpochMetrics):
            if self.tty and not self.quiet:
                print("\r" + " " * 110 + "\r", end="", file=self.stream)
            print(f"epoch {event.epoch:3d}  train loss {event.train_loss:.4f} acc {event.train_acc * 100:6.2f}%  "
                  f"val loss {event.val_loss:.4f} acc {event.val_acc * 100:6.2f}%  {event.seconds:6.1f}s  "
                  f"lr {event.lr:.2e}", flush=True)


def save_plot(result: TrainResult, path: str | Path, title: str = "") -> Path:
    """Save train/validation loss and accuracy curves per epoch to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [m.epoch for m in result.history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [m.train_loss for m in result.history], "o-", label="train")
    ax1.plot(epochs, [m.val_loss for m in result.history], "o-", label="validation")
    ax1.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax2.plot(epochs, [m.train_acc * 100 for m in result.history], "o-", label="train")
    ax2.plot(epochs, [m.val_acc * 100 for m in result.history], "o-", label="validation")
    ax2.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    t_start = time.perf_counter()
    values = {k: v for k, v in vars(args).items()}
    values["train_limit"] = args.train_limit
    try:
        config = TrainConfig.from_dict(values)
        name = DISPLAY_NAMES[config.model]
        trainer = Trainer(config, ConsoleReporter(name, args.quiet), checkpoint_dir=args.checkpoints,
                          data_root=args.data, save=args.save)
        result = trainer.run()
    except (ValueError, DataNotFoundError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    print(f"{name}: test accuracy {result.test_acc * 100:.2f}% (loss {result.test_loss:.4f}), "
          f"trained in {result.train_seconds:.1f}s")
    if result.checkpoint:
        print(f"saved {result.checkpoint}")
    if args.metrics_json:
        out = result.to_dict()
        out["process_seconds"] = time.perf_counter() - t_start  # from main(): imports not included
        epochs_seconds = sum(m.seconds for m in result.history)
        out["timings"] = {**trainer.timings, "train_seconds": epochs_seconds - trainer.timings["validate_seconds"],
                          # the test pass, the checkpoint's write and the last epoch's reports
                          "test_and_save_seconds": result.train_seconds - trainer.timings["data_seconds"] - epochs_seconds}
        Path(args.metrics_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.metrics_json).write_text(json.dumps(out, indent=1))
    if args.plot:
        print(f"saved {save_plot(result, args.plot, f'{name} on MNIST')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
