"""The Draw tab's answer, computed in the page: a ``gr.HTML`` panel run by ``static/answer.js``.

The page reads the drawing itself (``static/pad.js`` -> ``DigitNet.toMnist`` -> three forward
passes, ``static/digitnet-core.js``): drawing sends the server nothing. The server's part is
the weights:

- the shipped ones, as JSON specs (``digitnet.webmodel.page_model``) the page fetches once at
  load from ``shipped_spec_urls``;
- the visitor's own (a finished run, a fine-tune, a chosen or uploaded file), pushed as the
  panel's value by the events that change them (``page_weights``): the spec to draw with and
  the checkpoint file's bytes, which the page keeps in ``localStorage`` with "my digits"
  (``page_digits``);
- after a refresh or a restart the page hands what it kept back through the keeper component
  (``keeper``), and ``restore`` loads it into the visitor's new session like any upload:
  ``Workspace.load`` (weights_only, size limit, architecture check) and ``load_my_digits``.

The element ``#prediction`` carries the chosen model's answer in ``data-label`` (the digit, ""
when blank), with ``aria-live="polite"``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from ..checkpoint import CheckpointError
from ..finetune import MY_DIGITS_FILENAME, MyDigits, MyDigitsError, load_my_digits, save_my_digits
from ..models import DISPLAY_NAMES, MODELS
from ..predict import Prediction, label_value, predict_all
from ..preprocess import ImageError
from ..detector import DETECTOR
from ..webmodel import cached_page_model, page_detector, page_models
from ..workspace import MAX_UPLOAD_BYTES, Workspace
from .common import BLANK_MESSAGE, Context, enlarge
from . import facts
from .words import say
from .pad import pad_value, script_tag

SEEN_SCALE = 8  # the model's 28x28 input shown at 224x224, nearest-neighbour so pixels stay visible
# What the keeper may hand back: three checkpoints at Workspace.load's size limit, in base64,
# and a my-digits file. A browser keeps ~5 M characters per site anyway.
MAX_KEPT_CHARS = 4 * (3 * MAX_UPLOAD_BYTES + 8 * 2**20) // 3 + 10_000
KEPT_SUFFIX = "kept-in-your-browser"

# gr.HTML renders its template with Handlebars and then as a JavaScript template literal: no
# backticks, "${", "{{" or backslashes. The markup never shows the value, so it never re-renders.
PANEL_TEMPLATE = """
<div class="dn-answer">
  <div id="prediction" class="dn-label" data-label="" aria-live="polite" role="status"></div>
  <div class="dn-source"></div>
  <div class="dn-body">
    <div class="dn-bars" aria-label="All ten digits" data-i18n-aria="ten_digits"></div>
    <figure class="dn-seen"><canvas width="28" height="28" aria-label="What the model saw, 28x28" data-i18n-aria="seen_aria"></canvas>
      <figcaption data-i18n="seen">What the model saw (28x28)</figcaption></figure>
  </div>
  <div class="dn-three" aria-label="The three models" data-i18n-aria="three_models"></div>
</div>
"""

PANEL_CSS = """
& .dn-answer { display: flex; flex-direction: column; gap: 6px; }
& .dn-label { font-size: 1.6rem; font-weight: 700; min-height: 2.1rem; }
& .dn-label.dn-unsure { color: #b45309; }
& .dn-source { font-size: 0.8rem; color: var(--body-text-color-subdued, #666); }
& .dn-body { display: flex; gap: 10px; align-items: flex-start; }
& .dn-bars { flex: 1; display: flex; flex-direction: column; gap: 1px; min-width: 150px; }
& .dn-bar { display: flex; align-items: center; gap: 4px; font-size: 12px; line-height: 14px; }
& .dn-digit { width: 10px; text-align: right; }
& .dn-track { flex: 1; height: 11px; background: var(--background-fill-secondary, #eee); border-radius: 3px; overflow: hidden; }
& .dn-fill { display: block; height: 100%; width: 0; background: var(--color-accent, #f97316); }
& .dn-top .dn-digit { font-weight: 700; }
& .dn-pct { width: 34px; text-align: right; color: var(--body-text-color-subdued, #666); }
& .dn-seen { margin: 0; display: flex; flex-direction: column; align-items: center; font-size: 11px; }
& .dn-seen canvas { width: 112px; height: 112px; image-rendering: pixelated; border-radius: 4px; background: #000; }
& .dn-three { display: flex; gap: 6px; }
& .dn-card { flex: 1; border: 1px solid var(--border-color-primary, #ddd); border-radius: 6px; padding: 2px 6px;
  text-align: center; font-size: 12px; }
& .dn-card.dn-chosen { border-color: var(--color-accent, #f97316); }
& .dn-card-digit { font-size: 1.3rem; font-weight: 700; }
@media (max-width: 640px) {
  & .dn-label { font-size: 1.3rem; min-height: 1.7rem; }
  & .dn-seen canvas { width: 84px; height: 84px; }
  & .dn-bar { line-height: 11px; font-size: 11px; }
  & .dn-track { height: 9px; }
}
"""


def shipped_spec_urls(ws: Workspace, folder: Path | None = None) -> dict[str, str]:
    """The shipped weights as page specs (``webmodel.page_models``), written once to files the app serves:
    model -> URL. A broken shipped file's spec says why (``{"arch", "error"}``), and the page says it too.
    The URL carries the spec's hash, so a browser never uses a stale cached copy.
    """
    folder = Path(folder or tempfile.mkdtemp(prefix="digitnet-specs-"))
    gr.set_static_paths([folder])
    urls = {}
    specs = dict(page_models(ws))
    detector = DETECTOR.checkpoint()
    if detector is not None:  # without its file the page (like the server) flags nothing
        specs["notdigit"] = page_detector(detector)
    for name, spec in specs.items():
        text = json.dumps(spec, separators=(",", ":"))
        path = folder / f"{name}.json"
        path.write_text(text)
        urls[name] = f"gradio_api/file={path.as_posix()}?v={hashlib.sha256(text.encode()).hexdigest()[:12]}"
    return urls


def answer_panel(shipped_urls: dict[str, str], chosen: str, elem_id: str = "answer-panel", **kwargs: Any) -> gr.HTML:
    """Create the in-page answer panel in the caller's Blocks context (its value: pushes of weights)."""
    return gr.HTML(
        value="", html_template=PANEL_TEMPLATE, css_template=PANEL_CSS, elem_id=elem_id,
        head=script_tag("answer.js"),
        js_on_load="window.DigitNetAnswer.mount(element, props, trigger, watch);",
        apply_default_css=False, label="answer",
        # Read by answer.js as props.<name>.
        models=list(MODELS), names=dict(DISPLAY_NAMES), chosen=chosen, shipped=shipped_urls,
        blank_message=BLANK_MESSAGE, **kwargs)


def keeper() -> gr.HTML:
    """The component through which the page hands back what it kept ("change" fires once, at load)."""
    return gr.HTML(value="", html_template="<span hidden></span>", head=script_tag("answer.js"),
                   js_on_load="window.DigitNetAnswer.mountKeeper(element, props);", apply_default_css=False,
                   elem_id="keeper", padding=False, container=False, label="kept")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def weights_entry(ws: Workspace, model: str) -> dict | None:
    """What the page needs to draw with and keep the visitor's weights for ``model``; None for the shipped ones."""
    w = ws.in_use(model)
    if w.run is None:
        return None
    title = facts.run_title(ws.run(w.run).snapshot())
    return {"spec": cached_page_model(ws.weights_dict(model)), "ckpt": _b64(ws.export(model)), "title": title}


def page_weights(ws: Workspace, models=MODELS) -> str:
    """The panel's value that gives the page the weights ``ws`` draws with for ``models`` (others unchanged)."""
    return json.dumps({"n": time.time_ns(), "weights": {m: weights_entry(ws, m) for m in models}},
                      separators=(",", ":"))


def page_digits(digits: MyDigits) -> str:
    """The panel's value that has the page keep the visitor's digits (None when there are none)."""
    data = None
    if digits:
        with tempfile.TemporaryDirectory() as folder:
            data = _b64(save_my_digits(digits, Path(folder) / MY_DIGITS_FILENAME).read_bytes())
    return json.dumps({"n": time.time_ns(), "digits": data})


def _decoded(text: Any, limit: int) -> bytes:
    """Base64 from the browser, checked: a str within ``limit`` bytes once decoded (ValueError, in words)."""
    if not isinstance(text, str):
        raise ValueError(say("kept_not_string"))
    if len(text) * 3 // 4 > limit:
        raise ValueError(say("kept_too_big", mb=f"{len(text) * 3 // 4 / 2**20:.1f}", limit=limit // 2**20))
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(say("kept_not_base64", error=exc)) from exc


def restore(ws: Workspace, kept: Any) -> list[str]:
    """Load what the page kept (the keeper's value) into the visitor's session; what was refused, in words.

    Each checkpoint goes through ``Workspace.load`` (weights_only, size limit, its model's
    architecture) and the digits through ``load_my_digits``: a browser's bytes are untrusted.
    """
    if not kept:
        return []
    if not isinstance(kept, str) or len(kept) > MAX_KEPT_CHARS:
        return [say("kept_too_large")]
    try:
        data = json.loads(kept)
    except ValueError:
        return [say("kept_not_json")]
    if not isinstance(data, dict):
        return [say("kept_not_object")]
    refused = []
    weights = data.get("weights") if isinstance(data.get("weights"), dict) else {}
    with tempfile.TemporaryDirectory() as folder:
        for name, entry in weights.items():
            if name not in MODELS or not isinstance(entry, dict):
                refused.append(say("kept_not_model", name=name))
                continue
            path = Path(folder) / f"{name}-{KEPT_SUFFIX}.pt"
            try:
                path.write_bytes(_decoded(entry.get("ckpt"), MAX_UPLOAD_BYTES))
                ws.load(path, name)
            except (ValueError, CheckpointError) as exc:
                refused.append(f"{DISPLAY_NAMES[name]}: {facts.refusal(exc)}")
        if data.get("digits") and not ws.my_digits:
            path = Path(folder) / MY_DIGITS_FILENAME
            try:
                path.write_bytes(_decoded(data["digits"], 8 * 2**20))
                ws.my_digits = load_my_digits(path)
            except (ValueError, MyDigitsError) as exc:
                refused.append(f"{say('kept_my_digits')}: {facts.refusal(exc)}")
    return refused


# ------------------------------------------------------------------------------ the server's reading
# What the Draw tab showed when the server read every drawing (a gr.Label, a note, bars, the 28x28, the
# three models): the reference the page is compared with in tests.


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


NOT_A_DIGIT = "That doesn't look like a digit"


def article(digit: int) -> str:
    """"a 7", "an 8": the digit with its article, as it is read aloud."""
    return f"an {digit}" if digit == 8 else f"a {digit}"


def answer_note(pred: Prediction | None) -> str:
    """One line over the bars: "It's a 7", "Not sure: 4 or 9?" when the calibrated top probability is low,
    or "That doesn't look like a digit" when the detector flags the drawing (letters, scribbles, "42")."""
    if pred is None:
        return "Draw one digit, big or small, anywhere on the pad."
    if getattr(pred, "not_digit", False):
        return f"**{NOT_A_DIGIT}** ({article(pred.digit)} at best)"
    if getattr(pred, "unsure", False):
        return f"**Not sure: {pred.digit} or {pred.runner_up}?** ({pred.confidence:.0%} for {article(pred.digit)})"
    return f"**It's a {pred.digit}** ({pred.confidence:.0%})"


def read(ws: Workspace, image) -> dict | None:
    """All three models' answers (the visitor's weights) for a drawing or photo; None when there is nothing."""
    if image is None:
        return None
    try:
        return predict_all(image, weights=ws)
    except ImageError as exc:
        raise gr.Error(facts.refusal(exc)) from exc


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
    return show(read(ws, image), model)


def recognise_pad(ctx: Context, ws: Workspace, drawing: str, model: str) -> tuple:
    """The pad changed (while drawing, at the end of a stroke, Clear, Undo): the same outputs as ``recognise``.

    The pad's value is a browser's string: checked to be "" or a pad payload, never read as a path.
    """
    return show(read(ws, pad_value(drawing) or None), model)
