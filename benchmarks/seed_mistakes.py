"""What the seed article's two mistakes that still run cost: final accuracy and time to 98%, each model, 3 seeds.

For each model and seed, three runs of the fast recipe (``TrainConfig()``'s defaults, the recipe the
Train tab starts from) through the app's ``Trainer``: as it is, with ``softmax_before_loss`` (softmax,
then ``CrossEntropyLoss``), and with ``hflip`` (random horizontal flips). The three variants of a seed
run one after another, so that they see nearly the same load. For each run: test and validation
accuracy at the end, and when validation accuracy first reached 98% (at the run's validation points,
``--val-points`` a run, on the fixed validation subset but the last): as training images seen, which
does not depend on the machine's load, and as wall seconds since the run started, with the load
average beside it. A run that never reaches 98% says so (null).

    nice -n 10 python -m benchmarks.seed_mistakes                  # 27 short runs: ~10 minutes on 2 idle cores
    python -m benchmarks.seed_mistakes --models mlp --seeds 0 --train-limit 5000 --json /tmp/m.json   # a check

Writes ``benchmarks/results/seed_mistakes.json`` (``python -m benchmarks.report`` puts it in the README).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from benchmarks import record

REPO = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO / "benchmarks" / "results" / "seed_mistakes.json"
TARGET = 0.98
VARIANTS = {"none": {}, "softmax_before_loss": {"softmax_before_loss": True}, "hflip": {"hflip": True}}
DEFAULT_VAL_POINTS = 24  # denser than a run's 12: "when did it reach 98%" to a 24th of the run


def one_run(model: str, seed: int, variant: dict, args) -> dict:
    """Train once; the figures of one run."""
    from digitnet.training import EpochMetrics, TrainConfig, Trainer

    points = []

    def on_event(event: object) -> None:
        if isinstance(event, EpochMetrics):
            points.append((event.epoch, event.elapsed, event.val_acc))

    extra = {"train_limit": args.train_limit} if args.train_limit else {}
    if args.epochs:
        extra["epochs"] = args.epochs
    cfg = TrainConfig(model=model, seed=seed, device="cpu", val_points=args.val_points, **variant, **extra)
    load = os.getloadavg()[0]
    trainer = Trainer(cfg, on_event, data_root=args.data, save=False)
    result = trainer.run()
    n_train = len(trainer.train_split)
    reached = next(((epoch, elapsed) for epoch, elapsed, acc in points if acc >= TARGET), None)
    return {"seed": seed, "test_acc": result.test_acc, "val_acc": points[-1][2] if points else None,
            "epochs": result.config["epochs"], "train_seconds": result.train_seconds,
            "images_to_target": None if reached is None else round(reached[0] * n_train),
            "seconds_to_target": None if reached is None else round(reached[1], 2),
            "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2)}


def summarise(runs: list[dict]) -> dict:
    """Mean test accuracy, and the median images/seconds to 98% over the runs that reached it."""
    reached = [r for r in runs if r["images_to_target"] is not None]
    return {"test_mean": statistics.fmean(r["test_acc"] for r in runs),
            "test_min": min(r["test_acc"] for r in runs),
            "reached": len(reached), "runs": len(runs),
            "images_to_target": statistics.median(r["images_to_target"] for r in reached) if reached else None,
            "seconds_to_target": statistics.median(r["seconds_to_target"] for r in reached) if reached else None,
            "load": statistics.fmean(r["load_before"] for r in runs)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="lenet,cnnnet,mlp", help="comma-separated (default: lenet,cnnnet,mlp)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated (default: 0,1,2)")
    p.add_argument("--epochs", type=float, default=None, help="epochs of every run (default: each model's fast recipe)")
    p.add_argument("--val-points", type=int, default=DEFAULT_VAL_POINTS,
                   help=f"validation points a run (default: {DEFAULT_VAL_POINTS})")
    p.add_argument("--train-limit", type=int, default=None, help="training images (a quick check; default: all)")
    p.add_argument("--data", default=None, help="MNIST root holding MNIST/raw/ (default: $DIGITNET_DATA or ./data)")
    p.add_argument("--json", default=str(DEFAULT_JSON), help=f"where to write the record (default: {DEFAULT_JSON})")
    args = p.parse_args(argv)

    header = record.start(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    report = {"target": TARGET, "seeds": seeds, "variants": list(VARIANTS), "val_points": args.val_points,
              "train_limit": args.train_limit, "models": {}}
    for model in args.models.split(","):
        runs = {name: [] for name in VARIANTS}
        for seed in seeds:
            for name, variant in VARIANTS.items():
                t0 = time.perf_counter()
                r = one_run(model, seed, variant, args)
                runs[name].append(r)
                print(f"{model} seed {seed} {name}: test {r['test_acc']:.2%}, 98% after {r['images_to_target']} "
                      f"images / {r['seconds_to_target']} s ({time.perf_counter() - t0:.0f} s, load "
                      f"{r['load_before']:.1f})", flush=True)
        report["models"][model] = {"runs": runs, "summary": {name: summarise(rs) for name, rs in runs.items()}}
        record.write(args.json, header, report)  # after each model: a long run keeps what it made
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
