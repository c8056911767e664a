"""The Draw tab: a drawing pad -> the chosen model's answer, what it saw, all three models, why; my digits.

Every answer uses the visitor's own weights for a model when they have chosen some (a
finished run, a loaded file), else the shipped ones: ``predict(..., cache=workspace)``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
from gradio.components.image_editor import EditorData
from gradio.data_classes import FileData
from gradio.utils import get_upload_folder
from pydantic import ConfigDict

from ..data import random_test_digit
from ..explain import Explanation, explain
from ..finetune import (MAX_MY_DIGITS, MY_DIGITS_FILENAME, MyDigits, MyDigitsError, add_digit, load_my_digits,
                        my_digits_summary, save_my_digits)
from ..models import DISPLAY_NAMES, MODELS
from ..predict import ModelUnavailable, Prediction, label_value, predict, predict_all
from ..preprocess import ImageError, confine_uploads, to_mnist_array, uploaded_path
from ..scheduler import MIN_FINETUNE_DIGITS, QueueFull, TrainingDisabled
from ..workspace import AlreadyTraining, Workspace
from .common import (BLANK_MESSAGE, DEFAULT_MODEL, MODEL_CHOICES, NO_DRAWING_MESSAGE, Context, enlarge, percent,
                     visitor_handler)
from .pad import drawing_pad, pad_value

SEEN_SCALE = 8  # the model's 28x28 input shown at 224x224, nearest-neighbour so pixels stay visible
TOP_CLASSES = 3  # the label's top classes; the bar chart and the API carry all ten
MY_DIGITS_SCALE = 3  # "my digits" gallery thumbnails at 84x84
MY_DIGITS_SHOWN = 40  # the gallery shows the latest ones; the count covers all
PREDICT_CONCURRENCY = 4  # recognition takes milliseconds: several at once, never behind training
# A saved my-digits file is handed to Gradio, which copies it into its own cache; our copy is
# deleted by a later save once it is this old.
DOWNLOAD_KEEP_SECONDS = 120
SHIPPED = "shipped"  # the weights dropdown's value for the shipped checkpoint

CSS = """
#seen-image img, #my-digits img, #misclassified img { image-rendering: pixelated; }
/* Gradio 6.31 stretches a gallery's few items over the whole row; my digits stay thumbnails. */
#my-digits .grid-container { grid-template-columns: repeat(auto-fill, 96px) !important; grid-auto-rows: 96px !important; }
#answer-note p { margin: 0; font-size: 1.05rem; }
#intro h1 { margin: 0 0 2px 0; font-size: 1.6rem; }
#intro p { margin: 0; }
/* A phone: pad and answer on one screen (390x844). Less padding around blocks, a smaller label. */
@media (max-width: 640px) {
  .gradio-container { padding-top: 4px !important; }
  #intro h1 { font-size: 1.25rem; }
  #intro p { font-size: 0.9rem; line-height: 1.25; }
  #prediction .output-class { font-size: 1.6rem !important; padding: 2px 0 !important; }
  #prediction .confidence-set { padding-top: 0 !important; padding-bottom: 0 !important; }
}
"""


class SketchData(EditorData):
    """/predict's input: a Sketchpad value whose ``layers`` may also be null (API callers send that for
    "no layers"), or an uploaded image file, whose ``path`` (and other FileData keys) are kept."""

    model_config = ConfigDict(extra="allow")
    layers: list[FileData] | None = None


def api_image(value):
    """/predict's input as ``predict`` takes it: the Sketchpad value, or the uploaded image file, with every
    file checked to be one Gradio uploaded for this request (``confine_uploads``); any other path, a
    bare ``{"path": ...}`` included, is refused with one message that says nothing about the server's files."""
    return confine_uploads(value, get_upload_folder())


# ------------------------------------------------------------------------------ pure functions


def probability_frame(probs=None) -> pd.DataFrame:
    """The bar chart's data: one row per digit (all zero when nothing is drawn, a stable axis)."""
    values = np.zeros(10) if probs is None else np.asarray(probs, dtype="float64")
    return pd.DataFrame({"digit": [str(d) for d in range(10)], "probability": values.astype("float64")})


def model_answer(result) -> dict | str | None:
    """One model's answer for the side-by-side view: its label value, or why it is unavailable."""
    if result is None:
        return None
    if isinstance(result, str):
        return f"unavailable: {result}"
    return label_value(result)


def answer_note(pred: Prediction | None) -> str:
    """One line over the bars: "It's a 7", or "Not sure: 4 or 9?" when the calibrated top probability is low."""
    if pred is None:
        return "Draw one digit, big or small, anywhere on the pad."
    if getattr(pred, "unsure", False):
        return f"**Not sure: {pred.digit} or {pred.runner_up}?** ({pred.confidence:.0%} for a {pred.digit})"
    return f"**It's a {pred.digit}** ({pred.confidence:.0%})"


def weights_markdown(ws: Workspace, model: str) -> str:
    """"LeNet: your run 2, 99.12%" or "LeNet: shipped, 99.33%"."""
    w = ws.in_use(model)
    shipped = ws.shipped.status()[model]
    if w.run is None and not shipped.startswith("ok"):  # a broken or missing file: say which
        return f"**{DISPLAY_NAMES[model]}** is unavailable: {shipped}"
    who = "shipped" if w.run is None else f"your {w.title.split(':')[0]}"
    return f"**{DISPLAY_NAMES[model]}**: {who}, {percent(w.test_acc)} on MNIST test"


def weights_choices(ws: Workspace, model: str) -> list[tuple[str, str]]:
    """The weights dropdown: shipped, then each of the visitor's runs with weights for ``model``."""
    return [("shipped", SHIPPED)] + [(f"{s.title()} ({percent(s.test_acc)})", str(s.number))
                                     for s in ws.choices(model)]


def weights_view(ws: Workspace, model: str):
    """The weights line and the dropdown (choices and value) for ``model``."""
    w = ws.in_use(model)
    return weights_markdown(ws, model), gr.Dropdown(choices=weights_choices(ws, model),
                                                    value=SHIPPED if w.run is None else str(w.run))


def explanation_markdown(e: Explanation | None) -> str:
    """What the Explain view shows, in words, and how long it took."""
    if e is None:
        return NO_DRAWING_MESSAGE
    name = DISPLAY_NAMES[e.model]
    text = (f"**{name} reads a {e.digit}** ({e.probs[e.digit]:.0%}), explained in {1000 * e.seconds:.0f} ms.\n\n"
            f"**Left, saliency**: your drawing (grey) with the pixels that made it a {e.digit} in red and those "
            f"that spoke against it in blue (integrated gradients from a blank canvas; they add up to the "
            f"{e.digit}'s score).\n\n")
    if e.filters_image is not None:
        text += (f"**Middle**: the {e.maps_title}: bright where a filter found its pattern in your strokes. "
                 f"**Right**: the {len(e.filters)} learned 5x5 conv1 filters themselves (red +, blue -), "
                 f"one per map, in the same order.")
    else:
        text += (f"**Middle**: the {e.maps_title}, strongest first: the strokes each unit looks for. "
                 "The MLP has no convolution filters, so there is no right-hand picture.")
    return text


def my_digits_gallery(digits: MyDigits) -> list[tuple[np.ndarray, str]]:
    """The latest "my digits" as (enlarged image, "a 7") for a gr.Gallery."""
    return [(enlarge(image, MY_DIGITS_SCALE), f"a {label}") for image, label in digits[-MY_DIGITS_SHOWN:]][::-1]


def my_digits_markdown(digits: MyDigits) -> str:
    """'My digits: 12 digits: 0 x2, ...' plus what fine-tuning needs."""
    text = f"**My digits**: {my_digits_summary(digits)}"
    if len(digits) > MY_DIGITS_SHOWN:
        text += f" (showing the latest {MY_DIGITS_SHOWN})"
    if len(digits) < MIN_FINETUNE_DIGITS:
        text += f" · fine-tuning needs at least {MIN_FINETUNE_DIGITS}"
    return text


# ------------------------------------------------------------------------------ handlers


def read(ws: Workspace, image) -> dict | None:
    """All three models' answers (the visitor's weights) for a drawing or photo; None when there is nothing."""
    if image is None:
        return None
    try:
        return predict_all(image, cache=ws)
    except ImageError as exc:
        raise gr.Error(str(exc)) from exc


def show(results: dict | None, model: str) -> tuple:
    """The Draw tab's answer outputs for predict_all's answer (None = nothing drawn)."""
    if results is None:
        return (BLANK_MESSAGE, answer_note(None), probability_frame(), None, None, None, None)
    answers = [model_answer(results.get(name)) for name in MODELS]
    chosen = results.get(model)
    if isinstance(chosen, str):  # a broken checkpoint: say so in place of a guess, keep the others
        return (f"{DISPLAY_NAMES.get(model, model)} is unavailable", chosen, probability_frame(), None, *answers)
    return (label_value(chosen), answer_note(chosen), probability_frame(chosen.probs),
            enlarge(chosen.seen, SEEN_SCALE), *answers)


def recognise(ctx: Context, ws: Workspace, image, model: str) -> tuple:
    """A photo (or any image) changed: the answer, a note, all ten as bars, the 28x28 the model saw, all three."""
    return show(read(ws, photo_file(image)), model)


def recognise_pad(ctx: Context, ws: Workspace, drawing: str, model: str) -> tuple:
    """The pad changed (while drawing, at the end of a stroke, Clear, Undo): the same outputs as ``recognise``.

    The pad's value is a browser's string: checked to be "" or a pad payload, never read as a path.
    """
    return show(read(ws, pad_value(drawing) or None), model)


def drawing_else_photo(drawing: str, photo):
    """What the Draw tab reads: the pad's drawing when something is drawn, else the photo (None: neither).

    The pad's value is a browser's string: checked to be "" or a pad payload, never read as a path.
    """
    return pad_value(drawing) or photo_file(photo)


def photo_file(photo):
    """The photo as the handlers read it: the path of the file Gradio uploaded (checked to be one: the photo is
    decoded by ``preprocess``, at most MAX_INPUT_PIXELS as decoded, not by Gradio at full size), or an array
    (tests, scripts)."""
    if isinstance(photo, (str, Path)):
        try:
            return uploaded_path(photo, get_upload_folder())
        except ImageError as exc:
            raise gr.Error(str(exc)) from exc
    return photo


def recognise_either(ctx: Context, ws: Workspace, drawing: str, photo, model: str) -> tuple:
    """Model or weights changed: re-read the drawing, or the uploaded photo when nothing is drawn."""
    return show(read(ws, drawing_else_photo(drawing, photo)), model)


def random_digit(ctx: Context, ws: Workspace, model: str) -> tuple:
    """A random MNIST test digit shown like a drawing: the answer, what the model saw, and its true label."""
    try:
        image, label, index = random_test_digit(data_root=ctx.data_root)
    except Exception as exc:  # no MNIST on this deployment (a Space without it and no network)
        raise gr.Error(f"No MNIST test set here: {exc}") from exc
    answer, note, *rest = show(read(ws, image), model)
    truth = f"MNIST test digit #{index}, labelled **{label}**. {note}"
    return (answer, truth, *rest)


def predict_api(ctx: Context, ws: Workspace, sketch, model: str):
    """Recognise a Sketchpad drawing or an image file: a gr.Label value with all ten digits' probabilities."""
    try:
        pred = predict(api_image(sketch), model, cache=ws)
    except (ValueError, ModelUnavailable) as exc:  # unknown model, unreadable image, broken checkpoint
        raise gr.Error(str(exc)) from exc
    return BLANK_MESSAGE if pred is None else label_value(pred)


def choose_weights(ctx: Context, ws: Workspace, model: str, choice: str | None):
    """The weights dropdown: draw with the shipped weights or one of the visitor's runs."""
    try:
        ws.use(model, None if choice in (None, "", SHIPPED) else int(choice))
    except ValueError as exc:
        raise gr.Error(str(exc)) from exc
    return weights_view(ws, model)


def use_shipped(ctx: Context, ws: Workspace, model: str):
    """One click back to the shipped weights of the selected model."""
    return choose_weights(ctx, ws, model, SHIPPED)


def model_changed(ctx: Context, ws: Workspace, model: str):
    """Another model selected: its weights line and dropdown."""
    return weights_view(ws, model)


def drawing_or_photo(drawing: str, photo) -> np.ndarray | None:
    """The preprocessed 28x28 of the pad's drawing, or of the photo when nothing is drawn; None if neither."""
    image = drawing_else_photo(drawing, photo)
    try:
        return None if image is None else to_mnist_array(image)
    except ImageError as exc:
        raise gr.Error(str(exc)) from exc


def explain_view(ctx: Context, ws: Workspace, drawing, photo, model: str):
    """Why this answer: text, saliency overlay, first-layer maps, conv1 filters (hidden for the MLP)."""
    seen = drawing_or_photo(drawing, photo)
    if seen is None:
        return NO_DRAWING_MESSAGE, None, None, gr.Image(value=None, visible=True)
    try:
        e = explain(seen, model, cache=ws)
    except (ValueError, ModelUnavailable) as exc:
        raise gr.Error(str(exc)) from exc
    maps_label = "First layer: conv1 feature maps" if e.filters_image is not None else "First layer: fc1 weight patterns"
    return (explanation_markdown(e), e.saliency_image, gr.Image(value=e.maps_image, label=maps_label),
            gr.Image(value=e.filters_image, visible=e.filters_image is not None))


def digits_view(digits: MyDigits) -> tuple:
    """Summary line and gallery for the visitor's digits."""
    return my_digits_markdown(digits), my_digits_gallery(digits)


def add_to_my_digits(ctx: Context, ws: Workspace, drawing, photo, digit):
    """"That was a ...": the preprocessed drawing joins the visitor's digits with the right label."""
    seen = drawing_or_photo(drawing, photo)
    if seen is None:
        raise gr.Error(f"{NO_DRAWING_MESSAGE} Then say which digit it was and add it.")
    if digit is None or digit == "":
        raise gr.Error("Pick the digit it really was (0-9) under \"That was a ...\", then add it.")
    try:
        ws.my_digits = add_digit(ws.my_digits, seen, digit)
    except MyDigitsError as exc:
        raise gr.Error(str(exc)) from exc
    return digits_view(ws.my_digits)


def load_digits(ctx: Context, ws: Workspace, file):
    """Upload a my-digits file saved earlier: its digits join the visitor's."""
    if file is None:
        raise gr.Error("No file was uploaded.")
    try:
        loaded = load_my_digits(uploaded_path(file, get_upload_folder()))
    except (MyDigitsError, ImageError) as exc:
        raise gr.Error(str(exc)) from exc
    merged = list(ws.my_digits) + loaded
    if len(merged) > MAX_MY_DIGITS:
        raise gr.Error(f"With this file you would have {len(merged)} digits; this app keeps at most "
                       f"{MAX_MY_DIGITS}. Clear yours first, or load a smaller file.")
    ws.my_digits = merged
    gr.Info(f"Loaded {len(loaded)} digit{'s' if len(loaded) != 1 else ''} from {Path(file).name}.")
    return digits_view(merged)


@dataclass
class Downloads:
    """A temp folder for files handed to Gradio (which copies them into its cache at once)."""

    folder: Path

    def new_file(self, name: str) -> Path:
        """A fresh path ``<new folder>/<name>``; folders older than DOWNLOAD_KEEP_SECONDS go first."""
        now = time.time()
        for old in self.folder.iterdir():
            if now - old.stat().st_mtime > DOWNLOAD_KEEP_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=self.folder)) / name


DOWNLOADS = Downloads(Path(tempfile.mkdtemp(prefix="digitnet-downloads-")))


def save_digits(ctx: Context, ws: Workspace):
    """Write the visitor's digits to a file for download."""
    if not ws.my_digits:
        raise gr.Error("There are no digits to save yet: correct a prediction with \"Add to my digits\" first.")
    path = save_my_digits(ws.my_digits, DOWNLOADS.new_file(MY_DIGITS_FILENAME))
    return gr.File(value=str(path), visible=True)


def clear_digits(ctx: Context, ws: Workspace):
    """Forget the visitor's digits."""
    ws.my_digits = []
    return digits_view(ws.my_digits)


def finetune(ctx: Context, ws: Workspace, model: str) -> str:
    """Queue a fine-tune of the visitor's weights for ``model`` on their digits."""
    try:
        run = ws.finetune(model)
    except (AlreadyTraining, TrainingDisabled, QueueFull, ValueError) as exc:
        raise gr.Error(str(exc)) from exc
    return (f"Fine-tune queued as your {run.snapshot().title()}: watch it on the Train tab. Your drawings use "
            "the result once it is done.")


# ------------------------------------------------------------------------------ the tab


@dataclass
class DrawTab:
    """The Draw tab's components that other tabs update or read."""

    model: gr.Radio
    weights_md: gr.Markdown
    weights_pick: gr.Dropdown
    drawing: gr.components.Component
    teach_msg: gr.Markdown
    finetune_event: object  # the fine-tune click, which the Train tab follows with its live view


def build(ctx: Context) -> DrawTab:
    """Create the Draw tab's components inside the caller's ``gr.Tab`` and wire its events."""
    bind = lambda fn: visitor_handler(fn, ctx)  # noqa: E731
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=300):
            pad = drawing_pad(elem_id="digit-pad")
        with gr.Column(scale=2, min_width=300):
            # The answer first: on a phone the columns stack, and the answer must be on screen with the pad.
            label = gr.Label(value=BLANK_MESSAGE, num_top_classes=TOP_CLASSES, label="Prediction",
                             elem_id="prediction")
            note = gr.Markdown(answer_note(None), elem_id="answer-note")
            model = gr.Radio(MODEL_CHOICES, value=DEFAULT_MODEL, label="Model", elem_id="model-choice")
            with gr.Row():
                # What a new visitor sees: the shipped weights (or which shipped file is broken).
                first = weights_markdown(Workspace("", ctx.scheduler, ctx.visitors.shipped), DEFAULT_MODEL)
                weights_md = gr.Markdown(first, elem_id="weights-in-use")
            with gr.Row():
                weights_pick = gr.Dropdown([("shipped", SHIPPED)], value=SHIPPED, label="Weights to draw with",
                                           elem_id="weights-pick", scale=3)
                shipped_btn = gr.Button("Use shipped weights", size="sm", scale=1, min_width=120)
            random_btn = gr.Button("Show a random MNIST digit", size="sm", elem_id="random-digit")
    with gr.Row():
        bars = gr.BarPlot(probability_frame(), x="digit", y="probability", y_lim=[0, 1], sort="x", height=200,
                          label="All ten digits", x_title="digit", y_title="probability")
        seen = gr.Image(label="What the model saw (28x28, enlarged)", elem_id="seen-image", interactive=False,
                        height=224, width=224, buttons=[], format="png")
    with gr.Row():
        compare = [gr.Label(num_top_classes=2, label=DISPLAY_NAMES[name], min_width=120) for name in MODELS]
    with gr.Accordion("...or upload a photo or scan of a digit", open=False):
        photo = gr.Image(label="Photo or scan (dark ink on paper, or light on dark)", sources=["upload", "clipboard"],
                         type="filepath", image_mode=None, height=220)  # decoded by preprocess, size-capped
    # /predict's own input and output (API only): a Sketchpad-shaped value or an image file, the
    # model name unfiltered (an unknown one gets digitnet's message), all ten classes back.
    api_sketch = gr.Sketchpad(visible=False, label="sketch", type="numpy", image_mode="RGBA")
    api_sketch.data_model = SketchData  # Gradio validates it before any handler runs
    api_model = gr.Dropdown(MODEL_CHOICES, value=DEFAULT_MODEL, allow_custom_value=True, visible=False, label="model")
    api_label = gr.Label(visible=False, label="prediction")

    with gr.Accordion("Why this answer?", open=False):
        with gr.Row():
            explain_btn = gr.Button("Explain this answer", variant="primary", scale=0, min_width=200)
            explain_md = gr.Markdown("See which of your strokes decided the answer and what the model's first "
                                     "layer made of them: draw, then click the button.")
        with gr.Row():
            saliency_img = gr.Image(label="Saliency: red for the answer, blue against", interactive=False,
                                    height=260, buttons=[], format="png", elem_id="explain-saliency")
            maps_img = gr.Image(label="First layer", interactive=False, height=260, buttons=[], format="png",
                                elem_id="explain-maps")
            filters_img = gr.Image(label="conv1 filters (5x5, learned)", interactive=False, height=260, buttons=[],
                                   format="png", elem_id="explain-filters")
    with gr.Accordion("Teach it your handwriting", open=False):
        gr.Markdown(
            "Wrong answer? Say which digit it was and add the drawing to *my digits*. They are yours alone and "
            "go when you close the tab (save them as a file to keep them). "
            f"With at least {MIN_FINETUNE_DIGITS}, fine-tune the model selected above on them: a short run that "
            "mixes your digits (shifted, turned, scaled) with MNIST, so the model learns your style without "
            "forgetting MNIST. It waits its turn in the training queue (Train tab); your drawings use the result.")
        with gr.Row(equal_height=True):
            truth = gr.Radio([str(d) for d in range(10)], value=None, label="That was a ...", scale=4)
            add_btn = gr.Button("Add to my digits", scale=1, min_width=160)
        my_md = gr.Markdown(my_digits_markdown([]))
        my_gallery = gr.Gallery(label="My digits (latest first)", elem_id="my-digits", columns=10, height=220,
                                object_fit="contain", interactive=False)
        with gr.Row():
            finetune_btn = gr.Button("Fine-tune on my digits", variant="primary", interactive=ctx.allow_training)
            save_btn = gr.Button("Save my digits as a file")
            upload_btn = gr.UploadButton("Load my digits from a file", file_types=[".npz"], type="filepath")
            forget_btn = gr.Button("Forget my digits")
        my_file = gr.File(label="Your digits, ready to download", visible=False, interactive=False)
        teach_msg = gr.Markdown()

    # ---- wiring ----------------------------------------------------------------------------------
    answer = [label, note, bars, seen, *compare]
    fast = dict(show_progress="hidden", concurrency_id="predict", concurrency_limit=PREDICT_CONCURRENCY,
                api_visibility="private")
    # always_last: while a request is in flight, further changes collapse to the latest drawing.
    pad.change(bind(recognise_pad), [pad, model], answer, trigger_mode="always_last", **fast)
    photo.change(bind(recognise), [photo, model], answer, trigger_mode="always_last", **fast)
    weights = [weights_md, weights_pick]
    model.change(bind(recognise_either), [pad, photo, model], answer, trigger_mode="always_last", **fast)
    model.change(bind(model_changed), model, weights, api_visibility="private", queue=False)
    weights_pick.input(bind(choose_weights), [model, weights_pick], weights, api_visibility="private").then(
        bind(recognise_either), [pad, photo, model], answer, **fast)
    shipped_btn.click(bind(use_shipped), model, weights, api_visibility="private").then(
        bind(recognise_either), [pad, photo, model], answer, **fast)
    random_btn.click(bind(random_digit), model, answer, **fast)
    # The documented /predict: an API-only event. preprocess=False: predict() reads the uploaded
    # files itself (the composite only; a huge one refused before decoding; a non-image a clear error).
    gr.on([], bind(predict_api), [api_sketch, api_model], api_label, api_name="predict", show_progress="hidden",
          concurrency_id="predict", concurrency_limit=PREDICT_CONCURRENCY, preprocess=False)

    # On demand only, and callable by gradio_client without joining the documented API.
    extra = dict(api_visibility="undocumented")
    explain_btn.click(bind(explain_view), [pad, photo, model], [explain_md, saliency_img, maps_img, filters_img],
                      api_name="explain", concurrency_id="explain", concurrency_limit=2, **extra)
    mine = [my_md, my_gallery]
    add_btn.click(bind(add_to_my_digits), [pad, photo, truth], mine, api_name="add_digit", concurrency_limit=None,
                  **extra)
    upload_btn.upload(bind(load_digits), upload_btn, mine, api_name="load_digits", concurrency_limit=None, **extra)
    save_btn.click(bind(save_digits), None, my_file, api_name="save_digits", concurrency_limit=None, **extra)
    forget_btn.click(bind(clear_digits), None, mine, api_name="clear_digits", concurrency_limit=None, **extra).then(
        lambda: gr.File(value=None, visible=False), None, my_file, api_visibility="private")
    finetune_event = finetune_btn.click(bind(finetune), model, teach_msg, api_name="finetune",
                                        concurrency_limit=None, **extra)
    return DrawTab(model=model, weights_md=weights_md, weights_pick=weights_pick, drawing=pad, teach_msg=teach_msg,
                   finetune_event=finetune_event)
