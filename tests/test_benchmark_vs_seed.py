"""The side-by-side benchmark runs end to end on a tiny MNIST slice and reports sane JSON.

No timing assertions (this machine is shared; times are noise): only that every
reported field is there, in range, and consistent with the run that was asked for.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "vs_seed.py"
TRAIN_SLICE, TEST_SLICE = 256, 200


def test_help_lists_the_options():
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True).stdout
    for option in ("--models", "--targets", "--epochs", "--seed-epochs", "--train-limit", "--test-limit", "--json"):
        assert option in out


def test_unknown_model_is_a_clear_error():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--models", "resnet"], capture_output=True, text=True)
    assert proc.returncode == 2 and "resnet" in proc.stderr and "lenet" in proc.stderr


def test_tiny_benchmark_reports_every_field(tmp_path, mnist):  # mnist: skips when the data is missing
    report_path = tmp_path / "speed.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--models", "mlp", "--epochs", "2", "--train-limit", str(TRAIN_SLICE),
         "--test-limit", str(TEST_SLICE), "--targets", "mlp=0.05", "--no-process", "--quiet",
         "--json", str(report_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| mlp | seed | 64 |" in proc.stdout and "| mlp | digitnet |" in proc.stdout
    report = json.loads(report_path.read_text())
    entry = report["models"]["mlp"]
    assert entry["target"] == pytest.approx(0.05)
    seed, ours, same = entry["seed"], entry["digitnet"], entry["digitnet_batch64"]
    assert seed["batch_size"] == 64 and same["batch_size"] == 64
    assert seed["train_samples"] == TRAIN_SLICE and ours["train_samples"] == TRAIN_SLICE
    assert len(seed["test_acc"]) == 1 and len(ours["test_acc"]) == 2 and len(same["test_acc"]) == 1
    for run in (seed, ours, same):
        assert all(0.0 <= a <= 1.0 for a in run["test_acc"])
        assert all(s > 0 for s in run["epoch_seconds"])
        assert run["elapsed_at_epoch_end"] == sorted(run["elapsed_at_epoch_end"])  # time only moves forward
    # A 5% target is beaten by any model that learned anything, after its first epoch.
    assert entry["digitnet_time_to_target"] == pytest.approx(ours["elapsed_at_epoch_end"][0])
    for key in ("seed_samples_per_second", "digitnet_samples_per_second", "digitnet_batch64_samples_per_second",
                "samples_per_second_ratio", "same_batch_samples_per_second_ratio", "time_to_target_vs_seed_epoch"):
        assert entry[key] > 0, key
    assert entry["samples_per_second_ratio"] == pytest.approx(
        entry["digitnet_samples_per_second"] / entry["seed_samples_per_second"])
    assert set(report["checks"]) == {"mlp_ttt_under_0.5_seed_mlp_epoch", "mlp_same_batch_speedup_at_least_5x"}


def test_the_seed_side_trains_plain_pytorch_layers_with_the_same_weights():
    import torch

    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from vs_seed import with_plain_convolutions
    finally:
        sys.path.remove(str(SCRIPT.parent))
    from digitnet.models import GreyConv2d, build_model

    torch.manual_seed(0)
    ours = build_model("lenet")
    seeds = with_plain_convolutions(build_model("lenet"))
    seeds.load_state_dict(ours.state_dict())
    assert type(seeds.conv1) is torch.nn.Conv2d and isinstance(ours.conv1, GreyConv2d)
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(seeds.eval()(x), ours.eval()(x))
