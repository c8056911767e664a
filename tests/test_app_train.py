"""The Train tab and /train, /status, /stop through gradio_client: every visitor their own runs and weights."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading

import gradio as gr
import numpy as np
import pytest
from gradio_client.exceptions import AppError

from conftest import SMALL_TRAIN, running_app, sketch_value, wait_until_finished
from digitnet.checkpoint import SHIPPED_DIR
from digitnet.scheduler import RunState
from digitnet.training import TrainConfig
from digitnet.ui import train as train_tab
from digitnet.webmodel import page_model

WAIT = 120


def confidences(label: dict) -> dict[str, float]:
    return {c["label"]: c["confidence"] for c in label["confidences"]}


def shipped_digests() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in SHIPPED_DIR.glob("*.pt")}


def test_train_returns_at_once_and_status_shows_the_run_growing(client, idle_queue, checkpoints_dir):
    started = client.predict(model="lenet", epochs=4, api_name="/train")
    # Returned before any epoch ended: the run goes on in the background (the queue was empty: running).
    assert started["state"] == "running" and started["model"] == "lenet" and started["epochs"] == 4
    assert started["position"] is None
    assert started["history"] == [] and started["run"] == 1
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
    assert list(checkpoints_dir.iterdir()) == []  # the app writes no checkpoint anywhere


def test_three_visitors_runs_queue_in_order_and_stay_theirs(served_app, idle_queue, drawn_digits, gate):
    files = shipped_digests()
    a, b, c = served_app.client(), served_app.client(), served_app.client()
    png = drawn_digits[0][1]
    c_before = client_probs = confidences(c.predict(sketch=sketch_value(png), model="mlp", api_name="/predict"))
    # A deliberately bad MLP for A: a tiny learning rate for one epoch barely moves the random init.
    a.predict(model="mlp", epochs=1, lr=1e-5, schedule="none", optimizer="sgd", api_name="/train")
    assert gate.entered.wait(WAIT)  # A's run is running (held at its first batch)
    b_started = b.predict(model="mlp", epochs=1, api_name="/train")
    assert b_started["state"] == "queued" and b_started["position"] == 1 and b_started["starts_in_seconds"] > 0
    with pytest.raises(AppError, match=r"Your run 1: MLP is waiting in the queue \(position 1\)"):
        b.predict(model="lenet", epochs=1, api_name="/train")  # one run at a time per visitor
    assert a.predict(api_name="/status")["state"] == "running"
    assert c.predict(api_name="/status")["state"] == "idle"  # C never trained
    gate.open()
    assert wait_until_finished(a)[0]["state"] == "done"
    assert wait_until_finished(b)[0]["state"] == "done"
    a_after = confidences(a.predict(sketch=sketch_value(png), model="mlp", api_name="/predict"))
    assert max(abs(a_after[k] - client_probs[k]) for k in a_after) > 0.05, "A's drawings did not change"
    # C's drawings are exactly what they were, to the last bit, while and after others trained.
    assert confidences(c.predict(sketch=sketch_value(png), model="mlp", api_name="/predict")) == c_before
    assert shipped_digests() == files


def test_stop_of_one_visitor_leaves_the_other_alone(served_app, idle_queue, gate):
    a, b = served_app.client(), served_app.client()
    a.predict(model="cnnnet", epochs=20, api_name="/train")
    assert gate.entered.wait(WAIT)
    b.predict(model="mlp", epochs=1, api_name="/train")
    stopped_b = b.predict(api_name="/stop")  # B's run was waiting: it leaves the queue
    assert stopped_b["state"] == "stopped" and "taken out of the queue" in stopped_b["message"]
    assert a.predict(api_name="/status")["state"] == "running"  # A's run goes on
    gate.open()
    stopped_a = a.predict(api_name="/stop")
    assert stopped_a["state"] == "stopped", stopped_a
    assert "keep the weights they had" in stopped_a["message"] and len(stopped_a["history"]) < 20
    assert b.predict(api_name="/stop")["state"] == "stopped"  # stopping nothing changes nothing
    # The queue is free again: the next run starts.
    assert b.predict(model="mlp", epochs=1, api_name="/train")["state"] in ("queued", "running")
    assert wait_until_finished(b)[0]["state"] == "done"


def test_leaving_frees_the_visitors_state(served_app, idle_queue, gate, monkeypatch):
    visitors = served_app.ctx.visitors
    a, b = served_app.client(), served_app.client()
    a.predict(model="mlp", epochs=3, api_name="/train")
    assert gate.entered.wait(WAIT)
    a_run = served_app.scheduler.running
    b.predict(model="mlp", epochs=1, api_name="/train")
    assert visitors.peek(a.session_hash) and visitors.peek(b.session_hash)
    assert len(served_app.scheduler.waiting()) == 1
    # Gradio's unload event calls visitors.leave(session) when a session's heartbeat ends: wait for that call.
    left = {a.session_hash: threading.Event(), b.session_hash: threading.Event()}
    leave = visitors.leave

    def leave_and_tell(session: str) -> bool:
        try:
            return leave(session)
        finally:
            if session in left:
                left[session].set()

    monkeypatch.setattr(visitors, "leave", leave_and_tell)
    b.close()  # frees B and drops B's waiting run
    assert left[b.session_hash].wait(WAIT)
    assert served_app.scheduler.waiting() == [] and visitors.peek(b.session_hash) is None
    assert visitors.peek(a.session_hash) is not None  # A is still here
    a.close()  # A's running run is stopped and A is forgotten
    assert left[a.session_hash].wait(WAIT)
    assert visitors.peek(a.session_hash) is None
    gate.open()
    assert a_run.wait_ended(WAIT) and a_run.snapshot().state == "stopped"


@pytest.mark.parametrize("params, message", [
    (dict(epochs=0), r"epochs must be at least 0.5"),
    (dict(epochs=31), r"epochs must be at most 30"),
    (dict(lr=-0.1), r"learning rate must be greater than 0"),
    (dict(lr=1e9), r"learning rate must be at most 10"),  # NaN/inf cannot travel as JSON: see test_scheduler.py
    (dict(lr=0), r"learning rate must be greater than 0"),
    (dict(batch_size=0), r"batch size must be at least 1"),
    (dict(batch_size=SMALL_TRAIN["train_limit"] + 1), r"batch size must be at most 2000"),
    (dict(model="resnet"), r"unknown model 'resnet'"),
    (dict(optimizer="rmsprop"), r"unknown optimizer 'rmsprop'"),
    (dict(dropout=1.5), r"dropout must be at most 0.9"),
])
def test_invalid_values_are_refused_and_nothing_is_queued(client, idle_queue, params, message):
    with pytest.raises(AppError, match=message):
        client.predict(**{"model": "lenet", "epochs": 2, **params}, api_name="/train")
    assert idle_queue.waiting() == [] and idle_queue.running is None
    assert client.predict(api_name="/status")["state"] == "idle"


def test_training_can_be_turned_off_epochs_capped_and_the_queue_bounded(mnist, checkpoints_dir, monkeypatch, gate):
    monkeypatch.setenv("DIGITNET_ALLOW_TRAINING", "0")
    with running_app(train_overrides=SMALL_TRAIN) as off:
        c = off.client()
        with pytest.raises(AppError, match=r"Training is turned off.*DIGITNET_ALLOW_TRAINING=0"):
            c.predict(model="lenet", epochs=1, api_name="/train")
        assert c.predict(api_name="/status")["state"] == "idle"
    monkeypatch.setenv("DIGITNET_ALLOW_TRAINING", "1")
    monkeypatch.setenv("DIGITNET_MAX_EPOCHS", "5")
    monkeypatch.setenv("DIGITNET_MAX_QUEUE", "1")
    with running_app(train_overrides=SMALL_TRAIN) as capped:
        with pytest.raises(AppError, match=r"epochs must be at most 5"):
            capped.client().predict(model="lenet", epochs=6, api_name="/train")
        capped.client().predict(model="lenet", epochs=1, api_name="/train")
        assert gate.entered.wait(WAIT)
        capped.client().predict(model="lenet", epochs=1, api_name="/train")  # waits: the queue is now full
        with pytest.raises(AppError, match=r"The training queue is full \(1 runs are waiting"):
            capped.client().predict(model="lenet", epochs=1, api_name="/train")
        gate.open()


def test_the_live_view_streams_the_run_to_its_owner(served_app, idle_queue, gate):
    """watch(): one update per change while the run goes, the results once it is done, then it ends."""
    ctx = served_app.ctx
    ws = ctx.visitors.get("watcher")
    run = ws.train(model="lenet", epochs=2)
    assert gate.entered.wait(WAIT)  # running, held at its first batch: the stream cannot miss it

    async def collect():
        updates = []
        async for update in train_tab.watch(ctx, ws, None, "lenet"):
            updates.append(update)
            gate.open()  # the stream has shown the run running; let it finish
        return updates

    updates = asyncio.run(collect())
    assert run.snapshot().state == "done"
    statuses = [u[0] for u in updates]
    assert any("running" in s for s in statuses[:-2]) and "done" in statuses[-1]
    final = updates[-2]
    status, progress, loss, acc, results, figure, gallery, runs, ticks, overlay, weights_md, weights_pick, page = final
    assert "test accuracy" in results and figure is not None and len(gallery) > 0
    assert all(caption.startswith("true ") and "predicted" in caption for _, caption in gallery)
    assert len(loss.value["data"]) >= 2 and len(acc.value["data"]) == 4  # train + validation, two epochs
    assert list(runs["run"]) == [1] and list(runs["state"]) == ["done"]
    assert ticks.value == ["1"] and len(overlay.value["data"]) == 2  # the run's two validation points
    assert weights_md.startswith("**LeNet**: your run 1, ") and weights_pick.value == "1"
    pushed = json.loads(page)["weights"]  # the run's weights go to the page, which draws with them
    assert list(pushed) == ["lenet"] and pushed["lenet"]["spec"] == page_model(ws.weights_dict("lenet"))
    assert all(u[-1] == gr.skip() for u in updates[:-2] + updates[-1:])  # only once, when the run ends
    assert all(v == gr.skip() for v in updates[-1][4:7])  # the last redraw leaves the results panel alone


def test_overlay_compares_the_visitors_runs(served_app, idle_queue):
    ctx = served_app.ctx
    ws = ctx.visitors.get("overlay")
    for params in (dict(epochs=2), dict(epochs=2, optimizer="sgd", lr=0.01, schedule="step")):
        run = ws.train(model="mlp", **params)
        assert run.wait_ended(WAIT) and run.snapshot().state == "done"
    assert [value for _, value in train_tab.overlay_choices(ws)] == ["1", "2"]
    frame = train_tab.overlay_frame(ws, ["1", "2"])
    assert len(frame) == 4 and sorted(frame["run"].unique()) == ["run 1", "run 2"]
    plot = train_tab.overlay_plot(ws, ["1", "2"])
    assert "run 2: MLP, 2 ep · sgd lr 0.01 · step" in plot.caption  # which run is which
    assert train_tab.overlay_plot(ws, []).value is None  # nothing ticked: no frame (see plot_value)
    assert train_tab.default_overlay(ws, ["1"]) == ["1", "2"]  # the latest run joins the visitor's ticks
    table = train_tab.runs_frame(ws)
    assert list(table["run"]) == [2, 1] and all(table["test acc"].str.endswith("%"))


def test_curves_progress_and_heatmap_from_a_run_state():
    history = [{"epoch": 1, "train_loss": 0.9, "train_acc": 0.7, "val_loss": 0.5, "val_acc": 0.85},
               {"epoch": 2, "train_loss": 0.4, "train_acc": 0.9, "val_loss": None, "val_acc": None}]
    s = RunState(number=2, kind="training", model="lenet", config={}, state="running", epoch=2, epochs=4, done=1.25,
                 batch=100, batches=400, eta_seconds=83, elapsed=10, history=history,
                 loss_points=[(0.5, 1.5), (1.0, 0.9), (1.25, 0.6)])
    loss = train_tab.loss_frame(s)
    assert list(loss["curve"]) == ["train (running)"] * 3 + ["validation"]  # no point for a missing val loss
    assert loss["epoch"].dtype == "float64" and loss["loss"].dtype == "float64"
    acc = train_tab.accuracy_frame(s)
    assert list(acc["accuracy"]) == pytest.approx([70.0, 85.0, 90.0])
    loss_caption, acc_caption = train_tab.curve_captions(s)
    assert loss_caption == "train loss 0.600 at epoch 1.25" and acc_caption == "epoch 2: train 90.00%"
    progress = train_tab.progress_html(s)
    assert 'value="0.3125"' in progress and "epoch 2/4 · batch 100/400 · ETA 1:23" in progress
    half = RunState(number=3, kind="training", model="lenet", config={}, state="running", epoch=2, epochs=1.5,
                    done=1.2, batch=86, batches=215, eta_seconds=5, elapsed=10)  # in the last half epoch
    assert 'value="0.8000"' in train_tab.progress_html(half) and "epoch 2/1.5 · batch 86/215" in train_tab.progress_html(half)
    queued = RunState(number=1, kind="training", model="mlp", config={}, state="queued", epochs=2)
    assert "number 3 in the queue · starts in about 1:05" in train_tab.progress_html(queued, 3, 65.0)
    assert "run 2: LeNet · running" in train_tab.status_line(s)
    # The caption changes with every point, so the plot is rebuilt (see curve_captions).
    s.loss_points.append((1.5, 0.5))
    assert train_tab.curve_captions(s)[0] != loss_caption
    empty = train_tab.loss_frame(None)
    assert len(empty) == 0 and str(empty["curve"].dtype) == "string"  # typed even when empty

    cm = [[0] * 10 for _ in range(10)]
    for d in range(10):
        cm[d][d] = 95
    cm[4][9] = 5
    heatmap = train_tab.confusion_image(cm)
    assert heatmap.ndim == 3 and heatmap.shape[2] == 4 and heatmap.dtype == np.uint8


def test_the_seed_article_preset_queues_the_seed_articles_recipe(served_app, idle_queue, gate):
    """The preset fills the form; the form's values, as the Train button sends them, make the seed's run."""
    ctx = served_app.ctx
    ws = ctx.visitors.get("preset")
    form = {c.name: getattr(TrainConfig(), c.name) for c in train_tab.FORM}  # the form as it first shows
    form.update(zip((c.name for c in train_tab.PRESET), train_tab.seed_preset(ctx, "lenet")))  # the preset button
    message = train_tab.train_click(ctx, ws, *(form[c.name] for c in train_tab.FORM))
    assert message == "Your run 1: LeNet is training."  # the queue was empty
    config = ws.latest().snapshot().config
    assert (config["optimizer"], config["lr"], config["schedule"], config["batch_size"]) == ("sgd", 0.01, "step", 64)
    assert config["label_smoothing"] == 0.0 and config["epochs"] == 20 and config["model"] == "lenet"
    ws.stop()
    fast = dict(zip((c.name for c in train_tab.PRESET), train_tab.fast_preset(ctx, "lenet")))
    assert fast["label_smoothing"] == 0.1  # part of the fast recipe
