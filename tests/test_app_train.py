"""The Train tab and /train, /status, /stop through gradio_client: every visitor their own runs and weights."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import threading

import gradio as gr
import matplotlib.text
import numpy as np
import pytest
import torch
from gradio_client.exceptions import AppError

from conftest import SMALL_TRAIN, running_app, sketch_value, wait_until_finished
from digitnet.checkpoint import SHIPPED_DIR
from digitnet.scheduler import RunState
from digitnet.training import TrainConfig
from digitnet.ui import curves, words
from digitnet.ui import runs as runs_ui
from digitnet.ui import train as train_tab
from digitnet.webmodel import page_model
from digitnet.workspace import run_status

WAIT = 120


def confidences(label: dict) -> dict[str, float]:
    return {c["label"]: c["confidence"] for c in label["confidences"]}


def shipped_digests() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in SHIPPED_DIR.glob("*.pt")}


def test_train_returns_at_once_and_status_shows_the_run_growing(client, idle_queue, checkpoints_dir):
    started = client.predict(model="lenet", epochs=2, batch_size=64, api_name="/train")
    # Returned before any epoch ended: the run goes on in the background (the queue was empty: running).
    assert started["state"] == "running" and started["model"] == "lenet" and started["epochs"] == 2
    assert started["position"] is None
    assert started["history"] == [] and started["run"] == 1
    final, during = wait_until_finished(client, timeout=4 * WAIT)  # a give-up bound: 64 steps, 12 points
    lengths = [len(s["history"]) for s in during]
    assert any(0 < n < 12 for n in lengths), f"never saw a partial history while running: {lengths}"
    assert lengths == sorted(lengths)  # it only grows
    assert final["state"] == "done", final["message"]
    assert [h["epoch"] for h in final["history"] if h["epoch_end"]] == [1, 2]
    assert final["history"][-1]["train_loss"] < final["history"][0]["train_loss"]
    # Every point the page plots: >= 40 training-loss points and >= 10 validation points, whatever the
    # run's length (2 epochs of 32 steps here), each validation point with its accuracy and loss.
    assert len(final["running_loss"]) >= 40 and len(final["history"]) >= 10
    assert len(final["running_loss_seconds"]) == len(final["running_loss"])
    xs = [x for x, _ in final["running_loss"]]
    assert xs == sorted(xs) and xs[-1] == pytest.approx(2, abs=0.01)
    assert all(0 < h["val_acc"] <= 1 and h["val_loss"] > 0 for h in final["history"])
    assert [h["epoch"] for h in final["history"]] == sorted(h["epoch"] for h in final["history"])
    # Points from the first epoch on: several before the first epoch ended.
    assert any(len(s["running_loss"]) >= 3 and s["history"] and s["history"][-1]["epoch"] < 1 for s in during), \
        [(len(s["running_loss"]), len(s["history"])) for s in during]
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


def replay(values: list[dict]) -> dict:
    """What curves.js holds after these values: a reset, then each value's new points spliced in."""
    shown = None
    for v in values:
        if v.get("reset"):
            shown = {"loss": list(v["series"][0]["loss"]) if v["series"] else [],
                     "val": list(v["series"][0]["val"]) if v["series"] else [], "answers": [], "probe": v["probe"]}
            if v["probe"] and v["probe"]["answers"]:
                shown["answers"].append(v["probe"]["answers"])
            shown["own"] = list(v["probe"]["own"]["probs"]) if v["probe"] and v["probe"]["own"] else None
            continue
        assert v["add"]["loss_from"] == len(shown["loss"]) and v["add"]["val_from"] == len(shown["val"])  # only new
        shown["loss"] += v["add"]["loss"]
        shown["val"] += v["add"]["val"]
        if "answers" in v:
            shown["answers"].append(v["answers"])
        if "own" in v:
            shown["own"] = v["own"]
    return shown


def test_the_live_view_streams_only_new_points_to_the_runs_owner(served_app, idle_queue, gate):
    """watch(): a reset, then only new points while the run goes (no whole charts), the results once it
    is done; the probe digits' answers change during the run; stale answers are cleared."""
    ctx = served_app.ctx
    ws = ctx.visitors.get("watcher")
    # Batch 16: 250 steps, about two seconds on an idle machine, so that several looks of the stream see it
    # run (at batch 128 the whole run fitted between two of them).
    seven = np.zeros((28, 28), np.float32)
    seven[5:8, 6:22] = 1
    for row in range(8, 24):  # the stem, leaning left
        seven[row, 19 - (row - 8) // 2: 22 - (row - 8) // 2] = 1
    run = ws.train(model="lenet", epochs=2, batch_size=16, own=(seven, 7))  # the visitor's last drawing
    assert gate.entered.wait(WAIT)  # running, held at its first batch: the stream cannot miss it

    async def collect():
        updates = []
        async for update in train_tab.watch(ctx, ws, None, "lenet", "lenet"):
            updates.append(update)
            gate.open()  # the stream has shown the run running; let it finish
        return updates

    updates = asyncio.run(collect())
    assert run.snapshot().state == "done"
    statuses = [u[0] for u in updates]
    assert any("running" in s for s in statuses[:-1]) and "done" in statuses[-1]
    values = [u[1] for u in updates]
    assert values[0]["reset"] and all("add" in v for v in values[1:])
    shown = replay(values)
    status = run_status(ws)
    assert [p[0] for p in shown["loss"]] == [x for x, _ in status["running_loss"]]  # the page plots what /status says
    assert [p[2] for p in shown["val"]] == [h["val_acc"] for h in status["history"]]
    assert len(shown["val"]) == 12 and len(shown["loss"]) >= 40  # 2 epochs of 125 steps: a report every 4
    assert max(len(v["add"]["loss"]) for v in values[1:]) < len(shown["loss"])  # never the whole curve again
    labels = shown["probe"]["labels"]
    assert len(shown["probe"]["images"]) == len(labels) == 16
    assert len(shown["answers"]) >= 2 and shown["answers"][0] != shown["answers"][-1]  # the grid changed
    # Beside the grid, the visitor's drawing: the model's probability for a 7 at every point, as /status has it.
    assert shown["probe"]["own"]["digit"] == 7 and shown["probe"]["own"]["image"].startswith("data:image/png")
    assert shown["own"] == [h["own"] for h in status["history"]] and len(shown["own"]) == 12
    assert all(0 <= p <= 1 for p in shown["own"]) and shown["own"][-1] > shown["own"][0]
    final = updates[-1]
    (status_md, live, results, figure, gallery, runs, ticks, overlay, form_msg, teach, weights_md, weights_pick,
     download, page) = final
    assert "test accuracy" in results and figure is not None and len(gallery) > 0
    assert all(re.fullmatch(r"\d → \d · \d+%", caption) for _, caption in gallery)
    table = dict(zip(runs.value["headers"], zip(*runs.value["data"])))  # the table, shown from the first run
    assert runs.visible is True and list(table["#"]) == [1] and list(table["state"]) == ["done"]
    assert ticks.value == ["1"] and len(overlay["series"]) == 1 and len(overlay["series"][0]["val"]) == 12
    assert form_msg == ""  # "Your run 1: LeNet is training." is out of date
    assert weights_md.startswith("**LeNet**: your run 1, ") and weights_pick.value == "1"
    assert download.endswith("lenet-run1.pt") and torch.load(download, weights_only=True)["arch"] == "lenet"
    pushed = json.loads(page)["weights"]  # the run's weights go to the page, which draws with them
    assert list(pushed) == ["lenet"] and pushed["lenet"]["spec"] == page_model(ws.weights_dict("lenet"))
    assert all(u[-1] == gr.skip() for u in updates[:-1])  # only once, when the run ends


def test_overlay_compares_the_visitors_runs(served_app, idle_queue):
    ctx = served_app.ctx
    ws = ctx.visitors.get("overlay")
    assert runs_ui.tables(ws, None)[0].visible is False  # no runs: no table (its column names would be English)
    for params in (dict(epochs=2), dict(epochs=2, optimizer="sgd", lr=0.01, schedule="step")):
        run = ws.train(model="mlp", **params)
        assert run.wait_ended(WAIT) and run.snapshot().state == "done"
    assert [value for _, value in runs_ui.overlay_choices(ws)] == ["1", "2"]
    value = runs_ui.overlay_value(ws, ["1", "2"])  # every ticked run, not only one
    assert value["overlay"] and [s["name"] for s in value["series"]] == ["run 1: MLP", "run 2: MLP"]
    assert all(len(s["val"]) == 12 and len(s["loss"]) == 12 for s in value["series"])  # 12 steps: a report each
    assert value["series"][0]["val"] != value["series"][1]["val"]
    assert runs_ui.overlay_value(ws, [])["series"] == []
    assert runs_ui.default_overlay(ws, ["1"]) == ["1", "2"]  # the latest run joins the visitor's ticks
    table = runs_ui.runs_frame(ws)
    assert list(table["#"]) == [2, 1] and all(table["test"].str.endswith("%"))
    assert "2 ep · sgd lr 0.01 · step" in table["settings"][0]  # which run is which
    shown = runs_ui.tables(ws, None)[0]
    assert shown.visible is True
    words.use("zh-CN")
    try:  # the columns in the request's language
        assert list(runs_ui.runs_frame(ws).columns) == [words.ZH["col_" + ("number" if c == "#" else c)]
                                                          for c in runs_ui.RUNS_COLUMNS]
    finally:
        words.use("en")


def test_progress_captions_and_heatmap_from_a_run_state():
    history = [{"epoch": 0.5, "train_loss": 0.9, "train_acc": 0.7, "val_loss": 0.5, "val_acc": 0.85, "elapsed": 4.0,
                "val_images": 1000, "epoch_end": False, "probe": [1] * 16}]
    s = RunState(number=3, kind="training", model="lenet", config={"label_smoothing": 0.1}, state="running", epoch=2,
                 epochs=1.5, done=1.2, batch=86, batches=215, eta_seconds=5, elapsed=10, history=history,
                 loss_points=[(0.5, 1.5), (1.0, 0.9), (1.2, 0.6)], loss_seconds=[3.0, 6.0, 8.0])
    progress = curves.progress_data(s)
    # "epoch 2/2" (the second pass of a 1.5-epoch run), not "epoch 2/1.5"
    assert (progress["epoch"], progress["passes"], progress["epochs"], progress["done"]) == (2, 2, 1.5, 1.2)
    assert progress["eta"] == 5 and progress["state"] == "running"
    caption = curves.captions(s)
    assert caption["loss"].startswith("training loss 0.600 at epoch 1.20 · validation loss 0.500")
    assert "label smoothing 0.1" in caption["loss"]  # why the training loss sits above the validation loss
    assert caption["acc"] == "validation 85.00% at epoch 0.5 (1,000 validation images)"
    assert curves.loss_points(s) == [[0.5, 3.0, 1.5], [1.0, 6.0, 0.9], [1.2, 8.0, 0.6]]
    assert curves.val_points(s) == [[0.5, 4.0, 0.85, 0.5, 0.7]]
    queued = RunState(number=1, kind="training", model="mlp", config={}, state="queued", epochs=2)
    assert (curves.progress_data(queued, 3, 65.04)["position"], curves.progress_data(queued, 3, 65.04)["starts_in"]) \
        == (3, 65.0)
    assert "run 3: LeNet · running" in train_tab.status_line(s)
    feed = curves.LiveFeed()
    first = feed.update(3, s)
    assert first["reset"] and len(first["series"][0]["loss"]) == 3
    s.loss_points.append((1.3, 0.5))
    s.loss_seconds.append(9.0)
    second = feed.update(3, s)
    assert second["add"]["loss"] == [[1.3, 9.0, 0.5]] and second["add"]["loss_from"] == 3 and second["add"]["val"] == []
    assert "answers" not in second  # unchanged answers are not sent again

    seed = curves.load_seed_curves()  # the faint reference: the seed's recipe, measured by a benchmark
    assert set(seed) == {"mlp", "cnnnet", "lenet"} and all("seed article's recipe" in c["label"] for c in seed.values())
    assert all(0 < p[2] <= 1 and p[0] > 0 and p[1] > 0 for c in seed.values() for p in c["val"])

    cm = [[0] * 10 for _ in range(10)]
    for d in range(10):
        cm[d][d] = 95
    cm[4][9] = 5
    heatmap = train_tab.confusion_figure(cm)
    ax = heatmap.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["5"] + ["95"] * 10  # every non-zero count, written in its cell
    # No words in the picture (a Space has no Chinese font): every text drawn is a number, the digits 0-9 on
    # both axes; what rows and columns mean is the caption beside it, in the page's language.
    heatmap.savefig(io.BytesIO(), format="png")  # lays out the tick labels
    drawn = [t.get_text() for t in heatmap.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text()]
    assert drawn and all(text.isdigit() for text in drawn), drawn
    assert [t.get_text() for t in ax.get_xticklabels()] == [t.get_text() for t in ax.get_yticklabels()] == \
        [str(d) for d in range(10)]
    assert "rows: the true digit" in words.EN["confusion_caption"].lower() and "行：真实数字" in words.ZH["confusion_caption"]


def test_the_seed_article_preset_queues_the_seed_articles_recipe(served_app, idle_queue, gate):
    """The preset fills the form; the form's values, as the Train button sends them, make the seed's run."""
    ctx = served_app.ctx
    ws = ctx.visitors.get("preset")
    form = {c.name: getattr(TrainConfig(), c.name) for c in train_tab.FORM}  # the form as it first shows
    form.update(zip((c.name for c in train_tab.PRESET), train_tab.seed_preset(ctx, "lenet")))  # the preset button
    message = train_tab.train_click(ctx, ws, *(form[c.name] for c in train_tab.FORM))
    assert message == "Your run 1: LeNet is training."  # the queue was empty
    note = train_tab.recipe_note(ctx, "lenet", True)  # what the preset button says beside the form
    assert note.startswith("**The seed article's recipe**: 20 epochs of SGD") and re.search(r"about \d", note)
    config = ws.latest().snapshot().config
    assert (config["optimizer"], config["lr"], config["schedule"], config["batch_size"]) == ("sgd", 0.01, "step", 64)
    assert config["label_smoothing"] == 0.0 and config["epochs"] == 20 and config["model"] == "lenet"
    ws.stop()
    fast = dict(zip((c.name for c in train_tab.PRESET), train_tab.fast_preset(ctx, "lenet")))
    assert fast["label_smoothing"] == 0.1  # part of the fast recipe


def test_the_drawing_the_page_hands_to_a_run_is_checked():
    """train.own_drawing: the page's 28x28 and its digit, or nothing (the run then follows no drawing)."""
    x = np.zeros(784)
    x[300:320] = 0.8
    image, digit = train_tab.own_drawing(json.dumps({"x": x.tolist(), "digit": 3}))
    assert digit == 3 and image.shape == (28, 28) and image.max() == np.float32(0.8)
    bad = [None, "", "null", "not json", json.dumps({"x": x.tolist()}), json.dumps({"x": x[:100].tolist(), "digit": 3}),
           json.dumps({"x": (x * 300).tolist(), "digit": 3}), json.dumps({"x": np.zeros(784).tolist(), "digit": 3}),
           json.dumps({"x": x.tolist(), "digit": 10}), json.dumps({"x": x.tolist(), "digit": "3"}),
           json.dumps({"x": x.tolist(), "digit": True}), json.dumps({"x": ["a"] * 784, "digit": 3}),
           json.dumps({"x": x.tolist(), "digit": 3, "pad": "." * 70_000})]
    assert [train_tab.own_drawing(v) for v in bad] == [None] * len(bad)
