"""Compare the three loaded models side by side: size, accuracy, speed. Nothing typed in by hand.

Each figure comes from somewhere a reader can check:

- parameters: counted on the loaded model;
- test accuracy: the checkpoint's metadata (``metrics.test_acc``), written by the run that
  produced the weights; a fine-tuned checkpoint also says on how many personal digits;
- drawn-digit accuracy: the JSON ``benchmarks/drawn.py --json`` writes (default
  ``benchmarks/results/drawn.json``, its ``in_process`` figures per model); "not measured"
  when there is none, and flagged when the checkpoint is newer than the measurement;
- latency: measured on the spot, the median of single-image predictions with one torch
  thread under ``inference_mode`` (what ``digitnet.predict`` does per drawing);
- training step: measured on the spot, the median time of one forward + backward + AdamW
  step on a batch of random images, with one torch thread: with two, on two cores that a
  visitor's run may be using, the figures scattered by 10x from one click to the next; with
  one they repeat, and the three models compare. Not seconds per epoch from the checkpoints:
  those were recorded on whatever machine, load and thread count made each file.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .checkpoint import SHIPPED_DIR
from .models import DISPLAY_NAMES, MODELS, count_parameters
from .predict import CACHE, checkpoint_for, single_thread
from .preprocess import to_tensor

# Where ``python benchmarks/drawn.py --json benchmarks/results/drawn.json`` leaves its figures.
DRAWN_RESULTS = SHIPPED_DIR.parent / "benchmarks" / "results" / "drawn.json"
LATENCY_RUNS = 30  # single-image predictions per model; the median of 30 is steady to ~0.1 ms here
LATENCY_WARMUP = 3  # first calls allocate and pick kernels; not what a visitor waits for
TRAIN_BATCH = 128  # images per measured training step: the default batch size of a run
TRAIN_STEP_RUNS = 10  # measured steps per model (the median is reported)
TRAIN_STEP_WARMUP = 3  # first steps allocate the optimizer's state and pick kernels
# Stop measuring a model's steps after this long (warm-up not counted), whatever TRAIN_STEP_RUNS
# says: the tab measures when it opens, and a loaded machine must not keep a visitor waiting.
TRAIN_STEP_BUDGET_S = 1.0
NOT_MEASURED = "not measured"
TRAIN_STEP_COLUMN = f"Training step (median, ms, batch {TRAIN_BATCH})"
UNAVAILABLE = "unavailable"


def drawn_results_path() -> Path:
    """``$DIGITNET_DRAWN_RESULTS`` if set, else ``benchmarks/results/drawn.json`` in the repo."""
    return Path(os.environ.get("DIGITNET_DRAWN_RESULTS") or DRAWN_RESULTS)


def load_drawn_accuracy(path: str | os.PathLike | None = None) -> tuple[dict[str, float], float | None]:
    """({model: accuracy 0..1}, file mtime) from the drawn benchmark's JSON; ({}, None) when absent or unreadable."""
    p = Path(path) if path is not None else drawn_results_path()
    try:
        figures = json.loads(p.read_text())
        mtime = p.stat().st_mtime
    except (OSError, ValueError):
        return {}, None
    acc = figures.get("in_process") if isinstance(figures, dict) else None
    if not isinstance(acc, dict):
        return {}, None
    return {k: float(v) for k, v in acc.items() if k in MODELS and isinstance(v, (int, float))}, mtime


def sample_digit() -> np.ndarray:
    """A fixed 28x28 "1"-like stroke in [0, 1]: latency does not depend on what is drawn."""
    seen = np.zeros((28, 28), np.float32)
    seen[4:24, 13:16] = 1.0
    return seen


def measure_latency(model: torch.nn.Module, mean: float, std: float, runs: int = LATENCY_RUNS,
                    seen: np.ndarray | None = None) -> float:
    """Median milliseconds of one single-image forward + softmax, one torch thread (as ``predict`` runs)."""
    x = to_tensor(sample_digit() if seen is None else seen, mean, std)
    times = []
    with torch.inference_mode(), single_thread():
        for i in range(LATENCY_WARMUP + runs):
            t0 = time.perf_counter()
            torch.softmax(model(x).float(), dim=1)
            if i >= LATENCY_WARMUP:
                times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def measure_training_step(model: torch.nn.Module, runs: int = TRAIN_STEP_RUNS,
                          budget_s: float = TRAIN_STEP_BUDGET_S, batch: int = TRAIN_BATCH) -> float:
    """Median milliseconds of one forward + backward + AdamW step on ``batch`` random 28x28 images.

    Works on a copy of ``model`` (the loaded one is shared by every visitor and frozen), in
    train mode, with one torch thread (see the module docstring).
    Random numbers come from a private generator and dropout, which would draw from the
    process-wide one, is off: a training run in another thread keeps its random sequence.
    Dropout costs little next to the convolutions and matrix products.
    """
    trainee = copy.deepcopy(model).train().requires_grad_(True)
    for m in trainee.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, 28, 28, generator=generator)
    y = torch.randint(0, 10, (batch,), generator=generator)
    optimizer = torch.optim.AdamW(trainee.parameters())
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(trainee(x), y).backward()
        optimizer.step()

    times = []
    with single_thread():
        for _ in range(TRAIN_STEP_WARMUP):
            step()
        deadline = time.perf_counter() + budget_s
        while len(times) < max(1, runs) and (not times or time.perf_counter() < deadline):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def _checkpoint_mtime(name: str) -> float | None:
    """When the shipped (or DIGITNET_CHECKPOINTS) file of ``name`` was written; None if there is none."""
    try:
        return checkpoint_for(name).stat().st_mtime
    except OSError:
        return None


def compare_models(weights: Any = None, drawn_path: str | os.PathLike | None = None,
                   runs: int = LATENCY_RUNS, train_steps: int = TRAIN_STEP_RUNS) -> list[dict]:
    """One dict per model (mlp, cnnnet, lenet), raw values; None where a figure is missing.

    Keys: model, name, parameters, test_acc (0..1), drawn_acc (0..1), drawn_stale (True when
    the checkpoint is newer than the drawn measurement), latency_ms, train_step_ms,
    finetuned_on (personal digits of the last fine-tune, else None), error (unavailable model).
    ``runs`` and ``train_steps`` are how many predictions and training steps are timed per model.
    """
    weights = CACHE if weights is None else weights  # a predict.WeightSource
    drawn, drawn_mtime = load_drawn_accuracy(drawn_path)
    rows = []
    for name in MODELS:
        row: dict[str, Any] = {"model": DISPLAY_NAMES[name], "name": name, "parameters": None, "test_acc": None,
                               "drawn_acc": drawn.get(name), "drawn_stale": False, "latency_ms": None,
                               "train_step_ms": None, "finetuned_on": None, "error": None}
        try:
            model, ckpt = weights.get(name)
        except Exception as exc:  # ModelUnavailable: a broken or missing file shows as such, the others still compare
            row["error"] = str(exc)
            rows.append(row)
            continue
        metrics = ckpt.get("metrics") or {}
        row["parameters"] = count_parameters(model)
        acc = metrics.get("test_acc")
        row["test_acc"] = float(acc) if isinstance(acc, (int, float)) else None
        finetune = metrics.get("finetune")
        row["finetuned_on"] = finetune.get("personal_digits") if isinstance(finetune, dict) else None
        if row["drawn_acc"] is not None and drawn_mtime is not None:
            mtime = _checkpoint_mtime(name)
            row["drawn_stale"] = mtime is not None and mtime > drawn_mtime
        row["latency_ms"] = measure_latency(model, float(ckpt["mean"]), float(ckpt["std"]), runs)
        row["train_step_ms"] = measure_training_step(model, train_steps)
        rows.append(row)
    return rows


def _percent(value: float | None, missing: str = NOT_MEASURED) -> str:
    return missing if value is None else f"{100 * value:.2f}%"


def compare_table(rows: list[dict] | None = None, **kwargs: Any):
    """The rows as a pandas DataFrame of display strings (for a ``gr.Dataframe``); measures when ``rows`` is None."""
    rows = compare_models(**kwargs) if rows is None else rows
    table = []
    for r in rows:
        if r["error"]:
            table.append({"Model": r["model"], "Parameters": UNAVAILABLE, "Test accuracy": UNAVAILABLE,
                          "Drawn-digit accuracy": UNAVAILABLE, "Latency (median, ms)": UNAVAILABLE,
                          TRAIN_STEP_COLUMN: UNAVAILABLE})
            continue
        test = _percent(r["test_acc"], "unknown")
        if r["finetuned_on"]:
            test += f" (fine-tuned on {r['finetuned_on']} digits)"
        drawn = _percent(r["drawn_acc"])
        if r["drawn_acc"] is not None and r["drawn_stale"]:
            drawn += " (measured on earlier weights)"
        table.append({
            "Model": r["model"],
            "Parameters": f"{r['parameters']:,}",
            "Test accuracy": test,
            "Drawn-digit accuracy": drawn,
            "Latency (median, ms)": f"{r['latency_ms']:.2f}",
            TRAIN_STEP_COLUMN: f"{r['train_step_ms']:.1f}",
        })
    return pd.DataFrame(table, columns=["Model", "Parameters", "Test accuracy", "Drawn-digit accuracy",
                                        "Latency (median, ms)", TRAIN_STEP_COLUMN])
