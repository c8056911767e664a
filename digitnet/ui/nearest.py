"""The Draw tab's "Your drawing looks most like these": the 8 MNIST training digits nearest to the drawing.

``digitnet.nearest`` does the work (penultimate features, cosine, the training set's features
cached per weights). This module holds the API event ``/nearest(sketch, model)`` and the page's
view: a button (one request per click, not one per frame) and a grid of the 8 images with
their labels. Both read the visitor's own weights for a model when they have chosen some
(``weights=ws``), like ``/predict``; the API's input goes through the same upload checks
(``inputs.api_image``) and every request through the same per-session guard (``guard.py``).
"""

from __future__ import annotations

import base64
import io
import json
import threading
from typing import Any, Callable

import gradio as gr
import numpy as np
from PIL import Image

from ..models import DISPLAY_NAMES
from ..nearest import FeatureIndex, Neighbour, NothingDrawn, nearest, train_image
from ..predict import ModelUnavailable
from ..preprocess import ImageError
from ..workspace import Workspace
from . import facts, words
from .common import Context
from .inputs import api_image, drawing_input
from .words import say, t

HEADING = words.EN["nearest_title"]  # the English of each text; the page gets them in its language
NO_DRAWING = words.EN["nearest_blank"]

CSS = """
& .dn-nearest-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(72px, 1fr)); gap: 6px; }
& .dn-near { margin: 0; display: flex; flex-direction: column; align-items: center; font-size: 12px; }
& .dn-near img { width: 72px; height: 72px; image-rendering: pixelated; border-radius: 4px; }
& .dn-near b { font-size: 1rem; }
& .dn-near span { color: var(--body-text-color-subdued, #666); font-size: 11px; }
"""

_INDEXES: dict[str, FeatureIndex] = {}
_LOCK = threading.Lock()


def feature_index(ctx: Context) -> FeatureIndex:
    """The app's one feature index for its MNIST folder (built lazily, cached per weights)."""
    key = str(ctx.data_root)
    with _LOCK:
        if key not in _INDEXES:
            _INDEXES[key] = FeatureIndex(ctx.data_root)
        return _INDEXES[key]


def _neighbours(ctx: Context, ws: Workspace, image: Any, model: str) -> list[Neighbour]:
    """``nearest`` with every failure as a gr.Error that says what to do."""
    try:
        return nearest(image, model, weights=ws, index=feature_index(ctx))
    except NothingDrawn as exc:
        raise gr.Error(say("nearest_blank")) from exc
    except (ValueError, ModelUnavailable, ImageError) as exc:  # unknown model, unreadable image, broken file
        raise gr.Error(facts.refusal(exc)) from exc
    except (OSError, RuntimeError) as exc:  # no MNIST here (DataNotFoundError is a RuntimeError)
        raise gr.Error(say("nearest_no_mnist", error=exc)) from exc


def nearest_api(ctx: Context, ws: Workspace, sketch, model: str) -> dict:
    """The 8 MNIST training images nearest to a drawing in ``model``'s penultimate features (cosine):
    ``{"neighbours": [{"label", "train_index", "similarity"}, ...]}``, most similar first."""
    try:
        image = api_image(sketch)
    except ImageError as exc:  # a bare path, a file not uploaded with this request
        raise gr.Error(facts.refusal(exc)) from exc
    return {"neighbours": [n.as_dict() for n in _neighbours(ctx, ws, image, model)]}


def png_data_url(image: np.ndarray) -> str:
    """A (28, 28) float image in [0, 1] as a PNG data URL (white ink on black, as MNIST)."""
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.rint(255 * image), 0, 255).astype(np.uint8), "L").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def gallery_html(ctx: Context, neighbours: list[Neighbour]) -> str:
    """The 8 training images, each with its label, training index and similarity, in a grid that wraps."""
    figures = "".join(
        f'<figure class="dn-near" data-label="{n.label}" data-train-index="{n.train_index}">'
        f'<img src="{png_data_url(train_image(n.train_index, ctx.data_root))}" width="28" height="28" '
        f'alt="{say("nearest_alt", index=n.train_index, label=n.label)}">'
        f'<figcaption><b>{n.label}</b> <span>#{n.train_index} · {n.similarity:.2f}</span></figcaption></figure>'
        for n in neighbours)
    return f'<div class="dn-nearest-grid">{figures}</div>' if figures else ""


def nearest_view(ctx: Context, ws: Workspace, drawing, photo, model: str):
    """The button: a line of text and the gallery of the 8 nearest training digits (a message when blank)."""
    image = drawing_input(drawing, photo)
    if image is None:
        return say("nearest_blank"), ""
    try:
        neighbours = _neighbours(ctx, ws, image, model)
    except gr.Error as exc:
        return exc.message, ""
    labels = [n.label for n in neighbours]
    common = max(set(labels), key=lambda d: (labels.count(d), -d))
    text = say("nearest_found", name=DISPLAY_NAMES[model], count=labels.count(common), total=len(labels),
               digit=common)
    return text, gallery_html(ctx, neighbours)


def build(ctx: Context, bind: Callable, pad, photo, model, api_sketch, api_model, **event_options) -> None:
    """The "looks most like" fold and the /nearest API event, inside the caller's Blocks context."""
    with gr.Accordion(t("nearest_title"), open=True, elem_id="nearest"):
        button = gr.Button(t("nearest_button"), variant="secondary", size="sm", elem_id="nearest-button")
        text = gr.Markdown(t("nearest_prompt"), elem_id="nearest-text")
        gallery = gr.HTML("", elem_id="nearest-gallery", css_template=CSS, padding=False)
    result = gr.JSON(visible=False, label="neighbours")
    button.click(bind(nearest_view), [pad, photo, model], [text, gallery], api_visibility="private",
                 **event_options)
    pad.change(None, None, [text, gallery], js=f"() => [{json.dumps(str(t('nearest_prompt')))}, '']")  # a new drawing: stale neighbours go
    gr.on([], bind(nearest_api), [api_sketch, api_model], result, api_name="nearest", show_progress="hidden",
          preprocess=False, **event_options)
