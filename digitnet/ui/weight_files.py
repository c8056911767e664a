"""The Train tab's "Your models" fold: download the weights the visitor draws with, or load a checkpoint file.

The download button always holds the file of the weights in use for the Train form's model (the
shipped file's copy before the visitor trains), so one click downloads it. A loaded file joins the
visitor's runs (``Workspace.load``, checked by ``digitnet.upload``) and their drawings use it at once.
"""

from __future__ import annotations

import shutil
from typing import Callable

import gradio as gr
from gradio.utils import get_upload_folder

from ..checkpoint import SHIPPED_DIR, CheckpointError
from ..models import DEFAULT_MODEL
from ..preprocess import ImageError, uploaded_path
from ..workspace import Workspace
from . import facts
from .answer import page_weights
from .common import DOWNLOADS, Context, percent
from .facts import run_title
from .words import say, t


def download_file(ws: Workspace, model: str) -> str:
    """A checkpoint file of the weights the visitor draws with for ``model`` (the download button's value)."""
    return str(ws.export_file(model, DOWNLOADS.folder))  # written once per run; Gradio's copy is reused too


def refresh_download(ctx: Context, ws: Workspace, model: str) -> str:
    """The model or the weights in use changed: the download button holds their file, ready for one click."""
    return download_file(ws, model)


def upload_weights(ctx: Context, ws: Workspace, file) -> tuple[str, str]:
    """Load a checkpoint file: it joins the visitor's runs, their drawings use it for its model (pushed to the page)."""
    if file is None:
        raise gr.Error(say("no_file"))
    try:
        run = ws.load(uploaded_path(file, get_upload_folder()))
    except (CheckpointError, ImageError) as exc:
        raise gr.Error(facts.refusal(exc)) from exc
    s = run.snapshot()
    return (say("loaded_as", title=run_title(s), acc=percent(s.test_acc)),
            page_weights(ws, [s.model]))


def shipped_download(model: str) -> str | None:
    """A copy of the shipped checkpoint of ``model``: the download button's value before the visitor trains."""
    source = SHIPPED_DIR / f"{model}.pt"
    if not source.exists():
        return None
    path = DOWNLOADS.new_file(source.name.replace(".pt", "-shipped.pt"))
    shutil.copyfile(source, path)
    return str(path)


def build(bind: Callable, model, panel) -> tuple:
    """Create the fold inside the caller's Blocks context and wire it: the download follows the form's ``model``,
    an upload's weights go to the page (``panel``). Returns (the download button, the upload event), which the
    Train tab's live view refreshes and follows."""
    with gr.Accordion(t("weights_fold"), open=False):
        gr.Markdown(t("weights_help"))
        with gr.Row():
            download_btn = gr.DownloadButton(t("download"), value=shipped_download(DEFAULT_MODEL),
                                             elem_id="download-weights")
            upload_btn = gr.UploadButton(t("upload"), file_types=[".pt"], type="filepath")
        weights_msg = gr.Markdown()
    private = dict(api_visibility="private")
    model.change(bind(refresh_download), model, download_btn, concurrency_limit=None, show_progress="hidden",
                 **private)
    uploaded = upload_btn.upload(bind(upload_weights), upload_btn, [weights_msg, panel], concurrency_limit=None,
                                 **private)
    return download_btn, uploaded
