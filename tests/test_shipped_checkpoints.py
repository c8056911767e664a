"""The checkpoints shipped in the repo load, are small, and reach their accuracy tiers on MNIST's test set.

Test is the check here, not how the files were chosen: each was chosen on the validation split
(benchmarks/RESULTS-speed.md, "The shipped checkpoints", with every look at test listed).
"""

import pytest
import torch

from digitnet import data as mdata
from digitnet.checkpoint import SHIPPED_DIR, load_model
from digitnet.training import evaluate

TARGETS = {"mlp": 0.988, "cnnnet": 0.995, "lenet": 0.994}  # the tiers (issues 2, 13, 21): test accuracy of the shipped weights


@pytest.mark.parametrize("name", list(TARGETS))
def test_shipped_checkpoint_is_small_and_self_describing(name):
    path = SHIPPED_DIR / f"{name}.pt"
    assert path.stat().st_size < 2 * 1024 * 1024
    model, ckpt = load_model(path)
    assert ckpt["arch"] == name
    assert ckpt["metrics"]["test_acc"] >= TARGETS[name]
    assert ckpt["config"]["model"] == name and ckpt["config"]["epochs"] >= 1  # how it was trained
    assert 0.98 <= ckpt["metrics"]["val_acc"] <= 1.0  # what it was chosen on: its validation accuracy


@pytest.mark.parametrize("name", list(TARGETS))
def test_shipped_checkpoint_reaches_its_target_on_the_full_test_set(name):
    model, ckpt = load_model(SHIPPED_DIR / f"{name}.pt")
    test = mdata.test_split(mdata.load_mnist())
    loss, acc, probs = evaluate(model, test, torch.device("cpu"), mean=ckpt["mean"], std=ckpt["std"])
    assert acc >= TARGETS[name], f"{name}: {acc:.4f} < {TARGETS[name]}"
    assert acc == pytest.approx(ckpt["metrics"]["test_acc"], abs=5e-4)  # the metadata tells the truth
