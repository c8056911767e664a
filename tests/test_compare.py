"""Compare table: three rows, figures from the loaded models, their checkpoints, the drawn benchmark's JSON and a clock."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import torch

from digitnet import compare
from digitnet.models import MODELS, build_model
from digitnet.predict import CACHE, ModelUnavailable

# Parameter counts worked out by hand from the architectures (weights + biases; BatchNorm scale + shift).
EXPECTED_PARAMETERS = {
    "mlp": (784 * 300 + 300) + 2 * 300 + (300 * 100 + 100) + 2 * 100 + (100 * 10 + 10),
    "cnnnet": (16 * 25 + 16) + 2 * 16 + (30 * 16 * 25 + 30) + 2 * 30 + (480 * 100 + 100) + (100 * 10 + 10),
    "lenet": (6 * 25 + 6) + 2 * 6 + (16 * 6 * 25 + 16) + 2 * 16 + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10),
}


@pytest.fixture
def no_training_step(monkeypatch):
    """Skip timing training steps (seconds on a busy machine) in tests about other columns."""
    monkeypatch.setattr(compare, "measure_training_step", lambda model, runs=1: 1.0)


@pytest.fixture
def drawn_json(tmp_path):
    path = tmp_path / "drawn.json"
    path.write_text(json.dumps({"n": 1000, "in_process": {"mlp": 0.961, "cnnnet": 0.987, "lenet": 0.99}}))
    return path


def test_three_rows_with_figures_from_their_sources(drawn_json):
    rows = compare.compare_models(drawn_path=drawn_json, runs=5, train_steps=2)
    assert [r["name"] for r in rows] == list(MODELS)
    for r in rows:
        model, ckpt = CACHE.get(r["name"])
        assert r["parameters"] == EXPECTED_PARAMETERS[r["name"]] == sum(p.numel() for p in build_model(r["name"]).parameters())
        assert r["test_acc"] == ckpt["metrics"]["test_acc"]
        # measured (the clock's arithmetic is tested below); how long they take is a benchmark's business
        assert isinstance(r["latency_ms"], float) and r["latency_ms"] > 0
        assert isinstance(r["train_step_ms"], float) and r["train_step_ms"] > 0
        assert "epoch_seconds" not in r and "epochs" not in r  # per-file records are not comparable figures
        assert r["error"] is None
    assert {r["name"]: r["drawn_acc"] for r in rows} == {"mlp": 0.961, "cnnnet": 0.987, "lenet": 0.99}
    # The fully connected MLP has far more weights than the convolutional LeNet.
    assert rows[0]["parameters"] > rows[2]["parameters"]


def test_table_for_display(drawn_json):
    table = compare.compare_table(drawn_path=drawn_json, runs=3, train_steps=1)
    assert list(table["Model"]) == ["MLP", "CNNNet", "LeNet"]
    assert list(table.columns) == ["Model", "Parameters", "Test accuracy", "Drawn-digit accuracy",
                                   "Latency (median, ms)", "Training step (median, ms, batch 128)"]
    assert all(float(v) > 0 for v in table["Training step (median, ms, batch 128)"])
    assert table.loc[2, "Drawn-digit accuracy"].startswith("99.00%")
    assert table.loc[0, "Parameters"] == f"{EXPECTED_PARAMETERS['mlp']:,}"
    acc = CACHE.get("lenet")[1]["metrics"]["test_acc"]
    assert table.loc[2, "Test accuracy"].startswith(f"{100 * acc:.2f}%")


def test_drawn_results_missing_or_broken_say_not_measured(tmp_path, no_training_step):
    assert compare.load_drawn_accuracy(tmp_path / "absent.json") == ({}, None)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert compare.load_drawn_accuracy(broken) == ({}, None)
    table = compare.compare_table(drawn_path=tmp_path / "absent.json", runs=1)
    assert set(table["Drawn-digit accuracy"]) == {compare.NOT_MEASURED}


def test_drawn_results_older_than_the_weights_are_flagged(drawn_json, no_training_step):
    old = time.time() - 10 * 365 * 86400
    os.utime(drawn_json, (old, old))
    rows = compare.compare_models(drawn_path=drawn_json, runs=1)
    assert all(r["drawn_stale"] for r in rows)
    assert "earlier weights" in compare.compare_table(rows).loc[0, "Drawn-digit accuracy"]


def test_an_unavailable_model_keeps_its_row(no_training_step):
    class OneBroken:
        def get(self, name):
            if name == "cnnnet":
                raise ModelUnavailable("checkpoint checkpoints/cnnnet.pt is truncated")
            return CACHE.get(name)

    rows = compare.compare_models(weights=OneBroken(), drawn_path="/nonexistent.json", runs=1)
    assert [r["error"] is not None for r in rows] == [False, True, False]
    assert "truncated" in rows[1]["error"]
    assert rows[1]["train_step_ms"] is None and rows[2]["train_step_ms"] > 0
    table = compare.compare_table(rows)
    assert table.loc[1, "Parameters"] == compare.UNAVAILABLE and table.loc[2, "Parameters"] != compare.UNAVAILABLE
    assert table.loc[1, compare.TRAIN_STEP_COLUMN] == compare.UNAVAILABLE


class FakeClock:
    """``time.perf_counter`` for compare.py that moves only when a ``Costly`` module runs: no real time in the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def __deepcopy__(self, memo):  # measure_training_step trains a copy of the model: it keeps the one clock
        return self


class Costly(torch.nn.Module):
    """A model whose forward pass costs ``seconds`` on ``clock`` (and counts its calls)."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        super().__init__()
        self.clock, self.seconds, self.calls = clock, seconds, 0
        self.fc = torch.nn.Linear(784, 10)

    def forward(self, x):
        self.clock.now += self.seconds
        self.calls += 1
        return self.fc(x.flatten(1))


def test_latency_is_the_median_of_the_clocked_forward_passes(monkeypatch):
    """The figure comes from a clock around the forward pass, warm-up calls left out: a model that costs
    3 ms on the (fake) clock reads 3 ms, one that costs 30 reads 30."""
    clock = FakeClock()
    monkeypatch.setattr(compare.time, "perf_counter", clock)
    seen = np.zeros((28, 28), np.float32)
    for cost_ms in (3.0, 30.0):
        model = Costly(clock, cost_ms / 1000).eval()
        assert compare.measure_latency(model, 0.1307, 0.3081, runs=15, seen=seen) == pytest.approx(cost_ms)
        assert model.calls == compare.LATENCY_WARMUP + 15


def test_training_step_is_the_median_of_the_clocked_steps(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(compare.time, "perf_counter", clock)
    model = Costly(clock, 0.004)
    assert compare.measure_training_step(model, runs=7) == pytest.approx(4.0)  # forward on the clock; backward free


def test_the_mlp_step_is_the_least_work(monkeypatch):
    """What the Compare tab's training-step column should show, in work rather than seconds (a busy machine's
    seconds measure the queue): a CNNNet step is more than twice an MLP's floating-point operations."""
    from torch.utils.flop_counter import FlopCounterMode

    def step_flops(name: str) -> int:
        model = build_model(name).train()
        x = torch.randn(compare.TRAIN_BATCH, 1, 28, 28)
        with FlopCounterMode(display=False) as counter:
            torch.nn.functional.cross_entropy(model(x), torch.zeros(len(x), dtype=torch.long)).backward()
        return counter.get_total_flops()

    flops = {name: step_flops(name) for name in MODELS}
    assert flops["cnnnet"] > 2 * flops["mlp"] and flops["lenet"] > flops["mlp"], flops


def test_measuring_a_training_step_leaves_the_shared_model_and_rng_alone():
    model = CACHE.get("lenet")[0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    threads = torch.get_num_threads()
    compare.measure_training_step(model, runs=2)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # a copy was trained
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)  # a run training in another thread keeps its sequence
    assert torch.get_num_threads() == threads


def test_the_compare_tab_words_its_cells_in_the_visitors_language(drawn_json, no_training_step):
    """In English the tab's table is the library's compare_table; in Chinese its headers and notes are Chinese."""
    from digitnet.ui import words
    from digitnet.ui.compare import compare_frame

    rows = compare.compare_models(drawn_path=drawn_json, runs=1)
    rows[0]["drawn_stale"] = True
    broken = dict(rows[1], error="broken file")
    assert compare_frame(rows + [broken]).equals(compare.compare_table(rows + [broken]))
    words.use("zh-CN")
    try:
        table = compare_frame(rows + [broken])
    finally:
        words.use("en")
    assert list(table.columns) == ["模型", "参数量", "测试准确率", "手写数字准确率", "延迟（中位数，毫秒）",
                                   f"训练步（中位数，毫秒，批量 {compare.TRAIN_BATCH}）"]
    assert list(table["模型"]) == ["MLP", "CNNNet", "LeNet", "CNNNet"]
    assert table.loc[0, "手写数字准确率"].endswith("（在较早的权重上测得）")
    assert set(table.loc[3][1:]) == {"不可用"}
