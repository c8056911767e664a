"""The command line end to end on a small slice, --help, and clear errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from digitnet.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "digitnet.train", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_cli_trains_saves_and_writes_metrics_and_plot(tmp_path):
    out = run_cli("--model", "mlp", "--epochs", "2", "--train-limit", "2000", "--val-size", "500",
                  "--test-limit", "500", "--checkpoints", str(tmp_path), "--metrics-json", str(tmp_path / "m.json"),
                  "--plot", str(tmp_path / "curves.png"), "--threads", "1")
    assert out.returncode == 0, out.stderr
    assert "epoch   1" in out.stdout and "epoch   2" in out.stdout and "test accuracy" in out.stdout
    assert "ETA" in out.stderr  # the progress bar
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert [h["epoch"] for h in metrics["history"] if h["epoch_end"]] == [1, 2]
    assert len(metrics["history"]) == 12  # validation points at evenly spaced steps (TrainConfig.val_points)
    assert 0.7 < metrics["test_acc"] <= 1 and metrics["train_seconds"] > 0
    assert metrics["history"][-1]["train_loss"] < metrics["history"][0]["train_loss"]
    ckpt = load_checkpoint(tmp_path / "mlp.pt")
    assert ckpt["arch"] == "mlp" and ckpt["metrics"]["test_acc"] == pytest.approx(metrics["test_acc"])
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_help_lists_the_options_with_defaults():
    out = run_cli("--help")
    assert out.returncode == 0
    for option in ("--model", "--epochs", "--metrics-json", "--plot", "--data", "--checkpoints", "(default:"):
        assert option in out.stdout


def test_invalid_values_give_a_clear_error_and_exit_code_2():
    out = run_cli("--epochs", "0")
    assert out.returncode == 2 and "epochs must be at least 0.5" in out.stderr
    out = run_cli("--model", "resnet")
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_missing_data_gives_a_clear_error(tmp_path):
    out = run_cli("--data", str(tmp_path / "empty"), env={"DIGITNET_DOWNLOAD": "0"})
    assert out.returncode == 2
    assert "MNIST not found" in out.stderr and "DIGITNET_DATA" in out.stderr and "Traceback" not in out.stderr
