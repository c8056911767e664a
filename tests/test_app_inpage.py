"""What the server gives the page (weights to draw with, digits to keep) and takes back after a refresh.

The page keeps the visitor's weights and digits in localStorage and hands them back to a new
session (digitnet.ui.answer.restore). That is a browser's data: every checkpoint goes through
Workspace.load's checks (weights_only, size limit, architecture) and the digits through
load_my_digits, exactly like an upload.
"""

from __future__ import annotations

import base64
import io
import json
import pickle

import numpy as np
import pytest
import torch

from digitnet.finetune import add_digit
from digitnet.predict import CACHE
from digitnet.scheduler import Scheduler
from digitnet.ui import answer, draw, teach
from digitnet.webmodel import page_model
from digitnet.workspace import MAX_UPLOAD_BYTES, Visitors


@pytest.fixture
def visitors():
    s = Scheduler()  # nothing here trains: the queue only refuses
    yield Visitors(s)
    s.close()


def checkpoint_bytes(ckpt: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    return buffer.getvalue()


def own_lenet(seed: int = 0) -> dict:
    """The shipped LeNet with its weights nudged: a visitor's own checkpoint."""
    shipped = CACHE.get("lenet")[1]
    g = torch.Generator().manual_seed(seed)
    state = {k: (v + 0.01 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone())
             for k, v in shipped["state_dict"].items()}
    return {**shipped, "state_dict": state, "metrics": {"test_acc": 0.5}}


def kept_value(weights: dict, digits=None) -> str:
    """The keeper's value as answer.js makes it from what it kept."""
    return json.dumps({"weights": weights, "digits": digits})


def test_the_visitors_weights_go_to_the_page_and_come_back_after_a_refresh(visitors, tmp_path):
    alice = visitors.get("alice")
    path = tmp_path / "mine.pt"
    path.write_bytes(checkpoint_bytes(own_lenet()))
    alice.load(path, "lenet")
    alice.my_digits = add_digit(add_digit([], np.eye(28, dtype=np.float32), 1), np.ones((28, 28), np.float32) * 0.5, 8)

    pushed = json.loads(answer.page_weights(alice))
    assert pushed["weights"]["mlp"] is None and pushed["weights"]["cnnnet"] is None  # shipped: the page has them
    entry = pushed["weights"]["lenet"]
    assert entry["spec"] == page_model(alice.weights_dict("lenet")) and entry["title"].startswith("run 1")
    digits = json.loads(answer.page_digits(alice.my_digits))["digits"]

    # A refresh: a new session gets back what the page kept.
    bob = visitors.get("alice-after-refresh")
    assert answer.restore(bob, kept_value({"lenet": {"ckpt": entry["ckpt"], "title": entry["title"]}}, digits)) == []
    assert bob.in_use("lenet").run is not None and bob.in_use("mlp").run is None
    restored, original = bob.weights_dict("lenet")["state_dict"], alice.weights_dict("lenet")["state_dict"]
    assert all(torch.equal(restored[k], original[k]) for k in original)
    assert [label for _, label in bob.my_digits] == [1, 8]
    assert np.allclose(bob.my_digits[0][0], np.eye(28))


def test_what_a_browser_hands_back_is_checked_like_an_upload(visitors, tmp_path):
    ws = visitors.get("mallory")
    lenet = base64.b64encode(checkpoint_bytes(own_lenet())).decode()
    # A LeNet checkpoint offered as the MLP: the architecture check refuses it.
    refused = answer.restore(ws, kept_value({"mlp": {"ckpt": lenet}}))
    assert len(refused) == 1 and "MLP" in refused[0] and "LeNet" in refused[0]

    # A pickle that would run code when loaded without weights_only.
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = base64.b64encode(pickle.dumps({"format_version": 1, "arch": "lenet", "x": Evil()})).decode()
    refused = answer.restore(ws, kept_value({"lenet": {"ckpt": evil}}))
    assert len(refused) == 1 and not marker.exists()

    too_big = "A" * (4 * MAX_UPLOAD_BYTES // 3 + 8)
    assert "MB" in answer.restore(ws, kept_value({"lenet": {"ckpt": too_big}}))[0]
    assert "not base64" in answer.restore(ws, kept_value({"lenet": {"ckpt": "%%%"}}))[0]
    assert "not a digitnet model" in answer.restore(ws, kept_value({"resnet": {"ckpt": lenet}}))[0]
    assert "my digits" in answer.restore(ws, kept_value({}, base64.b64encode(b"not an npz").decode()))[0]
    assert answer.restore(ws, "{not json") == ["what your browser kept is not JSON: ignored"]
    assert "too large" in answer.restore(ws, "x" * (answer.MAX_KEPT_CHARS + 1))[0]
    assert ws.runs() == [] and ws.my_digits == []  # nothing of it was taken


def test_shipped_weights_for_all_three_resets_every_model(visitors, tmp_path):
    ws = visitors.get("carol")
    for seed, name in enumerate(["lenet", "lenet"]):
        path = tmp_path / f"{seed}.pt"
        path.write_bytes(checkpoint_bytes(own_lenet(seed)))
        ws.load(path, name)
    assert ws.in_use("lenet").run == 2
    text, dropdown, pushed = draw.use_shipped(None, ws, "mlp")
    assert all(ws.in_use(m).run is None for m in ("mlp", "cnnnet", "lenet"))
    assert json.loads(pushed)["weights"] == {"mlp": None, "cnnnet": None, "lenet": None}
    # The dropdown picks one run for one model and tells the page about that model only.
    *_, pushed = draw.choose_weights(None, ws, "lenet", "1")
    assert list(json.loads(pushed)["weights"]) == ["lenet"] and ws.in_use("lenet").run == 1


def test_a_refused_fine_tune_is_a_message_not_an_error(visitors):
    ws = visitors.get("dave")
    text = teach.finetune_click(None, ws, "lenet")
    assert text.startswith("⚠️") and "at least" in text
    with pytest.raises(Exception, match="at least"):
        teach.finetune(None, ws, "lenet")  # the API (/finetune) still raises, for gradio_client
