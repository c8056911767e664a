"""Calibration: temperature fitting, ECE, the validation split it uses, the command line, the Trainer's temperature."""

from __future__ import annotations

import math

import pytest
import torch

from digitnet import calibrate as cal
from digitnet import data as mdata
from digitnet.checkpoint import load_checkpoint, load_model
from digitnet.training import TrainConfig, Trainer

# A tiny run: enough for an MLP to be clearly better than chance in one epoch, in seconds.
TINY = dict(model="mlp", epochs=1, train_limit=2000, val_size=500, test_limit=500, batch_size=100, threads=1)


def sampled(temperature: float, n: int = 20_000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits z and labels drawn from softmax(z / temperature): the true temperature is known."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 10, generator=g) * 4  # (n, 10), sharp enough to be over-confident at T = 1
    labels = torch.multinomial(torch.softmax(z / temperature, 1), 1, generator=g)[:, 0]
    return z, labels


# ----------------------------------------------------------------------------- fit_temperature


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_a_known_temperature(true_t):
    z, labels = sampled(true_t)
    t = cal.fit_temperature(z, labels)
    assert t == pytest.approx(true_t, rel=0.05)
    # and it is the minimum: the NLL rises either side, however little
    nll = cal.temperature_nll(z, labels, t)
    for step in (1.02, 1.0001):
        assert nll <= cal.temperature_nll(z, labels, t * step) and nll <= cal.temperature_nll(z, labels, t / step)


@pytest.mark.parametrize("true_t", [0.06, 0.3, 7.0, 19.0])
def test_fit_temperature_finds_the_minimum_near_the_ends_of_its_range(true_t):
    z, labels = sampled(true_t, n=5000, seed=2)
    t = cal.fit_temperature(z, labels)
    grid = [cal.MIN_TEMPERATURE * (cal.MAX_TEMPERATURE / cal.MIN_TEMPERATURE) ** (i / 2000) for i in range(2001)]
    best = min(grid, key=lambda g: cal.temperature_nll(z, labels, g))
    assert t == pytest.approx(best, rel=0.004)  # the grid's spacing
    assert cal.temperature_nll(z, labels, t) <= cal.temperature_nll(z, labels, best)


def test_fit_temperature_returns_the_upper_bound_when_flatter_is_always_better():
    z, labels = sampled(40.0, n=5000, seed=3)  # nearly uniform answers: the minimum is past T = 20
    assert cal.fit_temperature(z, labels) == cal.MAX_TEMPERATURE


def test_fit_temperature_is_deterministic_and_scale_aware():
    z, labels = sampled(2.5, n=5000, seed=1)
    assert cal.fit_temperature(z, labels) == cal.fit_temperature(z.clone(), labels.clone())
    # Logits three times larger need a three times higher temperature for the same probabilities.
    assert cal.fit_temperature(3 * z, labels) == pytest.approx(3 * cal.fit_temperature(z, labels), rel=1e-3)


def test_fit_temperature_stays_in_range_on_perfectly_separated_data():
    logits = torch.zeros(8, 10)
    logits[:, 3] = 5.0
    t = cal.fit_temperature(logits, torch.full((8,), 3))  # always right: sharper is always better
    assert t == pytest.approx(cal.MIN_TEMPERATURE, rel=1e-3)


@pytest.mark.parametrize("logits, labels", [
    (torch.zeros(0, 10), torch.zeros(0, dtype=torch.long)),
    (torch.zeros(5, 10), torch.zeros(4, dtype=torch.long)),
    (torch.full((2, 10), float("nan")), torch.zeros(2, dtype=torch.long)),
])
def test_fit_temperature_refuses_bad_input(logits, labels):
    with pytest.raises(ValueError):
        cal.fit_temperature(logits, labels)


# ----------------------------------------------------------------------------- ECE


def test_ece_matches_a_hand_computed_reference():
    # Two bins used (of 10): 0.95 (2 samples, 1 right) and 0.55 (2 samples, 2 right).
    probs = torch.tensor([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.45, 0.55]])
    labels = torch.tensor([0, 1, 0, 1])
    # bin 0.9-1.0: |0.5 - 0.95| * 2/4; bin 0.5-0.6: |1.0 - 0.55| * 2/4
    assert cal.expected_calibration_error(probs, labels, bins=10) == pytest.approx(0.5 * 0.45 + 0.5 * 0.45)


def test_ece_is_near_zero_when_calibrated_and_large_when_over_confident():
    z, labels = sampled(2.5)
    calibrated = cal.expected_calibration_error(torch.softmax(z / 2.5, 1), labels)
    over_confident = cal.expected_calibration_error(torch.softmax(z, 1), labels)
    assert calibrated < 0.015
    assert over_confident > 0.15
    fitted = cal.calibrated_probs(z, cal.fit_temperature(z, labels))
    assert cal.expected_calibration_error(fitted, labels) < 0.015


# ----------------------------------------------------------------------------- the split


def synthetic_mnist(n: int = 300) -> mdata.MNISTTensors:
    """Images that carry their own index in two pixels, so overlaps can be seen."""
    imgs = torch.zeros(n, 28, 28, dtype=torch.uint8)
    imgs[:, 0, 0] = torch.arange(n) % 256
    imgs[:, 0, 1] = torch.arange(n) // 256
    return mdata.MNISTTensors(imgs, torch.arange(n) % 10, imgs[:10].clone(), torch.arange(10))


def ids(split: mdata.Split) -> set[int]:
    return set((split.images[:, 0, 0].long() + 256 * split.images[:, 0, 1].long()).tolist())


def test_calibration_uses_exactly_the_validation_images_training_held_out():
    data = synthetic_mnist()
    for seed in (0, 7):  # the training seed does not move the split
        train, val = mdata.train_val_split(data, 50, limit=None)
        assert ids(cal.validation_split(data, {"val_size": 50, "seed": seed})) == ids(val)
        assert not ids(cal.validation_split(data, {"val_size": 50})) & ids(train)
    # a fine-tune trains on the default split's training part: only images held out from both count
    assert cal.held_out_size({"val_size": 50, "finetune": {"model": "lenet"}}) == 50
    assert cal.held_out_size({"val_size": 9000, "finetune": {}}) == mdata.DEFAULT_VAL_SIZE
    assert cal.held_out_size({}) == mdata.DEFAULT_VAL_SIZE  # old checkpoints: the default split
    assert len(cal.validation_split(data, {"val_size": 0})) == 0


# ----------------------------------------------------------------------------- a trained tiny run


@pytest.fixture(scope="module")
def tiny_run(mnist, tmp_path_factory):
    """One epoch of the MLP on a small slice, its checkpoint in a temp folder: (result, folder)."""
    folder = tmp_path_factory.mktemp("calib-ckpt")
    result = Trainer(TrainConfig(**TINY), checkpoint_dir=folder).run()
    return result, folder


def test_trainer_fits_and_saves_a_temperature(tiny_run, mnist):
    result, folder = tiny_run
    ckpt = load_checkpoint(folder / "mlp.pt")
    assert result.state == "done" and math.isfinite(result.temperature)
    assert result.temperature != 1.0 and ckpt["temperature"] == pytest.approx(result.temperature)
    # It is the NLL minimum on the run's own validation split.
    model, _ = load_model(folder / "mlp.pt")
    _, val = mdata.train_val_split(mnist, TINY["val_size"])
    logits = cal.model_logits(model, val)
    best = cal.temperature_nll(logits, val.labels, result.temperature)
    assert best < cal.temperature_nll(logits, val.labels, 1.0)
    assert best <= cal.temperature_nll(logits, val.labels, result.temperature * 1.05)


def test_a_stopped_run_keeps_temperature_one():
    trainer = Trainer(TrainConfig(**TINY), save=False)
    trainer.stop()
    result = trainer.run()
    assert result.state == "stopped" and result.temperature == 1.0


def test_cli_writes_the_temperature_and_nothing_else(tiny_run, tmp_path, capsys):
    result, folder = tiny_run
    path = tmp_path / "mlp.pt"
    path.write_bytes((folder / "mlp.pt").read_bytes())
    before = load_checkpoint(path)
    before_raw = torch.load(path, weights_only=True)
    before_raw["temperature"] = 1.0  # as an uncalibrated file would hold it
    torch.save(before_raw, path)

    assert cal.main(["--checkpoints", str(tmp_path), "--model", "mlp"]) == 0
    out = capsys.readouterr().out
    after = load_checkpoint(path)
    assert after["temperature"] == pytest.approx(result.temperature, rel=1e-6)  # same split, same fit
    assert f"{after['temperature']:.4f}" in out and "ECE" in out
    assert after["state_dict"].keys() == before["state_dict"].keys()
    assert all(torch.equal(after["state_dict"][k], before["state_dict"][k]) for k in before["state_dict"])
    assert after["metrics"] == before["metrics"] and after["config"] == before["config"]
    assert [p.name for p in tmp_path.iterdir()] == ["mlp.pt"]  # written atomically, no temp file left


def test_cli_dry_run_writes_nothing_and_a_missing_model_is_an_error(tiny_run, tmp_path, capsys):
    _, folder = tiny_run
    path = tmp_path / "mlp.pt"
    path.write_bytes((folder / "mlp.pt").read_bytes())
    stamp = path.stat().st_mtime_ns
    assert cal.main(["--checkpoints", str(tmp_path), "--dry-run"]) == 0
    assert path.stat().st_mtime_ns == stamp and "not written" in capsys.readouterr().out
    assert cal.main(["--checkpoints", str(tmp_path), "--model", "lenet"]) == 1
    assert "lenet.pt" in capsys.readouterr().err
    assert cal.main(["--checkpoints", str(tmp_path / "empty")]) == 1


# ----------------------------------------------------------------------------- the benchmark


def test_calibration_benchmark_runs_and_separates_digits_from_non_digits(mnist, tmp_path, monkeypatch, capsys):
    import json
    from benchmarks import calibration as bench

    monkeypatch.delenv("DIGITNET_CHECKPOINTS", raising=False)  # the shipped, calibrated checkpoints
    out = tmp_path / "calibration.json"
    assert bench.main(["-n", "60", "--others", "20", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert "threshold" in capsys.readouterr().out
    for name, f in figures["models"].items():
        assert f["temperature"] != 1.0 and 0 <= f["test_ece_after"] < 0.01
        row = next(r for r in f["table"] if r["threshold"] == 0.9)
        assert row["non_digits"] > row["correct_flagged"] + 0.2, (name, row)
        assert 0.9 <= f["val_drawn_acc"] <= 1.0
    # the threshold is chosen on drawn validation digits, never on the drawn test digits it reports
    assert figures["chosen"] == bench.choose_threshold(figures["val_mean_table"])
    assert figures["record"]["command"].startswith("python") and figures["record"]["machine"]["cores"] >= 1
    assert bench.choose_threshold([{"threshold": 0.9, "correct_flagged": 0.02}, {"threshold": 0.95, "correct_flagged": 0.04},
                                   {"threshold": 0.99, "correct_flagged": 0.09}]) == 0.95
