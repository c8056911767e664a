"""Bad input, hostile checkpoint files and size limits, through the launched app: the server stays up.

Every bad input gets a clear answer (the "Draw a digit" message, the right digit, or an
error that says what is wrong) and the server stays up: after each one a normal drawing
is still read correctly. What other files already test is not repeated here: the
unknown model on /predict (test_app.py); /train with 0 or 31 epochs, lr 0 or negative,
batch size 0 or too big, unknown model (test_app_train.py); atomic writes, truncated,
foreign and code-carrying checkpoint files (test_checkpoint.py, test_predict.py).

The limits under test are the Draw tab's ``SketchData``, preprocess's ``MAX_INPUT_PIXELS`` and
``LAUNCH_OPTIONS``' ``max_file_size``.
Each ``client`` is a fresh visitor, so a refused /train shows as that visitor's ``idle``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from conftest import BLANK_SKETCH, SMALL_TRAIN, render_digit, running_app, sketch_value
from digitnet.checkpoint import save_checkpoint
from digitnet.models import MODELS, build_model
from digitnet.training import TrainConfig, visitor_settings
from digitnet.ui import draw, train, words
from digitnet.ui.common import BLANK_MESSAGE

HUGE = 2000  # side of a big PNG that is still accepted (4 megapixels, MAX_INPUT_PIXELS): shrunk first, in ms
HUGE_JPEG = 6000  # a 36-megapixel JPEG is accepted: it is decoded at 1/8 of its size
TRUTH = 7  # MNIST test image 0, the digit every valid image below shows


def composite(path: Path) -> dict:
    """A Sketchpad value holding only a composite image (what an API caller typically sends)."""
    return {"background": None, "layers": [], "composite": handle_file(str(path))}


def paper(image28: np.ndarray, size: int, digit: int) -> Image.Image:
    """An opaque grey photo-like picture: the digit as dark ink on white paper, centred."""
    ink = Image.fromarray(255 - np.asarray(image28, dtype=np.uint8)).resize((digit, digit), Image.BICUBIC)
    page = Image.new("L", (size, size), 255)
    page.paste(ink, ((size - digit) // 2, (size - digit) // 2))
    return page


@pytest.fixture(scope="module")
def files(mnist, tmp_path_factory) -> dict[str, Path]:
    """Every image (and non-image) the table sends, written once."""
    folder = tmp_path_factory.mktemp("inputs")
    seven = mnist.test_images[0].numpy()
    assert int(mnist.test_labels[0]) == TRUTH
    out = {"drawn": render_digit(seven, folder / "drawn.png")}  # RGBA, ink in alpha: the Sketchpad's own
    Image.new("RGBA", (800, 800), (0, 0, 0, 0)).save(out.setdefault("blank", folder / "blank.png"))
    Image.new("RGBA", (800, 800), (255, 255, 255, 255)).save(out.setdefault("white", folder / "white.png"))
    Image.new("L", (1, 1), 0).save(out.setdefault("one", folder / "one.png"))
    photo = paper(seven, 300, 200)
    photo.save(out.setdefault("gray", folder / "gray.png"))
    photo.convert("RGB").save(out.setdefault("rgb", folder / "rgb.jpg"), quality=90)
    photo.convert("RGBA").save(out.setdefault("rgba", folder / "rgba.png"))
    paper(seven, HUGE, 1200).save(out.setdefault("huge", folder / "huge.png"))
    paper(seven, HUGE_JPEG, 3600).convert("RGB").save(out.setdefault("huge_jpeg", folder / "huge.jpg"), quality=80)
    (folder / "notes.txt").write_text("this is not a picture of a digit\n")
    out["text"] = folder / "notes.txt"
    return out


def read_correctly(client, files) -> None:
    """The server is still up and still right: a normal drawing reads as its digit."""
    label = client.predict(sketch=sketch_value(files["drawn"]), model="lenet", api_name="/predict")
    assert label["label"] == str(TRUTH)


# (id, sketch value from the files, expected answer: a label, or ("error", regex)); marks where needed
PREDICT_TABLE = [
    pytest.param(lambda f: None, BLANK_MESSAGE, id="None"),
    pytest.param(lambda f: {}, BLANK_MESSAGE, id="empty dict"),
    pytest.param(lambda f: {"background": None, "layers": None, "composite": None}, BLANK_MESSAGE,
                 id="all parts None"),
    pytest.param(lambda f: BLANK_SKETCH, BLANK_MESSAGE, id="untouched Sketchpad"),
    pytest.param(lambda f: composite(f["blank"]), BLANK_MESSAGE, id="blank transparent canvas"),
    pytest.param(lambda f: composite(f["white"]), BLANK_MESSAGE, id="all-white opaque canvas"),
    pytest.param(lambda f: composite(f["one"]), BLANK_MESSAGE, id="1x1 image"),
    pytest.param(lambda f: composite(f["huge"]), str(TRUTH), id="2000x2000 image"),
    pytest.param(lambda f: composite(f["huge_jpeg"]), str(TRUTH), id="6000x6000 JPEG"),
    pytest.param(lambda f: composite(f["gray"]), str(TRUTH), id="grayscale"),
    pytest.param(lambda f: composite(f["rgb"]), str(TRUTH), id="RGB JPEG"),
    pytest.param(lambda f: composite(f["rgba"]), str(TRUTH), id="opaque RGBA"),
    pytest.param(lambda f: sketch_value(f["drawn"]), str(TRUTH), id="transparent RGBA drawing"),
    pytest.param(lambda f: {"background": handle_file(str(f["gray"])), "layers": [], "composite": None},
                 str(TRUTH), id="background only"),
    pytest.param(lambda f: composite(f["text"]), ("error", r"notes\.txt is not an image"),
                 id="text file as the composite"),
]


@pytest.mark.parametrize("make, expected", PREDICT_TABLE)
def test_bad_predict_input_gets_a_clear_answer_and_the_server_stays_up(client, files, make, expected):
    value = make(files)
    if isinstance(expected, tuple):
        with pytest.raises(AppError, match=expected[1]):
            client.predict(sketch=value, model="lenet", api_name="/predict")
    else:
        label = client.predict(sketch=value, model="lenet", api_name="/predict")
        assert label["label"] == expected
        if expected == BLANK_MESSAGE:
            assert not label.get("confidences")  # a message, not a guess
    read_correctly(client, files)


@pytest.mark.parametrize("params, message", [
    (dict(epochs=-1), r"epochs must be at least 0.5, got -1"),
    (dict(epochs=10**12), r"epochs must be at most 30"),
    (dict(epochs=0.1), r"epochs must be at least 0.5, got 0.1"),
    (dict(batch_size=-5), r"batch size must be at least 1, got -5"),
    (dict(model="lenet; rm -rf /"), r"unknown model"),
])
def test_bad_train_values_are_refused_and_the_server_stays_up(client, idle_queue, files, params, message):
    with pytest.raises(AppError, match=message):
        client.predict(**{"model": "lenet", "epochs": 1, **params}, api_name="/train")
    nothing_was_queued(client, idle_queue)
    read_correctly(client, files)


def nothing_was_queued(client, scheduler) -> None:
    """A refused /train leaves the visitor without a run and the shared queue empty."""
    assert client.predict(api_name="/status")["state"] == "idle"
    assert scheduler.waiting() == [] and scheduler.running is None


def call_raw(url: str, endpoint: str, body: str) -> tuple[str, object]:
    """POST a hand-written JSON body to Gradio's REST API; return the (event, data) it ends with."""
    r = httpx.post(f"{url}gradio_api/call/{endpoint}", content=body, headers={"content-type": "application/json"},
                   timeout=30)
    r.raise_for_status()
    event_id = r.json()["event_id"]
    event, data = None, None
    with httpx.stream("GET", f"{url}gradio_api/call/{endpoint}/{event_id}", timeout=60) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = json.loads(line.split(":", 1)[1])
    return event, data


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_inf_learning_rates_are_refused(served_app, client, idle_queue, files, literal):
    # gradio_client cannot send them: strict JSON has no NaN/inf, and it refuses before sending.
    with pytest.raises(ValueError, match="JSON compliant"):
        client.predict(model="lenet", epochs=1, lr=float(literal), api_name="/train")
    # A hand-written request can (Python's json reads NaN/Infinity, and 1e999 is valid JSON = inf).
    session = f"nan-lr-{literal}"  # a visitor of its own, so that its workspace can be looked at
    defaults = asdict(TrainConfig(model="lenet", epochs=1))  # /train's positional values, in its order
    values = [literal if s.name == "lr" else json.dumps(defaults[s.name]) for s in visitor_settings(TrainConfig)]
    body = f'{{"session_hash": "{session}", "data": [{", ".join(values)}]}}'
    event, data = call_raw(served_app.url, "train", body)
    assert event == "error" and re.search(r"learning rate must be a finite number, got (-?inf|nan)$", data["error"])
    assert served_app.ctx.visitors.peek(session).runs() == []  # the visitor got no run
    assert idle_queue.waiting() == [] and idle_queue.running is None
    read_correctly(client, files)


def test_a_path_outside_the_upload_folder_is_not_read(served_app, client, files, tmp_path):
    """A hand-written /predict pointing at a file on the server is refused by Gradio, not opened."""
    secret = tmp_path / "secret.png"
    Image.open(files["gray"]).save(secret)  # a readable image: if it were opened, the answer would be 7
    sketch = {"background": None, "layers": [], "composite": {"path": str(secret), "meta": {"_type": "gradio.FileData"}}}
    event, data = call_raw(served_app.url, "predict", json.dumps({"data": [sketch, "lenet"]}))
    assert event == "error"
    assert not (isinstance(data, list) and data and isinstance(data[0], dict) and data[0].get("label") == str(TRUTH))
    read_correctly(client, files)


# ---------------------------------------------------------------------------- size limits (item 5)


def test_huge_upload_is_downscaled_and_read(client, files):
    """2000x2000 is accepted: shrunk before the work, read right (timing: benchmarks/latency.py)."""
    assert Image.open(files["huge"]).size == (HUGE, HUGE)
    label = client.predict(sketch=composite(files["huge"]), model="mlp", api_name="/predict")
    assert label["label"] == str(TRUTH)


def test_an_image_over_the_pixel_limit_is_refused_clearly(client, files, tmp_path):
    side = 6000  # 36 megapixels: over the limit (1.5 s to decode), yet a few hundred kB as a PNG
    path = tmp_path / "poster.png"
    Image.new("L", (side, side), 255).save(path)
    with pytest.raises(AppError, match=r"poster\.png is 6000x6000 pixels: at most 4 megapixels"):
        client.predict(sketch=composite(path), model="lenet", api_name="/predict")
    read_correctly(client, files)


def test_an_upload_over_the_file_size_limit_is_refused(served_app, client, files, tmp_path):
    path = tmp_path / "noise.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (2200, 2200, 3), dtype=np.uint8)).save(path)  # ~14.5 MB: incompressible
    assert path.stat().st_size > 10 * 2**20
    # gradio_client reads the limit from the app's config and refuses before uploading...
    with pytest.raises(ValueError, match=r"noise\.png exceeds the maximum file size of 10485760 bytes"):
        client.predict(sketch=composite(path), model="lenet", api_name="/predict")
    # ...and the server itself refuses a client that uploads anyway.
    with path.open("rb") as f:
        r = httpx.post(f"{served_app.url}gradio_api/upload", files={"files": ("noise.png", f, "image/png")}, timeout=60)
    assert r.status_code == 413 and "maximum allowed size" in r.text
    read_correctly(client, files)


def test_epochs_are_capped_in_the_form_the_presets_and_the_api(mnist, checkpoints_dir, monkeypatch):
    monkeypatch.setenv("DIGITNET_MAX_EPOCHS", "4")
    with running_app(train_overrides=SMALL_TRAIN) as capped:
        slider = next(c for c in capped.demo.config["components"]  # the label is a gr.I18n key (ui/words.py)
                      if str(c["props"].get("label")) == str(words.form_label("epochs", "epochs")))
        assert slider["props"]["maximum"] == 4
        assert train.seed_preset(capped.ctx, "lenet")[0] == 4  # the seed's 20 epochs, cut to the cap
        assert train.fast_preset(capped.ctx, "lenet")[0] == min(TrainConfig().epochs, 4)
        c = capped.client()
        with pytest.raises(AppError, match=r"epochs must be at most 4"):
            c.predict(model="mlp", epochs=5, api_name="/train")
        started = c.predict(model="mlp", epochs=4, api_name="/train")  # the cap itself is allowed
        assert started["state"] in ("queued", "running") and started["epochs"] == 4  # the worker may not have it yet
        # (the point here is the cap; a 4-epoch MLP on the small slice may finish before /stop lands)
        assert c.predict(api_name="/stop")["state"] in ("stopped", "done")


# ---------------------------------------------------------------------------- checkpoints at start-up (item 3)


class Evil:
    """A pickle that would create ``marker`` if it were unpickled unsafely."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_broken_checkpoints_at_start_up_leave_the_app_up_and_the_other_models_working(
        mnist, files, tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    # LeNet: a real checkpoint cut in half (a disk filled up mid-copy); MLP: a pickle carrying code.
    save_checkpoint(folder / "lenet.pt", build_model("lenet"), "lenet", 0.1307, 0.3081)
    whole = (folder / "lenet.pt").read_bytes()
    (folder / "lenet.pt").write_bytes(whole[: len(whole) // 2])
    marker = tmp_path / "pwned"
    torch.save({"format_version": 1, "arch": "mlp", "state_dict": {}, "payload": Evil(str(marker))}, folder / "mlp.pt")
    monkeypatch.setenv("DIGITNET_CHECKPOINTS", str(folder))  # CNNNet: none there, the shipped one is used

    with running_app(train_overrides=SMALL_TRAIN) as broken:
        c = broken.client()
        for name in ("lenet", "mlp"):
            with pytest.raises(AppError, match=re.escape(str(folder / f"{name}.pt"))):
                c.predict(sketch=sketch_value(files["drawn"]), model=name, api_name="/predict")
        assert c.predict(sketch=sketch_value(files["drawn"]), model="cnnnet", api_name="/predict")["label"] == "7"
        # The visitor's models, as their workspace reports them: both files named, CNNNet fine.
        ws = broken.ctx.visitors.peek(c.session_hash)
        status = ws.shipped.status()  # no runs of its own: the shipped files, as loaded
        assert str(folder / "lenet.pt") in status["lenet"] and str(folder / "mlp.pt") in status["mlp"]
        assert status["cnnnet"].startswith("ok")
        # The Draw tab itself: LeNet says it is unavailable instead of guessing, the others answer.
        canvas = np.asarray(Image.open(files["drawn"]))
        label, note, bars, seen, *answers = draw.recognise(
            broken.ctx, ws, {"background": None, "layers": [], "composite": canvas}, "lenet")
        assert label == "LeNet is unavailable" and seen is None
        assert str(folder / "lenet.pt") in note and bars["probability"].sum() == 0
        side_by_side = dict(zip(MODELS, answers))
        for name in ("lenet", "mlp"):
            assert side_by_side[name].startswith("unavailable:") and f"{name}.pt" in side_by_side[name]
        cnnnet = side_by_side["cnnnet"]
        assert max(cnnnet, key=cnnnet.get) == "7"
    assert not marker.exists()  # the code in the pickle never ran
