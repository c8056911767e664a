"""digitnet.webmodel: the spec the page runs a model from (tests/e2e/test_inpage_math.py runs it in Chromium).

Here, without a browser: the spec's shape and size, its JSON round trip, and its weights read back
(``decode_layer``, the page's reading in numpy) giving PyTorch's answers within 1e-4.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from digitnet import webmodel
from digitnet.checkpoint import load_checkpoint, model_from_checkpoint
from digitnet.models import MODELS, build_model
from digitnet.predict import UNSURE_BELOW, CACHE, ModelUnavailable

TOLERANCE = 1e-4  # the page's probabilities and layers against PyTorch's (issue 19)
PAGE_BUDGET_BYTES = 1_500_000  # all three shipped models as the page receives them


def shipped(name: str) -> dict:
    return CACHE.get(name)[1]


def spec_json(spec: dict) -> str:
    return json.dumps(spec, separators=(",", ":"))


def numpy_forward(spec: dict, seen: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The page's forward pass, from the spec alone, in float64: (logits, {layer: output})."""
    x = (torch.from_numpy(seen.astype(np.float32)) - spec["mean"]) / spec["std"]  # (B, 28, 28)
    x = x.double().reshape(len(seen), 1, 28, 28)
    outputs = {}
    for layer in spec["layers"]:
        weight, bias = (torch.from_numpy(a) for a in webmodel.decode_layer(layer))
        if layer["kind"] == "conv":
            x = F.conv2d(x, weight, bias, padding=layer["padding"])
            if layer["pool"] == 2:
                x = F.max_pool2d(x, 2)
        else:
            x = F.linear(x.flatten(1), weight, bias)
        if layer["relu"]:
            x = torch.relu(x)
            outputs[layer["name"]] = x.numpy()
    return x.numpy(), outputs


@pytest.fixture(scope="module")
def digits(mnist) -> np.ndarray:
    """300 MNIST test digits as the models see them: (300, 28, 28) float32 in [0, 1]."""
    return (mnist.test_images[:300].numpy().astype(np.float32) / 255.0).reshape(-1, 28, 28)


def perturbed(name: str, seed: int) -> dict:
    """A visitor's weights: the shipped ones moved by a few percent, BatchNorm statistics too."""
    ckpt = shipped(name)
    g = torch.Generator().manual_seed(seed)
    state = {k: (v * (1 + 0.05 * torch.randn(v.shape, generator=g)) if v.is_floating_point() else v.clone())
             for k, v in ckpt["state_dict"].items()}
    state = {k: v.abs() if k.endswith("running_var") else v for k, v in state.items()}
    return {**ckpt, "state_dict": state, "temperature": 0.8 + 0.1 * seed}


@pytest.mark.parametrize("name", list(MODELS))
def test_spec_holds_what_the_page_needs(name):
    ckpt = shipped(name)
    spec = webmodel.page_model(ckpt)
    assert spec["format"] == webmodel.SPEC_FORMAT and spec["version"] == webmodel.SPEC_VERSION
    assert spec["arch"] == name
    assert (spec["mean"], spec["std"]) == (ckpt["mean"], ckpt["std"])
    assert spec["temperature"] == ckpt["temperature"] != 1.0  # the shipped models are calibrated
    assert spec["unsure_below"] == UNSURE_BELOW
    assert spec["metrics"]["test_acc"] == ckpt["metrics"]["test_acc"]
    assert "history" not in spec["metrics"] and "confusion" not in spec["metrics"]
    # Every conv/linear layer of the model, in order; BatchNorm is folded, not sent.
    model = build_model(name)
    layers = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert [layer["name"] for layer in spec["layers"]] == layers
    for layer in spec["layers"]:
        weight, bias = webmodel.decode_layer(layer)
        assert weight.shape == tuple(ckpt["state_dict"][f"{layer['name']}.weight"].shape)
        assert bias.shape == (weight.shape[0],)
    # The last layer gives the logits; every other is followed by ReLU.
    assert [layer["relu"] for layer in spec["layers"]] == [True] * (len(layers) - 1) + [False]


@pytest.mark.parametrize("name", list(MODELS))
def test_json_round_trip(name):
    spec = webmodel.page_model(shipped(name))
    again = json.loads(spec_json(spec))
    assert again == spec
    for a, b in zip(again["layers"], spec["layers"]):
        for x, y in zip(webmodel.decode_layer(a), webmodel.decode_layer(b)):
            np.testing.assert_array_equal(x, y)


def test_three_shipped_models_fit_the_page_budget():
    sizes = {name: len(spec_json(spec)) for name, spec in webmodel.page_models(CACHE).items()}
    assert set(sizes) == set(MODELS)
    assert sum(sizes.values()) <= PAGE_BUDGET_BYTES, sizes
    # float32 would not fit: that is why the weights travel as fixed point
    exact = sum(len(spec_json(webmodel.page_model(shipped(n), bits=32))) for n in MODELS)
    assert exact > PAGE_BUDGET_BYTES


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("weights", ["shipped", "visitor"])
def test_spec_answers_as_pytorch_within_tolerance(name, weights, digits):
    ckpt = shipped(name) if weights == "shipped" else perturbed(name, seed=list(MODELS).index(name))
    model = model_from_checkpoint(ckpt)
    spec = webmodel.page_model(ckpt)
    x = ((torch.from_numpy(digits) - ckpt["mean"]) / ckpt["std"])[:, None]  # preprocess.to_tensor, batched
    logits, hidden = webmodel.torch_layer_outputs(model, name, x)
    probs = torch.softmax(logits / ckpt["temperature"], dim=1).numpy()
    page_logits, page_hidden = numpy_forward(spec, digits)
    page_probs = torch.softmax(torch.from_numpy(page_logits) / spec["temperature"], dim=1).numpy()
    assert np.abs(page_probs - probs).max() <= TOLERANCE
    assert np.abs(page_logits - logits.numpy()).max() <= TOLERANCE
    assert set(page_hidden) == set(hidden) == set(webmodel.PROBES[name])
    for layer, out in hidden.items():
        assert page_hidden[layer].shape == tuple(out.shape)
        assert np.abs(page_hidden[layer] - out.numpy()).max() <= TOLERANCE, layer
    # and the answers are the model's
    assert (page_probs.argmax(1) == probs.argmax(1)).all()


@pytest.mark.parametrize("name", list(MODELS))
def test_float32_weights_are_exact(name):
    ckpt = shipped(name)
    for layer in webmodel.page_model(ckpt, bits=32)["layers"]:
        weight, bias = webmodel.decode_layer(layer)
        w64, b64 = webmodel._folded(ckpt["state_dict"], layer["name"],
                                    next(bn for n, _, bn, *_ in webmodel.LAYERS[name] if n == layer["name"]))
        np.testing.assert_array_equal(weight, w64.astype(np.float32))
        np.testing.assert_array_equal(bias, b64.astype(np.float32))


def test_fixed_point_error_is_within_half_a_step():
    weight = torch.randn(7, 3, 5, 5, dtype=torch.float64)
    weight[2] = 0.0  # a dead output channel: scale 0, weights 0
    layer = webmodel._fixed_point(weight.numpy(), 16)
    got, _ = webmodel.decode_layer({"kind": "conv", "out_channels": 7, "in_channels": 3, "kernel": 5,
                                    "weight": layer, "bias": webmodel._float32(np.zeros(7))})
    step = weight.abs().reshape(7, -1).max(1).values / (2 ** 15 - 1)
    error = (torch.from_numpy(got) - weight).abs().reshape(7, -1).max(1).values
    assert (error <= step * 0.5 + 1e-12).all()
    assert (got[2] == 0).all()


def test_unknown_or_mismatched_checkpoints_are_refused():
    ckpt = shipped("lenet")
    with pytest.raises(ValueError, match="unknown model"):
        webmodel.page_model({**ckpt, "arch": "resnet"})
    with pytest.raises(ValueError, match="conv1.weight should have shape"):
        webmodel.page_model({**ckpt, "arch": "cnnnet"})  # LeNet's weights under CNNNet's name
    with pytest.raises(ValueError, match="bits must be"):
        webmodel.page_model(ckpt, bits=4)


def test_page_models_reports_an_unavailable_model_instead_of_raising():
    class Broken:
        def get(self, name):
            if name == "mlp":
                raise ModelUnavailable("mlp: checkpoint mlp.pt could not be read")
            return CACHE.get(name)

    specs = webmodel.page_models(Broken())
    assert specs["mlp"] == {"arch": "mlp", "error": "mlp: checkpoint mlp.pt could not be read"}
    assert specs["lenet"]["arch"] == "lenet" and specs["lenet"]["layers"]


def test_specs_are_cached_per_checkpoint_dict():
    ckpt = shipped("cnnnet")
    first = webmodel.cached_page_model(ckpt)
    assert webmodel.cached_page_model(ckpt) is first
    copy = {**ckpt}
    assert webmodel.cached_page_model(copy) is not first
    assert webmodel.cached_page_model(copy) == first


def test_shipped_files_give_the_same_spec_as_the_cache():
    from digitnet.checkpoint import SHIPPED_DIR

    assert webmodel.page_model(load_checkpoint(SHIPPED_DIR / "lenet.pt")) == webmodel.page_model(shipped("lenet"))
