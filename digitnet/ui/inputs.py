"""What the Draw tab's handlers read: the pad's drawing, an uploaded photo, or /predict's Sketchpad value.

Every file a handler opens is one Gradio uploaded for this request (``confine_uploads``,
``uploaded_path``); anything else is refused with one message that says nothing about the
server's files. The Draw tab, its folds (Fool it, looks most like, my digits) and the API read
their input through these functions.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
from gradio.components.image_editor import EditorData
from gradio.data_classes import FileData
from gradio.utils import get_upload_folder
from pydantic import ConfigDict

from ..preprocess import ImageError, confine_uploads, to_mnist_array, uploaded_path
from . import facts
from .pad import pad_value


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


def drawing_input(drawing: str, photo):
    """What the Draw tab reads, before preprocessing: the pad's drawing when something is drawn, else the
    photo (None: neither).

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
            raise gr.Error(facts.refusal(exc)) from exc
    return photo


def seen_28x28(drawing: str, photo) -> np.ndarray | None:
    """The preprocessed 28x28 of the pad's drawing, or of the photo when nothing is drawn; None if neither."""
    image = drawing_input(drawing, photo)
    try:
        return None if image is None else to_mnist_array(image)
    except ImageError as exc:
        raise gr.Error(facts.refusal(exc)) from exc
