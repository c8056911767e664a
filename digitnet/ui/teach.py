"""The Draw tab's "Teach it your handwriting" fold: my digits (add, save, load, forget) and the fine-tune on them.

A visitor corrects an answer ("That was a ..."): the preprocessed drawing joins their digits, which
live in their workspace and are kept in their browser (the answer panel's value, ``page_digits``).
With ``MIN_FINETUNE_DIGITS`` of them, "Fine-tune on my digits" queues a short run that mixes them
with MNIST (``digitnet.finetune``); the Train tab follows it with its live view. Mounted from
``draw.build`` with ``build(ctx, bind, pad, photo, model, api_model, panel)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gradio as gr
import numpy as np
from gradio.utils import get_upload_folder

from ..finetune import MAX_MY_DIGITS, MY_DIGITS_FILENAME, MyDigits, MyDigitsError, add_digit, load_my_digits, \
    save_my_digits
from ..preprocess import ImageError, uploaded_path
from ..scheduler import MIN_FINETUNE_DIGITS, QueueFull, TrainingDisabled
from ..workspace import AlreadyTraining, Workspace
from . import facts
from .answer import page_digits
from .common import DOWNLOADS, Context, enlarge
from .facts import run_title
from .inputs import seen_28x28
from .words import say, t

MY_DIGITS_SCALE = 3  # "my digits" gallery thumbnails at 84x84
MY_DIGITS_SHOWN = 40  # the gallery shows the latest ones; the count covers all


# ------------------------------------------------------------------------------ pure functions


def my_digits_gallery(digits: MyDigits) -> list[tuple[np.ndarray, str]]:
    """The latest "my digits" as (enlarged image, "a 7") for a gr.Gallery."""
    return [(enlarge(image, MY_DIGITS_SCALE), say("a_digit", label=label))
            for image, label in digits[-MY_DIGITS_SHOWN:]][::-1]


def my_digits_markdown(digits: MyDigits) -> str:
    """'My digits: 12 digits: 0 x2, ...' plus what fine-tuning needs."""
    text = say("my_digits_line", summary=facts.digits_summary(digits))
    if len(digits) > MY_DIGITS_SHOWN:
        text += say("my_digits_latest", shown=MY_DIGITS_SHOWN)
    if len(digits) < MIN_FINETUNE_DIGITS:
        text += say("my_digits_need", need=MIN_FINETUNE_DIGITS)
    return text


def digits_view(digits: MyDigits) -> tuple:
    """Summary line and gallery for the visitor's digits."""
    return my_digits_markdown(digits), my_digits_gallery(digits)


# ------------------------------------------------------------------------------ handlers


def add_to_my_digits(ctx: Context, ws: Workspace, drawing, photo, digit):
    """"That was a ...": the preprocessed drawing joins the visitor's digits with the right label."""
    seen = seen_28x28(drawing, photo)
    if seen is None:
        raise gr.Error(say("add_no_drawing"))
    if digit is None or digit == "":
        raise gr.Error(say("pick_truth"))
    try:
        ws.my_digits = add_digit(ws.my_digits, seen, digit)
    except MyDigitsError as exc:
        raise gr.Error(facts.refusal(exc)) from exc
    return digits_view(ws.my_digits)


def keep_digits(ctx: Context, ws: Workspace) -> str:
    """The visitor's digits changed: the panel's value that has the page keep them in the browser."""
    return page_digits(ws.my_digits)


def load_digits(ctx: Context, ws: Workspace, file):
    """Upload a my-digits file saved earlier: its digits join the visitor's."""
    if file is None:
        raise gr.Error(say("no_file"))
    try:
        loaded = load_my_digits(uploaded_path(file, get_upload_folder()))
    except (MyDigitsError, ImageError) as exc:
        raise gr.Error(facts.refusal(exc)) from exc
    merged = list(ws.my_digits) + loaded
    if len(merged) > MAX_MY_DIGITS:
        raise gr.Error(say("digits_over", count=len(merged), limit=MAX_MY_DIGITS))
    ws.my_digits = merged
    gr.Info(say("digits_loaded_one", file=Path(file).name) if len(loaded) == 1 else
            say("digits_loaded", count=len(loaded), file=Path(file).name))
    return digits_view(merged)


def save_digits(ctx: Context, ws: Workspace):
    """Write the visitor's digits to a file for download."""
    if not ws.my_digits:
        raise gr.Error(say("no_digits_yet"))
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
        raise gr.Error(facts.refusal(exc)) from exc
    return say("finetune_queued", title=run_title(run.snapshot()))


def finetune_click(ctx: Context, ws: Workspace, model: str) -> str:
    """The fine-tune button: as ``finetune``, but a refusal is a message (and a toast), not an error that
    covers the "My digits" panel with red badges."""
    try:
        return finetune(ctx, ws, model)
    except gr.Error as exc:
        gr.Warning(exc.message)
        return f"⚠️ {exc.message}"


# ------------------------------------------------------------------------------ the fold


@dataclass
class TeachFold:
    """The fold's components that the Draw tab wires (and the Train tab follows)."""

    truth: gr.Radio  # "That was a ...": a new drawing pre-fills it with the page's answer (draw.ON_DRAWING_JS)
    mine: list  # the my-digits line and gallery, which a restore from the browser refills
    teach_msg: gr.Markdown
    finetune_event: object  # the fine-tune click, which the Train tab follows with its live view


def build(ctx: Context, bind: Callable, pad, photo, model, api_model, panel) -> TeachFold:
    """Create the fold inside the caller's Blocks context and wire its events and API (/add_digit, /load_digits,
    /save_digits, /clear_digits, /finetune); each change of the visitor's digits is kept in ``panel``."""
    with gr.Accordion(t("teach"), open=False):
        gr.Markdown(t("teach_help"))  # "at least five": MIN_FINETUNE_DIGITS (tests/test_words.py)
        with gr.Row(equal_height=True):
            truth = gr.Radio([str(d) for d in range(10)], value=None, label=t("truth"), scale=4,
                             elem_id="truth")
            add_btn = gr.Button(t("add_digit"), scale=1, min_width=160)
        my_md = gr.Markdown(my_digits_markdown([]), elem_id="my-digits-text")
        my_gallery = gr.Gallery(label=t("my_gallery"), elem_id="my-digits", columns=10, height=220,
                                object_fit="contain", interactive=False)
        with gr.Row():
            finetune_btn = gr.Button(t("finetune"), variant="primary", interactive=ctx.allow_training)
            save_btn = gr.Button(t("save_digits"))
            upload_btn = gr.UploadButton(t("load_digits"), file_types=[".npz"], type="filepath")
            forget_btn = gr.Button(t("forget_digits"))
        my_file = gr.File(label=t("digits_file"), visible=False, interactive=False)
        teach_msg = gr.Markdown(elem_id="teach-msg")

    # On demand only, and callable by gradio_client without joining the documented API.
    private, extra = dict(api_visibility="private"), dict(api_visibility="undocumented")
    mine = [my_md, my_gallery]
    # Each change of the visitor's digits is then kept in their browser (the panel's value).
    keep = dict(fn=bind(keep_digits), inputs=None, outputs=panel, concurrency_limit=None, **private)
    add_btn.click(bind(add_to_my_digits), [pad, photo, truth], mine, api_name="add_digit",
                  concurrency_limit=None, **extra).success(**keep)
    upload_btn.upload(bind(load_digits), upload_btn, mine, api_name="load_digits", concurrency_limit=None,
                      **extra).success(**keep)
    save_btn.click(bind(save_digits), None, my_file, api_name="save_digits", concurrency_limit=None, **extra)
    forget_btn.click(bind(clear_digits), None, mine, api_name="clear_digits", concurrency_limit=None,
                     **extra).then(lambda: gr.File(value=None, visible=False), None, my_file, **private).success(**keep)
    gr.on([], bind(finetune), api_model, teach_msg, api_name="finetune", concurrency_limit=None, **extra)
    finetune_event = finetune_btn.click(bind(finetune_click), model, teach_msg, concurrency_limit=None, **private)
    return TeachFold(truth=truth, mine=mine, teach_msg=teach_msg, finetune_event=finetune_event)
