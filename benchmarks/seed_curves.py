"""The seed article's recipe, as curves the Train tab draws faintly beside a visitor's run.

For each model it trains the seed's recipe (``training.SEED_RECIPE``: SGD lr 0.01, momentum 0.9,
batch 64, StepLR(5, 0.5), no label smoothing) through the same ``Trainer`` the app uses, with the
same curve points as a run in the app (training-loss reports, validation points on the fixed
validation subset, the whole split at the end), and records every point with its epoch and its
wall seconds since the run started (data loading included, as the app's clock). Then, in the same
process, the model's fast recipe (``TrainConfig()``'s defaults), so that the two times are
measured on the same machine at nearly the same moment and their ratio means something on a
shared machine.

    nice -n 10 python -m benchmarks.seed_curves                 # ~2 minutes on 2 idle cores
    python -m benchmarks.seed_curves --models lenet --epochs 2 --json /tmp/seed.json

Writes ``benchmarks/results/seed_curves.json`` (the app reads it: ``digitnet.ui.curves``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from benchmarks import record

REPO = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO / "benchmarks" / "results" / "seed_curves.json"
MODEL_NAMES = ("lenet", "mlp", "cnnnet")  # the default model first
DEFAULT_EPOCHS = 3  # the seed trains 20; a fast run lasts 1-2, and a shared machine is slow
SEED_VAL_POINTS = 40  # denser than a run's 12: the reference curve is drawn under runs of any length


def curve_run(model: str, recipe: dict, data: str | None) -> dict:
    """Train ``model`` with ``recipe``; every loss and validation point with its epoch and wall seconds."""
    from digitnet.training import BatchProgress, EpochMetrics, TrainConfig, Trainer

    loss, val = [], []
    t0 = time.perf_counter()

    def on_event(event: object) -> None:
        if isinstance(event, BatchProgress):
            loss.append([round(event.done, 4), round(event.elapsed, 3), event.train_loss])
        elif isinstance(event, EpochMetrics):
            val.append([event.epoch, round(event.elapsed, 3), event.val_acc, event.val_loss])

    cfg = TrainConfig(model=model, device="cpu", **recipe)
    trainer = Trainer(cfg, on_event, data_root=data, save=False)
    result = trainer.run()
    return {"config": result.config, "seconds": time.perf_counter() - t0, "test_acc": result.test_acc,
            "timings": trainer.timings, "loss": loss, "val": val}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODEL_NAMES), help="comma-separated (default: lenet,mlp,cnnnet)")
    p.add_argument("--epochs", type=float, default=DEFAULT_EPOCHS,
                   help=f"epochs of the seed's recipe (default: {DEFAULT_EPOCHS}; the article trains 20)")
    p.add_argument("--data", default=None, help="MNIST root holding MNIST/raw/ (default: $DIGITNET_DATA or ./data)")
    p.add_argument("--json", default=str(DEFAULT_JSON), help=f"where to write the curves (default: {DEFAULT_JSON})")
    args = p.parse_args(argv)

    from digitnet.training import SEED_RECIPE

    seed_recipe = {**SEED_RECIPE, "epochs": args.epochs, "val_points": SEED_VAL_POINTS}
    header = record.start(argv)
    report = {"load_average_start": os.getloadavg(), "seed_recipe": seed_recipe, "models": {}}
    for name in args.models.split(","):
        print(f"{name}: the seed's recipe, {args.epochs:g} epochs (load {os.getloadavg()[0]:.2f})...", flush=True)
        seed = curve_run(name, seed_recipe, args.data)
        print(f"{name}: the fast recipe (load {os.getloadavg()[0]:.2f})...", flush=True)
        fast = curve_run(name, {}, args.data)
        report["models"][name] = {"seed": seed, "fast": fast, "seed_seconds_per_epoch": seed["seconds"] / args.epochs,
                                  "fast_seconds": fast["seconds"]}
        print(f"{name}: seed {seed['seconds']:.1f} s for {args.epochs:g} epochs (test {seed['test_acc']:.2%}), fast "
              f"{fast['seconds']:.1f} s (test {fast['test_acc']:.2%})", flush=True)
        report["load_average_end"] = os.getloadavg()
        record.write(args.json, header, report)  # after each model: a long run keeps what it made
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
