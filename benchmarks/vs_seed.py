"""Side-by-side speed benchmark: the seed article's training recipe against digitnet's default.

For each model (mlp, cnnnet, lenet) it trains, each in a fresh subprocess so that no
thread setting, cache or allocator state leaks from one run into the next:

(a) the seed's recipe, reimplemented faithfully: torchvision ``MNIST`` Dataset +
    ``ToTensor`` + ``Normalize([0.5], [0.5])`` + ``DataLoader(batch_size=64, shuffle=True)``,
    ``SGD(lr=0.01, momentum=0.9)``, ``StepLR(5, 0.5)``, cross-entropy on the 60,000
    training images. The model is the SAME class from ``digitnet.models`` (so it
    outputs logits, the seed's softmax-then-CrossEntropy bug fixed), with its first
    layer put back to the plain ``nn.Conv2d`` the seed used (digitnet's ``GreyConv2d``
    has a faster weight gradient, which is part of digitnet's recipe, not the seed's).
(b) digitnet's default recipe (``TrainConfig()`` with nothing changed) through the
    same ``Trainer`` the app and the command line use;
(c) digitnet's default recipe at the seed's batch size (64), for the
    same-model-same-batch throughput comparison.

It reports samples/s, seconds per epoch, test accuracy after each epoch and the wall
time until the test accuracy first reaches the target, and the ratios digitnet / seed.

Timing rules (the same for both recipes):
- the clock starts before data preparation (dataset construction, loading) and
  runs through training; each recipe's own per-epoch work (digitnet's validation
  pass) is included;
- the benchmark's own test-set evaluation after each epoch is NOT counted (the
  clock is paused), so "time to target" is the training time at the end of the
  first epoch whose test accuracy reaches the target: epoch granularity, no
  mid-epoch peeking.

It also times whole processes (imports included): ``python -m digitnet.train --model
lenet`` with its defaults (checkpoint written to a temporary folder) against a
process that runs one epoch of the seed's recipe and its test pass, and reports
their peak resident memory.

    python benchmarks/vs_seed.py                       # all three models, ~5-10 minutes
    python benchmarks/vs_seed.py --models lenet --json runs/speed.json
    python benchmarks/vs_seed.py --train-limit 512 --test-limit 256   # smoke test, seconds
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

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere: import the repo's digitnet
    sys.path.insert(0, str(REPO))

MODEL_NAMES = ("mlp", "cnnnet", "lenet")
DEFAULT_TARGETS = {"mlp": 0.98, "cnnnet": 0.99, "lenet": 0.99}  # the targets
SEED_BATCH_SIZE = 64  # the seed's DataLoader
SEED_TEST_BATCH_SIZE = 128  # the seed's test DataLoader
SEED_LR, SEED_MOMENTUM = 0.01, 0.9
SEED_STEP_SIZE, SEED_GAMMA = 5, 0.5
SEED_NORM = ([0.5], [0.5])  # the seed's Normalize (not MNIST's own mean/std)

# The acceptance ratios (digitnet / seed).
LIMIT_LENET_VS_SEED_LENET_EPOCH = 0.75
LIMIT_CNNNET_VS_SEED_LENET_EPOCH = 1.5
LIMIT_MLP_VS_SEED_MLP_EPOCH = 0.5
MIN_SAME_BATCH_SPEEDUP = 5.0
MAX_CLI_RSS_MB = 1500.0


# --------------------------------------------------------------------------- children

def with_plain_convolutions(model):
    """``model`` with every ``GreyConv2d`` replaced by the plain ``nn.Conv2d`` (same weights)."""
    import torch.nn as nn

    from digitnet.models import GreyConv2d

    for name, child in model.named_children():
        if isinstance(child, GreyConv2d):
            plain = nn.Conv2d(1, child.out_channels, child.kernel_size, padding=child.padding)
            plain.load_state_dict(child.state_dict())
            setattr(model, name, plain)
    return model


def _seed_run(model_name: str, epochs: int, data: str, train_limit: int | None, test_limit: int | None) -> dict:
    """(a) The seed's recipe, timed as described in the module docstring."""
    import torch
    import torch.nn as nn
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    from digitnet.models import build_model

    t0 = time.perf_counter()
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
    model = with_plain_convolutions(build_model(model_name))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=SEED_LR, momentum=SEED_MOMENTUM)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=SEED_STEP_SIZE, gamma=SEED_GAMMA)
    prep_seconds = time.perf_counter() - t0

    epoch_seconds, test_acc, elapsed = [], [], [prep_seconds]
    for _ in range(epochs):
        e0 = time.perf_counter()
        model.train()
        for img, label in train_loader:  # the seed's loop, line for line
            optimizer.zero_grad()
            out = model(img)
            loss = criterion(out, label)
            loss.backward()
            optimizer.step()
        scheduler.step()
        loss.item()  # the seed prints the last loss of each epoch
        epoch_seconds.append(time.perf_counter() - e0)
        elapsed.append(elapsed[-1] + epoch_seconds[-1])
        test_acc.append(_seed_test(model, test_loader))  # not timed
    return {
        "recipe": "seed", "model": model_name, "batch_size": SEED_BATCH_SIZE, "threads": torch.get_num_threads(),
        "train_samples": len(train_dataset), "prep_seconds": prep_seconds, "epoch_seconds": epoch_seconds,
        "elapsed_at_epoch_end": elapsed[1:], "test_acc": test_acc,
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


def _digitnet_run(model_name: str, overrides: dict, data: str, train_limit: int | None, test_limit: int | None) -> dict:
    """(b)/(c) digitnet's default recipe through the app's Trainer, test accuracy after each epoch."""
    import torch

    from digitnet import data as mdata
    from digitnet.training import EpochMetrics, TrainConfig, Trainer, evaluate

    paused = [0.0]  # seconds spent in the benchmark's own test evaluation
    epoch_seconds, elapsed, test_acc = [], [], []
    t0 = time.perf_counter()
    test = {}

    def on_event(event: object) -> None:
        if not isinstance(event, EpochMetrics):
            return
        p0 = time.perf_counter()
        elapsed.append(p0 - t0 - paused[0])
        epoch_seconds.append(event.seconds)
        if "split" not in test:
            test["split"] = mdata.test_split(mdata.load_mnist(data, download=False), test_limit)
        was_training = trainer.model.training
        _, acc, _ = evaluate(trainer.model, test["split"], torch.device("cpu"))
        trainer.model.train(was_training)
        test_acc.append(acc)
        paused[0] += time.perf_counter() - p0

    cfg = TrainConfig(model=model_name, train_limit=train_limit, test_limit=test_limit, device="cpu", **overrides)
    trainer = Trainer(cfg, on_event, data_root=data, save=False)
    result = trainer.run()
    n_train = len(mdata.train_val_split(mdata.load_mnist(data, download=False), cfg.val_size, limit=cfg.train_limit)[0])
    return {
        "recipe": "digitnet", "model": model_name, "batch_size": cfg.batch_size, "threads": torch.get_num_threads(),
        "config": result.config, "train_samples": n_train, "epoch_seconds": epoch_seconds,
        "elapsed_at_epoch_end": elapsed, "test_acc": test_acc, "final_test_acc": result.test_acc,
    }


def _seed_process(model_name: str, data: str, train_limit: int | None, test_limit: int | None) -> None:
    """A whole seed-style process: imports, one epoch of the seed's recipe, its test pass."""
    out = _seed_run(model_name, 1, data, train_limit, test_limit)
    print(f"seed {model_name}: test accuracy {out['test_acc'][-1] * 100:.2f}%")


# --------------------------------------------------------------------------- parent

def _child(kind: str, payload: dict, threads_env: dict) -> dict:
    """Run one recipe in a fresh Python process and return its JSON result."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", kind, "--_payload", json.dumps(payload),
               "--_out", str(out)]
        subprocess.run(cmd, check=True, cwd=REPO, env=threads_env)
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


def run_benchmark(args: argparse.Namespace) -> dict:
    """Run every requested recipe and process; return the full report dict."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    targets = dict(DEFAULT_TARGETS)
    targets.update(args.targets or {})
    overrides = {"epochs": args.epochs} if args.epochs else {}
    if args.threads is not None:
        overrides["threads"] = args.threads
    common = {"data": args.data, "train_limit": args.train_limit, "test_limit": args.test_limit}
    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpu_count": os.cpu_count(),
              "load_average_start": os.getloadavg(), "targets": targets, "models": {}}
    for name in args.models:
        say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
        say(f"[{name}] seed recipe, {args.seed_epochs} epoch(s)...")
        seed = _child("seed", {"model": name, "epochs": args.seed_epochs, "threads": args.seed_threads, **common}, env)
        say(f"[{name}] digitnet default recipe...")
        ours = _child("digitnet", {"model": name, "overrides": overrides, **common}, env)
        same = None
        if args.same_batch:
            say(f"[{name}] digitnet at the seed's batch size {SEED_BATCH_SIZE}, 1 epoch...")
            same = _child("digitnet", {"model": name, "overrides": {**overrides, "epochs": 1, "batch_size": SEED_BATCH_SIZE},
                                       **common}, env)
        target = targets[name]
        entry = {
            "target": target, "seed": seed, "digitnet": ours, "digitnet_batch64": same,
            "seed_samples_per_second": samples_per_second(seed),
            "digitnet_samples_per_second": samples_per_second(ours),
            "digitnet_batch64_samples_per_second": samples_per_second(same) if same else None,
            "seed_epoch_seconds": seed["epoch_seconds"][0],
            "digitnet_epoch_seconds": sum(ours["epoch_seconds"]) / len(ours["epoch_seconds"]),
            "seed_time_to_target": time_to_target(seed, target),
            "digitnet_time_to_target": time_to_target(ours, target),
        }
        entry["samples_per_second_ratio"] = _ratio(entry["digitnet_samples_per_second"], entry["seed_samples_per_second"])
        entry["same_batch_samples_per_second_ratio"] = _ratio(entry["digitnet_batch64_samples_per_second"],
                                                              entry["seed_samples_per_second"])
        entry["time_to_target_vs_seed_epoch"] = _ratio(entry["digitnet_time_to_target"], entry["seed_epoch_seconds"])
        report["models"][name] = entry
    if args.process and "lenet" in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
            say("[process] python -m digitnet.train --model lenet (defaults)...")
            metrics = Path(tmp) / "metrics.json"
            cli = _timed_process([sys.executable, "-m", "digitnet.train", "--model", "lenet", "--quiet",
                                  "--data", args.data, "--checkpoints", tmp, "--metrics-json", str(metrics)]
                                 + (["--train-limit", str(args.train_limit)] if args.train_limit else [])
                                 + (["--test-limit", str(args.test_limit)] if args.test_limit else []), env)
            cli["test_acc"] = json.loads(metrics.read_text())["test_acc"]
            say("[process] one epoch of the seed's recipe as a whole process...")
            seed_proc = _timed_process([sys.executable, str(Path(__file__).resolve()), "--_child", "seed-process",
                                        "--_payload", json.dumps({"model": "lenet", **common}), "--_out", os.devnull], env)
        report["process"] = {"digitnet_cli": cli, "seed_one_epoch": seed_proc,
                             "ratio": _ratio(cli["seconds"], seed_proc["seconds"])}
    report["checks"] = _checks(report)
    report["load_average_end"] = os.getloadavg()
    return report


def _checks(report: dict) -> dict:
    """The issue's acceptance criteria that this run can decide (True/False)."""
    m, checks = report["models"], {}
    seed_lenet_epoch = m["lenet"]["seed_epoch_seconds"] if "lenet" in m else None
    if "lenet" in m:
        checks["lenet_ttt_under_0.75_seed_lenet_epoch"] = _below(m["lenet"]["digitnet_time_to_target"], seed_lenet_epoch,
                                                                LIMIT_LENET_VS_SEED_LENET_EPOCH)
    if "cnnnet" in m and seed_lenet_epoch:
        checks["cnnnet_ttt_under_1.5_seed_lenet_epochs"] = _below(m["cnnnet"]["digitnet_time_to_target"], seed_lenet_epoch,
                                                                 LIMIT_CNNNET_VS_SEED_LENET_EPOCH)
    if "mlp" in m:
        checks["mlp_ttt_under_0.5_seed_mlp_epoch"] = _below(m["mlp"]["digitnet_time_to_target"], m["mlp"]["seed_epoch_seconds"],
                                                           LIMIT_MLP_VS_SEED_MLP_EPOCH)
    for name, e in m.items():
        if e["same_batch_samples_per_second_ratio"] is not None:
            checks[f"{name}_same_batch_speedup_at_least_5x"] = e["same_batch_samples_per_second_ratio"] >= MIN_SAME_BATCH_SPEEDUP
    if "process" in report:
        p = report["process"]
        checks["cli_process_under_0.75_seed_epoch_process"] = (
            p["ratio"] < LIMIT_LENET_VS_SEED_LENET_EPOCH and p["digitnet_cli"]["test_acc"] >= report["targets"]["lenet"])
        checks["cli_peak_rss_under_1.5GB"] = p["digitnet_cli"]["peak_rss_mb"] < MAX_CLI_RSS_MB
    return checks


def _below(value: float | None, reference: float | None, limit: float) -> bool:
    return value is not None and reference is not None and value < limit * reference


# --------------------------------------------------------------------------- output

def _fmt(x: float | None, spec: str = ".1f", none: str = "not reached") -> str:
    return none if x is None else format(x, spec)


def format_table(report: dict) -> str:
    """The human-readable table (markdown) of one report."""
    lines = [
        "| model | recipe | batch | samples/s | s/epoch | test acc after each epoch | time to target (s) |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for name, e in report["models"].items():
        for label, run in (("seed", e["seed"]), ("digitnet", e["digitnet"]), ("digitnet @64", e["digitnet_batch64"])):
            if run is None:
                continue
            accs = " ".join(f"{a * 100:.2f}" for a in run["test_acc"])
            ttt = time_to_target(run, e["target"])
            lines.append(f"| {name} | {label} | {run['batch_size']} | {samples_per_second(run):,.0f} | "
                         f"{sum(run['epoch_seconds']) / len(run['epoch_seconds']):.1f} | {accs} | "
                         f"{_fmt(ttt, '.1f') if label != 'digitnet @64' else '-'} |")
    lines += ["", "| model | target | samples/s ratio (same batch 64) | samples/s ratio (default batch) | "
              "digitnet time to target / one seed epoch |", "|---|---:|---:|---:|---:|"]
    for name, e in report["models"].items():
        lines.append(f"| {name} | {e['target'] * 100:.1f}% | {_fmt(e['same_batch_samples_per_second_ratio'], '.2f', '-')}x | "
                     f"{_fmt(e['samples_per_second_ratio'], '.2f', '-')}x | {_fmt(e['time_to_target_vs_seed_epoch'], '.2f')} |")
    if "lenet" in report["models"] and "cnnnet" in report["models"]:
        c = report["models"]["cnnnet"]["digitnet_time_to_target"]
        lines.append(f"\nCNNNet time to target / one seed LeNet epoch: "
                     f"{_fmt(_ratio(c, report['models']['lenet']['seed_epoch_seconds']), '.2f')}")
    if "process" in report:
        p = report["process"]
        lines.append(f"\nWhole processes: `python -m digitnet.train --model lenet` {p['digitnet_cli']['seconds']:.1f}s "
                     f"(test {p['digitnet_cli']['test_acc'] * 100:.2f}%, peak RSS {p['digitnet_cli']['peak_rss_mb']:.0f} MB) "
                     f"vs one seed LeNet epoch {p['seed_one_epoch']['seconds']:.1f}s "
                     f"(peak RSS {p['seed_one_epoch']['peak_rss_mb']:.0f} MB): ratio {p['ratio']:.2f}")
    lines.append("\nChecks: " + ", ".join(f"{k}: {'PASS' if v else 'FAIL'}" for k, v in report["checks"].items()))
    lines.append(f"Load average at start {report['load_average_start'][0]:.2f}, at end {report['load_average_end'][0]:.2f} "
                 f"({report['cpu_count']} CPUs); {report['date']}")
    return "\n".join(lines)


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
    p.add_argument("--seed-epochs", type=int, default=1, help="epochs of the seed's recipe (default: 1; the seed trains 20)")
    p.add_argument("--epochs", type=int, default=None, help="digitnet epochs (default: TrainConfig's default)")
    p.add_argument("--threads", type=int, default=None, help="digitnet threads (default: TrainConfig's default)")
    p.add_argument("--seed-threads", type=int, default=None,
                   help="torch threads for the seed's recipe (default: torch's own choice, as the seed)")
    p.add_argument("--train-limit", type=int, default=None, help="train on only this many images (smoke tests; default: all)")
    p.add_argument("--test-limit", type=int, default=None, help="test on only this many images (default: all 10,000)")
    p.add_argument("--data", default=None, help="MNIST root holding MNIST/raw/ (default: $DIGITNET_DATA or ./data)")
    p.add_argument("--no-same-batch", dest="same_batch", action="store_false",
                   help="skip the extra digitnet epoch at the seed's batch size 64")
    p.add_argument("--no-process", dest="process", action="store_false",
                   help="skip the whole-process comparison (python -m digitnet.train vs one seed epoch)")
    p.add_argument("--json", default=None, help="also write the full report as JSON here")
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
            out = _seed_run(payload["model"], payload["epochs"], payload["data"], payload["train_limit"], payload["test_limit"])
        elif args._child == "digitnet":
            out = _digitnet_run(payload["model"], payload["overrides"], payload["data"], payload["train_limit"],
                                payload["test_limit"])
        else:
            _seed_process(payload["model"], payload["data"], payload["train_limit"], payload["test_limit"])
            return 0
        Path(args._out).write_text(json.dumps(out))
        return 0
    from digitnet.data import data_dir, ensure_mnist

    args.data = str(ensure_mnist(data_dir(args.data), download=False).resolve())
    report = run_benchmark(args)
    print(format_table(report))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
