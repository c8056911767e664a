"""Compare the three loaded models side by side: size, accuracy, speed. Nothing typed in by hand.

Each figure comes from somewhere a reader can check:

- parameters: counted on the loaded model;
- test accuracy, seconds per training epoch, epochs: the checkpoint's metadata
  (``metrics.test_acc``, the median of ``metrics.history[*].seconds``), written by the
  run that produced the weights; a fine-tuned checkpoint also says on how many personal digits;
- drawn-digit accuracy: the JSON ``benchmarks/drawn.py --json`` writes (default
  ``benchmarks/results/drawn.json``, its ``in_process`` figures per model); "not measured"
  when there is none, and flagged when the checkpoint is newer than the measurement;
- latency: measured on the spot, the median of single-image predictions with one torch
  thread under ``inference_mode`` (what ``digitnet.predict`` does per drawing).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import SHIPPED_DIR
from .models import DISPLAY_NAMES, MODELS
from .predict import CACHE, checkpoint_for, single_thread
from .preprocess import to_tensor

# Where ``python benchmarks/drawn.py --json benchmarks/results/drawn.json`` leaves its figures.
DRAWN_RESULTS = SHIPPED_DIR.parent / "benchmarks" / "results" / "drawn.json"
LATENCY_RUNS = 30  # single-image predictions per model; the median of 30 is steady to ~0.1 ms here
LATENCY_WARMUP = 3  # first calls allocate and pick kernels; not what a visitor waits for
NOT_MEASURED = "not measured"
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


def _checkpoint_mtime(name: str) -> float | None:
    """When the shipped (or DIGITNET_CHECKPOINTS) file of ``name`` was written; None if there is none."""
    try:
        return checkpoint_for(name).stat().st_mtime
    except OSError:
        return None


def compare_models(cache: Any = None, drawn_path: str | os.PathLike | None = None,
                   runs: int = LATENCY_RUNS) -> list[dict]:
    """One dict per model (mlp, cnnnet, lenet), raw values; None where a figure is missing.

    Keys: model, name, parameters, test_acc (0..1), drawn_acc (0..1), drawn_stale (True when
    the checkpoint is newer than the drawn measurement), latency_ms, epoch_seconds, epochs,
    finetuned_on (personal digits of the last fine-tune, else None), error (unavailable model).
    """
    cache = CACHE if cache is None else cache
    drawn, drawn_mtime = load_drawn_accuracy(drawn_path)
    rows = []
    for name in MODELS:
        row: dict[str, Any] = {"model": DISPLAY_NAMES[name], "name": name, "parameters": None, "test_acc": None,
                               "drawn_acc": drawn.get(name), "drawn_stale": False, "latency_ms": None,
                               "epoch_seconds": None, "epochs": None, "finetuned_on": None, "error": None}
        try:
            model, ckpt = cache.get(name)
        except Exception as exc:  # ModelUnavailable: a broken or missing file shows as such, the others still compare
            row["error"] = str(exc)
            rows.append(row)
            continue
        metrics = ckpt.get("metrics") or {}
        history = [h for h in metrics.get("history") or [] if isinstance(h, dict) and isinstance(h.get("seconds"), (int, float))]
        row["parameters"] = sum(p.numel() for p in model.parameters())  # the cache freezes them: count all
        acc = metrics.get("test_acc")
        row["test_acc"] = float(acc) if isinstance(acc, (int, float)) else None
        row["epoch_seconds"] = statistics.median(h["seconds"] for h in history) if history else None
        row["epochs"] = len(history) or None
        finetune = metrics.get("finetune")
        row["finetuned_on"] = finetune.get("personal_digits") if isinstance(finetune, dict) else None
        if row["drawn_acc"] is not None and drawn_mtime is not None:
            mtime = _checkpoint_mtime(name)
            row["drawn_stale"] = mtime is not None and mtime > drawn_mtime
        row["latency_ms"] = measure_latency(model, float(ckpt["mean"]), float(ckpt["std"]), runs)
        rows.append(row)
    return rows


def _percent(value: float | None, missing: str = NOT_MEASURED) -> str:
    return missing if value is None else f"{100 * value:.2f}%"


def compare_table(rows: list[dict] | None = None, **kwargs: Any):
    """The rows as a pandas DataFrame of display strings (for a ``gr.Dataframe``); measures when ``rows`` is None."""
    import pandas as pd

    rows = compare_models(**kwargs) if rows is None else rows
    table = []
    for r in rows:
        if r["error"]:
            table.append({"Model": r["model"], "Parameters": UNAVAILABLE, "Test accuracy": UNAVAILABLE,
                          "Drawn-digit accuracy": UNAVAILABLE, "Latency (median, ms)": UNAVAILABLE,
                          "Seconds per epoch": UNAVAILABLE})
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
            "Seconds per epoch": "unknown" if r["epoch_seconds"] is None
            else f"{r['epoch_seconds']:.1f} (over {r['epochs']} epoch{'s' if r['epochs'] != 1 else ''})",
        })
    return pd.DataFrame(table, columns=["Model", "Parameters", "Test accuracy", "Drawn-digit accuracy",
                                        "Latency (median, ms)", "Seconds per epoch"])
