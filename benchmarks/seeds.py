"""Accuracy is a distribution: train one recipe with several seeds and report mean +- std.

    python -m benchmarks.seeds --model lenet --seeds 0,1,2,3,4             # the default recipe
    python -m benchmarks.seeds --model lenet --set epochs=1 --set lr=0.01   # a candidate
    python -m benchmarks.seeds --model lenet --seeds 0-9 --json benchmarks/results/seeds-lenet.json
    python -m benchmarks.seeds --merge runs/s*.json --json benchmarks/results/seeds-lenet.json  # one run per seed

Each run goes through the same ``Trainer`` as the app and the command line (no checkpoint is
written; with ``--threads 0``, the default, the same thread count as ``python -m digitnet.train``,
which matters: a seed's accuracy differs with the thread count). Recipes are chosen on the MEAN
VALIDATION accuracy (the 5,000 held-out training images); test accuracy is reported beside it and
checked against the model's target (99%, the MLP 98%), never used to choose. Times are printed
but depend on the machine's load. Figures: benchmarks/RESULTS-speed.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from . import record

REPO = Path(__file__).resolve().parent.parent
TARGETS = {"mlp": 0.98, "cnnnet": 0.99, "lenet": 0.99}  # the test accuracy every seed must reach


def _value(text: str):
    """'1' -> 1, '0.5' -> 0.5, 'true' -> True, anything else stays a string."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _assignment(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key.strip().replace("-", "_"), _value(value.strip())


def summary(values: list[float]) -> tuple[float, float]:
    """(mean, sample standard deviation; 0 for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def run_seeds(model: str, seeds: list[int], overrides: dict, data: str | None = None, threads: int = 0) -> dict:
    """Train ``model`` once per seed with ``TrainConfig`` defaults + ``overrides``; return the report."""
    from digitnet.training import TrainConfig, Trainer

    runs, config = [], {}
    for seed in seeds:
        cfg = TrainConfig(**{"model": model, "threads": threads, "device": "cpu", **overrides, "seed": seed})
        config = {k: v for k, v in cfg.__dict__.items() if not k.startswith("_") and k != "seed"}
        t0 = time.perf_counter()
        result = Trainer(cfg, data_root=data, save=False).run()
        runs.append({"seed": seed, "val_acc": result.history[-1].val_acc, "test_acc": result.test_acc,
                     "train_seconds": result.train_seconds, "wall_seconds": time.perf_counter() - t0})
        print(f"  seed {seed}: val {runs[-1]['val_acc'] * 100:.2f}%  test {result.test_acc * 100:.2f}%  "
              f"{result.train_seconds:.1f}s", file=sys.stderr, flush=True)
    val_mean, val_std = summary([r["val_acc"] for r in runs])
    test_mean, test_std = summary([r["test_acc"] for r in runs])
    target = TARGETS.get(model, 0.99)
    return {"model": model, "overrides": overrides, "config": config, "runs": runs,
            "val_mean": val_mean, "val_std": val_std, "test_mean": test_mean, "test_std": test_std,
            "test_min": min(r["test_acc"] for r in runs), "target": target,
            "test_at_target": sum(r["test_acc"] >= target for r in runs)}


def effective(config: dict) -> dict:
    """A run's config as the run used it: FreezeOut's start spelled out (None meant thirds for two blocks)."""
    from digitnet.models import FEATURE_BLOCKS

    out = dict(config)
    if out.get("freeze") and out.get("freeze_from") is None:
        out["freeze_from"] = 1 / (len(FEATURE_BLOCKS[out["model"]]) + 1)
    return out


def merge(reports: list[dict]) -> dict:
    """One report from several runs of the same recipe (e.g. one process per seed; the recipe may have been
    spelled with different overrides as defaults changed); each run keeps its own record and overrides."""
    first = reports[0]
    for r in reports[1:]:
        if r["model"] != first["model"] or effective(r["config"]) != effective(first["config"]):
            raise ValueError(f"not the same recipe: {r['model']} {r['overrides']} vs {first['model']} {first['overrides']}")
    runs = sorted((dict(run, record=rep.get("record"), overrides=rep["overrides"]) for rep in reports for run in rep["runs"]),
                  key=lambda r: r["seed"])
    if len({r["seed"] for r in runs}) != len(runs):
        raise ValueError("a seed appears twice")
    val_mean, val_std = summary([r["val_acc"] for r in runs])
    test_mean, test_std = summary([r["test_acc"] for r in runs])
    return {"model": first["model"], "overrides": first["overrides"], "config": effective(first["config"]),
            "target": first["target"], "runs": runs,
            "val_mean": val_mean, "val_std": val_std, "test_mean": test_mean, "test_std": test_std,
            "test_min": min(r["test_acc"] for r in runs), "test_at_target": sum(r["test_acc"] >= first["target"] for r in runs)}


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' or '0-9' (or a mix: '0-4,7') -> a list of seeds."""
    seeds = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        lo, dash, hi = part.partition("-")
        seeds.extend(range(int(lo), int(hi) + 1) if dash else [int(part)])
    return seeds


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(description="Train one recipe with several seeds; report mean +- std.")
    p.add_argument("--model", default="lenet", help="mlp, cnnnet or lenet (default: lenet)")
    p.add_argument("--seeds", default="0-4", help="seeds, comma-separated or a range (default: 0-4)")
    p.add_argument("--set", dest="overrides", type=_assignment, action="append", default=[],
                   help="a TrainConfig field, e.g. --set epochs=1 --set label_smoothing=0.1 (default: none)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: 0 = every usable core)")
    p.add_argument("--data", default=None, help="MNIST root (default: $DIGITNET_DATA or ./data)")
    p.add_argument("--json", default=None, help="also write the report as JSON here")
    p.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                   help="train nothing: merge these reports of one recipe (e.g. one per seed) into one (default: off)")
    args = p.parse_args(argv)
    header = record.start(argv)
    if args.merge:
        report = merge([json.loads(Path(f).read_text()) for f in args.merge])
        seeds = [r["seed"] for r in report["runs"]]
        args.model, args.overrides = report["model"], list(report["overrides"].items())
    else:
        seeds = parse_seeds(args.seeds)
        report = run_seeds(args.model, seeds, dict(args.overrides), args.data, args.threads)
    print(f"{args.model} {dict(args.overrides) or 'defaults'}: val {report['val_mean'] * 100:.2f} +- "
          f"{report['val_std'] * 100:.2f}%, test {report['test_mean'] * 100:.2f} +- {report['test_std'] * 100:.2f}% "
          f"({report['test_at_target']}/{len(seeds)} seeds >= {report['target'] * 100:.1f}%)")
    record.write(args.json, header, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
