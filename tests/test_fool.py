"""Fool it (issue 22, part 3): a small L∞ change to the 28x28 a model saw makes it read another digit.

The library (``digitnet.fool``) on a drawn 7, the Draw tab's fold (``digitnet.ui.fool``) and the API's
``/fool`` through gradio_client and a stranger's raw queue calls.
"""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from gradio_client.exceptions import AppError

from conftest import BLANK_SKETCH, pad_drawing, sketch_value
from digitnet import fool as fl
from digitnet.models import MODELS
from digitnet.predict import CACHE
from digitnet.preprocess import to_mnist_array
from digitnet.ui import fool as fool_tab
from test_reliability_stranger import META, call, fn_index, upload

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def seven(drawn_digits) -> tuple[Path, np.ndarray]:
    """The drawn MNIST test digit 0 (a 7) as a Sketchpad png, and the 28x28 the models see of it."""
    label, png = drawn_digits[0]
    assert label == 7
    return png, to_mnist_array(png)


def read(model: str, image: np.ndarray) -> int:
    """What ``model`` reads in a 28x28 in [0, 1], through the shipped checkpoint as predict does."""
    net, ckpt = CACHE.get(model)
    with torch.no_grad():
        return int(net(((torch.from_numpy(image) - ckpt["mean"]) / ckpt["std"])[None, None]).argmax())


@pytest.mark.parametrize("model", list(MODELS))
def test_the_easiest_change_makes_a_drawn_7_read_as_another_digit_within_its_bound(model, seven):
    _, seen = seven
    r = fl.fool(seen, model)
    assert r.original == 7 and read(model, seen) == 7
    assert r.fooled and r.label != 7 and r.label == r.target
    assert read(model, r.altered) == r.label  # the altered image really reads so
    assert r.probs[r.label] == max(r.probs) and sum(r.probs) == pytest.approx(1.0, abs=1e-5)
    change = np.abs(r.altered - seen).max()
    assert r.linf == pytest.approx(float(change), abs=1e-6)
    assert 0 < r.linf <= r.bound + 1e-6 and r.bound <= fl.MAX_LINF
    assert r.altered.min() >= 0.0 and r.altered.max() <= 1.0  # still an image
    # Small: no pixel moves by a fifth of full ink, and half the bound found fools it towards no digit.
    assert r.linf < 0.2
    net, ckpt = CACHE.get(model)
    targets = torch.tensor([d for d in range(10) if d != 7])
    _, logits = fl.pgd(net, torch.from_numpy(seen), targets, torch.tensor([r.bound / 2]), ckpt["mean"], ckpt["std"])
    assert not (logits[0].argmax(-1) == targets).any()


@pytest.mark.parametrize("model", list(MODELS))
def test_a_picked_target_is_the_digit_it_reads(model, seven):
    _, seen = seven
    r = fl.fool(seen, model, target="3")
    assert r.target == 3 and r.label == 3 and r.fooled and read(model, r.altered) == 3
    assert r.linf <= r.bound + 1e-6 and r.bound <= fl.MAX_LINF  # float32 pixels: within an ulp


def test_pictures_and_bad_targets(seven):
    _, seen = seven
    r = fl.fool(seen, "lenet")
    assert r.altered_image.shape == (224, 224) and r.altered_image.dtype == np.uint8
    diff = r.difference_image
    assert diff.shape == (224, 224, 3)
    added = r.difference > 0
    ys, xs = np.nonzero(added)
    y, x = ys[0] * fl.UPSCALE, xs[0] * fl.UPSCALE
    assert diff[y, x, 0] > diff[y, x, 2]  # ink added: red
    assert diff.max() == 255  # amplified: the largest change at full strength
    still = r.difference == 0
    if still.any():
        ys, xs = np.nonzero(still)
        assert diff[ys[0] * fl.UPSCALE, xs[0] * fl.UPSCALE].max() == 0  # unchanged: black
    assert fl.fool(seen, "lenet", target=3.0).target == 3 and fl.fool(seen, "lenet", target=" 3 ").target == 3
    for bad in (7, 10, -1, "x", 2.5, True, float("nan"), [3]):
        with pytest.raises(fl.FoolError, match=r"target|already reads a 7"):
            fl.fool(seen, "lenet", target=bad)
    with pytest.raises(ValueError, match="unknown model"):
        fl.fool(seen, "resnet")
    assert fl.fool_drawing(np.zeros((800, 800, 4), np.uint8), "lenet") is None  # blank


# ---------------------------------------------------------------------------- the app


@pytest.fixture
def visitor(served_app):
    return served_app.ctx, served_app.ctx.visitors.get(f"fool-{id(object())}")


def test_the_fold_shows_the_altered_image_the_change_and_the_new_answer(visitor, seven):
    png, _ = seven
    ctx, ws = visitor
    text, seen, altered, diff, label = fool_tab.fool_view(ctx, ws, pad_drawing(png), None, "cnnnet", "2")
    assert max(label, key=label.get) == "2" and sum(label.values()) == pytest.approx(1.0, abs=1e-5)
    assert "now reads a 2" in text and "where it read a 7" in text and "Why this matters" in text
    assert seen.shape == altered.shape == (224, 224) and diff.shape == (224, 224, 3)
    assert np.abs(altered.astype(int) - seen.astype(int)).max() <= 255 * fl.MAX_LINF + 1
    with pytest.raises(gr.Error, match="Draw a digit first"):
        fool_tab.fool_view(ctx, ws, "", None, "cnnnet", "easiest")


def test_api_fool_returns_another_label_within_the_bound(client, seven):
    png, _ = seven
    out = client.predict(sketch=sketch_value(png), model="lenet", api_name="/fool")
    assert set(out) >= {"label", "target", "linf", "confidences"}
    assert out["label"] != "7" and out["label"] == str(out["target"]) and out["original"] == "7"
    assert 0 < out["linf"] <= fl.MAX_LINF
    probs = {c["label"]: c["confidence"] for c in out["confidences"]}
    assert sorted(probs) == [str(d) for d in range(10)] and sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
    assert max(probs, key=probs.get) == out["label"]
    aimed = client.predict(sketch=sketch_value(png), model="mlp", target=4, api_name="/fool")
    assert aimed["label"] == "4" and aimed["target"] == 4 and aimed["linf"] <= fl.MAX_LINF


def test_api_fool_refuses_a_blank_drawing_and_bad_targets_clearly(client, seven):
    with pytest.raises(AppError, match="Draw a digit first: there is nothing to change"):
        client.predict(sketch=BLANK_SKETCH, model="lenet", api_name="/fool")
    png, _ = seven
    with pytest.raises(AppError, match="target must be a digit from 0 to 9"):
        client.predict(sketch=sketch_value(png), model="lenet", target=12, api_name="/fool")
    with pytest.raises(AppError, match="already reads a 7"):
        client.predict(sketch=sketch_value(png), model="lenet", target=7, api_name="/fool")
    with pytest.raises(AppError, match="unknown model"):
        client.predict(sketch=sketch_value(png), model="resnet", api_name="/fool")


def test_api_fool_never_opens_a_path_the_request_names(served_app, seven):
    png, _ = seven
    url, index = served_app.url, fn_index(served_app, "fool")
    answers = [call(url, index, [shape, "lenet", None], "fool-stranger")
               for shape in ({"path": str(REPO / "docs" / "draw.png")}, {"path": "/etc/passwd", "meta": META},
                             {"background": None, "layers": [], "composite": {"path": "/etc/passwd", "meta": META}})]
    assert all(ok is False for ok, _ in answers)
    for _, out in answers:
        assert "passwd" not in json.dumps(out) and "draw.png" not in json.dumps(out)
    ok, out = call(url, index, [upload(url, png), "lenet", None], "fool-stranger")  # an upload of its own: read
    assert ok and out["data"][0]["original"] == "7" and out["data"][0]["label"] != "7"
