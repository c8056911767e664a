"""Every layer, live, and "Your drawing looks most like these", in Chromium.

- The page's layers for a seeded 7 are PyTorch's (the shipped weights' fixed-point transport
  aside), with the shapes of digitnet/models.py, and the view labels each row with that shape;
- the view sits beside the answer on a laptop and folds on a phone, nothing off-screen sideways;
- the button shows the 8 nearest training images with their labels, mostly 7s.

Marked ``browser`` (tests/e2e/conftest.py skips them without Chromium). No timing is asserted.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from playwright.sync_api import expect

from digitnet import webmodel
from digitnet.models import MODELS
from digitnet.nearest import FeatureIndex
from digitnet.predict import CACHE
from digitnet.ui import nearest as nearest_ui

from .browser import ANSWER_TIMEOUT_MS, PAD_CANVAS, PAD_CLEAR, SEVEN, answer, mouse_draw, screenshot, touch_draw
from .browser import LAPTOP, open_page

pytestmark = pytest.mark.browser

PAGE_VS_TORCH = 1e-4  # as tests/e2e/test_inpage_math.py: the weights' 22-bit fixed point, float32 rounding
LAYERS = "#layers-panel"
NEAREST_SLICE = 6_000  # training images the test's feature index covers (the app: all 60,000)
# The stated shapes: (C, H, W) after ReLU and pooling for a conv block, (units,) for a linear layer.
SHAPES = {
    "lenet": ["conv1 6×14×14", "conv2 16×5×5", "fc1 120", "fc2 84", "fc3 10 (probabilities)"],
    "cnnnet": ["conv1 16×12×12", "conv2 30×4×4", "fc1 100", "fc2 10 (probabilities)"],
    "mlp": ["fc1 300", "fc2 100", "out 10 (probabilities)"],
}
RADIO = {"lenet": "LeNet", "cnnnet": "CNNNet", "mlp": "MLP"}


def seeded_seven(seed: int = 7):
    """SEVEN's corners moved a little by a seeded generator (unit-box strokes, as browser.py draws them)."""
    rng = np.random.default_rng(seed)
    return [[(x + rng.uniform(-0.08, 0.08), y + rng.uniform(-0.08, 0.08)) for x, y in s] for s in SEVEN]


def no_sideways_overflow(page) -> None:
    width = page.viewport_size["width"]
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    for box in page.locator(f"{LAYERS} canvas").evaluate_all("cs => cs.map(c => c.getBoundingClientRect().right)"):
        assert box <= width + 0.5


def test_every_layer_matches_pytorch_and_is_labelled_with_its_shape(browser, app_server):
    context = browser.new_context(viewport=LAPTOP)
    try:
        page = open_page(context, app_server.url)
        mouse_draw(page, seeded_seven(), PAD_CANVAS)
        expect(answer(page)).to_have_attribute("data-label", "7", timeout=ANSWER_TIMEOUT_MS)
        seen = np.asarray(page.evaluate("() => window.DigitNetAnswer.seen()"), np.float32).reshape(28, 28)
        for name in MODELS:
            model, ckpt = CACHE.get(name)
            x = ((torch.from_numpy(seen) - ckpt["mean"]) / ckpt["std"])[None, None]
            _, reference = webmodel.torch_layer_outputs(model, name, x)
            got = page.evaluate("(m) => window.DigitNetAnswer.layers(m)", name)
            assert [g["name"] for g in got] == list(reference), name
            for g in got:
                ref = reference[g["name"]][0]
                assert tuple(g["shape"]) == tuple(ref.shape), (name, g["name"])
                assert np.abs(np.asarray(g["data"]).reshape(ref.shape) - ref.numpy()).max() <= PAGE_VS_TORCH
            assert float(max(r.max() for r in reference.values())) > 0  # the drawing lit something up
            # The view shows this model's rows, each labelled with its shape, and one image per feature map.
            page.get_by_label(RADIO[name], exact=True).check()
            rows = page.locator(f"{LAYERS} .dn-layer-name")
            expect(rows).to_have_text(SHAPES[name])
            for g in got:
                if len(g["shape"]) == 3:
                    row = page.locator(f"{LAYERS} .dn-layer", has_text=f"{g['name']} ")
                    assert row.locator("canvas.dn-map").count() == g["shape"][0]
            kinds = page.locator(f"{LAYERS} .dn-layer").evaluate_all("ds => ds.map(d => d.className)")
            assert ("dn-layer-strip" in " ".join(kinds)) == (name == "mlp")
        # Beside the answer: the fold is open on a laptop, right of the pad, below the answer.
        assert page.locator(f"{LAYERS} details").evaluate("d => d.open")
        pad, panel, ans = (page.locator(s).bounding_box() for s in (PAD_CANVAS, LAYERS, "#prediction"))
        assert panel["x"] >= pad["x"] + pad["width"] - 1 and panel["y"] > ans["y"]
        # A grey feature map is not all black: LeNet's conv1 maps for the 7.
        page.get_by_label("LeNet", exact=True).check()
        lit = page.locator(f"{LAYERS} canvas.dn-map").first.evaluate(
            "c => Math.max(...c.getContext('2d').getImageData(0, 0, c.width, c.height).data.filter((_, i) => i % 4 == 0))")
        assert lit > 0
        no_sideways_overflow(page)
        screenshot(page, "layers-laptop")
    finally:
        context.close()


def test_on_a_phone_the_layers_fold_and_nothing_runs_off_the_side(phone_page):
    page = phone_page
    cdp = page.context.new_cdp_session(page)
    fold = page.locator(f"{LAYERS} details")
    assert not fold.evaluate("d => d.open")  # folded: the pad and the answer come first
    touch_draw(page, cdp, seeded_seven(), PAD_CANVAS)
    expect(answer(page)).to_have_attribute("data-label", "7", timeout=ANSWER_TIMEOUT_MS)
    page.locator(f"{LAYERS} summary").click()
    expect(page.locator(f"{LAYERS} .dn-layer-name")).to_have_text(SHAPES["lenet"])
    no_sideways_overflow(page)
    page.get_by_label("CNNNet", exact=True).check()  # 30 maps of conv2 wrap, within the screen
    expect(page.locator(f"{LAYERS} .dn-layer-name")).to_have_text(SHAPES["cnnnet"])
    no_sideways_overflow(page)
    screenshot(page, "layers-phone", full_page=True)


def test_the_page_shows_the_training_digits_a_seven_looks_like(browser, app_server, monkeypatch, tmp_path):
    index = FeatureIndex(app_server.ctx.data_root, folder=tmp_path, limit=NEAREST_SLICE)
    monkeypatch.setitem(nearest_ui._INDEXES, str(app_server.ctx.data_root), index)
    context = browser.new_context(viewport=LAPTOP)
    try:
        page = open_page(context, app_server.url)
        mouse_draw(page, seeded_seven(), PAD_CANVAS)
        expect(answer(page)).to_have_attribute("data-label", "7", timeout=ANSWER_TIMEOUT_MS)
        page.locator("#nearest-button").click()
        text = page.locator("#nearest-text")
        expect(text).to_contain_text(nearest_ui.HEADING, timeout=ANSWER_TIMEOUT_MS)
        images = page.locator("#nearest-gallery img")
        expect(images).to_have_count(8)
        figures = page.locator("#nearest-gallery figure")
        labels = [int(v) for v in figures.evaluate_all("fs => fs.map(f => f.dataset.label)")]
        shown = [int(c.split()[0]) for c in figures.locator("figcaption").all_inner_texts()]
        assert shown == labels and len(labels) == 8 and labels.count(7) >= 5, labels
        no_sideways_overflow(page)
        assert all(img.evaluate("i => i.complete && i.naturalWidth > 0") for img in images.all())
        screenshot(page, "nearest-laptop")
        # A new drawing clears the neighbours of the old one.
        page.locator(PAD_CLEAR).click()
        expect(images).to_have_count(0)
    finally:
        context.close()
