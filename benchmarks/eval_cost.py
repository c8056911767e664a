"""What the dense curves cost: evaluation time as a share of a default run, against one validation per epoch.

A default run (``TrainConfig()``: LeNet's fast recipe, 1.5 epochs on all 55,000 training images)
makes 12 validation points on the first 1,000 validation images and the last on all 5,000
(whose logits also fit the temperature), each with the 16 probe digits' answers. Before, it
made one validation per epoch on all 5,000 and a separate pass for the temperature. This
runs both, paired and alternated (``val_points=1, val_subset=5000`` is the old schedule), in
fresh processes, and reports each run's validation seconds and test + calibration seconds as
a share of its whole run (data loading to checkpoint). Ratios within a pair are what to read
on a shared machine.

    nice -n 10 python -m benchmarks.eval_cost            # ~1 minute on 2 idle cores
    python -m benchmarks.eval_cost --repeats 1 --model mlp --json /tmp/eval.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO / "benchmarks" / "results" / "eval_cost.json"
SCHEDULES = {"dense": {}, "per_epoch": {"val_points": 1, "val_subset": 5000}}
LIMIT_EVAL_SHARE = 0.05  # the bound: all evaluation <= 5% of a default run's time


def child(model: str, overrides: dict, data: str | None) -> dict:
    """One run in this process; its timings."""
    from digitnet.training import EpochMetrics, TrainConfig, Trainer

    points = []
    t0 = time.perf_counter()
    trainer = Trainer(TrainConfig(model=model, **overrides), lambda e: points.append(e)
                      if isinstance(e, EpochMetrics) else None, data_root=data, save=False)
    result = trainer.run()
    total = time.perf_counter() - t0
    t = trainer.timings
    return {"total_seconds": total, **t, "validation_points": len(points),
            "validation_share": t["validate_seconds"] / total,
            "evaluation_share": (t["validate_seconds"] + t["test_and_save_seconds"]) / total,
            "val_acc": result.history[-1].val_acc, "test_acc": result.test_acc}


def commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="lenet", help="model (default: lenet, the default model)")
    p.add_argument("--repeats", type=int, default=3, help="paired repeats, medians reported (default: 3)")
    p.add_argument("--data", default=None, help="MNIST root holding MNIST/raw/ (default: $DIGITNET_DATA or ./data)")
    p.add_argument("--json", default=str(DEFAULT_JSON), help=f"where to write the record (default: {DEFAULT_JSON})")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        print(json.dumps(child(args.model, SCHEDULES[args._child], args.data)))
        return 0
    runs = {name: [] for name in SCHEDULES}
    loads = []
    for r in range(args.repeats):
        for name in SCHEDULES:
            loads.append(os.getloadavg()[0])
            cmd = [sys.executable, "-m", "benchmarks.eval_cost", "--model", args.model, "--_child", name]
            if args.data:
                cmd += ["--data", args.data]
            with tempfile.TemporaryFile() as err:
                out = subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.PIPE, stderr=err, text=True).stdout
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
            run = runs[name][-1]
            print(f"[{r + 1}/{args.repeats}] {name}: {run['total_seconds']:.1f} s, validation "
                  f"{run['validate_seconds']:.2f} s ({run['validation_share']:.1%}), test + calibration "
                  f"{run['test_and_save_seconds']:.2f} s; load {loads[-1]:.2f}", flush=True)
    median = lambda name, key: statistics.median(r[key] for r in runs[name])  # noqa: E731
    summary = {name: {key: median(name, key) for key in ("total_seconds", "validate_seconds", "test_and_save_seconds",
                                                          "validation_share", "evaluation_share", "val_acc")}
               for name in SCHEDULES}
    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": commit(),
              "command": "python -m benchmarks.eval_cost " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "load_average_during": loads,
              "model": args.model, "schedules": SCHEDULES, "runs": runs, "median": summary,
              "checks": {"dense_evaluation_under_5pct": summary["dense"]["evaluation_share"] <= LIMIT_EVAL_SHARE,
                         "dense_validation_under_5pct": summary["dense"]["validation_share"] <= LIMIT_EVAL_SHARE}}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1))
    for name, s in summary.items():
        print(f"{name}: run {s['total_seconds']:.1f} s, validation {s['validation_share']:.1%}, validation + test + "
              f"calibration {s['evaluation_share']:.1%} (medians)")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
