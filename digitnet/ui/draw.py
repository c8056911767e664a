"""The Draw tab: a drawing pad -> the chosen model's answer, what it saw, all three models, why.

The answer is computed in the page (``answer.py``: the pad's ink -> the page's MNIST-style
preprocessing -> three forward passes): drawing sends the server nothing. The server sends
the page the weights the visitor draws with (``page_weights``: a finished run, a chosen or
uploaded file, a fine-tune) and runs what a click asks for: Explain, "Add to my digits",
fine-tune, a photo or a random MNIST digit (both shown on the pad), and the API's
``/predict``. Each of those uses the visitor's own weights for a model when they have chosen
some, else the shipped ones: ``predict(..., weights=workspace)``. ``recognise``/``show`` are
the server's reading of a drawing with the outputs the tab had before the page computed it
(``answer.py``; tests compare the page with them). The folds below the pad have modules of their own,
mounted from ``build``: ``nearest.py``, ``fool.py`` and ``teach.py`` (my digits and the fine-tune); what
their handlers read (the pad, a photo, /predict's value) is ``inputs.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..data import random_test_digit
from ..explain import Explanation, explain
from ..models import DISPLAY_NAMES, MODELS
from ..predict import ModelUnavailable, Prediction, label_value, predict
from ..preprocess import ImageError, pad_payload, to_mnist_array
from ..workspace import Workspace
# The server's reading of a drawing as the tab showed it before the page computed it (tests use these names).
from .answer import SEEN_SCALE, answer_note, probability_frame, recognise, recognise_pad, show  # noqa: F401
from .answer import answer_panel, keeper, page_weights, restore, shipped_spec_urls
from .common import (BLANK_MESSAGE, DEFAULT_MODEL, MODEL_CHOICES, Context, enlarge, percent,
                     visitor_handler)
from .inputs import SketchData, api_image, photo_file, seen_28x28
from .pad import drawing_pad
from . import facts, words
from . import fool as fool_ui
from . import nearest as nearest_ui
from . import teach
from .facts import run_title
from .layers import layers_panel
from .words import say, t

PREDICT_CONCURRENCY = 4  # recognition takes milliseconds: several at once, never behind training
SHIPPED = "shipped"  # the weights dropdown's value for the shipped checkpoint

CSS = """
#seen-image img, #my-digits img, #misclassified img { image-rendering: pixelated; }
/* Gradio 6.31 stretches a gallery's few items over the whole row; my digits stay thumbnails. */
#my-digits .grid-container { grid-template-columns: repeat(auto-fill, 96px) !important; grid-auto-rows: 96px !important; }
#keeper { display: none !important; }
#intro h1 { margin: 0 0 2px 0; font-size: 1.6rem; }
#intro p { margin: 0; }
/* A phone: pad and answer on one screen (390x844). Less padding around blocks, a smaller label. */
@media (max-width: 640px) {
  .gradio-container { padding-top: 4px !important; }
  #intro h1 { font-size: 1.25rem; }
  #intro p { font-size: 0.9rem; line-height: 1.25; }
  /* The Train tab's results on a phone: the mistakes' three columns fit the screen, with their short
     captions whole, and the runs table (its column widths in runs.py) uses the page's font, small,
     broken between words. */
  #misclassified .grid-container { grid-template-columns: repeat(3, minmax(0, 1fr)) !important; }
  #misclassified .caption-label { font-size: 12px; max-width: 100%; }
  #runs-table th, #runs-table th *, #runs-table .virtual-row, #runs-table .virtual-row * {
    font-family: var(--font) !important; font-size: 12px !important;
    white-space: normal !important; word-break: normal !important; overflow-wrap: anywhere !important; }
  #runs-table th, #runs-table th * { overflow-wrap: normal !important; padding-left: 2px !important;
    padding-right: 2px !important; }
  #runs-table .cell-menu-button { display: none !important; }  /* its sort menu: room for the headings */
}
"""


# ------------------------------------------------------------------------------ pure functions


def weights_markdown(ws: Workspace, model: str) -> str:
    """"LeNet: your run 2, 99.12%" or "LeNet: shipped, 99.33%"."""
    w = ws.in_use(model)
    shipped = ws.shipped.status()[model]
    if w.run is None and not shipped.startswith("ok"):  # a broken or missing file: say which
        return say("weights_unavailable", name=DISPLAY_NAMES[model], why=shipped)
    who = say("shipped") if w.run is None else say("your_run", number=w.run)
    return say("weights_line", name=DISPLAY_NAMES[model], who=who, acc=percent(w.test_acc))


def weights_choices(ws: Workspace, model: str) -> list[tuple[str, str]]:
    """The weights dropdown: shipped, then each of the visitor's runs with weights for ``model``."""
    return [(say("shipped"), SHIPPED)] + [(f"{run_title(s)} ({percent(s.test_acc)})", str(s.number))
                                     for s in ws.choices(model)]


def weights_view(ws: Workspace, model: str):
    """The weights line and the dropdown (choices and value) for ``model``."""
    w = ws.in_use(model)
    return weights_markdown(ws, model), gr.Dropdown(choices=weights_choices(ws, model),
                                                    value=SHIPPED if w.run is None else str(w.run))


def explanation_markdown(e: Explanation | None) -> str:
    """What the Explain view shows, in words, and how long it took."""
    if e is None:
        return say("no_drawing")
    text = say("explain_head", name=DISPLAY_NAMES[e.model], digit=e.digit, prob=f"{e.probs[e.digit]:.0%}",
               ms=f"{1000 * e.seconds:.0f}")
    if e.filters_image is not None:
        text += say("explain_conv", maps=facts.maps_title(e), count=len(e.filters))
    else:
        text += say("explain_fc", maps=facts.maps_title(e))
    return text


# ------------------------------------------------------------------------------ handlers


def random_digit(ctx: Context, ws: Workspace) -> tuple[str, str]:
    """A random MNIST test digit, put on the pad (the page reads it like a drawing): (pad value, its true label)."""
    try:
        image, label, index = random_test_digit(data_root=ctx.data_root)
    except Exception as exc:  # no MNIST on this deployment (a Space without it and no network)
        raise gr.Error(say("no_mnist_test", error=exc)) from exc
    return pad_payload(enlarge(image, 1)), say("random_note", index=index, label=label)


def photo_to_pad(ctx: Context, ws: Workspace, photo) -> tuple[str, str]:
    """An uploaded photo, as the models read it (28x28), put on the pad: (pad value, a note)."""
    if photo is None:
        return gr.skip(), ""
    try:
        seen = to_mnist_array(photo_file(photo))
    except ImageError as exc:
        raise gr.Error(facts.refusal(exc)) from exc
    if seen is None:
        return "", say("photo_empty")
    return pad_payload(enlarge(seen, 1)), say("photo_note")


def predict_api(ctx: Context, ws: Workspace, sketch, model: str):
    """Recognise a Sketchpad drawing or an image file: a gr.Label value with all ten digits' probabilities.

    Its ``label`` is the digit, or "not a digit" / "not sure" when the page would say so (the
    detector of ``digitnet.detector``; the calibrated top probability under ``UNSURE_BELOW``).
    """
    try:
        pred = predict(api_image(sketch), model, weights=ws)
    except (ValueError, ModelUnavailable) as exc:  # unknown model, unreadable image, broken checkpoint
        raise gr.Error(facts.refusal(exc)) from exc
    return verdict_label(pred)


def verdict_label(pred: Prediction | None) -> dict:
    """A gr.Label's value as the page receives it (the /predict event skips Label's postprocess, which
    always names the likeliest class): every confidence, likeliest first, and the verdict as its label."""
    if pred is None:
        return {"label": BLANK_MESSAGE}
    ranked = sorted(label_value(pred).items(), key=lambda kv: -kv[1])
    return {"label": pred.verdict, "confidences": [{"label": k, "confidence": v} for k, v in ranked]}


def choose_weights(ctx: Context, ws: Workspace, model: str, choice: str | None):
    """The weights dropdown: draw with the shipped weights or one of the visitor's runs (pushed to the page)."""
    try:
        ws.use(model, None if choice in (None, "", SHIPPED) else int(choice))
    except ValueError as exc:
        raise gr.Error(facts.refusal(exc)) from exc
    return (*weights_view(ws, model), page_weights(ws, [model]))


def use_shipped(ctx: Context, ws: Workspace, model: str):
    """One click back to the shipped weights of all three models."""
    for name in MODELS:
        ws.use(name, None)
    return (*weights_view(ws, model), page_weights(ws))


def model_changed(ctx: Context, ws: Workspace, model: str):
    """Another model selected: its weights line and dropdown."""
    return weights_view(ws, model)


def restore_kept(ctx: Context, ws: Workspace, kept: str, model: str):
    """The page handed back the weights and digits it kept (a refresh, a restart): load them, checked."""
    refused = restore(ws, kept)
    if refused:
        gr.Warning(say("kept_refused", reasons="; ".join(refused)))
    return (*weights_view(ws, model), page_weights(ws), *teach.digits_view(ws.my_digits))


def explain_view(ctx: Context, ws: Workspace, drawing, photo, model: str):
    """Why this answer: text, saliency overlay, first-layer maps, conv1 filters (hidden for the MLP)."""
    seen = seen_28x28(drawing, photo)
    if seen is None:
        return say("no_drawing"), None, None, gr.Image(value=None, visible=True)
    try:
        e = explain(seen, model, weights=ws)
    except (ValueError, ModelUnavailable) as exc:
        raise gr.Error(facts.refusal(exc)) from exc
    maps_label = say("maps_label_conv" if e.filters_image is not None else "maps_label_fc")
    return (explanation_markdown(e), e.saliency_image, gr.Image(value=e.maps_image, label=maps_label),
            gr.Image(value=e.filters_image, visible=e.filters_image is not None))


# ------------------------------------------------------------------------------ the tab


@dataclass
class DrawTab:
    """The Draw tab's components that other tabs update or read."""

    model: gr.Radio
    weights_md: gr.Markdown
    weights_pick: gr.Dropdown
    drawing: gr.components.Component
    panel: gr.HTML  # the in-page answer: its value pushes the visitor's weights to the page
    teach_msg: gr.Markdown
    finetune_event: object  # the fine-tune click, which the Train tab follows with its live view


# Client-side only (no request): a changed drawing clears the stale "Why this answer?" and
# pre-fills "That was a ..." with the page's answer; the model radio picks the page's answer.
ON_DRAWING_JS = """async () => {
  if (window.DigitNetPad) await window.DigitNetPad.settled();  // a random digit or photo: read first
  const a = window.DigitNetAnswer && window.DigitNetAnswer.latest();
  return [%r, null, null, null, a ? String(a.digit) : null];
}"""
CHOOSE_MODEL_JS = "(model) => { window.DigitNetAnswer && window.DigitNetAnswer.choose(model); return []; }"


def build(ctx: Context) -> DrawTab:
    """Create the Draw tab's components inside the caller's ``gr.Tab`` and wire its events."""
    bind = lambda fn: visitor_handler(fn, ctx)  # noqa: E731
    newcomer = Workspace("", ctx.scheduler, ctx.visitors.shipped)  # what a new visitor sees: the shipped weights
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=300):
            pad = drawing_pad(elem_id="digit-pad")
        with gr.Column(scale=2, min_width=300):
            # The answer first: on a phone the columns stack, and the answer must be on screen with the pad.
            panel = answer_panel(shipped_spec_urls(newcomer), DEFAULT_MODEL)
            model = gr.Radio(MODEL_CHOICES, value=DEFAULT_MODEL, label=t("model"), elem_id="model-choice")
            with gr.Row():
                # Which shipped file is broken, if one is.
                weights_md = gr.Markdown(words.in_both("weights_initial", lambda: weights_markdown(newcomer, DEFAULT_MODEL)),
                                         elem_id="weights-in-use")
            with gr.Row():
                weights_pick = gr.Dropdown([(say("shipped"), SHIPPED)], value=SHIPPED, label=t("weights_pick"),
                                           elem_id="weights-pick", scale=3)
                shipped_btn = gr.Button(t("all_shipped"), size="sm", scale=1, min_width=120,
                                        elem_id="all-shipped")
            random_btn = gr.Button(t("random_digit"), size="sm", elem_id="random-digit")
            pad_note = gr.Markdown(elem_id="pad-note")
            layers_panel()  # every layer of the chosen model, fed by the answer in the page
    kept = keeper()
    with gr.Accordion(t("photo_fold"), open=False):
        photo = gr.Image(label=t("photo"), sources=["upload", "clipboard"],
                         type="filepath", image_mode=None, height=220)  # decoded by preprocess, size-capped
    # /predict's own input and output (API only): a Sketchpad-shaped value or an image file, the
    # model name unfiltered (an unknown one gets digitnet's message), all ten classes back.
    api_sketch = gr.Sketchpad(visible=False, label="sketch", type="numpy", image_mode="RGBA")
    api_sketch.data_model = SketchData  # Gradio validates it before any handler runs
    api_model = gr.Dropdown(MODEL_CHOICES, value=DEFAULT_MODEL, allow_custom_value=True, visible=False, label="model")
    api_label = gr.Label(visible=False, label="prediction")
    nearest_ui.build(ctx, bind, pad, photo, model, api_sketch, api_model, concurrency_id="nearest",
                     concurrency_limit=2)  # /nearest and "Your drawing looks most like these"

    with gr.Accordion(t("why"), open=False):
        with gr.Row():
            explain_btn = gr.Button(t("explain"), variant="primary", scale=0, min_width=200)
            explain_md = gr.Markdown(t("explain_prompt"), elem_id="explain-text")
        with gr.Row():
            saliency_img = gr.Image(label=t("saliency"), interactive=False,
                                    height=260, buttons=[], format="png", elem_id="explain-saliency")
            maps_img = gr.Image(label=t("first_layer"), interactive=False, height=260, buttons=[], format="png",
                                elem_id="explain-maps")
            filters_img = gr.Image(label=t("filters"), interactive=False, height=260, buttons=[],
                                   format="png", elem_id="explain-filters")
    fool_ui.build(ctx, pad, photo, model, api_sketch, api_model)
    taught = teach.build(ctx, bind, pad, photo, model, api_model, panel)  # "Teach it your handwriting"

    # ---- wiring ----------------------------------------------------------------------------------
    # Drawing costs the server nothing: the pad's ink goes to the panel in the page (pad.js ->
    # answer.js). These two events run in the page only (fn None).
    pad.change(None, None, [explain_md, saliency_img, maps_img, filters_img, taught.truth],
               js=ON_DRAWING_JS % str(t("explain_prompt")))
    model.change(None, model, None, js=CHOOSE_MODEL_JS)
    private = dict(api_visibility="private")
    weights = [weights_md, weights_pick]
    model.change(bind(model_changed), model, weights, queue=False, **private)
    weights_pick.input(bind(choose_weights), [model, weights_pick], [*weights, panel], **private)
    shipped_btn.click(bind(use_shipped), model, [*weights, panel], **private)
    kept.change(bind(restore_kept), [kept, model], [*weights, panel, *taught.mine], concurrency_limit=None, **private)
    fast = dict(show_progress="hidden", concurrency_id="predict", concurrency_limit=PREDICT_CONCURRENCY, **private)
    random_btn.click(bind(random_digit), None, [pad, pad_note], **fast)
    photo.change(bind(photo_to_pad), photo, [pad, pad_note], trigger_mode="always_last", **fast)
    # The documented /predict: an API-only event. preprocess=False: predict() reads the uploaded
    # files itself (the composite only; a huge one refused before decoding; a non-image a clear error).
    gr.on([], bind(predict_api), [api_sketch, api_model], api_label, api_name="predict", show_progress="hidden",
          concurrency_id="predict", concurrency_limit=PREDICT_CONCURRENCY, preprocess=False, postprocess=False)

    # On demand only, and callable by gradio_client without joining the documented API.
    extra = dict(api_visibility="undocumented")
    explain_btn.click(bind(explain_view), [pad, photo, model], [explain_md, saliency_img, maps_img, filters_img],
                      api_name="explain", concurrency_id="explain", concurrency_limit=2, **extra)
    return DrawTab(model=model, weights_md=weights_md, weights_pick=weights_pick, drawing=pad, panel=panel,
                   teach_msg=taught.teach_msg, finetune_event=taught.finetune_event)
