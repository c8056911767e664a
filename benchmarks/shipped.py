"""Choose a shipped checkpoint on validation, from the ``--metrics-json`` files of the candidate runs.

Each ``--group NAME FILE...`` is one recipe, one file per seed (``python -m digitnet.train ...
--metrics-json FILE``). The rule, fixed here before any candidate ran and never looking at test:

1. the recipe whose files have the best MEAN validation accuracy over their seeds (tie: the lower
   mean validation loss);
2. within it, the file with the best validation accuracy (tie: the lower validation loss).

Test accuracy is read from the same files and reported beside (mean +- std per recipe), never used.
The record lists every file, so the table in RESULTS-speed.md comes from it.

    python -m benchmarks.shipped --model cnnnet --group "S20+C" s0-C.json s1-C.json s2-C.json \\
        --group "S30+C" t0-C.json t1-C.json t2-C.json --json benchmarks/results/shipped-cnnnet.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from benchmarks import record

RULE = ("recipe: best mean validation accuracy over its seeds (tie: lower mean validation loss); then its file "
        "with the best validation accuracy (tie: lower validation loss); test reported, never used")


def read(path: str) -> dict:
    """One run's figures: validation accuracy and loss (its last point, on the whole validation split), test."""
    d = json.loads(Path(path).read_text())
    last = d["history"][-1]
    return {"file": path, "name": Path(path).parent.name, "config": d["config"], "val_acc": last["val_acc"],
            "val_loss": last["val_loss"], "val_images": last.get("val_images"), "test_acc": d["test_acc"]}


def summarise(name: str, runs: list[dict]) -> dict:
    tests = [r["test_acc"] for r in runs]
    return {"recipe": name, "runs": runs,
            "mean_val_acc": statistics.fmean(r["val_acc"] for r in runs),
            "mean_val_loss": statistics.fmean(r["val_loss"] for r in runs),
            "test_mean": statistics.fmean(tests), "test_std": statistics.stdev(tests) if len(tests) > 1 else 0.0}


def choose(groups: list[dict]) -> tuple[dict, dict]:
    """(the chosen recipe, its chosen run), by RULE."""
    best = max(groups, key=lambda g: (round(g["mean_val_acc"], 6), -g["mean_val_loss"]))
    run = max(best["runs"], key=lambda r: (round(r["val_acc"], 6), -r["val_loss"]))
    return best, run


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--group", nargs="+", action="append", required=True, metavar=("NAME", "FILE"),
                   help="a recipe's name and its runs' --metrics-json files, one per seed")
    p.add_argument("--json", help="write the record here")
    args = p.parse_args(argv)
    header = record.start(argv)
    groups = [summarise(name, [read(f) for f in files]) for name, *files in args.group]
    best, run = choose(groups)
    for g in groups:
        print(f"{g['recipe']}: mean validation {g['mean_val_acc']:.4%} (loss {g['mean_val_loss']:.4f}); "
              f"test {g['test_mean']:.2%} +- {g['test_std']:.2%}; seeds " +
              ", ".join(f"{r['name']}: {r['val_acc']:.2%} ({r['test_acc']:.2%})" for r in g["runs"]))
    print(f"chosen: {best['recipe']}, {run['name']}: validation {run['val_acc']:.2%}, test {run['test_acc']:.2%}"
          f" ({run['file']})")
    if args.json:
        record.write(Path(args.json), header, {"benchmark": "shipped", "model": args.model, "rule": RULE,
                                               "groups": groups, "chosen": {"recipe": best["recipe"], **run}})


if __name__ == "__main__":
    main()
