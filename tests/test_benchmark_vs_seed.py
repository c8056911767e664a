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
TRAIN_SLICE, TEST_SLICE = 256, 200


def test_help_lists_the_options():
    out = subprocess.run([sys.executable, "-m", "benchmarks.vs_seed", "--help"], capture_output=True, text=True, check=True,
                         cwd=REPO).stdout
    for option in ("--models", "--targets", "--epochs", "--seed-epochs", "--repeats", "--points", "--train-limit",
                   "--test-limit", "--json", "--plot"):
        assert option in out


def test_unknown_model_is_a_clear_error():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.vs_seed", "--models", "resnet"], capture_output=True, text=True,
                          cwd=REPO)
    assert proc.returncode == 2 and "resnet" in proc.stderr and "lenet" in proc.stderr


def test_tiny_benchmark_reports_every_field(tmp_path, mnist):  # mnist: skips when the data is missing
    report_path, plot_path = tmp_path / "speed.json", tmp_path / "speed.png"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.vs_seed", "--models", "mlp", "--epochs", "2", "--train-limit", str(TRAIN_SLICE),
         "--test-limit", str(TEST_SLICE), "--targets", "mlp=0.05", "--repeats", "2", "--points", "1",
         "--no-process", "--quiet", "--json", str(report_path), "--plot", str(plot_path)],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| mlp | 5.0% |" in proc.stdout and "over 2 repeat(s)" in proc.stdout
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads(report_path.read_text())
    entry = report["models"]["mlp"]
    assert entry["target"] == pytest.approx(0.05) and len(entry["runs"]) == 2
    for pair in entry["runs"]:  # each repeat: one seed run and one digitnet run
        seed, ours = pair["seed"], pair["digitnet"]
        assert seed["batch_size"] == 64 and seed["train_samples"] == TRAIN_SLICE == ours["train_samples"]
        assert len(seed["test_acc"]) == 1 and len(ours["test_acc"]) == 2
        for run in (seed, ours):
            assert all(0.0 <= a <= 1.0 for a in run["test_acc"])
            assert all(s > 0 for s in run["epoch_seconds"])
            assert run["elapsed_at_epoch_end"] == sorted(run["elapsed_at_epoch_end"])  # time only moves forward
            times = [c[0] for c in run["curve"]]
            assert times == sorted(times) and [c[2] for c in run["curve"] if c[1] == int(c[1])] == run["test_acc"]
        assert len(seed["curve"]) == 2  # its 4 batches: one mid-epoch point, then the epoch's end
        assert {"data_seconds", "train_seconds", "validate_seconds"} <= set(ours["timings"])
        assert ours["timings"]["train_seconds"] > 0
    # A 5% target is beaten by any model that learned anything, after its first epoch.
    ttt = [pair["digitnet"]["elapsed_at_epoch_end"][0] for pair in entry["runs"]]
    assert entry["digitnet_time_to_target"]["values"] == pytest.approx(ttt)
    assert entry["digitnet_time_to_target"]["median"] == pytest.approx(sum(ttt) / 2)
    ratios = [t / pair["seed"]["epoch_seconds"][0] for t, pair in zip(ttt, entry["runs"])]  # paired within a repeat
    assert entry["time_to_target_vs_seed_epoch"]["values"] == pytest.approx(ratios)
    assert entry["time_to_target_vs_seed_epoch"]["min"] == pytest.approx(min(ratios))
    assert set(report["checks"]) == {"mlp_ttt_under_0.25_seed_mlp_epoch"}
    assert len(report["load_average_during"]["values"]) == 2


def test_spread_counts_a_target_not_reached_as_the_slowest():
    from benchmarks.vs_seed import spread
    assert spread([3.0, 1.0, 2.0])["median"] == 2.0
    assert spread([3.0, None, 2.0]) == {"median": 3.0, "min": 2.0, "max": None, "values": [3.0, None, 2.0]}
    assert spread([None, None, 2.0])["median"] is None
    assert spread([1.0, 2.0, 4.0, 8.0])["median"] == 3.0


def test_the_seed_side_trains_plain_pytorch_layers_with_the_same_weights():
    import torch

    from benchmarks.vs_seed import with_plain_pooling
    from digitnet.models import MaxPool2x2, build_model

    torch.manual_seed(0)
    ours = build_model("lenet")
    seeds = with_plain_pooling(build_model("lenet"))
    seeds.load_state_dict(ours.state_dict())
    assert type(seeds.pool1) is torch.nn.MaxPool2d and isinstance(ours.pool1, MaxPool2x2)
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(seeds.eval()(x), ours.eval()(x))
