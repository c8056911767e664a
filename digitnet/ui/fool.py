"""The Draw tab's "Fool it" fold and the API's ``/fool``: a small change to what the model saw, another answer.

The search is ``digitnet.fool`` (projected gradient descent under an L∞ bound on the
preprocessed 28x28); this module shows it: the drawing as the model saw it, the altered image,
the change (amplified), the new probabilities, the size of the change, and why it matters.
Mounted from ``draw.build`` with ``build(ctx, pad, photo, model, api_sketch, api_model)``.
"""

from __future__ import annotations

import gradio as gr

from ..fool import MAX_LINF, FoolResult, fool, fool_drawing
from ..models import DISPLAY_NAMES
from ..predict import ModelUnavailable
from ..preprocess import ImageError
from ..workspace import Workspace
from . import facts, words
from .common import Context, enlarge, visitor_handler
from .inputs import api_image, seen_28x28
from .words import say, t

SEEN_SCALE = 8  # 28x28 shown at 224x224, as the altered image
EASIEST = "easiest"  # the target radio's value for "whichever other digit is easiest"
BLANK_REFUSAL = words.EN["fool_blank"]  # the English of each text; the page gets them in its language
PROMPT = words.EN["fool_prompt"]
WHY = words.EN["fool_why"]


def confidences(probs: list[float]) -> list[dict]:
    """All ten probabilities as a gr.Label's confidences, likeliest first."""
    ranked = sorted(range(len(probs)), key=lambda d: -probs[d])
    return [{"label": str(d), "confidence": float(probs[d])} for d in ranked]


def fool_json(r: FoolResult) -> dict:
    """/fool's answer: the new label, the target aimed at, the change's L∞ (0..1 pixel scale), all confidences."""
    return {"label": str(r.label), "target": r.target, "linf": round(r.linf, 6),
            "confidences": confidences(r.probs), "original": str(r.original), "fooled": r.fooled}


def fool_api(ctx: Context, ws: Workspace, sketch, model: str, target: int | None = None) -> dict:
    """Change the drawing a little so that ``model`` reads ``target`` (None: the easiest other digit):
    ``{"label", "target", "linf", "confidences"}``; a blank drawing, a bad target or model is a clear error."""
    try:
        result = fool_drawing(api_image(sketch), model, weights=ws, target=target)
    except (ValueError, ImageError, ModelUnavailable) as exc:  # FoolError is a ValueError
        raise gr.Error(facts.refusal(exc)) from exc
    if result is None:
        raise gr.Error(say("fool_blank"))
    return fool_json(result)


def fool_markdown(r: FoolResult) -> str:
    """The result in words: what it reads now, what it read, how big the change is, why it matters."""
    name, most = DISPLAY_NAMES[r.model], f"{MAX_LINF:g}"
    linf, grey = f"{r.linf:.3f}", round(r.linf * 255)
    if r.fooled:
        head = say("fool_fooled", name=name, label=r.label, prob=f"{r.probs[r.label]:.0%}", original=r.original,
                   original_prob=f"{r.original_probs[r.original]:.0%}")
        size = say("fool_size", linf=linf, grey=grey, most=most)
    else:
        head = say("fool_held", name=name, label=r.label, most=most, target=r.target)
        size = say("fool_best", linf=linf, grey=grey)
    gap = "" if words.current() == "zh-CN" else " "  # Chinese sentences follow each other without a space
    return f"{head}{gap}{size}\n\n{say('fool_why')}"


def fool_view(ctx: Context, ws: Workspace, drawing, photo, model: str, target: str | None):
    """The button: text, the drawing as seen, the altered image, the amplified change, the new probabilities."""
    seen = seen_28x28(drawing, photo)
    if seen is None:
        raise gr.Error(say("fool_blank"))
    try:
        r = fool(seen, model, weights=ws, target=None if target in (None, "", EASIEST) else target)
    except (ValueError, ModelUnavailable) as exc:
        raise gr.Error(facts.refusal(exc)) from exc
    label = {str(d): p for d, p in enumerate(r.probs)}  # gr.Label's own form: all ten, it shows the top 3
    return fool_markdown(r), enlarge(r.seen, SEEN_SCALE), r.altered_image, r.difference_image, label


def build(ctx: Context, pad, photo, model, api_sketch, api_model) -> None:
    """The "Fool it" fold (inside the caller's tab) and the API's /fool."""
    bind = lambda fn: visitor_handler(fn, ctx)  # noqa: E731
    with gr.Accordion(t("fool_title"), open=False):
        with gr.Row(equal_height=True):
            target = gr.Radio([("easiest", EASIEST)] + [(str(d), str(d)) for d in range(10)], value=EASIEST,
                              label=t("fool_target"), scale=4, elem_id="fool-target")
            button = gr.Button(t("fool_button"), variant="primary", scale=1, min_width=120, elem_id="fool-button")
        text = gr.Markdown(t("fool_prompt"), elem_id="fool-text")
        with gr.Row():
            image = dict(interactive=False, height=200, buttons=[], format="png", min_width=120)
            seen = gr.Image(label=t("fool_seen"), elem_id="fool-seen", **image)
            altered = gr.Image(label=t("fool_altered"), elem_id="fool-altered", **image)
            diff = gr.Image(label=t("fool_diff"), elem_id="fool-diff", **image)
        probs = gr.Label(label=t("fool_probs"), num_top_classes=3, elem_id="fool-probs")
    outputs = [text, seen, altered, diff, probs]
    # A new drawing makes the result stale: cleared in the page ({} is an empty Label; null breaks it).
    pad.change(None, None, outputs, js="() => [%r, null, null, null, {}]" % str(t("fool_prompt")))
    button.click(bind(fool_view), [pad, photo, model, target], outputs, concurrency_id="explain",
                 concurrency_limit=2, api_visibility="private")
    # The documented /fool: API only, like /predict (the sketch is checked by SketchData and api_image).
    api_target = gr.Number(value=None, visible=False, label="target", precision=0)
    api_out = gr.JSON(visible=False, label="fooled")
    gr.on([], bind(fool_api), [api_sketch, api_model, api_target], api_out, api_name="fool",
          show_progress="hidden", concurrency_id="explain", concurrency_limit=2, preprocess=False,
          postprocess=False)
