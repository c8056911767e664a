"""One visitor's workspace: their runs and weights are theirs, files in and out, leaving frees everything."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from digitnet.checkpoint import SHIPPED_DIR, CheckpointError
from digitnet.predict import CACHE, predict
from digitnet.scheduler import Scheduler
from digitnet.visitors import Visitors
from digitnet.workspace import MAX_UPLOAD_BYTES, AlreadyTraining, run_status

SLICE = dict(train_limit=300, val_size=100, test_limit=100)
WAIT = 120


@pytest.fixture
def visitors(mnist):
    s = Scheduler(overrides=SLICE, finetune_overrides=dict(rounds=1, steps_per_round=3, val_limit=50))
    yield Visitors(s)
    s.close()


@pytest.fixture
def drawing(mnist) -> np.ndarray:
    """MNIST test digit 0 (a 7) enlarged on a 280x280 canvas, white ink on black."""
    canvas = np.zeros((280, 280), np.uint8)
    canvas[40:208, 56:224] = np.kron(mnist.test_images[0].numpy(), np.ones((6, 6), np.uint8))
    return canvas


def shipped_digests() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in SHIPPED_DIR.glob("*.pt")}


def trained(ws, **params):
    run = ws.train(**{"model": "mlp", "epochs": 1, **params})
    assert run.wait_ended(WAIT), "the run did not end"
    assert run.snapshot().state == "done", run.snapshot().error
    return run


def test_a_visitors_run_changes_their_drawings_only(visitors, drawing):
    files = shipped_digests()
    alice, bob = visitors.get("alice"), visitors.get("bob")
    before = predict(drawing, "mlp", weights=bob).probs
    run = trained(alice, lr=1e-5, optimizer="sgd", schedule="none")  # a deliberately bad model
    mine = predict(drawing, "mlp", weights=alice).probs
    assert max(abs(a - b) for a, b in zip(mine, before)) > 0.05, "alice's drawings did not change"
    assert predict(drawing, "mlp", weights=bob).probs == before  # bob: exactly as before, to the last bit
    assert predict(drawing, "mlp", weights=CACHE).probs == before  # the shipped model is untouched
    assert shipped_digests() == files  # and so are the shipped files
    w = alice.in_use("mlp")
    assert (w.run, w.kind, w.test_acc) == (run.number, "training", run.snapshot().test_acc)
    assert alice.in_use("lenet").run is None and bob.in_use("mlp").run is None
    # One click back to the shipped weights, and back again to the run.
    assert alice.use("mlp", None).run is None and predict(drawing, "mlp", weights=alice).probs == before
    assert alice.use("mlp", run.number).run == run.number
    assert predict(drawing, "mlp", weights=alice).probs == mine
    with pytest.raises(ValueError, match="no LeNet weights"):
        alice.use("lenet", run.number)


def test_one_run_at_a_time_per_visitor_and_stop_is_theirs(visitors, gate):
    alice, bob = visitors.get("alice"), visitors.get("bob")
    a = alice.train(model="mlp", epochs=5)
    assert gate.entered.wait(WAIT)
    b = bob.train(model="lenet", epochs=1)
    with pytest.raises(AlreadyTraining, match=r"Your run 1 \(LeNet\) is waiting in the queue \(position 1\)") as busy:
        bob.train(model="mlp", epochs=1)
    assert (busy.value.run.number, busy.value.run.state, busy.value.position) == (1, "queued", 1)
    assert run_status(bob)["state"] == "queued" and run_status(bob)["position"] == 1
    assert run_status(bob)["starts_in_seconds"] > 0
    bob.stop()  # bob's stop takes bob's run out of the queue...
    assert run_status(bob)["state"] == "stopped" and a.snapshot().state == "running"  # ...and leaves alice's
    assert run_status(visitors.get("carol"))["state"] == "idle"
    gate.open()
    alice.stop(wait=WAIT)
    assert a.snapshot().state == "stopped" and alice.in_use("mlp").run is None  # no weights from a stopped run
    assert b.snapshot().state == "stopped"


def test_weights_download_and_load_back(visitors, drawing, tmp_path):
    alice, bob = visitors.get("alice"), visitors.get("bob")
    run = trained(alice)
    path = tmp_path / "mlp-run1.pt"
    path.write_bytes(alice.export("mlp"))
    ckpt = torch.load(path, map_location="cpu", weights_only=True)  # the shipped format, safe to load
    assert ckpt["arch"] == "mlp" and ckpt["format_version"] == 1
    assert ckpt["metrics"]["test_acc"] == pytest.approx(run.snapshot().test_acc)
    loaded = bob.load(path)
    assert loaded.snapshot().kind == "upload" and bob.in_use("mlp").run == loaded.number
    assert predict(drawing, "mlp", weights=bob).probs == predict(drawing, "mlp", weights=alice).probs
    assert loaded.snapshot().test_acc == pytest.approx(run.snapshot().test_acc)
    assert loaded.snapshot().epochs == run.snapshot().epochs  # its length, from the file's history
    # a part-epoch run reads as such; a history whose epoch makes no sense falls back to its length
    for last, expected in ((1.5, 1.5), (float("nan"), 2), (True, 2)):
        ckpt["metrics"]["history"] = [{"epoch": 1}, {"epoch": last}]
        torch.save(ckpt, path)
        assert bob.load(path).snapshot().epochs == expected


@pytest.mark.parametrize("write, message", [
    (lambda p: p.write_bytes(b"not a checkpoint at all"), r"could not be read"),
    (lambda p: torch.save({"arch": "mlp"}, p), r"not a digitnet checkpoint"),
    (lambda p: torch.save({"format_version": 1, "arch": "resnet", "state_dict": {}, "mean": 0.1, "std": 0.3}, p),
     r"unknown model 'resnet'"),
    (lambda p: torch.save({"format_version": 1, "arch": "lenet", "state_dict": {"w": torch.zeros(3)},
                           "mean": 0.1, "std": 0.3}, p), r"does not fit the lenet model"),
    (lambda p: p.write_bytes(b"\0" * (MAX_UPLOAD_BYTES + 1)), r"at most 20 MB"),
])
def test_a_bad_weights_file_is_refused_clearly(visitors, tmp_path, write, message):
    path = tmp_path / "upload.pt"
    write(path)
    ws = visitors.get("alice")
    with pytest.raises(CheckpointError, match=message):
        ws.load(path)
    assert ws.runs() == [] and ws.in_use("lenet").run is None


def test_a_file_for_another_model_is_refused_when_a_model_is_named(visitors, tmp_path):
    path = tmp_path / "lenet.pt"
    path.write_bytes((SHIPPED_DIR / "lenet.pt").read_bytes())
    with pytest.raises(CheckpointError, match="holds a LeNet model, not MLP"):
        visitors.get("alice").load(path, model="mlp")


def test_finetune_starts_from_the_visitors_weights_and_stays_theirs(visitors, mnist, drawing):
    alice, bob = visitors.get("alice"), visitors.get("bob")
    alice.my_digits = [(mnist.test_images[i].numpy().astype(np.float32) / 255, int(mnist.test_labels[i]))
                       for i in range(8)]
    before = predict(drawing, "lenet", weights=bob).probs
    run = alice.finetune("lenet")
    assert run.wait_ended(WAIT) and run.snapshot().state == "done", run.snapshot().error
    assert run.snapshot().kind == "finetune" and alice.in_use("lenet").run == run.number
    assert predict(drawing, "lenet", weights=bob).probs == before
    with pytest.raises(ValueError, match="at least 5 of your digits"):
        bob.finetune("lenet")


def test_leaving_drops_a_waiting_run_and_frees_the_workspace(visitors, gate):
    alice, bob = visitors.get("alice"), visitors.get("bob")
    a = alice.train(model="mlp", epochs=3)
    assert gate.entered.wait(WAIT)
    b = bob.train(model="mlp", epochs=1)
    assert visitors.leave("bob") and len(visitors) == 1
    assert b.snapshot().state == "stopped" and visitors.scheduler.waiting() == []
    assert visitors.leave("alice")  # a running run is asked to stop
    gate.open()
    assert a.wait_ended(WAIT) and a.snapshot().state == "stopped"
    assert len(visitors) == 0 and not visitors.leave("alice")


def test_workspaces_nobody_uses_are_freed_after_a_while(visitors, mnist):
    from digitnet.visitors import EMPTY_IDLE_SECONDS, IDLE_SECONDS, NO_HEARTBEAT_IDLE_SECONDS

    digit = [(mnist.test_images[0].numpy().astype(np.float32) / 255, 7)]
    quiet, keeper, busy = visitors.get("quiet"), visitors.get("keeper"), visitors.get("now")
    stranger = visitors.get("stranger")  # raw queue calls: digits, and no heartbeat
    keeper.my_digits = digit
    stranger.my_digits = digit
    visitors.heartbeat("keeper", True)  # an open tab
    start = quiet.last_seen
    busy.last_seen = start + max(EMPTY_IDLE_SECONDS, NO_HEARTBEAT_IDLE_SECONDS)  # used just now
    # An empty workspace, and one without a heartbeat, go after minutes...
    assert visitors.sweep(now=start + max(EMPTY_IDLE_SECONDS, NO_HEARTBEAT_IDLE_SECONDS) + 1) == 2
    assert visitors.peek("quiet") is None and visitors.peek("stranger") is None
    assert visitors.peek("keeper") is keeper and visitors.peek("now") is busy
    assert stranger.my_digits == [] and stranger.memory_bytes() == 0  # freed, not just forgotten
    # ...one that holds digits (or runs) and a heartbeat only after IDLE_SECONDS.
    assert visitors.sweep(now=start + IDLE_SECONDS + 1) == 2
    assert len(visitors) == 0
