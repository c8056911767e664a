"""The Train tab and /train, /status, /stop, /restore, through gradio_client against the launched app."""

from __future__ import annotations

import time

import gradio as gr
import numpy as np
import pytest
from gradio_client.exceptions import AppError

from conftest import SMALL_TRAIN, running_app, sketch_value, wait_until_finished
from digitnet.checkpoint import load_checkpoint
from digitnet.predict import ModelCache, predict

def confidences(label: dict) -> dict[str, float]:
    return {c["label"]: c["confidence"] for c in label["confidences"]}


def test_train_returns_at_once_and_status_shows_the_run_growing(client, idle_job, checkpoints_dir):
    started = client.predict(model="lenet", epochs=4, api_name="/train")
    # Returned before any epoch ended: the run goes on in the background.
    assert started["state"] == "running" and started["model"] == "lenet" and started["epochs"] == 4
    assert started["history"] == []
    final, during = wait_until_finished(client)
    lengths = [len(s["history"]) for s in during]
    assert any(0 < n < 4 for n in lengths), f"never saw a partial history while running: {lengths}"
    assert lengths == sorted(lengths)  # it only grows
    assert final["state"] == "done", final["message"]
    assert [h["epoch"] for h in final["history"]] == [1, 2, 3, 4]
    assert final["history"][-1]["train_loss"] < final["history"][0]["train_loss"]
    assert len(final["running_loss"]) >= 4
    assert 0.5 < final["test_acc"] <= 1.0
    assert "test accuracy" in final["message"]
    saved = load_checkpoint(checkpoints_dir / "lenet.pt")
    assert saved["metrics"]["test_acc"] == pytest.approx(final["test_acc"])
    assert final["checkpoint"] == str(checkpoints_dir / "lenet.pt")


def test_second_train_is_refused_and_stop_ends_the_run(served_app, idle_job, checkpoints_dir):
    a, b = served_app.client(), served_app.client()  # two visitors
    a.predict(model="cnnnet", epochs=20, api_name="/train")
    with pytest.raises(AppError, match=r"CNNNet is already training \(epoch \d+/20\)"):
        b.predict(model="mlp", epochs=1, api_name="/train")
    assert b.predict(api_name="/status")["model"] == "cnnnet"  # the refused request changed nothing
    t0 = time.monotonic()
    stopped = b.predict(api_name="/stop")  # from the other visitor: the job is shared
    stop_seconds = time.monotonic() - t0
    assert stopped["state"] == "stopped", stopped
    assert "nothing was saved" in stopped["message"]
    assert len(stopped["history"]) < 20
    assert not (checkpoints_dir / "cnnnet.pt").exists()  # the Draw tab keeps its weights
    assert stop_seconds < 30  # generous: the point is that it ended, not how fast on a busy CI box
    # The lock is free again: the next run starts.
    assert a.predict(model="mlp", epochs=1, api_name="/train")["state"] == "running"
    assert wait_until_finished(a)[0]["state"] == "done"


def test_finished_run_is_used_by_predict_and_restore_brings_back_shipped(client, idle_job, drawn_digits,
                                                                        checkpoints_dir):
    png = drawn_digits[0][1]
    client.predict(model="mlp", api_name="/restore")  # start from the shipped MLP, whatever ran before
    before = confidences(client.predict(sketch=sketch_value(png), model="mlp", api_name="/predict"))
    # A deliberately bad model: a tiny learning rate for one epoch barely moves the random init.
    client.predict(model="mlp", epochs=1, lr=1e-5, schedule="none", optimizer="sgd", api_name="/train")
    final, _ = wait_until_finished(client)
    assert final["state"] == "done", final["message"]
    after = confidences(client.predict(sketch=sketch_value(png), model="mlp", api_name="/predict"))
    assert max(abs(after[k] - before[k]) for k in before) > 0.05, "predictions did not change"
    # The reference: the same drawing through the new checkpoint file, loaded afresh in this process.
    expected = predict(str(png), "mlp", cache=ModelCache())
    assert [after[str(d)] for d in range(10)] == pytest.approx(expected.probs, abs=1e-5)

    message = client.predict(model="mlp", api_name="/restore")
    assert "Restored the shipped MLP weights" in message
    restored = confidences(client.predict(sketch=sketch_value(png), model="mlp", api_name="/predict"))
    assert [restored[str(d)] for d in range(10)] == pytest.approx([before[str(d)] for d in range(10)], abs=1e-6)


@pytest.mark.parametrize("params, message", [
    (dict(epochs=0), r"epochs must be at least 1"),
    (dict(epochs=31), r"epochs must be at most 30"),
    (dict(lr=-0.1), r"learning rate must be greater than 0"),
    (dict(lr=1e9), r"learning rate must be at most 10"),  # NaN/inf cannot travel as JSON: see test_job.py
    (dict(lr=0), r"learning rate must be greater than 0"),
    (dict(batch_size=0), r"batch size must be at least 1"),
    (dict(batch_size=SMALL_TRAIN["train_limit"] + 1), r"batch size must be at most 2000"),
    (dict(model="resnet"), r"unknown model 'resnet'"),
    (dict(optimizer="rmsprop"), r"unknown optimizer 'rmsprop'"),
    (dict(dropout=1.5), r"dropout must be at most 0.9"),
])
def test_invalid_values_are_refused_and_nothing_starts(client, idle_job, params, message):
    before = idle_job.snapshot().run_id
    with pytest.raises(AppError, match=message):
        client.predict(**{"model": "lenet", "epochs": 2, **params}, api_name="/train")
    assert idle_job.snapshot().run_id == before
    assert client.predict(api_name="/status")["state"] != "running"


def test_every_tab_polls_the_same_shared_job(served_app, idle_job):
    """The timer's handler: a fresh (or reloaded) tab gets the whole view; an up-to-date one gets skips."""
    refresh = next(f.fn for f in served_app.demo.fns.values() if f.name == "refresh")
    client = served_app.client()
    client.predict(model="lenet", epochs=1, api_name="/train")
    final, _ = wait_until_finished(client)
    version, key, status, progress, loss, acc, results, figure, gallery, models = refresh(-1, "")
    assert version == -1 and key.endswith(":done")  # results shown: the curves are redrawn once more
    again = refresh(version, key)
    assert again[0] == idle_job.snapshot().version and again[1] == key
    assert again[4].value == loss.value and again[5].value == acc.value
    assert all(v == gr.skip() for v in again[6:9])  # the results panel is not redrawn
    version = again[0]
    assert "done" in status and "test accuracy" in results
    assert len(loss.value["data"]) >= 2 and len(acc.value["data"]) == 2  # train + validation, epoch 1
    assert figure is not None and len(gallery) > 0
    assert all(caption.startswith("true ") and "predicted" in caption for _, caption in gallery)
    assert "**LeNet** ok" in models
    # A second tab opened now sees exactly the same; a tab that is up to date is sent nothing new.
    assert refresh(-1, "")[2] == status
    assert all(v == gr.skip() for v in refresh(version, key))


def test_training_can_be_turned_off_and_epochs_capped(mnist, checkpoints_dir, monkeypatch):
    monkeypatch.setenv("DIGITNET_ALLOW_TRAINING", "0")
    with running_app(train_overrides=SMALL_TRAIN) as off:
        c = off.client()
        with pytest.raises(AppError, match=r"Training is turned off.*DIGITNET_ALLOW_TRAINING=0"):
            c.predict(model="lenet", epochs=1, api_name="/train")
        with pytest.raises(AppError, match=r"turned off"):
            c.predict(model="lenet", api_name="/restore")
        assert c.predict(api_name="/status")["state"] == "idle"
    monkeypatch.setenv("DIGITNET_ALLOW_TRAINING", "1")
    monkeypatch.setenv("DIGITNET_MAX_EPOCHS", "5")
    with running_app(train_overrides=SMALL_TRAIN) as capped:
        with pytest.raises(AppError, match=r"epochs must be at most 5"):
            capped.client().predict(model="lenet", epochs=6, api_name="/train")


def test_curves_progress_and_heatmap_from_a_snapshot():
    import app
    from digitnet.job import JobSnapshot

    history = [{"epoch": 1, "train_loss": 0.9, "train_acc": 0.7, "val_loss": 0.5, "val_acc": 0.85},
               {"epoch": 2, "train_loss": 0.4, "train_acc": 0.9, "val_loss": None, "val_acc": None}]
    s = JobSnapshot(version=3, state="running", model="lenet", epoch=2, epochs=4, batch=100, batches=400,
                    eta_seconds=83, elapsed=10, message="", history=history,
                    loss_points=[(0.5, 1.5), (1.0, 0.9), (1.25, 0.6)])
    loss = app.loss_frame(s)
    assert list(loss["curve"]) == ["train (running)"] * 3 + ["validation"]  # no point for a missing val loss
    assert loss["epoch"].dtype == "float64" and loss["loss"].dtype == "float64"
    acc = app.accuracy_frame(s)
    assert list(acc["accuracy"]) == pytest.approx([70.0, 85.0, 90.0])
    loss_caption, acc_caption = app.curve_captions(s)
    assert loss_caption == "train loss 0.600 at epoch 1.25" and acc_caption == "epoch 2: train 90.00%"
    progress = app.progress_html(s)
    assert 'value="0.3125"' in progress and "epoch 2/4 · batch 100/400 · ETA 1:23" in progress
    # The caption changes with every point, so the plot is rebuilt (see curve_captions).
    s.loss_points.append((1.5, 0.5))
    assert app.curve_captions(s)[0] != loss_caption
    empty = app.loss_frame(JobSnapshot(version=0, state="idle", model=None, epoch=0, epochs=0, batch=0, batches=0,
                                       eta_seconds=None, elapsed=0, message=""))
    assert len(empty) == 0 and str(empty["curve"].dtype) == "string"  # typed even when empty

    cm = [[0] * 10 for _ in range(10)]
    for d in range(10):
        cm[d][d] = 95
    cm[4][9] = 5
    heatmap = app.confusion_image(cm)
    assert heatmap.ndim == 3 and heatmap.shape[2] == 4 and heatmap.dtype == np.uint8
