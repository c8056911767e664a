"""The Draw tab and the public /predict, through gradio_client and the tab's own handlers."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client.exceptions import AppError

import app
from conftest import BLANK_SKETCH, sketch_value
from digitnet.models import MODELS
from digitnet.ui import draw
from digitnet.ui.common import BLANK_MESSAGE, enlarge

DOCUMENTED_ENDPOINTS = {"/predict", "/nearest", "/fool", "/train", "/status", "/stop"}


def confidences(label: dict) -> dict[str, float]:
    """A gr.Label value as {class: probability}."""
    return {c["label"]: c["confidence"] for c in label["confidences"]}


@pytest.fixture
def visitor(served_app):
    """A fresh visitor's workspace in the served app (and its Context), for calling handlers directly."""
    return served_app.ctx, served_app.ctx.visitors.get(f"test-{id(object())}")


def canvas_of(image28: np.ndarray, scale: int = 12, top: int = 100, left: int = 300) -> np.ndarray:
    """An 800x800 RGBA canvas, black ink in the alpha channel, holding an enlarged MNIST digit."""
    canvas = np.zeros((800, 800, 4), dtype=np.uint8)
    digit = np.kron(image28, np.ones((scale, scale), dtype=np.uint8))
    canvas[top:top + digit.shape[0], left:left + digit.shape[1], 3] = digit
    return canvas


def test_public_api_is_exactly_the_documented_endpoints(client):
    api = client.view_api(return_format="dict", print_info=False)
    assert set(api["named_endpoints"]) == DOCUMENTED_ENDPOINTS
    assert not api["unnamed_endpoints"]
    params = [p["parameter_name"] for p in api["named_endpoints"]["/predict"]["parameters"]]
    assert params == ["sketch", "model"]
    fool = api["named_endpoints"]["/fool"]["parameters"]
    assert [p["parameter_name"] for p in fool] == ["sketch", "model", "target"] and fool[2]["parameter_has_default"]
    train = {p["parameter_name"]: p for p in api["named_endpoints"]["/train"]["parameters"]}
    assert list(train)[:2] == ["model", "epochs"]
    assert not train["model"]["parameter_has_default"] and not train["epochs"]["parameter_has_default"]
    assert all(p["parameter_has_default"] for name, p in train.items() if name not in ("model", "epochs"))


@pytest.mark.parametrize("model", list(MODELS))
def test_predict_reads_drawn_mnist_test_digits(client, drawn_digits, model):
    for truth, png in drawn_digits:
        label = client.predict(sketch=sketch_value(png), model=model, api_name="/predict")
        probs = confidences(label)
        assert sorted(probs) == [str(d) for d in range(10)]  # all ten classes, not a top-k cut
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
        assert label["label"] == str(truth), f"{model} read a drawn {truth} as {label['label']}"


def test_predict_accepts_an_image_file(client, drawn_digits):
    from gradio_client import handle_file

    truth, png = drawn_digits[2]
    label = client.predict(sketch=handle_file(str(png)), model="lenet", api_name="/predict")
    assert label["label"] == str(truth)


def test_blank_canvas_asks_for_a_digit(client):
    label = client.predict(sketch=BLANK_SKETCH, model="lenet", api_name="/predict")
    assert label["label"] == BLANK_MESSAGE
    assert not label.get("confidences")


def test_unknown_model_is_a_clear_error(client, drawn_digits):
    with pytest.raises(AppError, match=r"unknown model 'resnet'.*mlp, cnnnet, lenet"):
        client.predict(sketch=sketch_value(drawn_digits[0][1]), model="resnet", api_name="/predict")
    # ...and the server still answers.
    assert client.predict(sketch=BLANK_SKETCH, model="lenet", api_name="/predict")["label"] == BLANK_MESSAGE


def test_draw_tab_shows_label_note_bars_seen_image_and_all_models(visitor, mnist):
    ctx, ws = visitor
    canvas = canvas_of(mnist.test_images[0].numpy())  # a 7, 336 px tall
    value = {"background": None, "layers": [canvas], "composite": canvas}
    label, note, bars, seen, *answers = draw.recognise(ctx, ws, value, "lenet")
    assert max(label, key=label.get) == "7"
    assert "7" in note
    assert list(bars["digit"]) == [str(d) for d in range(10)]
    assert bars["probability"].sum() == pytest.approx(1.0, abs=1e-4)
    assert seen.shape == (28 * draw.SEEN_SCALE, 28 * draw.SEEN_SCALE) and seen.dtype == np.uint8
    assert seen.max() == 255 and seen[:8, :8].max() == 0  # white ink on black, margins empty
    assert len(answers) == len(MODELS)
    for name, answer in zip(MODELS, answers):
        assert max(answer, key=answer.get) == "7", f"{name} in the side-by-side view"


def test_uploaded_photo_of_dark_ink_on_paper_is_read(visitor, mnist):
    ctx, ws = visitor
    digit = np.kron(mnist.test_images[1].numpy(), np.ones((9, 9), dtype=np.uint8))  # a 2
    paper = np.full((400, 300, 3), 235, dtype=np.uint8)  # light grey paper, RGB, no alpha
    paper[60:312, 30:282] = (235 - digit.astype(np.int32) * 200 // 255)[..., None].astype(np.uint8)
    label, *_ = draw.recognise(ctx, ws, paper, "lenet")
    assert max(label, key=label.get) == "2"


def test_draw_tab_blank_canvas_shows_message_not_a_guess(visitor):
    ctx, ws = visitor
    label, note, bars, seen, *answers = draw.recognise(ctx, ws, BLANK_SKETCH, "lenet")
    assert label == BLANK_MESSAGE and "Draw one digit" in note
    assert bars["probability"].sum() == 0 and seen is None and answers == [None] * len(MODELS)


def test_random_mnist_digit_goes_on_the_pad_with_its_true_label(visitor, mnist, monkeypatch):
    from digitnet.preprocess import decode_pad_payload

    ctx, ws = visitor
    rng = np.random.default_rng(0)  # the same draws every run
    pick = draw.random_test_digit
    monkeypatch.setattr(draw, "random_test_digit", lambda **kwargs: pick(rng=rng, **kwargs))
    seen = set()
    for _ in range(5):
        payload, note = draw.random_digit(ctx, ws)
        assert note.startswith("On the pad: MNIST test digit #") and "labelled **" in note
        index = int(note.split("#")[1].split(",")[0])
        true_digit = str(int(mnist.test_labels[index]))
        assert note.split("labelled **")[1][0] == true_digit
        ink = decode_pad_payload(payload)  # the pad's own format: the page reads it like a drawing
        assert ink.shape == (112, 112)
        assert np.array_equal(ink[::4, ::4], mnist.test_images[index].numpy())  # that very digit, 4x
        label = draw.recognise_pad(ctx, ws, payload, "lenet")[0]
        assert max(label, key=label.get) == true_digit  # read from the pad, the answer is the true digit
        seen.add(index)
    assert len(seen) == 5


def test_a_photo_goes_on_the_pad_as_the_models_read_it(visitor, mnist):
    ctx, ws = visitor
    digit = np.kron(mnist.test_images[1].numpy(), np.ones((9, 9), dtype=np.uint8))  # a 2
    paper = np.full((400, 300, 3), 235, dtype=np.uint8)
    paper[60:312, 30:282] = (235 - digit.astype(np.int32) * 200 // 255)[..., None].astype(np.uint8)
    payload, note = draw.photo_to_pad(ctx, ws, paper)
    assert "photo" in note
    label = draw.recognise_pad(ctx, ws, payload, "lenet")[0]
    assert max(label, key=label.get) == "2"
    assert draw.photo_to_pad(ctx, ws, np.full((50, 50, 3), 235, dtype=np.uint8))[0] == ""  # blank paper


def test_weights_line_and_choice_follow_the_visitor(visitor):
    ctx, ws = visitor
    text, dropdown = draw.model_changed(ctx, ws, "lenet")
    assert text.startswith("**LeNet**: shipped, 99.") and dropdown.value == draw.SHIPPED
    with pytest.raises(Exception, match="you have no run 3"):
        draw.choose_weights(ctx, ws, "lenet", "3")


def test_drawing_asks_the_server_nothing_and_photos_never_queue_stale_work(served_app):
    deps = served_app.demo.config["dependencies"]
    pad = next(c["id"] for c in served_app.demo.config["components"] if c["props"].get("elem_id") == "digit-pad")
    on_pad = [d for d in deps if [pad, "change"] in [list(t) for t in d["targets"]]]
    assert on_pad and not any(d["backend_fn"] for d in on_pad)  # only page-side JavaScript follows a drawing
    photo = [d for d in deps if d.get("api_name") == "photo_to_pad"]
    assert len(photo) == 1 and photo[0]["trigger_mode"] == "always_last"
    fns = {f.api_name: f for f in served_app.demo.fns.values()}
    assert fns["predict"].concurrency_limit > 1


def test_no_timer_polls_the_server(served_app):
    """An idle tab must cost nothing: no gr.Timer, no event that fires by itself every few seconds."""
    deps = served_app.demo.config["dependencies"]
    assert not any(t[1] == "tick" for d in deps for t in d["targets"])
    assert any(t[1] == "unload" for d in deps for t in d["targets"])  # leaving frees the visitor's state


def test_events_do_not_rebuild_gradios_monitoring_summary(served_app, client):
    """Gradio rebuilds a pandas summary of its last 10,000 events after every event, for a monitoring page this
    app leaves off (up to 7 ms of the server's CPU an event): here it is left alone, however many events come."""
    queue = served_app.demo._queue
    for _ in range(3):
        client.predict(api_name="/status")
    assert queue.events_recorded >= 3 and queue.ANAYLTICS_CACHE_FREQUENCY == app.ANALYTICS_EVERY
    assert queue.cached_event_analytics_summary == {"functions": {}}  # never built


def test_pure_helpers():
    assert enlarge(np.eye(2, dtype=np.float32), 3).tolist()[0] == [255, 255, 255, 0, 0, 0]
    frame = draw.probability_frame([0.1] * 10)
    assert len(frame) == 10 and frame["probability"].dtype == np.float64
    assert draw.probability_frame()["probability"].sum() == 0


def test_a_scribble_on_the_pad_is_not_a_digit_and_keeps_its_ten_bars(visitor):
    from digitnet.preprocess import pad_payload
    from test_predict import tangle

    ctx, ws = visitor
    label, note, bars, seen, *answers = draw.recognise_pad(ctx, ws, pad_payload(tangle(0)[..., 3]), "lenet")
    assert note.startswith("**That doesn't look like a digit**")
    assert len(label) == 10 and sum(label.values()) == pytest.approx(1.0, abs=1e-4)  # all ten bars stay


def test_an_ambiguous_digit_says_not_sure_and_names_two_digits(visitor, mnist):
    """A real digit the model hesitates over (the first such MNIST test digit) is "Not sure: 4 or 9?"."""
    from digitnet.predict import predict

    ctx, ws = visitor
    payloads = (draw.pad_payload(np.kron(img, np.ones((4, 4), np.uint8))) for img in mnist.test_images[:3000].numpy())
    pick = next(pad for pad in payloads if (p := predict(pad, "lenet")).unsure and not p.not_digit)
    label, note, *rest = draw.recognise_pad(ctx, ws, pick, "lenet")
    top = sorted(label, key=label.get, reverse=True)
    assert note.startswith(f"**Not sure: {top[0]} or {top[1]}?**")
    assert " for an 8)" in note if top[0] == "8" else f" for a {top[0]})" in note


def test_the_pad_value_is_never_read_as_a_path(visitor, drawn_digits):
    ctx, ws = visitor
    with pytest.raises(Exception, match="not a drawing from the pad"):
        draw.recognise_pad(ctx, ws, str(drawn_digits[0][1]), "lenet")


def test_a_drawing_through_the_pad_and_through_predict_gives_the_same_28x28_and_answer(visitor, client, drawn_digits):
    from conftest import pad_drawing
    from digitnet.preprocess import to_mnist_array
    from PIL import Image

    ctx, ws = visitor
    for truth, png in drawn_digits:
        payload = pad_drawing(png)  # what the pad sends for this drawing
        label, note, bars, seen, *answers = draw.recognise_pad(ctx, ws, payload, "lenet")
        api = client.predict(sketch=sketch_value(png), model="lenet", api_name="/predict")
        assert max(label, key=label.get) == api["label"] == str(truth)
        through_pad = to_mnist_array(payload)
        through_api = to_mnist_array({"background": None, "layers": [], "composite": np.asarray(Image.open(png))})
        # The same 28x28 up to the payload's 112 px grid (see test_pad.py: a one-pixel shift costs 0.05-0.07).
        assert np.abs(through_pad - through_api).mean() < 0.05
        assert np.corrcoef(through_pad.ravel(), through_api.ravel())[0, 1] > 0.8
        assert np.array_equal(seen, enlarge(through_pad, draw.SEEN_SCALE))  # and it is what the tab shows
