"""The extra tabs through gradio_client: Explain, Compare, "my digits" and fine-tunes, one visitor each.

The extras are undocumented endpoints (callable, but not on the API page, which lists the
documented ones); gradio_client has no parameter names for such endpoints, so they are
called with positional arguments, and hand back the server's file paths (fetched here
over HTTP, as a browser does) and component updates as they are. Each ``Client`` is one
visitor (a Gradio session) with their own workspace: one visitor's digits, fine-tunes and
fine-tuned weights never show up in another's answers, and nothing is written to disk.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from conftest import SMALL_TRAIN, pad_drawing, render_digit, running_app, sketch_value, wait_until_finished
from digitnet import data as mdata
from digitnet.checkpoint import SHIPPED_DIR
from digitnet.explain import explain
from digitnet.finetune import load_my_digits, save_my_digits
from digitnet.models import DISPLAY_NAMES, MODELS, build_model, count_parameters
from digitnet.preprocess import to_mnist_array
from digitnet.scheduler import MIN_FINETUNE_DIGITS
from digitnet.ui.common import NO_DRAWING_MESSAGE
from digitnet.ui.teach import MY_DIGITS_SCALE

# A fine-tune of 2 rounds x 5 steps: seconds on the slice, still the real FineTuner and queue path.
QUICK_FINETUNE = dict(rounds=2, steps_per_round=5, val_limit=200)
RUN_TIMEOUT = 120
ONE_AT_A_TIME = r"A visitor has one run at a time"


@pytest.fixture(scope="module")
def extras_app(mnist, checkpoints_dir) -> Iterator[object]:
    """The app on the small MNIST slice, with quick fine-tunes (DIGITNET_CHECKPOINTS: a temp folder it must not write)."""
    with running_app(train_overrides=SMALL_TRAIN, finetune_overrides=QUICK_FINETUNE) as running:
        yield running


@pytest.fixture(scope="module")
def digit_pngs(mnist, tmp_path_factory) -> list[tuple[int, Path]]:
    """MNIST test digits 0..11 drawn on a Sketchpad-sized canvas, as (label, png)."""
    folder = tmp_path_factory.mktemp("mine")
    return [(int(mnist.test_labels[i]), render_digit(mnist.test_images[i].numpy(), folder / f"d{i}.png"))
            for i in range(12)]


def seen_of(png: Path) -> np.ndarray:
    """The 28x28 the app makes of a drawing sent by the pad (what joins "my digits")."""
    return to_mnist_array(pad_drawing(png))


def value_of(output):
    """An output's value, whether the handler returned it plainly or as a component update."""
    if isinstance(output, dict) and output.get("__type__") == "update":
        return output.get("value")
    return output


def fetch(running, output, folder: Path) -> Path | None:
    """Download a file output from the app over HTTP (as a browser does) into ``folder``."""
    path = value_of(output)
    if path is None:
        return None
    response = httpx.get(f"{running.url}gradio_api/file={path}", timeout=30)
    response.raise_for_status()
    target = folder / f"{len(list(folder.iterdir()))}-{Path(path).name}"
    target.write_bytes(response.content)
    return target


def image_shape(path: Path) -> tuple[int, ...]:
    """(H, W, C) of a downloaded image file."""
    return np.asarray(Image.open(path).convert("RGB")).shape


def workspace(running, client):
    """The server-side workspace of the visitor behind ``client`` (None before its first request)."""
    return running.ctx.visitors.peek(client.session_hash)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_ten_digits(client, digit_pngs, tmp_path) -> None:
    """Give a visitor ten digits of their own (MNIST test digits 0..9 as drawn), through /load_digits."""
    mine = [(seen_of(png), label) for label, png in digit_pngs[:10]]
    path = save_my_digits(mine, tmp_path / f"mine-{client.session_hash}.npz")
    summary, _ = client.predict(handle_file(str(path)), api_name="/load_digits")
    assert summary.startswith("**My digits**: 10 digits")


# ---------------------------------------------------------------------------- explain


@pytest.mark.parametrize("model", list(MODELS))
def test_explain_shows_images_of_the_right_size_and_leaves_predict_alone(extras_app, digit_pngs, model, tmp_path):
    client = extras_app.client()
    truth, png = digit_pngs[0]  # a 7
    before = client.predict(sketch=sketch_value(png), model=model, api_name="/predict")
    text, saliency, maps, filters = client.predict(pad_drawing(png), None, model, api_name="/explain")
    saliency, maps, filters = (fetch(extras_app, out, tmp_path) for out in (saliency, maps, filters))
    reference = explain(seen_of(png), model)  # the same drawing explained in process
    assert f"reads a {truth}" in text and DISPLAY_NAMES[model] in text and " ms" in text
    assert image_shape(saliency) == (224, 224, 3)
    assert image_shape(maps) == reference.maps_image.shape
    if model == "mlp":
        assert filters is None and "no convolution filters" in text
        assert reference.maps.shape == (16, 28, 28)
    else:
        assert image_shape(filters) == reference.filters_image.shape
        assert f"{len(reference.filters)} learned 5x5 conv1 filters" in text
    after = client.predict(sketch=sketch_value(png), model=model, api_name="/predict")
    assert after == before  # explaining never touches the model /predict uses


def test_explain_without_a_drawing_asks_for_one(extras_app):
    text, saliency, maps, filters = extras_app.client().predict(
        "", None, "lenet", api_name="/explain")
    assert text == NO_DRAWING_MESSAGE and saliency is None and value_of(maps) is None


# ---------------------------------------------------------------------------- compare


def test_compare_lists_the_three_models_with_their_parameter_counts(extras_app):
    table = extras_app.client().predict(api_name="/compare")
    rows = [dict(zip(table["headers"], row)) for row in table["data"]]
    assert [r["Model"] for r in rows] == [DISPLAY_NAMES[name] for name in MODELS]
    for name, row in zip(MODELS, rows):
        assert row["Parameters"] == f"{count_parameters(build_model(name)):,}"
        assert row["Test accuracy"].endswith("%") or "fine-tuned" in row["Test accuracy"]
        assert float(row["Latency (median, ms)"]) > 0


# ---------------------------------------------------------------------------- my digits


def test_my_digits_belong_to_one_session_and_survive_a_file_round_trip(extras_app, digit_pngs, tmp_path):
    alice, bob = extras_app.client(), extras_app.client()  # two visitors
    (seven, png7), (two, png2) = digit_pngs[0], digit_pngs[1]
    alice.predict(pad_drawing(png7), None, str(seven), api_name="/add_digit")
    summary, gallery = alice.predict(pad_drawing(png2), None, "3", api_name="/add_digit")
    assert summary.startswith("**My digits**: 2 digits: 3 x1, 7 x1")
    assert [item["caption"] for item in gallery] == ["a 3", "a 7"]
    assert image_shape(fetch(extras_app, gallery[0]["image"], tmp_path))[:2] == (28 * MY_DIGITS_SCALE,) * 2  # latest first
    summary_b, gallery_b = bob.predict(pad_drawing(png2), None, str(two), api_name="/add_digit")
    assert summary_b.startswith("**My digits**: 1 digit: 2 x1")  # nothing of Alice's
    assert [item["caption"] for item in gallery_b] == ["a 2"]
    # On the server: each visitor's workspace holds their own digits, as they labelled them.
    assert [label for _, label in workspace(extras_app, alice).my_digits] == [7, 3]
    assert [label for _, label in workspace(extras_app, bob).my_digits] == [2]

    # Alice downloads hers: the preprocessed drawings with the labels she gave.
    def download(client) -> Path:
        return fetch(extras_app, client.predict(api_name="/save_digits"), tmp_path)

    saved = load_my_digits(download(alice))
    assert [label for _, label in saved] == [7, 3]
    np.testing.assert_allclose(saved[0][0], seen_of(png7), atol=1e-6)
    np.testing.assert_allclose(saved[1][0], seen_of(png2), atol=1e-6)
    assert [label for _, label in load_my_digits(download(bob))] == [2]

    # A new visitor loads Alice's file: the same two digits.
    carol = extras_app.client()
    summary_c, _ = carol.predict(handle_file(str(download(alice))), api_name="/load_digits")
    assert summary_c.startswith("**My digits**: 2 digits: 3 x1, 7 x1")
    # Forgetting empties Alice's session only.
    summary_a, gallery_a = alice.predict(api_name="/clear_digits")
    assert "no digits yet" in summary_a and gallery_a == []
    assert [label for _, label in load_my_digits(download(carol))] == [7, 3]
    assert workspace(extras_app, alice).my_digits == [] and len(workspace(extras_app, bob).my_digits) == 1

    # Carol leaves (what the unload event does when her tab closes): her digits go with her.
    assert extras_app.ctx.visitors.leave(carol.session_hash)
    assert workspace(extras_app, carol) is None
    with pytest.raises(AppError, match="no digits to save"):
        carol.predict(api_name="/save_digits")  # the same session comes back to an empty workspace


def test_adding_needs_a_drawing_and_a_digit(extras_app, digit_pngs):
    client = extras_app.client()
    with pytest.raises(AppError, match="Draw a digit"):
        client.predict("", None, "4", api_name="/add_digit")
    with pytest.raises(AppError, match=r"Pick the digit it really was"):
        client.predict(pad_drawing(digit_pngs[0][1]), None, None, api_name="/add_digit")
    with pytest.raises(AppError, match="no digits to save"):
        client.predict(api_name="/save_digits")


@pytest.mark.parametrize("write, message", [
    (lambda p: p.write_bytes(b"certainly not a zip file"), r"is not a my-digits file"),
    (lambda p: np.savez(p.open("wb"), weights=np.zeros(3)), r"has no 'images' and 'labels' arrays"),
    (lambda p: np.savez(p.open("wb"), images=np.zeros((2, 28, 28)), labels=np.array([3, 12])),
     r"labels must be whole numbers from 0 to 9"),
])
def test_a_bad_upload_is_refused_with_a_clear_error(extras_app, tmp_path, write, message):
    path = tmp_path / "upload.npz"
    write(path)
    client = extras_app.client()
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(str(path)), api_name="/load_digits")
    summary, _ = client.predict(api_name="/clear_digits")  # the session is unharmed
    assert "no digits yet" in summary


# ---------------------------------------------------------------------------- fine-tune


def test_finetune_with_too_few_digits_is_refused(extras_app, digit_pngs):
    client = extras_app.client()
    with pytest.raises(AppError, match=rf"at least {MIN_FINETUNE_DIGITS} of your digits; you have 0"):
        client.predict("mlp", api_name="/finetune")
    for label, png in digit_pngs[:2]:
        client.predict(pad_drawing(png), None, str(label), api_name="/add_digit")
    with pytest.raises(AppError, match=rf"at least {MIN_FINETUNE_DIGITS} of your digits; you have 2"):
        client.predict("mlp", api_name="/finetune")
    assert client.predict(api_name="/status")["state"] == "idle"  # nothing was queued for this visitor
    assert workspace(extras_app, client).runs() == []


def test_finetune_waits_its_turn_and_changes_only_its_owners_predictions(extras_app, digit_pngs, checkpoints_dir,
                                                                         tmp_path, monkeypatch):
    extras_app.wait_idle()
    alice, bob = extras_app.client(), extras_app.client()
    load_ten_digits(alice, digit_pngs, tmp_path)
    drawings = [sketch_value(png) for _, png in digit_pngs[:4]]

    def answers(client) -> list[dict]:
        return [client.predict(sketch=d, model="mlp", api_name="/predict") for d in drawings]

    before_a, before_b = answers(alice), answers(bob)
    assert before_a == before_b  # both draw with the shipped MLP
    shipped_files = {p.name: sha256(p) for p in SHIPPED_DIR.glob("*.pt")}

    # Hold the run in its data loading until the queue checks below are done: no race with a fast run.
    gate, entered = threading.Event(), threading.Event()
    real_load = mdata.load_mnist

    def gated_load(*args, **kwargs):
        entered.set()
        gate.wait(RUN_TIMEOUT)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(mdata, "load_mnist", gated_load)
    try:
        queued = alice.predict("mlp", api_name="/finetune")
        assert queued.startswith("Fine-tune queued as your run 1: MLP fine-tuned")
        assert entered.wait(RUN_TIMEOUT)  # the worker took it and is loading data (held at the gate)
        status = alice.predict(api_name="/status")
        assert (status["state"], status["run"], status["kind"], status["model"], status["epochs"]) == (
            "running", 1, "finetune", "mlp", 2)
        # One run per visitor: Alice's second fine-tune and a training run are refused...
        with pytest.raises(AppError, match=ONE_AT_A_TIME):
            alice.predict("mlp", api_name="/finetune")
        with pytest.raises(AppError, match=ONE_AT_A_TIME):
            alice.predict(model="lenet", epochs=1, api_name="/train")
        # ...while Bob's run joins the queue behind hers, and his Stop takes it out, leaving hers alone.
        waiting = bob.predict(model="lenet", epochs=1, api_name="/train")
        assert (waiting["state"], waiting["position"]) == ("queued", 1)
        assert waiting["starts_in_seconds"] is not None and waiting["starts_in_seconds"] >= 0
        stopped = bob.predict(api_name="/stop")
        assert stopped["state"] == "stopped" and "taken out of the queue" in stopped["message"]
        assert extras_app.scheduler.waiting() == []
        assert alice.predict(api_name="/status")["state"] == "running"
    finally:
        gate.set()
    final = wait_until_finished(alice, RUN_TIMEOUT)[0]
    assert final["state"] == "done", final["message"]
    assert final["kind"] == "finetune" and final["model"] == "mlp" and final["run"] == 1
    assert [h["epoch"] for h in final["history"]] == [1, 2] and len(final["running_loss"]) >= 2
    assert final["finetune"]["personal_digits"] == 10
    assert final["test_acc"] > 0.9  # MNIST not forgotten (test slice of 500)
    assert "fine-tuned on 10 of your digits" in final["message"] and "Your drawings use it now" in final["message"]

    # Alice draws with her fine-tuned MLP now; Bob, who never trained, gets exactly what he got before.
    ws_a, ws_b = workspace(extras_app, alice), workspace(extras_app, bob)
    assert ws_a.in_use("mlp").run == 1 and ws_b.in_use("mlp").run is None
    after_a, after_b = answers(alice), answers(bob)
    assert after_b == before_b
    assert after_a != before_a  # new weights, new probabilities
    assert after_a[0]["label"] == str(digit_pngs[0][0])  # and still right
    # Nothing was written: not the shipped files, not DIGITNET_CHECKPOINTS.
    assert {p.name: sha256(p) for p in SHIPPED_DIR.glob("*.pt")} == shipped_files
    assert list(checkpoints_dir.iterdir()) == []
    # One click back to the shipped weights (the Draw tab's button does this): the old answers again.
    ws_a.use("mlp", None)
    assert answers(alice) == before_a


def test_compare_names_a_visitors_fine_tune_for_that_visitor_only(extras_app, digit_pngs, tmp_path):
    extras_app.wait_idle()
    alice, bob = extras_app.client(), extras_app.client()
    load_ten_digits(alice, digit_pngs, tmp_path)
    alice.predict("mlp", api_name="/finetune")
    final = wait_until_finished(alice, RUN_TIMEOUT)[0]
    assert final["state"] == "done", final["message"]

    def mlp_row(client) -> dict:
        table = client.predict(api_name="/compare")
        return dict(zip(table["headers"], table["data"][list(MODELS).index("mlp")]))

    assert "fine-tuned" not in mlp_row(bob)["Test accuracy"]
    assert mlp_row(alice)["Test accuracy"] == f"{100 * final['test_acc']:.2f}% (fine-tuned on 10 digits)"
