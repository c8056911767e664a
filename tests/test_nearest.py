"""The training digits a model thinks a drawing is like (/nearest): 8 neighbours, mostly of the drawn digit,
features built once per weights (memory, then disk), a visitor's own weights their own features, clear refusals.

The feature index here covers the first TRAIN_SLICE training images (the app uses all 60,000): the
same code, a tenth of the build time on a CPU shared with other tests.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from gradio.utils import get_upload_folder
from PIL import Image

from digitnet.data import load_mnist, normalize
from digitnet.nearest import NEIGHBOURS, FeatureIndex, NothingDrawn, nearest, penultimate
from digitnet.predict import CACHE
from digitnet.preprocess import pad_payload, to_mnist_array, to_tensor
from digitnet.scheduler import Scheduler
from digitnet.ui import nearest as nearest_ui
from digitnet.ui.common import Context
from digitnet.workspace import Visitors

from test_pad import DIGITS, draw_canvas

TRAIN_SLICE = 6_000
MODELS = ["mlp", "cnnnet", "lenet"]


def seeded_seven(seed: int = 7) -> np.ndarray:
    """A 7 drawn with the pad's brush, its corners moved a little by a seeded generator (800x800 ink)."""
    rng = np.random.default_rng(seed)
    strokes = [[(x + rng.uniform(-0.08, 0.08), y + rng.uniform(-0.08, 0.08)) for x, y in s] for s in DIGITS["7"]]
    return draw_canvas(strokes)


@pytest.fixture(scope="module")
def index(mnist, tmp_path_factory) -> FeatureIndex:
    return FeatureIndex(folder=tmp_path_factory.mktemp("features"), limit=TRAIN_SLICE)


@pytest.fixture
def visitors():
    s = Scheduler()  # nothing here trains
    yield Visitors(s)
    s.close()


@pytest.mark.parametrize("model", MODELS)
def test_a_seven_looks_most_like_training_sevens(index, model):
    neighbours = nearest(seeded_seven(), model, index=index)
    assert len(neighbours) == NEIGHBOURS
    labels = [n.label for n in neighbours]
    assert labels.count(7) >= 5, labels
    sims = [n.similarity for n in neighbours]
    assert sims == sorted(sims, reverse=True) and -1 <= sims[-1] <= sims[0] <= 1 + 1e-6
    # The similarity is the cosine of penultimate features, recomputed here from the images themselves.
    net, ckpt = CACHE.get(model)
    seen = to_mnist_array(seeded_seven())
    best = neighbours[0]
    a = penultimate(net, to_tensor(seen, ckpt["mean"], ckpt["std"]))[0]
    b = penultimate(net, normalize(load_mnist().train_images[best.train_index:best.train_index + 1],
                                   ckpt["mean"], ckpt["std"]))[0]
    assert float(torch.nn.functional.cosine_similarity(a, b, dim=0)) == pytest.approx(best.similarity, abs=1e-4)
    assert int(load_mnist().train_labels[best.train_index]) == best.label


def test_features_are_built_once_then_read_from_memory_and_disk(mnist, tmp_path):
    first = FeatureIndex(folder=tmp_path, limit=2_000)
    nearest(seeded_seven(1), "mlp", index=first)
    nearest(seeded_seven(2), "mlp", index=first)
    assert first.builds == 1
    assert len(list(tmp_path.glob("mlp-*.npy"))) == 1
    again = FeatureIndex(folder=tmp_path, limit=2_000)  # a restarted server
    a = nearest(seeded_seven(3), "mlp", index=first)
    b = nearest(seeded_seven(3), "mlp", index=again)
    assert again.builds == 0 and a == b


def test_a_visitors_own_weights_get_their_own_features_once(mnist, tmp_path, visitors):
    index = FeatureIndex(folder=tmp_path, limit=2_000)
    shipped = nearest(seeded_seven(), "mlp", index=index)
    alice = visitors.get("alice")
    net, ckpt = CACHE.get("mlp")
    g = torch.Generator().manual_seed(0)
    state = {k: (v + 0.05 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone())
             for k, v in ckpt["state_dict"].items()}
    path = tmp_path / "mine.pt"
    torch.save({**ckpt, "state_dict": state}, path)
    alice.load(path, "mlp")
    mine = nearest(seeded_seven(), "mlp", weights=alice, index=index)
    nearest(seeded_seven(5), "mlp", weights=alice, index=index)
    assert index.builds == 2  # the shipped weights' and alice's, each once
    assert [n.similarity for n in mine] != [n.similarity for n in shipped]


def test_a_blank_drawing_is_refused_clearly(index):
    with pytest.raises(NothingDrawn, match="Draw a digit first"):
        nearest(np.zeros((800, 800), np.uint8), "lenet", index=index)


def test_the_api_handler_answers_json_and_refuses_blank_and_paths(mnist, visitors, tmp_path, monkeypatch):
    ctx = Context(scheduler=None, visitors=visitors)  # the handlers never train
    monkeypatch.setitem(nearest_ui._INDEXES, str(ctx.data_root), FeatureIndex(folder=tmp_path, limit=TRAIN_SLICE))
    ws = visitors.get("bob")
    # A Sketchpad value as Gradio hands it over: files it uploaded for this request.
    rgba = np.zeros((800, 800, 4), np.uint8)
    rgba[..., 3] = seeded_seven()
    upload = Path(tempfile.mkdtemp(dir=get_upload_folder())) / "seven.png"
    Image.fromarray(rgba, "RGBA").save(upload)
    part = {"path": str(upload), "meta": {"_type": "gradio.FileData"}}
    out = nearest_ui.nearest_api(ctx, ws, {"background": None, "layers": [part], "composite": part}, "lenet")
    assert list(out) == ["neighbours"] and len(out["neighbours"]) == 8
    assert all(set(n) == {"label", "train_index", "similarity"} for n in out["neighbours"])
    assert sum(n["label"] == 7 for n in out["neighbours"]) >= 5
    with pytest.raises(gr.Error, match="Draw a digit first"):
        nearest_ui.nearest_api(ctx, ws, {"background": None, "layers": [], "composite": None}, "lenet")
    with pytest.raises(gr.Error):  # a path the request names is never opened
        nearest_ui.nearest_api(ctx, ws, {"path": "/etc/passwd"}, "lenet")
    with pytest.raises(gr.Error, match="unknown model"):
        nearest_ui.nearest_api(ctx, ws, pad_payload(seeded_seven()), "resnet")
    assert nearest_ui.nearest_api(ctx, ws, pad_payload(seeded_seven()), "mlp")["neighbours"][0]["label"] == 7
    # The page's button: text and the 8 images, enlarged, captioned with their labels.
    text, gallery = nearest_ui.nearest_view(ctx, ws, pad_payload(seeded_seven()), None, "lenet")
    assert nearest_ui.HEADING in text and "are 7s" in text
    assert gallery.count("<img src=\"data:image/png;base64,") == 8
    assert gallery.count('data-label="7"') >= 5
    assert nearest_ui.nearest_view(ctx, ws, "", None, "lenet") == (nearest_ui.NO_DRAWING, "")


def test_gradio_client_calls_nearest_with_a_drawn_seven(served_app, tmp_path, monkeypatch):
    from gradio_client import handle_file

    monkeypatch.setitem(nearest_ui._INDEXES, str(served_app.ctx.data_root),
                        FeatureIndex(folder=tmp_path, limit=TRAIN_SLICE))
    rgba = np.zeros((800, 800, 4), np.uint8)
    rgba[..., 3] = seeded_seven()
    png = tmp_path / "seven.png"
    Image.fromarray(rgba, "RGBA").save(png)
    client = served_app.client()
    params = [p["parameter_name"] for p in client.view_api(return_format="dict", print_info=False)
              ["named_endpoints"]["/nearest"]["parameters"]]
    assert params == ["sketch", "model"]
    sketch = {"background": None, "layers": [handle_file(str(png))], "composite": handle_file(str(png))}
    out = client.predict(sketch=sketch, model="cnnnet", api_name="/nearest")
    assert len(out["neighbours"]) == NEIGHBOURS
    assert sum(n["label"] == 7 for n in out["neighbours"]) >= 5, out
    blank = {"background": None, "layers": [], "composite": None}
    with pytest.raises(Exception, match="Draw a digit first"):
        client.predict(sketch=blank, model="cnnnet", api_name="/nearest")


def test_without_mnist_the_page_says_so_instead_of_failing(visitors, tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITNET_DOWNLOAD", "0")
    ctx = Context(scheduler=None, visitors=visitors, data_root=tmp_path / "no-mnist")
    text, grid = nearest_ui.nearest_view(ctx, visitors.get("carol"), pad_payload(seeded_seven()), None, "mlp")
    assert text.startswith("The MNIST training set is not available on this server") and grid == ""
