"""Side-by-side speed benchmark: the seed article's training recipe against digitnet's default.

For each model (mlp, cnnnet, lenet) it trains, each in a fresh subprocess so that no
thread setting, cache or allocator state leaks from one run into the next:

(a) the seed's recipe, reimplemented faithfully: torchvision ``MNIST`` Dataset +
    ``ToTensor`` + ``Normalize([0.5], [0.5])`` + ``DataLoader(batch_size=64, shuffle=True)``,
    ``SGD(lr=0.01, momentum=0.9)``, ``StepLR(5, 0.5)``, cross-entropy on the 60,000
    training images. The model is the SAME class from ``digitnet.models`` (so it
    outputs logits, the seed's softmax-then-CrossEntropy bug fixed), with its pooling
    put back to the plain ``nn.MaxPool2d`` the seed used (digitnet's ``MaxPool2x2`` is
    faster on the CPU, which is part of digitnet's recipe, not the seed's).
(b) digitnet's default recipe (``TrainConfig()`` with nothing changed) through the
    same ``Trainer`` the app and the command line use.

Each repeat runs (a) then (b) for every model, so every digitnet figure has a seed figure
measured next to it on the same machine at nearly the same moment; the ratios are taken
within a repeat and the report gives their median and range over ``--repeats`` (default 3).
A machine shared with other work changes speed from minute to minute: pairing, not one
long run per side, is what makes the ratio mean something.

Timing rules (the same for both recipes):
- the clock starts before data preparation (dataset construction, loading) and runs through
  training; each recipe's own per-epoch work (digitnet's validation pass) is included;
- the benchmark's own test-set evaluations are NOT counted (the clock is paused). They run
  at the end of every epoch and, for the curves in ``--plot``, ``--points`` times within it;
- "time to target" is the time at the end of the first EPOCH whose model (the one the
  recipe would deliver) reaches the target test accuracy: mid-epoch points only draw curves.

It also times whole processes (imports included), paired in turn:
``python -m digitnet.train --model lenet`` with its defaults (checkpoint written to a
temporary folder) against a process that runs one epoch of the seed's recipe and its test
pass, with both processes' peak resident memory and digitnet's time split into start-up
(interpreter and imports), data preparation, training, validation, and test + save.

    python -m benchmarks.vs_seed --json runs/speed.json --plot docs/speed.png   # ~10 minutes idle
    python -m benchmarks.vs_seed --models lenet --repeats 5
    python -m benchmarks.vs_seed --process-only --repeats 3 --json benchmarks/results/speed-process.json
    python -m benchmarks.vs_seed --train-limit 512 --test-limit 256 --repeats 1   # smoke test, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import record

REPO = Path(__file__).resolve().parent.parent

MODEL_NAMES = ("mlp", "cnnnet", "lenet")
DEFAULT_TARGETS = {"mlp": 0.98, "cnnnet": 0.99, "lenet": 0.99}  # the issue's targets
SEED_BATCH_SIZE = 64  # the seed's DataLoader
SEED_TEST_BATCH_SIZE = 128  # the seed's test DataLoader
SEED_LR, SEED_MOMENTUM = 0.01, 0.9
SEED_STEP_SIZE, SEED_GAMMA = 5, 0.5
SEED_NORM = ([0.5], [0.5])  # the seed's Normalize (not MNIST's own mean/std)

# The acceptance limits: digitnet's time to target over one seed epoch (what a visitor waits, against the article's first epoch).
LIMIT_LENET_VS_SEED_LENET_EPOCH = 0.5
LIMIT_CNNNET_VS_SEED_LENET_EPOCH = 0.75
LIMIT_MLP_VS_SEED_MLP_EPOCH = 0.25
LIMIT_CLI_VS_SEED_PROCESS = 0.6
MAX_CLI_RSS_MB = 1000.0


# --------------------------------------------------------------------------- children

def with_plain_pooling(model):
    """``model`` with every ``MaxPool2x2`` replaced by PyTorch's ``nn.MaxPool2d(2, 2)`` (the same numbers)."""
    import torch.nn as nn

    from digitnet.models import MaxPool2x2

    for name, child in model.named_children():
        if isinstance(child, MaxPool2x2):
            setattr(model, name, nn.MaxPool2d(2, 2))
    return model


class PausableClock:
    """Wall seconds since ``start()``, less the time spent inside ``paused()`` blocks."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.paused_total = 0.0

    def now(self) -> float:
        """Counted seconds so far."""
        return time.perf_counter() - self.t0 - self.paused_total

    def pause(self):
        """Context manager: the time inside is not counted."""
        clock = self

        class _Pause:
            def __enter__(self):
                self.p0 = time.perf_counter()

            def __exit__(self, *exc):
                clock.paused_total += time.perf_counter() - self.p0

        return _Pause()


def _points_at(batches: int, points: int) -> set[int]:
    """The 1-based batch numbers, within an epoch, after which a mid-epoch curve point is taken."""
    if points <= 0 or batches < 2:
        return set()
    return {max(1, round(batches * k / (points + 1))) for k in range(1, points + 1)} - {batches}


def _seed_run(model_name: str, epochs: int, data: str, train_limit: int | None, test_limit: int | None,
              points: int = 0) -> dict:
    """(a) The seed's recipe, timed as described in the module docstring."""
    import torch
    import torch.nn as nn
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    from digitnet.models import build_model

    clock = PausableClock()
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(*SEED_NORM)])
    train_dataset = datasets.MNIST(data, train=True, transform=transform, download=False)
    test_dataset = datasets.MNIST(data, train=False, transform=transform, download=False)
    if train_limit:
        train_dataset = Subset(train_dataset, range(min(train_limit, len(train_dataset))))
    if test_limit:
        test_dataset = Subset(test_dataset, range(min(test_limit, len(test_dataset))))
    train_loader = DataLoader(train_dataset, batch_size=SEED_BATCH_SIZE, shuffle=True)
    test_loader = DataLoader(test_dataset, batch_size=SEED_TEST_BATCH_SIZE, shuffle=False)
    torch.manual_seed(0)
    model = with_plain_pooling(build_model(model_name))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=SEED_LR, momentum=SEED_MOMENTUM)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=SEED_STEP_SIZE, gamma=SEED_GAMMA)
    prep_seconds = clock.now()

    epoch_seconds, test_acc, elapsed, curve, test_seconds = [], [], [], [], []
    marks = _points_at(len(train_loader), points)
    for epoch in range(epochs):
        e0 = clock.now()
        model.train()
        for i, (img, label) in enumerate(train_loader, 1):  # the seed's loop, line for line
            optimizer.zero_grad()
            out = model(img)
            loss = criterion(out, label)
            loss.backward()
            optimizer.step()
            if i in marks:
                with clock.pause():
                    curve.append((clock.now(), epoch + i / len(train_loader), _seed_test(model, test_loader)))
                model.train()
        scheduler.step()
        loss.item()  # the seed prints the last loss of each epoch
        epoch_seconds.append(clock.now() - e0)
        elapsed.append(clock.now())
        with clock.pause():
            t = time.perf_counter()
            test_acc.append(_seed_test(model, test_loader))
            test_seconds.append(time.perf_counter() - t)
        curve.append((elapsed[-1], epoch + 1.0, test_acc[-1]))
    return {
        "recipe": "seed", "model": model_name, "batch_size": SEED_BATCH_SIZE, "threads": torch.get_num_threads(),
        "train_samples": len(train_dataset), "prep_seconds": prep_seconds, "epoch_seconds": epoch_seconds,
        "test_seconds": test_seconds, "elapsed_at_epoch_end": elapsed, "test_acc": test_acc, "curve": curve,
    }


def _seed_test(model, loader) -> float:
    """The seed's validate_model: accuracy on the test loader."""
    import torch

    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            correct += (model(images).argmax(1) == labels).sum().item()
            total += labels.size(0)
    return correct / max(total, 1)


def _digitnet_run(model_name: str, overrides: dict, data: str, train_limit: int | None, test_limit: int | None,
                  points: int = 0) -> dict:
    """(b) digitnet's default recipe through the app's Trainer, test accuracy after each epoch."""
    import torch

    from digitnet import data as mdata
    from digitnet.training import BatchProgress, EpochMetrics, TrainConfig, Trainer, evaluate

    epoch_seconds, elapsed, test_acc, curve = [], [], [], []
    # torch.optim imports torch._dynamo the first time an optimiser is made or steps (~1 s, +150 MB).
    # The seed's child has it already when its clock starts: importing torchvision loads it. An
    # import is start-up, not training, so it is loaded here too before the clock starts. (The
    # whole-process comparison counts it on both sides.)
    import torch._dynamo  # noqa: F401

    clock = PausableClock()
    test = {}

    def test_accuracy(model) -> float:
        if "split" not in test:  # the benchmark's own copy of the test set, outside the clock
            test["split"] = mdata.test_split(mdata.load_mnist(data, download=False), test_limit)
        was_training = model.training
        _, acc, _ = evaluate(model, test["split"], torch.device("cpu"))
        model.train(was_training)
        return acc

    def on_event(event: object) -> None:
        if isinstance(event, BatchProgress) and event.batch in marks.setdefault(event.batches, _points_at(event.batches, points)):
            with clock.pause():  # the live weights, mid-epoch: a point on the curve only
                curve.append((clock.now(), event.done, test_accuracy(trainer.model)))
        elif isinstance(event, EpochMetrics):
            pending[0] += event.seconds  # several validation points an epoch: the epoch ends at the last
            if not event.epoch_end:
                return
            elapsed.append(clock.now())
            epoch_seconds.append(pending[0])
            pending[0] = 0.0
            with clock.pause():  # what the run delivers (the weight average, when the recipe keeps one)
                test_acc.append(test_accuracy(trainer.eval_model))
            curve.append((elapsed[-1], float(event.epoch), test_acc[-1]))

    marks: dict[int, set[int]] = {}
    pending = [0.0]  # seconds of the epoch's validation points so far
    cfg = TrainConfig(model=model_name, train_limit=train_limit, test_limit=test_limit, device="cpu", **overrides)
    if points:  # progress events at least as often as the curve's points need them
        cfg.log_every = 1
    trainer = Trainer(cfg, on_event, data_root=data, save=False)
    result = trainer.run()
    n_train = len(mdata.train_val_split(mdata.load_mnist(data, download=False), cfg.val_size, limit=cfg.train_limit)[0])
    timings = dict(trainer.timings)
    timings["train_seconds"] = sum(epoch_seconds) - timings["validate_seconds"]
    return {
        "recipe": "digitnet", "model": model_name, "batch_size": cfg.batch_size, "threads": torch.get_num_threads(),
        "config": result.config, "train_samples": n_train, "epoch_seconds": epoch_seconds, "timings": timings,
        "elapsed_at_epoch_end": elapsed, "test_acc": test_acc, "final_test_acc": result.test_acc, "curve": curve,
    }


def _seed_process(model_name: str, data: str, train_limit: int | None, test_limit: int | None) -> None:
    """A whole seed-style process: imports, one epoch of the seed's recipe, its test pass."""
    out = _seed_run(model_name, 1, data, train_limit, test_limit)
    print(f"seed {model_name}: test accuracy {out['test_acc'][-1] * 100:.2f}%")


# --------------------------------------------------------------------------- parent

def _child(kind: str, payload: dict, env: dict) -> dict:
    """Run one recipe in a fresh Python process and return its JSON result."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "benchmarks.vs_seed", "--_child", kind, "--_payload", json.dumps(payload),
               "--_out", str(out)]
        subprocess.run(cmd, check=True, cwd=REPO, env=env)
        return json.loads(out.read_text())


def _timed_process(cmd: list[str], env: dict) -> dict:
    """Run a whole process; return its wall seconds, peak RSS (MB) and exit code."""
    with tempfile.TemporaryFile() as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # per-child rusage (ru_maxrss in KiB on Linux)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        log.seek(0)
        text = log.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{text[-2000:]}")
    return {"seconds": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "command": " ".join(cmd), "output_tail": text[-300:]}


def time_to_target(run: dict, target: float) -> float | None:
    """Seconds (data preparation included) until test accuracy first reaches target, else None."""
    for t, acc in zip(run["elapsed_at_epoch_end"], run["test_acc"]):  # both start before data preparation
        if acc >= target:
            return t
    return None


def samples_per_second(run: dict) -> float:
    """Training samples per second over all epochs (digitnet's epoch includes its validation pass)."""
    return run["train_samples"] * len(run["epoch_seconds"]) / max(sum(run["epoch_seconds"]), 1e-9)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def spread(values: list[float | None]) -> dict:
    """Median, min, max and all values of a list; a None (target not reached) makes the median None
    when it is half or more of the list (it counts as +infinity)."""
    finite = sorted(v for v in values if v is not None)
    missing = len(values) - len(finite)
    ordered = finite + [None] * missing
    if not values:
        median = None
    elif len(values) % 2:
        median = ordered[len(values) // 2]
    else:
        lo, hi = ordered[len(values) // 2 - 1], ordered[len(values) // 2]
        median = None if lo is None or hi is None else (lo + hi) / 2
    return {"median": median, "min": finite[0] if finite else None,
            "max": None if missing or not finite else finite[-1], "values": values}


def run_benchmark(args: argparse.Namespace) -> dict:
    """Run every requested recipe and process, ``args.repeats`` times in turn; return the report."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    targets = dict(DEFAULT_TARGETS)
    targets.update(args.targets or {})
    overrides = {"epochs": args.epochs} if args.epochs else {}
    if args.threads is not None:
        overrides["threads"] = args.threads
    common = {"data": args.data, "train_limit": args.train_limit, "test_limit": args.test_limit}
    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpu_count": os.cpu_count(),
              "load_average_start": os.getloadavg(), "targets": targets, "repeats": args.repeats,
              "models": {name: {"target": targets[name], "runs": []} for name in args.models}, "process": None}
    load = []
    processes = []
    for r in range(1, args.repeats + 1):
        for name in ([] if args.process_only else args.models):
            load.append(os.getloadavg()[0])
            say(f"[{r}/{args.repeats}] {name}: seed recipe, {args.seed_epochs} epoch(s) (load {load[-1]:.2f})...")
            seed = _child("seed", {"model": name, "epochs": args.seed_epochs, "threads": args.seed_threads,
                                   "points": args.points, **common}, env)
            say(f"[{r}/{args.repeats}] {name}: digitnet default recipe...")
            ours = _child("digitnet", {"model": name, "overrides": overrides, "points": args.points, **common}, env)
            report["models"][name]["runs"].append({"seed": seed, "digitnet": ours})
        if args.process and ("lenet" in args.models or args.process_only):
            load.append(os.getloadavg()[0])
            processes.append(_process_pair(args, common, env, say, f"[{r}/{args.repeats}]"))
    if args.process_only:
        report["models"] = {}
    for name, entry in report["models"].items():
        _summarise(entry, report["models"].get("lenet"))
    if processes:
        report["process"] = _summarise_processes(processes)
    report["load_average_end"] = os.getloadavg()
    report["load_average_during"] = spread(load)
    report["checks"] = _checks(report)
    return report


def _process_pair(args, common: dict, env: dict, say, tag: str) -> dict:
    """One seed one-epoch process, then one ``python -m digitnet.train --model lenet`` process."""
    with tempfile.TemporaryDirectory() as tmp:
        say(f"{tag} process: one epoch of the seed's recipe as a whole process...")
        seed_proc = _timed_process([sys.executable, "-m", "benchmarks.vs_seed", "--_child", "seed-process",
                                    "--_payload", json.dumps({"model": "lenet", **common}), "--_out", os.devnull], env)
        say(f"{tag} process: python -m digitnet.train --model lenet (defaults)...")
        metrics = Path(tmp) / "metrics.json"
        cli = _timed_process([sys.executable, "-m", "digitnet.train", "--model", "lenet", "--quiet",
                              "--data", args.data, "--checkpoints", tmp, "--metrics-json", str(metrics)]
                             + (["--train-limit", str(args.train_limit)] if args.train_limit else [])
                             + (["--test-limit", str(args.test_limit)] if args.test_limit else []), env)
        m = json.loads(metrics.read_text())
    cli["test_acc"] = m["test_acc"]
    cli["phases"] = {"startup_seconds": cli["seconds"] - m["process_seconds"], **m["timings"]}
    return {"seed_one_epoch": seed_proc, "digitnet_cli": cli, "ratio": _ratio(cli["seconds"], seed_proc["seconds"])}


def _summarise(entry: dict, lenet: dict | None) -> None:
    """Fill an entry's medians and ranges from its paired runs."""
    runs, target = entry["runs"], entry["target"]
    entry["seed_epoch_seconds"] = spread([r["seed"]["epoch_seconds"][0] for r in runs])
    entry["seed_prep_seconds"] = spread([r["seed"]["prep_seconds"] for r in runs])
    entry["seed_test_acc"] = spread([r["seed"]["test_acc"][0] for r in runs])
    entry["digitnet_time_to_target"] = spread([time_to_target(r["digitnet"], target) for r in runs])
    entry["digitnet_final_test_acc"] = spread([r["digitnet"]["test_acc"][-1] for r in runs])
    for phase in ("data_seconds", "train_seconds", "validate_seconds"):
        entry[f"digitnet_{phase}"] = spread([r["digitnet"]["timings"][phase] for r in runs])
    entry["samples_per_second_ratio"] = spread([_ratio(samples_per_second(r["digitnet"]), samples_per_second(r["seed"]))
                                                for r in runs])
    # Time to target over one seed epoch of the same model, and (CNNNet's target) of LeNet, paired by repeat.
    entry["time_to_target_vs_seed_epoch"] = spread([_ratio(time_to_target(r["digitnet"], target),
                                                           r["seed"]["epoch_seconds"][0]) for r in runs])
    if lenet is not None:
        entry["time_to_target_vs_seed_lenet_epoch"] = spread([
            _ratio(time_to_target(r["digitnet"], target), lr["seed"]["epoch_seconds"][0])
            for r, lr in zip(runs, lenet["runs"])])


def _summarise_processes(pairs: list[dict]) -> dict:
    """Medians and ranges of the whole-process pairs."""
    cli = [p["digitnet_cli"] for p in pairs]
    phases = {k: spread([c["phases"][k] for c in cli]) for k in cli[0]["phases"]}
    return {"pairs": pairs, "ratio": spread([p["ratio"] for p in pairs]),
            "digitnet_seconds": spread([c["seconds"] for c in cli]),
            "seed_seconds": spread([p["seed_one_epoch"]["seconds"] for p in pairs]),
            "digitnet_test_acc": spread([c["test_acc"] for c in cli]),
            "digitnet_peak_rss_mb": spread([c["peak_rss_mb"] for c in cli]),
            "seed_peak_rss_mb": spread([p["seed_one_epoch"]["peak_rss_mb"] for p in pairs]),
            "digitnet_phases": phases}


def _checks(report: dict) -> dict:
    """The issue's acceptance criteria that this run can decide (True/False), on medians."""
    m, checks = report["models"], {}

    def below(spread_: dict | None, limit: float) -> bool:
        return bool(spread_) and spread_["median"] is not None and spread_["median"] < limit

    if "lenet" in m:
        checks["lenet_ttt_under_0.5_seed_lenet_epoch"] = below(m["lenet"]["time_to_target_vs_seed_epoch"],
                                                               LIMIT_LENET_VS_SEED_LENET_EPOCH)
    if "cnnnet" in m and "lenet" in m:
        checks["cnnnet_ttt_under_0.75_seed_lenet_epoch"] = below(m["cnnnet"]["time_to_target_vs_seed_lenet_epoch"],
                                                                 LIMIT_CNNNET_VS_SEED_LENET_EPOCH)
    if "mlp" in m:
        checks["mlp_ttt_under_0.25_seed_mlp_epoch"] = below(m["mlp"]["time_to_target_vs_seed_epoch"],
                                                            LIMIT_MLP_VS_SEED_MLP_EPOCH)
    p = report.get("process")
    if p:
        checks["cli_process_under_0.6_seed_epoch_process"] = (
            below(p["ratio"], LIMIT_CLI_VS_SEED_PROCESS) and p["digitnet_test_acc"]["median"] >= report["targets"]["lenet"])
        checks["cli_peak_rss_under_1GB"] = max(p["digitnet_peak_rss_mb"]["values"]) < MAX_CLI_RSS_MB
    return checks


# --------------------------------------------------------------------------- output

def _fmt(x: float | None, spec: str = ".1f", none: str = "not reached") -> str:
    return none if x is None else format(x, spec)


def _range(s: dict, spec: str = ".2f", scale: float = 1.0) -> str:
    """'median (min-max)' of a spread."""
    if s["median"] is None:
        return "not reached"
    lo = _fmt(None if s["min"] is None else s["min"] * scale, spec)
    hi = _fmt(None if s["max"] is None else s["max"] * scale, spec)
    return f"{s['median'] * scale:{spec}} ({lo}-{hi})"


def format_table(report: dict) -> str:
    """The human-readable tables (markdown) of one report: medians (min-max) over the repeats."""
    n = report["repeats"]
    lines = [
        f"Medians (min-max) over {n} repeat(s), each digitnet run paired with a seed run just before it.",
        "",
        "| model | target | seed: s/epoch | seed: test acc after 1 epoch | digitnet: test acc | "
        "digitnet: time to target (s) | / one seed epoch | / one seed LeNet epoch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, e in report["models"].items():
        lenet_ratio = _range(e["time_to_target_vs_seed_lenet_epoch"]) if "time_to_target_vs_seed_lenet_epoch" in e else "-"
        lines.append(
            f"| {name} | {e['target'] * 100:.1f}% | {_range(e['seed_epoch_seconds'], '.1f')} | "
            f"{_range(e['seed_test_acc'], '.2f', 100)} | {_range(e['digitnet_final_test_acc'], '.2f', 100)} | "
            f"{_range(e['digitnet_time_to_target'], '.1f')} | {_range(e['time_to_target_vs_seed_epoch'])} | {lenet_ratio} |")
    lines += ["", "Where digitnet's time goes (s; data preparation + training + validation ~ time to target):", "",
              "| model | seed: data prep | digitnet: data prep | training | validation | samples/s vs seed |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, e in report["models"].items():
        lines.append(f"| {name} | {_range(e['seed_prep_seconds'])} | {_range(e['digitnet_data_seconds'])} | "
                     f"{_range(e['digitnet_train_seconds'], '.1f')} | {_range(e['digitnet_validate_seconds'])} | "
                     f"{_range(e['samples_per_second_ratio'], '.2f')}x |")
    p = report.get("process")
    if p:
        ph = p["digitnet_phases"]
        lines += ["", f"Whole processes, paired in turn: `python -m digitnet.train --model lenet` "
                  f"{_range(p['digitnet_seconds'], '.1f')} s (test {_range(p['digitnet_test_acc'], '.2f', 100)}%, "
                  f"peak RSS {_range(p['digitnet_peak_rss_mb'], '.0f')} MB) vs one seed LeNet epoch as a process "
                  f"{_range(p['seed_seconds'], '.1f')} s (peak RSS {_range(p['seed_peak_rss_mb'], '.0f')} MB): "
                  f"ratio **{_range(p['ratio'])}**.",
                  f"digitnet's process: start-up (interpreter, imports) {_range(ph['startup_seconds'])} s, "
                  f"data {_range(ph['data_seconds'])} s, model and optimiser {_range(ph['setup_seconds'])} s, "
                  f"training {_range(ph['train_seconds'], '.1f')} s, "
                  f"validation {_range(ph['validate_seconds'])} s, test + save {_range(ph['test_and_save_seconds'])} s."]
    lines.append("\nChecks (on the medians): " + ", ".join(f"{k}: {'PASS' if v else 'FAIL'}" for k, v in report["checks"].items()))
    la = report["load_average_during"]
    lines.append(f"Load average (1 min) at start {report['load_average_start'][0]:.2f}, before each run "
                 f"{_range(la)}, at end {report['load_average_end'][0]:.2f} ({report['cpu_count']} CPUs); {report['date']}")
    return "\n".join(lines)


def save_plot(report: dict, path: str | Path) -> Path:
    """Test accuracy against wall time (data preparation included), seed vs digitnet, one panel per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(report["models"])
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.8), squeeze=False)
    for ax, name in zip(axes[0], models):
        e = report["models"][name]
        for recipe, colour in (("seed", "tab:grey"), ("digitnet", "tab:blue")):
            for i, run in enumerate(e["runs"]):
                curve = run[recipe]["curve"]
                ax.plot([c[0] for c in curve], [c[2] * 100 for c in curve], "o-", ms=3, color=colour, alpha=0.8,
                        label=(f"seed's recipe ({run[recipe]['batch_size']}/batch, SGD)" if recipe == "seed"
                               else "digitnet default") if i == 0 else None)
        ax.axhline(e["target"] * 100, color="tab:red", lw=0.8, ls="--", label=f"target {e['target'] * 100:.0f}%")
        ax.set(title=name, xlabel="wall seconds (data preparation included)", ylabel="test accuracy (%)",
               ylim=(94 if name != "mlp" else 92, 100))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"digitnet vs the seed's recipe on {report['cpu_count']} CPUs, {report['repeats']} paired repeat(s), "
                 f"{report['date']}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _targets(text: str) -> dict:
    """Parse 'lenet=0.99,mlp=98' (fractions or percentages)."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in MODEL_NAMES or not value:
            raise argparse.ArgumentTypeError(f"bad target {part!r}: use e.g. lenet=0.99,mlp=0.98")
        v = float(value)
        out[name] = v / 100 if v > 1 else v
    return out


def _models(text: str) -> list[str]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in MODEL_NAMES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown model(s) {bad}: choose from {', '.join(MODEL_NAMES)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (defaults in each help line)."""
    p = argparse.ArgumentParser(description="Benchmark digitnet's default training recipe against the seed article's.")
    p.add_argument("--models", type=_models, default=list(MODEL_NAMES), help="comma-separated (default: mlp,cnnnet,lenet)")
    p.add_argument("--targets", type=_targets, default=None,
                   help="test-accuracy targets, e.g. lenet=0.99,mlp=0.98 (default: 0.99 for the CNNs, 0.98 for the MLP)")
    p.add_argument("--repeats", type=int, default=3, help="paired seed/digitnet repeats; medians are reported (default: 3)")
    p.add_argument("--seed-epochs", type=int, default=1, help="epochs of the seed's recipe (default: 1; the seed trains 20)")
    p.add_argument("--epochs", type=int, default=None, help="digitnet epochs (default: TrainConfig's default)")
    p.add_argument("--threads", type=int, default=None, help="digitnet threads (default: TrainConfig's default)")
    p.add_argument("--seed-threads", type=int, default=None,
                   help="torch threads for the seed's recipe (default: torch's own choice, as the seed)")
    p.add_argument("--points", type=int, default=4,
                   help="untimed test evaluations within each epoch, for the curves (default: 4)")
    p.add_argument("--train-limit", type=int, default=None, help="train on only this many images (smoke tests; default: all)")
    p.add_argument("--test-limit", type=int, default=None, help="test on only this many images (default: all 10,000)")
    p.add_argument("--data", default=None, help="MNIST root holding MNIST/raw/ (default: $DIGITNET_DATA or ./data)")
    p.add_argument("--no-process", dest="process", action="store_false",
                   help="skip the whole-process comparison (python -m digitnet.train vs one seed epoch)")
    p.add_argument("--process-only", action="store_true",
                   help="only the whole-process pairs (the command line against one seed epoch), --repeats of them")
    p.add_argument("--json", default=None, help="also write the full report as JSON here")
    p.add_argument("--plot", default=None, help="also draw test accuracy against wall time to this PNG (e.g. docs/speed.png)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    p.add_argument("--_payload", help=argparse.SUPPRESS)
    p.add_argument("--_out", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    if args._child:
        payload = json.loads(args._payload)
        if args._child == "seed":
            if payload.get("threads"):
                import torch

                torch.set_num_threads(payload["threads"])
            out = _seed_run(payload["model"], payload["epochs"], payload["data"], payload["train_limit"],
                            payload["test_limit"], payload.get("points", 0))
        elif args._child == "digitnet":
            out = _digitnet_run(payload["model"], payload["overrides"], payload["data"], payload["train_limit"],
                                payload["test_limit"], payload.get("points", 0))
        else:
            _seed_process(payload["model"], payload["data"], payload["train_limit"], payload["test_limit"])
            return 0
        Path(args._out).write_text(json.dumps(out))
        return 0
    if args.repeats < 1:
        build_parser().error("--repeats must be at least 1")
    from digitnet.data import data_dir, ensure_mnist

    args.data = str(ensure_mnist(data_dir(args.data), download=False).resolve())
    header = record.start(argv)
    report = run_benchmark(args)
    print(format_table(report))
    record.write(args.json, header, report)
    if args.plot:
        print(f"saved {save_plot(report, args.plot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
