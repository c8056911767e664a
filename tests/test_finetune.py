"""Teach it your handwriting: "my digits" files, and the FineTuner on a synthetic personal style."""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.finetune import style_sets  # noqa: E402
from digitnet import data as mdata  # noqa: E402
from digitnet.checkpoint import SHIPPED_DIR, CheckpointError, load_model  # noqa: E402
from digitnet.finetune import (  # noqa: E402
    MAX_MY_DIGITS, FineTuneConfig, FineTuner, MyDigitsError, accuracy_on, add_digit, load_my_digits,
    my_digits_summary, save_my_digits,
)
from digitnet.predict import CACHE  # noqa: E402
from digitnet.training import BatchProgress, EpochMetrics, TrainResult, evaluate  # noqa: E402

TEST_SLICE = 2000  # MNIST test images behind the "does not forget" check (the benchmark uses all 10,000)


def a_digit(value: float = 1.0) -> np.ndarray:
    seen = np.zeros((28, 28), np.float32)
    seen[5:23, 12:16] = value
    return seen


# ----------------------------------------------------------------------------- my digits


def test_round_trip(tmp_path):
    digits = []
    for label in (3, "7", np.int64(0)):
        digits = add_digit(digits, a_digit(0.5 + 0.1 * len(digits)), label)
    assert my_digits_summary(digits) == "3 digits: 0 x1, 3 x1, 7 x1"
    path = save_my_digits(digits, tmp_path / "mine.npz")
    back = load_my_digits(path)
    assert [lb for _, lb in back] == [3, 7, 0]
    assert all(np.array_equal(a, b) and b.dtype == np.float32 for (a, _), (b, _) in zip(digits, back))
    default = save_my_digits(back)  # no path: a fresh temp file named for the download
    assert default.name == "my-digits.npz" and len(load_my_digits(default)) == 3
    assert load_my_digits(save_my_digits([], tmp_path / "empty.npz")) == []


def test_add_digit_never_mutates_and_refuses_bad_entries():
    first = add_digit(None, a_digit(), 1)
    second = add_digit(first, a_digit(), 2)
    assert len(first) == 1 and len(second) == 2  # a new list each time (a list another thread reads is never mutated)
    with pytest.raises(MyDigitsError, match="0 to 9"):
        add_digit([], a_digit(), 10)
    with pytest.raises(MyDigitsError, match="0 to 9"):
        add_digit([], a_digit(), "seven")
    with pytest.raises(MyDigitsError, match="28x28"):
        add_digit([], np.zeros((32, 32)), 1)
    with pytest.raises(MyDigitsError, match="between 0 and 1"):
        add_digit([], a_digit(255.0), 1)
    full = [(a_digit(), 1)] * MAX_MY_DIGITS
    with pytest.raises(MyDigitsError, match=f"most this app keeps \\({MAX_MY_DIGITS}\\)"):
        add_digit(full, a_digit(), 1)


def write_npz(path: Path, **arrays) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("hello, not a zip"), "not a my-digits file"),
    (lambda p: np.save(open(p, "wb"), np.zeros((3, 28, 28))), "not a my-digits file"),
    (lambda p: write_npz(p, pictures=np.zeros((2, 28, 28)), labels=np.zeros(2, int)), "no 'images' and 'labels'"),
    (lambda p: write_npz(p, images=np.zeros((2, 32, 32), np.float32), labels=np.zeros(2, int)), r"shape \(N, 28, 28\)"),
    (lambda p: write_npz(p, images=np.zeros((2, 28, 28), np.float32), labels=np.zeros(3, int)), "one per image"),
    (lambda p: write_npz(p, images=np.zeros((2, 28, 28), np.float32), labels=np.array([1, 12])), r"0 to 9, found \[12\]"),
    (lambda p: write_npz(p, images=np.zeros((2, 28, 28), np.float32), labels=np.array([1.5, 2.0])), "whole numbers"),
    (lambda p: write_npz(p, images=np.full((1, 28, 28), 7.0, np.float32), labels=np.array([1])), "between 0 and 1"),
    (lambda p: write_npz(p, images=np.zeros((MAX_MY_DIGITS + 1, 28, 28), np.float32), labels=np.zeros(MAX_MY_DIGITS + 1, int)),
     f"more than the {MAX_MY_DIGITS}"),
    (lambda p: write_npz(p, images=np.array([{"evil": 1}], dtype=object), labels=np.array([1])), "could not be read"),
    (lambda p: write_npz(p, images=np.zeros((1, 28, 28), np.float32), labels=np.array([1]), format=np.array("other-app")),
     "has format 'other-app'"),
])
def test_bad_files_refused_with_clear_messages(tmp_path, make, message):
    path = tmp_path / "upload.npz"
    make(path)
    with pytest.raises(MyDigitsError, match=message) as info:
        load_my_digits(path)
    assert "upload.npz" in str(info.value)  # the message names the file the user picked


def test_missing_and_zip_bomb_files_refused(tmp_path):
    with pytest.raises(MyDigitsError, match="no such file"):
        load_my_digits(tmp_path / "absent.npz")
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("images.npy", b"\0" * (64 * 1024 * 1024))  # 64 MB of zeros, a few KB on disk
    with pytest.raises(MyDigitsError, match="too large"):
        load_my_digits(bomb)


# ----------------------------------------------------------------------------- fine-tuning


@pytest.fixture(scope="module")
def thick_style(mnist):
    """20 "my digits" and 100 other digits of a thick-stroke style, from MNIST test digits."""
    return style_sets(mnist, "thick")


def test_finetune_learns_the_style_and_keeps_mnist(mnist, thick_style, tmp_path):
    mine, eval_x, eval_y = thick_style
    source = SHIPPED_DIR / "mlp.pt"
    base, ckpt = load_model(source)
    test = mdata.test_split(mnist, TEST_SLICE)
    _, mnist_before, _ = evaluate(base, test, torch.device("cpu"), mean=ckpt["mean"], std=ckpt["std"])
    style_before = accuracy_on(base, eval_x, eval_y, ckpt["mean"], ckpt["std"])

    events = []
    tuner = FineTuner(FineTuneConfig(model="mlp", test_limit=TEST_SLICE, threads=1), mine,
                      callback=events.append, checkpoint_dir=tmp_path, source=source)
    result = tuner.run()
    style_after = accuracy_on(tuner.model, eval_x, eval_y, ckpt["mean"], ckpt["std"])
    assert style_after >= style_before + 0.08, (style_before, style_after)  # 8+ of the 100 other digits
    assert result.test_acc >= mnist_before - 0.01, (mnist_before, result.test_acc)  # at most 20 of 2,000 lost

    # The run reports like a training run, then saves a checkpoint in the same format.
    kinds = [type(e) for e in events]
    assert kinds[-1] is TrainResult and kinds.count(EpochMetrics) == tuner.config.rounds and BatchProgress in kinds
    assert result.state == "done" and len(result.confusion) == 10
    model, saved = load_model(tmp_path / "mlp.pt")
    assert saved["arch"] == "mlp" and saved["metrics"]["test_acc"] == result.test_acc
    info = saved["metrics"]["finetune"]
    assert info["personal_digits"] == 20 and info["rounds"] == 1
    assert info["personal_acc_after"] >= info["personal_acc_before"]
    assert saved["metrics"]["history"] == ckpt["metrics"]["history"]  # the training run's epochs stay
    assert saved["config"]["finetune"]["model"] == "mlp"
    # The temperature is refitted on MNIST validation images neither run trained on, and saved.
    assert 0.5 < result.temperature < 3.0 and saved["temperature"] == pytest.approx(result.temperature)
    assert accuracy_on(model, eval_x, eval_y, saved["mean"], saved["std"]) == style_after


def test_background_run_stop_and_shared_model_untouched(thick_style, tmp_path):
    mine, _, _ = thick_style
    shared, _ = CACHE.get("lenet")
    before = {k: v.clone() for k, v in shared.state_dict().items()}
    seen = []
    cfg = FineTuneConfig(model="lenet", rounds=50, steps_per_round=20, log_every=1, val_limit=100, test_limit=200, threads=1)

    def callback(event):
        seen.append(event)
        if isinstance(event, BatchProgress) and event.batch == 3:
            tuner.stop()

    tuner = FineTuner(cfg, mine, callback=callback, checkpoint_dir=tmp_path, source=SHIPPED_DIR / "lenet.pt")
    thread = threading.Thread(target=tuner.run, daemon=True)  # as the scheduler's worker runs it
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the fine-tune did not stop"
    assert tuner.result.state == "stopped" and tuner.result.test_acc is None
    assert not (tmp_path / "lenet.pt").exists()  # a stopped run saves nothing
    assert sum(isinstance(e, BatchProgress) for e in seen) == 3
    after = shared.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_errors_are_clear(thick_style, tmp_path):
    mine, _, _ = thick_style
    with pytest.raises(MyDigitsError, match="no digits"):
        FineTuner(FineTuneConfig(model="lenet"), [])
    with pytest.raises(ValueError, match="learning rate"):
        FineTuner(FineTuneConfig(model="lenet", lr=float("nan")), mine)
    with pytest.raises(ValueError, match="rounds"):
        FineTuner(FineTuneConfig(model="lenet", rounds=0), mine)
    broken = tmp_path / "lenet.pt"
    broken.write_bytes(b"not a checkpoint")
    events = []
    tuner = FineTuner(FineTuneConfig(model="lenet"), mine, callback=events.append, source=broken)
    with pytest.raises(CheckpointError, match="lenet.pt"):
        tuner.run()
    assert events == []
