"""The Draw tab's "Fool it" fold and the API's ``/fool``: a small change to what the model saw, another answer.

The search is ``digitnet.fool`` (projected gradient descent under an L∞ bound on the
preprocessed 28x28); this module shows it: the drawing as the model saw it, the altered image,
the change (amplified), the new probabilities, the size of the change, and why it matters.
Mounted from ``draw.build`` with ``build(ctx, pad, photo, model, api_sketch, api_model)``.
"""

from __future__ import annotations

import gradio as gr

from ..fool import MAX_LINF, FoolError, FoolResult, fool, fool_drawing
from ..models import DISPLAY_NAMES
from ..predict import ModelUnavailable
from ..preprocess import ImageError
from ..workspace import Workspace
from .common import Context, enlarge, visitor_handler
from .draw import api_image, drawing_or_photo

SEEN_SCALE = 8  # 28x28 shown at 224x224, as the altered image
EASIEST = "easiest"  # the target radio's value for "whichever other digit is easiest"
BLANK_REFUSAL = "Draw a digit first: there is nothing to change on a blank canvas."
PROMPT = ("Draw a digit, pick a target (or let it find the easiest one) and click the button: it searches for the "
          "smallest change to the 28x28 image the model saw that makes it read another digit.")
WHY = ("**Why this matters:** a change too faint for you to notice can make a model that reads 99% of digits right "
       "give a confident wrong answer, so a model that scores well is not yet one you can trust where someone "
       "may alter its input (cheques, road signs, spam filters).")


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
        raise gr.Error(str(exc)) from exc
    if result is None:
        raise gr.Error(BLANK_REFUSAL)
    return fool_json(result)


def fool_markdown(r: FoolResult) -> str:
    """The result in words: what it reads now, what it read, how big the change is, why it matters."""
    name = DISPLAY_NAMES[r.model]
    grey = round(r.linf * 255)
    size = (f"No pixel changed by more than **{r.linf:.3f}** of full ink ({grey} of 255 grey levels); "
            f"the largest change tried is {MAX_LINF:g}.")
    if r.fooled:
        head = (f"**{name} now reads a {r.label}** ({r.probs[r.label]:.0%}) where it read a {r.original} "
                f"({r.original_probs[r.original]:.0%}).")
    else:
        head = (f"**{name} still reads a {r.label}**: no change up to {MAX_LINF:g} made it read a {r.target}. "
                "Try another target, or the easiest.")
        size = f"The best try changed pixels by up to **{r.linf:.3f}** of full ink ({grey} of 255 grey levels)."
    return f"{head} {size}\n\n{WHY}"


def fool_view(ctx: Context, ws: Workspace, drawing, photo, model: str, target: str | None):
    """The button: text, the drawing as seen, the altered image, the amplified change, the new probabilities."""
    seen = drawing_or_photo(drawing, photo)
    if seen is None:
        raise gr.Error(BLANK_REFUSAL)
    try:
        r = fool(seen, model, weights=ws, target=None if target in (None, "", EASIEST) else target)
    except (ValueError, ModelUnavailable) as exc:
        raise gr.Error(str(exc)) from exc
    label = {str(d): p for d, p in enumerate(r.probs)}  # gr.Label's own form: all ten, it shows the top 3
    return fool_markdown(r), enlarge(r.seen, SEEN_SCALE), r.altered_image, r.difference_image, label


def build(ctx: Context, pad, photo, model, api_sketch, api_model) -> None:
    """The "Fool it" fold (inside the caller's tab) and the API's /fool."""
    bind = lambda fn: visitor_handler(fn, ctx)  # noqa: E731
    with gr.Accordion("Fool it: make it read something else", open=False):
        with gr.Row(equal_height=True):
            target = gr.Radio([("easiest", EASIEST)] + [(str(d), str(d)) for d in range(10)], value=EASIEST,
                              label="Make it read", scale=4, elem_id="fool-target")
            button = gr.Button("Fool it", variant="primary", scale=1, min_width=120, elem_id="fool-button")
        text = gr.Markdown(PROMPT, elem_id="fool-text")
        with gr.Row():
            image = dict(interactive=False, height=200, buttons=[], format="png", min_width=120)
            seen = gr.Image(label="What the model saw", elem_id="fool-seen", **image)
            altered = gr.Image(label="Altered", elem_id="fool-altered", **image)
            diff = gr.Image(label="The change, amplified (red added, blue removed)", elem_id="fool-diff", **image)
        probs = gr.Label(label="Its probabilities now", num_top_classes=3, elem_id="fool-probs")
    outputs = [text, seen, altered, diff, probs]
    # A new drawing makes the result stale: cleared in the page ({} is an empty Label; null breaks it).
    pad.change(None, None, outputs, js="() => [%r, null, null, null, {}]" % PROMPT)
    button.click(bind(fool_view), [pad, photo, model, target], outputs, concurrency_id="explain",
                 concurrency_limit=2, api_visibility="private")
    # The documented /fool: API only, like /predict (the sketch is checked by SketchData and api_image).
    api_target = gr.Number(value=None, visible=False, label="target", precision=0)
    api_out = gr.JSON(visible=False, label="fooled")
    gr.on([], bind(fool_api), [api_sketch, api_model, api_target], api_out, api_name="fool",
          show_progress="hidden", concurrency_id="explain", concurrency_limit=2, preprocess=False,
          postprocess=False)
