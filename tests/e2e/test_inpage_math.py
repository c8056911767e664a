"""The page's own recognition (digitnet/ui/static/digitnet-core.js) in Chromium against the server's Python.

- the forward pass: for every model, with the shipped weights and with a visitor's run (trained here
  on a small slice), the page's probabilities within 1e-4 of ``digitnet.predict``'s on the same
  28x28 inputs, and every hidden layer within 1e-4 of the PyTorch module's output;
- the preprocessing: drawn digits of ``benchmarks/drawn.py`` given to ``DigitNet.toMnist`` as the
  pad's 112x112 ink, against ``preprocess.to_mnist_array`` on the pad's payload (and shapes that
  reach the rarer branches: big digits, hairlines, dots, a blank and a faint pad);
- ``DigitNet.answer`` against ``predict.prediction_from_probs``;
- the app serves the script and the page loads it (``digitnet.ui.inpage``).

``benchmarks/inpage.py`` runs the same comparison on all 1,000 drawings and times it.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from benchmarks.drawn import make_drawings, pad_input
from benchmarks.inpage import js_run, js_to_mnist, load_models, open_core
from digitnet import preprocess, webmodel
from digitnet.checkpoint import model_from_checkpoint
from digitnet.models import MODELS
from digitnet.predict import CACHE, UNSURE_BELOW, _run, prediction_from_probs
from digitnet.training import TrainConfig, Trainer

pytestmark = pytest.mark.browser

TOLERANCE = 1e-4  # probabilities and hidden layers, page against PyTorch (issue 19)
MEAN_DIFF = 0.02  # the page's 28x28 against the server's, mean absolute difference on 0..1
SAME_ANSWER = 0.995  # the fraction of drawings both must read the same
N_DRAWN = 60
# Tiny runs, one per model, as a visitor's run is (the Trainer, its checkpoint dict and temperature).
VISITOR_RUN = dict(epochs=1, train_limit=600, val_size=200, test_limit=100, seed=1)


class Weights:
    """What ``predict._run`` reads models from: one checkpoint dict per model."""

    def __init__(self, ckpts: dict[str, dict]) -> None:
        self.ckpts = ckpts
        self.models = {name: model_from_checkpoint(ckpt).eval() for name, ckpt in ckpts.items()}

    def get(self, name: str):
        return self.models[name], self.ckpts[name]


@pytest.fixture(scope="module")
def page(browser) -> Iterator[object]:
    """A blank page with digitnet-core.js loaded straight from its file."""
    page = open_core(browser)
    yield page
    page.close()


@pytest.fixture(scope="module")
def drawings(mnist):
    return make_drawings(N_DRAWN, seed=0)


@pytest.fixture(scope="module")
def visitor_weights(mnist) -> Weights:
    """Each model trained for one epoch on 600 digits: a visitor's run, with its own temperature."""
    ckpts = {}
    for name in MODELS:
        trainer = Trainer(TrainConfig(model=name, **VISITOR_RUN), save=False)
        result = trainer.run()
        ckpts[name] = trainer.checkpoint(result)
    return Weights(ckpts)


@pytest.fixture(scope="module")
def inputs(mnist, drawings) -> list[np.ndarray]:
    """28x28 inputs in [0, 1]: 40 MNIST test digits, the drawn digits as the server sees them, and extremes."""
    digits = [mnist.test_images[i].numpy().astype(np.float32) / 255.0 for i in range(40)]
    seen = [preprocess.to_mnist_array(pad_input(d.canvas)) for d in drawings[:30]]
    rng = np.random.default_rng(0)
    extremes = [np.zeros((28, 28), np.float32), np.ones((28, 28), np.float32),
                rng.random((28, 28), dtype=np.float32)]
    return digits + seen + extremes


def compare_forward(page, weights, inputs: list[np.ndarray]) -> None:
    load_models(page, {name: webmodel.page_model(weights.get(name)[1]) for name in MODELS})
    x = torch.from_numpy(np.stack(inputs))
    for name in MODELS:
        model, ckpt = weights.get(name)
        page_out = js_run(page, name, inputs)
        server = [_run(name, seen, weights) for seen in inputs]  # what digitnet.predict.predict returns
        probs = np.array([p.probs for p in server])
        page_probs = np.stack([r["probs"] for r in page_out])
        assert np.abs(page_probs - probs).max() <= TOLERANCE, name
        assert [int(np.argmax(p)) for p in page_probs] == [p.digit for p in server]
        logits, hidden = webmodel.torch_layer_outputs(model, name, ((x - ckpt["mean"]) / ckpt["std"])[:, None])
        assert np.abs(np.stack([r["logits"] for r in page_out]) - logits.numpy()).max() <= TOLERANCE, name
        assert list(page_out[0]["layers"]) == list(webmodel.PROBES[name])  # conv1, conv2, fc1, ... in order
        for layer, reference in hidden.items():
            got = np.stack([r["layers"][layer] for r in page_out])
            assert got.shape == tuple(reference.shape), (name, layer)
            assert np.abs(got - reference.numpy()).max() <= TOLERANCE, (name, layer)


def test_forward_pass_matches_pytorch_with_the_shipped_weights(page, inputs):
    compare_forward(page, CACHE, inputs)


def test_forward_pass_matches_pytorch_with_a_visitors_run(page, inputs, visitor_weights):
    temperatures = {name: visitor_weights.get(name)[1]["temperature"] for name in MODELS}
    assert all(t != CACHE.get(name)[1]["temperature"] for name, t in temperatures.items())  # its own calibration
    compare_forward(page, visitor_weights, inputs)


def test_exact_float32_weights_run_too(page, inputs):
    load_models(page, {"lenet": webmodel.page_model(CACHE.get("lenet")[1], bits=32)})
    page_probs = np.stack([r["probs"] for r in js_run(page, "lenet", inputs)])
    probs = np.array([_run("lenet", seen, CACHE).probs for seen in inputs])
    assert np.abs(page_probs - probs).max() <= 1e-5


def synthetic_pads() -> list[np.ndarray]:
    """Pad inks that reach the rarer branches of the preprocessing."""
    side = preprocess.PAD_SIDE
    pads = []
    rng = np.random.default_rng(1)
    for i in range(12):  # scribbles from a dot to the whole pad, hairline to marker
        im = Image.new("L", (side, side), 0)
        draw = ImageDraw.Draw(im)
        size = [3, 10, 30, 60, 85, 100, 110, 112][i % 8]
        x0, y0 = rng.integers(0, side - size + 1, 2)
        points = [(int(x0 + rng.integers(0, size)), int(y0 + rng.integers(0, size))) for _ in range(4)]
        draw.line(points, fill=int(rng.integers(120, 256)), width=int(rng.integers(1, 12)))
        pads.append(np.asarray(im))
    tall = np.zeros((side, side), np.uint8)
    tall[:, 50] = 255  # 112 px high, 1 px wide: PIL resizes such an image vertically first
    wide = np.zeros((side, side), np.uint8)
    wide[60, 5:110] = 200  # one row: fitted into 20x1
    dot = np.zeros((side, side), np.uint8)
    dot[7, 9] = 255
    full = np.full((side, side), 255, np.uint8)
    return pads + [tall, wide, dot, full]


def test_preprocessing_matches_the_server_on_drawn_digits(page, drawings):
    payloads = [pad_input(d.canvas) for d in drawings]
    alphas = [preprocess.decode_pad_payload(p) for p in payloads]
    server = [preprocess.to_mnist_array(p) for p in payloads]
    got = js_to_mnist(page, alphas)
    assert all(s is not None for s in server) and all(g is not None for g in got)
    diffs = [float(np.abs(g - s).mean()) for g, s in zip(got, server)]
    assert max(diffs) <= MEAN_DIFF
    # Beyond the contract: the page repeats numpy's and PIL's float32 arithmetic step by step, and
    # measured on 1,000 drawings (benchmarks/inpage.py) every 28x28 was identical, bit for bit.
    assert max(float(np.abs(g - s).max()) for g, s in zip(got, server)) <= 1e-6
    assert all(g.dtype == np.float32 and g.shape == (28, 28) and 0 <= g.min() and g.max() <= 1 for g in got)

    # The same answers, each model on its own side's 28x28.
    load_models(page, {name: webmodel.page_model(CACHE.get(name)[1]) for name in MODELS})
    for name in MODELS:
        page_digits = [int(np.argmax(r["probs"])) for r in js_run(page, name, got)]
        server_digits = [_run(name, s, CACHE).digit for s in server]
        same = np.mean([a == b for a, b in zip(page_digits, server_digits)])
        assert same >= SAME_ANSWER, (name, same)


def test_preprocessing_matches_the_server_on_unusual_shapes(page):
    pads = synthetic_pads()
    got = js_to_mnist(page, pads)
    for i, (alpha, g) in enumerate(zip(pads, got)):
        expected = preprocess._ink_to_mnist(alpha, 0.0, 255.0)  # what to_mnist_array does with the pad's ink
        assert g is not None and expected is not None, i
        assert float(np.abs(g - expected).max()) <= 1e-6, i


def test_blank_and_faint_pads_are_blank(page):
    side = preprocess.PAD_SIDE
    faint = np.full((side, side), int(preprocess.INK_THRESHOLD * 255), np.uint8)  # at the threshold: noise
    blank = np.zeros((side, side), np.uint8)
    assert preprocess._ink_to_mnist(faint, 0.0, 255.0) is None
    assert js_to_mnist(page, [blank, faint]) == [None, None]


def test_ink_of_the_wrong_size_is_refused_with_a_message(page):
    message = page.evaluate("() => { try { DigitNet.toMnist(new Uint8Array(4 * 112 * 112), 112); return null; }"
                            " catch (e) { return e.message; } }")  # RGBA instead of the alpha channel
    assert message == "toMnist: expected 12544 ink values (112x112), got 50176"


def test_the_page_uses_the_servers_constants(page):
    constants = page.evaluate("() => DigitNet.PREPROCESS")
    for name, value in constants.items():
        assert getattr(preprocess, name) == value, name


@pytest.mark.parametrize("probs", [
    [0.01] * 9 + [0.91],  # sure of 9? not above 0.96: unsure, runner-up the first 0.01 (digit 0)
    [0.0, 0.97, 0.03] + [0.0] * 7,  # sure of 1, runner-up 2
    [0.5, 0.5] + [0.0] * 8,  # a tie: the lower digit first, as argmax
    [0.1] * 10,  # all equal
    [0.0] * 4 + [0.96] + [0.04] + [0.0] * 4,  # float32(0.96) is just below 0.96: unsure on both sides
    [0.0] * 4 + [0.02] + [0.98] + [0.0] * 4,  # sure of 5, runner-up 4
])
def test_answer_mirrors_the_servers_prediction(page, probs):
    probs = np.asarray(probs, np.float32)
    got = page.evaluate("([p, t]) => DigitNet.answer(new Float32Array(p), t)", [probs.tolist(), UNSURE_BELOW])
    expected = prediction_from_probs(torch.from_numpy(probs), np.zeros((28, 28), np.float32), "lenet")
    assert (got["digit"], got["runnerUp"], got["unsure"]) == (expected.digit, expected.runner_up, expected.unsure)
    assert got["confidence"] == pytest.approx(expected.confidence, abs=1e-7)


def test_a_spec_that_does_not_fit_is_refused_with_a_message(page):
    spec = webmodel.page_model(CACHE.get("lenet")[1])
    spec["layers"][2]["in_features"] = 401
    message = page.evaluate("(s) => { try { DigitNet.model(s); return null; } catch (e) { return e.message; } }", spec)
    assert message and "lenet.fc1" in message
    message = page.evaluate("() => { try { DigitNet.model({format: 'x'}); return null; } catch (e) { return e.message; } }")
    assert "not a digitnet page model" in message


def test_the_app_serves_the_script_and_the_page_loads_it(browser):
    """launch(**inpage.launch_options()) is all it takes: window.DigitNet exists and answers."""
    import gradio as gr

    from conftest import free_port
    from digitnet.ui import inpage

    with gr.Blocks() as demo:
        gr.Markdown("in-page recognition")
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False,
                **inpage.launch_options())
    try:
        context = browser.new_context()
        page = context.new_page()
        page.add_init_script(f"window.__ready = 0; window.addEventListener('{inpage.READY_EVENT}', () => window.__ready++);")
        responses = []
        page.on("response", lambda r: responses.append(r) if "digitnet-core.js" in r.url else None)
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_function("() => !!window.DigitNet", timeout=60_000)
        assert responses and responses[0].status == 200
        assert responses[0].body() == inpage.CORE_JS.read_bytes()
        assert page.evaluate("() => window.__ready") == 1  # the event code that loads first waits for
        # and the loaded script computes as the server does
        x = page.evaluate("() => { const a = new Uint8Array(112 * 112); for (let y = 20; y < 90; y++) a[y * 112 + 56] = 255;"
                          " return Array.from(DigitNet.toMnist(a, 112)); }")
        alpha = np.zeros((112, 112), np.uint8)
        alpha[20:90, 56] = 255
        np.testing.assert_array_equal(np.asarray(x, np.float32).reshape(28, 28), preprocess._ink_to_mnist(alpha, 0.0, 255.0))
        context.close()
    finally:
        demo.close()
