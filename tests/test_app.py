"""The app's Draw tab and public API, through gradio_client against the launched app."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client.exceptions import AppError

import app
from conftest import BLANK_SKETCH, sketch_value
from digitnet.checkpoint import SHIPPED_DIR
from digitnet.models import MODELS

DOCUMENTED_ENDPOINTS = {"/predict", "/train", "/status", "/stop", "/restore"}


def shipped(name: str) -> bool:
    """True when the repo ships a checkpoint for ``name`` (the lead adds them as they finish)."""
    return (SHIPPED_DIR / f"{name}.pt").is_file()


def confidences(label: dict) -> dict[str, float]:
    """A gr.Label value as {class: probability}."""
    return {c["label"]: c["confidence"] for c in label["confidences"]}


def handler(demo, name: str):
    """The Python function behind one of the app's (private) UI events."""
    return next(f.fn for f in demo.fns.values() if f.name == name)


def dependency(demo, api_name: str) -> dict:
    """One event's config as the browser receives it."""
    return next(d for d in demo.config["dependencies"] if d.get("api_name") == api_name)


def test_public_api_is_exactly_the_documented_endpoints(client):
    api = client.view_api(return_format="dict", print_info=False)
    assert set(api["named_endpoints"]) == DOCUMENTED_ENDPOINTS
    assert not api["unnamed_endpoints"]
    params = [p["parameter_name"] for p in api["named_endpoints"]["/predict"]["parameters"]]
    assert params == ["sketch", "model"]
    train = {p["parameter_name"]: p for p in api["named_endpoints"]["/train"]["parameters"]}
    assert list(train)[:2] == ["model", "epochs"]
    assert not train["model"]["parameter_has_default"] and not train["epochs"]["parameter_has_default"]
    assert all(p["parameter_has_default"] for name, p in train.items() if name not in ("model", "epochs"))


@pytest.mark.parametrize("model", list(MODELS))
def test_predict_reads_drawn_mnist_test_digits(client, drawn_digits, model):
    if not shipped(model):
        pytest.skip(f"no shipped checkpoint for {model} yet")
    for truth, png in drawn_digits:
        label = client.predict(sketch=sketch_value(png), model=model, api_name="/predict")
        probs = confidences(label)
        assert sorted(probs) == [str(d) for d in range(10)]  # all ten classes, not a top-k cut
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
        assert label["label"] == str(truth), f"{model} read a drawn {truth} as {label['label']}"


def test_blank_canvas_asks_for_a_digit(client):
    label = client.predict(sketch=BLANK_SKETCH, model="lenet", api_name="/predict")
    assert label["label"] == app.BLANK_MESSAGE
    assert not label.get("confidences")


def test_unknown_model_is_a_clear_error(client, drawn_digits):
    with pytest.raises(AppError, match=r"unknown model 'resnet'.*mlp, cnnnet, lenet"):
        client.predict(sketch=sketch_value(drawn_digits[0][1]), model="resnet", api_name="/predict")
    # ...and the server still answers.
    assert client.predict(sketch=BLANK_SKETCH, model="lenet", api_name="/predict")["label"] == app.BLANK_MESSAGE


def test_draw_tab_shows_label_bars_seen_image_and_all_models(served_app, mnist):
    if not shipped("lenet"):
        pytest.skip("no shipped LeNet checkpoint yet")
    recognise = handler(served_app.demo, "recognise")
    # What the Sketchpad hands the handler (type="numpy"): RGBA, black ink in the alpha channel.
    canvas = np.zeros((800, 800, 4), dtype=np.uint8)
    digit = np.kron(mnist.test_images[0].numpy(), np.ones((12, 12), dtype=np.uint8))  # a 7, 336 px tall
    canvas[100:436, 300:636, 3] = digit
    value = {"background": None, "layers": [canvas], "composite": canvas}
    label, bars, seen, *answers = recognise(value, "lenet")
    assert max(label, key=label.get) == "7"
    assert list(bars["digit"]) == [str(d) for d in range(10)]
    assert bars["probability"].sum() == pytest.approx(1.0, abs=1e-4)
    assert seen.shape == (28 * app.SEEN_SCALE, 28 * app.SEEN_SCALE) and seen.dtype == np.uint8
    assert seen.max() == 255 and seen[:8, :8].max() == 0  # white ink on black, margins empty
    assert len(answers) == len(MODELS)
    for name, answer in zip(MODELS, answers):
        if shipped(name):
            assert max(answer, key=answer.get) == "7", f"{name} in the side-by-side view"


def test_uploaded_photo_of_dark_ink_on_paper_is_read(served_app, mnist):
    if not shipped("lenet"):
        pytest.skip("no shipped LeNet checkpoint yet")
    recognise = handler(served_app.demo, "recognise")  # photo.change uses the same handler
    digit = np.kron(mnist.test_images[1].numpy(), np.ones((9, 9), dtype=np.uint8))  # a 2
    paper = np.full((400, 300, 3), 235, dtype=np.uint8)  # light grey paper, RGB, no alpha
    paper[60:312, 30:282] = (235 - digit.astype(np.int32) * 200 // 255)[..., None].astype(np.uint8)
    label, *_ = recognise(paper, "lenet")
    assert max(label, key=label.get) == "2"


def test_draw_tab_blank_canvas_shows_message_not_a_guess(served_app):
    recognise = handler(served_app.demo, "recognise")
    label, bars, seen, *answers = recognise(BLANK_SKETCH, "lenet")
    assert label == app.BLANK_MESSAGE
    assert bars["probability"].sum() == 0 and seen is None and answers == [None] * len(MODELS)


def test_drawing_events_are_fast_and_never_queue_stale_work(served_app):
    deps = served_app.demo.config["dependencies"]
    drawing = [d for d in deps if d.get("api_name") in ("recognise", "recognise_1", "recognise_either")]
    assert len(drawing) == 3
    for d in drawing:
        assert d["trigger_mode"] == "always_last"  # a burst of strokes collapses to the latest drawing
        assert d["show_progress"] == "hidden"
    fns = {f.api_name: f for f in served_app.demo.fns.values()}
    assert fns["predict"].concurrency_limit > 1 and fns["recognise"].concurrency_limit > 1
    assert fns["train"].concurrency_limit == 1


def test_sketchpad_has_a_black_brush_selected_on_load(served_app):
    comp = next(c for c in served_app.demo.config["components"] if c["props"].get("elem_id") == "digit-sketch")
    assert comp["props"]["brush"]["colors"] == ["#000000"]
    assert comp["props"]["brush"]["color_mode"] == "fixed"
    assert comp["props"]["canvas_size"] == [800, 800] or tuple(comp["props"]["canvas_size"]) == (800, 800)
    # The page load and "Clear canvas" both click the toolbar's Brush button.
    js_events = [d for d in served_app.demo.config["dependencies"] if d.get("js")]
    assert any('aria-label="Brush"' in d["js"] for d in js_events)
    triggers = {t[1] for d in js_events for t in d["targets"]}
    assert {"load", "clear"} <= triggers


def test_pure_helpers():
    assert app.enlarge(np.eye(2, dtype=np.float32), 3).tolist()[0] == [255, 255, 255, 0, 0, 0]
    frame = app.probability_frame([0.1] * 10)
    assert len(frame) == 10 and frame["probability"].dtype == np.float64
