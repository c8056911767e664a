"""Explain view: saliency (integrated gradients), first-layer maps and filters, images; the shared model stays untouched."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn as nn

from digitnet import explain as ex
from digitnet.models import MODELS
from digitnet.predict import CACHE
from digitnet.preprocess import to_tensor

ERASED = 30  # ink pixels erased in the deletion check


@pytest.fixture(scope="module")
def digits(mnist):
    """Ten MNIST test digits (0-9 once each) as the preprocessed 28x28 drawings explain() takes."""
    out = {}
    for i, label in enumerate(mnist.test_labels.tolist()):
        if label not in out:
            out[label] = mnist.test_images[i].numpy().astype(np.float32) / 255.0
        if len(out) == 10:
            return out
    raise AssertionError("MNIST test set lacks a digit")


def logits_of(model: nn.Module, seen: np.ndarray, ckpt: dict) -> torch.Tensor:
    with torch.inference_mode():
        return model(to_tensor(seen, ckpt["mean"], ckpt["std"]))[0]


@pytest.mark.parametrize("name", list(MODELS))
def test_shapes_ranges_and_prediction(name, digits):
    e = ex.explain(digits[7], name)
    model, ckpt = CACHE.get(name)
    assert e.digit == int(logits_of(model, digits[7], ckpt).argmax()) == 7
    assert abs(sum(e.probs) - 1) < 1e-5 and e.probs[7] == max(e.probs)
    calibrated = torch.softmax(logits_of(model, digits[7], ckpt) / ckpt["temperature"], 0)  # as predict() shows them
    assert e.probs == pytest.approx(calibrated.tolist(), abs=1e-6)
    assert e.saliency.shape == (28, 28) and e.saliency.dtype == np.float32 and np.isfinite(e.saliency).all()
    assert e.saliency_image.shape == (224, 224, 3) and e.saliency_image.dtype == np.uint8
    for image in (e.maps_image, e.filters_image):
        if image is not None:
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.shape[0] >= 100
    if name == "mlp":
        assert e.maps.shape == (ex.MLP_UNITS, 28, 28) and e.filters is None and len(set(e.units)) == ex.MLP_UNITS
        weights = model.fc1.weight.detach()
        assert np.allclose(e.maps[0], weights[e.units[0]].reshape(28, 28).numpy())
    else:
        channels = model.conv1.out_channels
        assert e.maps.shape[0] == channels and e.maps.min() >= 0 and e.maps.max() > 0  # ReLU'd, not all silent
        assert e.filters.shape == (channels, 5, 5)
        assert np.allclose(e.filters, model.conv1.weight.detach()[:, 0].numpy())


@pytest.mark.parametrize("name", list(MODELS))
def test_completeness_attributions_add_up_to_the_logit_difference(name, digits):
    """IG's defining property: the map sums to logit(drawing) - logit(blank canvas) for the class."""
    model, ckpt = CACHE.get(name)
    for d in (0, 3, 8):
        e = ex.explain(digits[d], name)
        diff = float(logits_of(model, digits[d], ckpt)[e.digit] - logits_of(model, np.zeros((28, 28), np.float32), ckpt)[e.digit])
        assert abs(e.saliency.sum() - diff) < 0.05 * abs(diff) + 0.05, (d, e.saliency.sum(), diff)


def test_matches_the_exact_answer_of_a_linear_model():
    """For f(x) = w.x + b, IG is exactly (x - baseline) * w: a reference answer, not just 'it ran'."""
    torch.manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
    x, baseline = torch.randn(1, 1, 28, 28), torch.randn(1, 1, 28, 28)
    ig = ex.integrated_gradients(linear, x, baseline, target=4, steps=8)
    expected = ((x - baseline)[0, 0] * linear[1].weight[4].detach().reshape(28, 28)).numpy()
    assert np.allclose(ig, expected, atol=1e-5)


@pytest.mark.parametrize("name", list(MODELS))
def test_saliency_finds_the_ink_that_matters(name, digits):
    """Erasing the most salient ink lowers the class logit far more than erasing as much random ink."""
    model, ckpt = CACHE.get(name)
    rng = np.random.default_rng(0)
    worse = 0
    for d, seen in digits.items():
        e = ex.explain(seen, name)
        ink = np.flatnonzero(seen.ravel() > 0.3)
        top = ink[np.argsort(e.saliency.ravel()[ink])[::-1][:ERASED]]
        rand = rng.choice(ink, size=ERASED, replace=False)
        drops = []
        for idx in (top, rand):
            erased = seen.copy().ravel()
            erased[idx] = 0
            drops.append(float(logits_of(model, seen, ckpt)[e.digit] - logits_of(model, erased.reshape(28, 28), ckpt)[e.digit]))
        worse += drops[0] > drops[1]
        # And the positive evidence sits on the drawing: more of it inside the ink than just around it.
        positive = np.clip(e.saliency, 0, None)
        assert positive[seen > 0.3].sum() > positive[seen <= 0.3].sum()
    assert worse >= 9, f"salient ink mattered more than random ink for only {worse}/10 digits"


@pytest.mark.parametrize("name", list(MODELS))
def test_shared_model_untouched(name, digits):
    model, ckpt = CACHE.get(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads_before = [p.grad for p in model.parameters()]
    logits_before = logits_of(model, digits[2], ckpt)
    mode_before = model.training
    ex.explain(digits[2], name)
    ex.explain(digits[5], name, target=3)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [p.grad for p in model.parameters()] == grads_before  # no gradients left behind
    assert model.training == mode_before and not model.training
    assert not model._forward_hooks and not model.bn1._forward_hooks  # hooks went on the private copy only
    assert torch.equal(logits_of(model, digits[2], ckpt), logits_before)


def test_concurrent_explanations_agree(digits):
    """Explain calls from several threads (several visitors) each get their own drawing's answer."""
    expected = {d: ex.explain(digits[d], "lenet") for d in (1, 4, 9)}
    results, errors = {}, []

    def work(d: int) -> None:
        try:
            for _ in range(3):
                results.setdefault(d, []).append(ex.explain(digits[d], "lenet"))
        except Exception as exc:  # surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(d,)) for d in expected]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for d, runs in results.items():
        for e in runs:
            assert e.digit == d
            assert np.allclose(e.saliency, expected[d].saliency, atol=1e-5)
            assert np.array_equal(e.maps, expected[d].maps)


def test_target_and_input_checks(digits):
    e = ex.explain(digits[4], "cnnnet", target=9)
    assert e.digit == 9
    with pytest.raises(ValueError, match="28x28"):
        ex.explain(np.zeros((20, 20)), "lenet")
    with pytest.raises(ValueError, match="unknown model"):
        ex.explain(digits[4], "resnet")
    with pytest.raises(ValueError, match="target"):
        ex.explain(digits[4], "lenet", target=10)


def test_images_colour_and_scale():
    seen = np.zeros((28, 28), np.float32)
    seen[10:18, 10:18] = 1.0
    sal = np.zeros((28, 28), np.float32)
    sal[12, 12], sal[14, 14] = 1.0, -1.0
    img = ex.saliency_overlay(seen, sal)
    red, blue = img[12 * ex.UPSCALE + 3, 12 * ex.UPSCALE + 3], img[14 * ex.UPSCALE + 3, 14 * ex.UPSCALE + 3]
    assert red[0] > 200 and red[2] < 60  # for the class: red
    assert blue[2] > 200 and blue[0] < 60  # against: blue
    assert (img[:ex.UPSCALE, :ex.UPSCALE] == 0).all()  # no ink, no evidence: black
    grid = ex.grid_image(np.stack([np.zeros((5, 5)), np.ones((5, 5))]), cols=2)
    assert grid.shape == (5 * 11 + 2 * ex.GRID_PAD, 2 * 5 * 11 + 3 * ex.GRID_PAD, 3)
