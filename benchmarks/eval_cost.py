"""What the dense curves cost: evaluation time as a share of a default run, against one validation per epoch.

A default run (``TrainConfig()``: LeNet's fast recipe, 1.5 epochs on all 55,000 training images)
makes 12 validation points, 11 on the first 500 validation images and the last on all 5,000
(whose logits also fit the temperature), each with the 16 probe digits' answers. Before, it
made one validation per epoch on all 5,000 and a separate pass for the temperature. This
runs both, paired and alternated (``val_points=1, val_subset=5000`` is the old schedule; ``--components`` times the parts in one process instead), in
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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import record

REPO = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO / "benchmarks" / "results" / "eval_cost.json"
SCHEDULES = {"dense": {}, "per_epoch": {"val_points": 1, "val_subset": 5000}}
LIMIT_EVAL_SHARE = 0.05  # the bound: all evaluation <= 5% of a default run's time


def child(model: str, overrides: dict, data: str | None) -> dict:
    """One run in this process; its timings."""
    from digitnet import data as mdata
    from digitnet.scheduler import warm_up
    from digitnet.training import EpochMetrics, TrainConfig, Trainer

    # Timed as the app runs it: the server warmed torch.optim up at start, and MNIST stays loaded after
    # the first run (a fresh process would add ~1.3 s of imports to the run, flattering the shares).
    warm_up()
    mdata.load_mnist(data)
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


def components(model: str, data: str | None, repeats: int) -> dict:
    """Time, in this one process, what a default run is made of: a training step, a validation point on
    the subset, the last one on the whole split, the probe digits; the run's shares follow from its counts.
    (Quick and paired, for a machine too busy for whole runs; the whole runs are the real figure.)"""
    import math

    import torch

    from digitnet import data as mdata
    from digitnet.training import (PROBE_INDICES, TrainConfig, make_optimizer, run_steps, supervised_step,
                                   evaluate, build_model, usable_cores)

    torch.set_num_threads(usable_cores())
    cfg = TrainConfig(model=model).validate()
    mnist = mdata.load_mnist(data)
    train, val = mdata.train_val_split(mnist, cfg.val_size)
    steps = math.ceil(len(train) / cfg.batch_size)
    total = run_steps(cfg.epochs, steps)
    points = max(cfg.val_points, math.ceil(total / steps))
    net = build_model(model)
    opt = make_optimizer(net, cfg)
    subset = mdata.Split(val.images[:cfg.val_subset], val.labels[:cfg.val_subset])
    probe = mdata.normalize(mnist.test_images[list(PROBE_INDICES)])
    test = mdata.Split(mnist.test_images, mnist.test_labels)
    batches = mdata.iterate_batches(train, cfg.batch_size, generator=torch.Generator().manual_seed(0))
    x, y = next(iter(batches))

    def timed(fn, n):
        out = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
        return statistics.median(out)

    def probe_pass():
        net.eval()
        with torch.inference_mode():
            net(probe).argmax(1).tolist()

    timed(lambda: supervised_step(net.train(), opt, x, y, cfg.label_smoothing), 5)  # warm-up
    rows = []
    for _ in range(repeats):
        rows.append({"step": timed(lambda: supervised_step(net.train(), opt, x, y, cfg.label_smoothing), 20),
                     "subset": timed(lambda: evaluate(net, subset, torch.device("cpu")), 3),
                     "full": timed(lambda: evaluate(net, val, torch.device("cpu")), 2),
                     "test": timed(lambda: evaluate(net, test, torch.device("cpu")), 2),
                     "probe": timed(probe_pass, 10), "load": os.getloadavg()[0]})
    med = {k: statistics.median(r[k] for r in rows) for k in ("step", "subset", "full", "test", "probe")}
    training = total * med["step"]
    # both with the test pass at the end (the temperature fit itself, on logits, is not counted in either)
    dense = (points - 1) * med["subset"] + med["full"] + points * med["probe"] + med["test"]
    # before: one validation per epoch on the whole split, and a second pass over it for the temperature
    before = math.ceil(total / steps) * med["full"] + med["full"] + med["test"]
    dense_total = dense  # the temperature reuses the last point's logits
    return {"steps": total, "validation_points": points, "seconds": med, "rows": rows,
            "training_seconds_estimate": training,
            "dense_evaluation_seconds": dense_total, "per_epoch_evaluation_seconds": before,
            "dense_share": dense_total / (training + dense_total),
            "per_epoch_share": before / (training + before)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="lenet", help="model (default: lenet, the default model)")
    p.add_argument("--repeats", type=int, default=3, help="paired repeats, medians reported (default: 3)")
    p.add_argument("--data", default=None, help="MNIST root holding MNIST/raw/ (default: $DIGITNET_DATA or ./data)")
    p.add_argument("--json", default=str(DEFAULT_JSON), help=f"where to write the record (default: {DEFAULT_JSON})")
    p.add_argument("--components", action="store_true",
                   help="time a step and each evaluation in one process instead of whole runs (a busy machine)")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    header = record.start(argv)  # date, commit, command, machine and load before (benchmarks/record.py)
    if args.components:
        out = components(args.model, args.data, args.repeats)
        record.write(args.json, header, {"model": args.model, "components": out,
                                         "checks": {"dense_evaluation_under_5pct": out["dense_share"] <= LIMIT_EVAL_SHARE}})
        print(f"{args.model}: {out['steps']} steps of {out['seconds']['step'] * 1000:.1f} ms; a subset point "
              f"{out['seconds']['subset'] * 1000:.1f} ms, the whole split {out['seconds']['full'] * 1000:.1f} ms, the test "
              f"pass {out['seconds']['test'] * 1000:.1f} ms, the "
              f"probe {out['seconds']['probe'] * 1000:.2f} ms -> all evaluation {out['dense_share']:.1%} of the run "
              f"(one validation per epoch + a temperature pass + the test: {out['per_epoch_share']:.1%})")
        print(f"wrote {args.json}")
        return 0
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
    report = {"load_average_during": loads, "model": args.model, "schedules": SCHEDULES, "runs": runs, "median": summary,
              "checks": {"dense_evaluation_under_5pct": summary["dense"]["evaluation_share"] <= LIMIT_EVAL_SHARE,
                         "dense_validation_under_5pct": summary["dense"]["validation_share"] <= LIMIT_EVAL_SHARE}}
    record.write(args.json, header, report)
    for name, s in summary.items():
        print(f"{name}: run {s['total_seconds']:.1f} s, validation {s['validation_share']:.1%}, validation + test + "
              f"calibration {s['evaluation_share']:.1%} (medians)")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
