"""Command line: ``python -m digitnet.train --model lenet --epochs 3``.

Trains with the same ``Trainer`` as the app, shows a tqdm progress bar with the run's ETA,
prints one summary line per epoch, writes ``<checkpoints>/<model>.pt`` and,
on request, a metrics JSON and a PNG of the curves.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from tqdm import tqdm

from .checkpoint import CheckpointError
from .data import DataNotFoundError
from .models import DISPLAY_NAMES
from .training import BatchProgress, Config, EpochMetrics, TrainConfig, Trainer, TrainResult

def add_config_arguments(parser: argparse.ArgumentParser, config: type[Config]) -> None:
    """One flag per setting of ``config`` (``--batch-size`` for ``batch_size``), its help ending in its default."""
    for s in config.settings():
        if not s.cli:
            continue
        flag = "--" + s.name.replace("_", "-")
        if s.default is None:  # the help says what None means
            help_text = s.help
        else:
            help_text = f"{s.help} (default: {('on' if s.default else 'off') if s.kind is bool else s.default})"
        if s.kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=s.default, help=help_text)
        else:
            parser.add_argument(flag, type=s.kind, default=s.default, choices=s.values or None, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser: TrainConfig's settings, then where to read and write."""
    p = argparse.ArgumentParser(prog="python -m digitnet.train", description="Train an MNIST model and save its checkpoint.")
    add_config_arguments(p, TrainConfig)
    p.add_argument("--data", default=None, help="MNIST root holding MNIST/raw/ (default: $DIGITNET_DATA or ./data)")
    p.add_argument("--checkpoints", default=None, help="checkpoint folder (default: $DIGITNET_CHECKPOINTS, else the repo's checkpoints/)")
    p.add_argument("--no-save", dest="save", action="store_false", help="do not write a checkpoint")
    p.add_argument("--metrics-json", default=None, help="write the history (every validation point), test_acc and train_seconds here")
    p.add_argument("--plot", default=None, help="save the loss and accuracy curves to this PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bar, only the summary lines")
    return p


class ConsoleReporter:
    """A tqdm progress bar per epoch on stderr (with the whole run's ETA), one summary line per validation
    point on stdout. Where stderr is no terminal (a log, CI) a bar is written when it starts and ends only."""

    def __init__(self, name: str, quiet: bool = False, stream=None) -> None:
        self.name = name
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.bar: tqdm | None = None

    def __call__(self, event: object) -> None:
        if isinstance(event, BatchProgress) and not self.quiet:
            if self.bar is None:
                self.bar = tqdm(total=event.batches, desc=f"{self.name} epoch {event.epoch}/{event.epochs:g}",
                                unit="batch", file=self.stream, leave=not self.tty, dynamic_ncols=True,
                                mininterval=0.1 if self.tty else math.inf)
            eta = "..." if event.eta_seconds is None else f"{event.eta_seconds:.1f}s"  # None: the first report
            self.bar.set_postfix_str(f"loss {event.train_loss:.4f} {event.samples_per_second:,.0f} img/s ETA {eta}",
                                     refresh=False)
            self.bar.update(event.batch - self.bar.n)
            if event.batch == event.batches:
                self.bar.close()
                self.bar = None
        elif isinstance(event, EpochMetrics):
            line = (f"epoch {event.epoch:3g}  train loss {event.train_loss:.4f} acc {event.train_acc * 100:6.2f}%  "
                    f"val loss {event.val_loss:.4f} acc {event.val_acc * 100:6.2f}%  {event.seconds:6.1f}s  "
                    f"lr {event.lr:.2e}")
            if self.bar is not None and self.tty:
                tqdm.write(line, file=sys.stdout)  # clears the bar, prints, draws the bar again below
            else:
                print(line)
            sys.stdout.flush()
        elif isinstance(event, TrainResult) and self.bar is not None:  # a stopped run: no last batch
            self.bar.close()
            self.bar = None


def save_plot(result: TrainResult, path: str | Path, title: str = "") -> Path:
    """Save train/validation loss and accuracy curves per epoch to a PNG."""
    import matplotlib  # here: only --plot needs it, and its import would lengthen every run's start-up

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
    try:
        config = TrainConfig.from_dict(vars(args))
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
        out["timings"] = {**trainer.timings, "train_seconds": epochs_seconds - trainer.timings["validate_seconds"]}
        Path(args.metrics_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.metrics_json).write_text(json.dumps(out, indent=1))
    if args.plot:
        print(f"saved {save_plot(result, args.plot, f'{name} on MNIST')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
