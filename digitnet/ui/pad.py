"""A light drawing pad: a ``gr.HTML`` component with its own canvas, run by ``static/pad.js``.

Why not ``gr.Sketchpad``: in a browser without a GPU its 800x800 editor took ~2.9 s from the
end of a stroke to the server's answer (it composites, encodes and uploads full-size PNG
layers on every change), and in Gradio 6.31 the first stroke after "Clear canvas" fires no
``change`` event.

While you draw, the pad hands its ink to the page's answer panel (``answer.py``,
``static/answer.js``) on every animation frame of pointer movement, as a DOM event
(``digitnet-ink``, see pad.js): the page reads the drawing itself and the server hears
nothing. The server gets the drawing only when a button that needs it is clicked (Explain,
"Add to my digits"): the pad's value, set when a stroke ends, Clear or Undo.

The value (``props.value`` in the browser, the handler's argument on the server) is

- ``""`` when the pad is blank (never drawn on, cleared, or every stroke undone);
- otherwise a PNG data URL, ``data:image/png;base64,...``, of a
  ``preprocess.PAD_SIDE`` x ``PAD_SIDE`` (112x112) RGBA image whose **alpha channel is the
  ink** (255 = full ink, RGB 0). The strokes are rendered straight onto that small canvas,
  anti-aliased, with a round brush of radius ``BRUSH_FRACTION`` of the pad's side (the
  Sketchpad's 24 px on 800 px), so it holds what area-averaging an 800x800 drawing gives
  (``preprocess.pad_payload`` makes the same payload from such a drawing). Usually 1-4 kB.

A server event may set the value: "" clears the pad, a payload becomes the pad's picture
(a random MNIST digit, a photo as the models read it), which strokes then draw over.

``digitnet.preprocess.to_mnist_array`` (hence ``predict``/``predict_all``) reads this value
directly. The value comes from the browser as a plain string, so a handler must check it
with ``pad_value`` first: anything else (a file path, say) is refused instead of being opened.

Behaviour: pointer events (mouse, pen, touch; one pointer at a time, so a second finger
does not draw); ``touch-action: none`` so drawing never scrolls the page; the screen canvas
has devicePixelRatio x its CSS size in pixels (sharp on hi-DPI), strokes are kept in pad
units and redrawn on resize. "Clear" sets ""; "Undo last stroke" redraws the remaining
strokes. Selectors for tests: ``#<elem_id> canvas``, ``#<elem_id> button[data-action=clear]``,
``#<elem_id> button[data-action=undo]``.

``send_interval_ms`` > 0 makes the pad also send its value while drawing, at most that often:
only benchmarks/browser_latency.py's old server pad uses it, to measure what this replaced.
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from digitnet.preprocess import PAD_SIDE, ImageError, check_pad_value

from . import facts
from .inpage import STATIC_DIR, static_url

# The app's Sketchpad drew with a brush of radius 24 on an 800x800 canvas: a digit drawn over
# most of the pad gets MNIST-like strokes (~10% of its size). Same ratio here, any pad size.
BRUSH_FRACTION = 24 / 800
SERVER_PAD_INTERVAL_MS = 125  # the old server pad (benchmarks only): at most ~8 values per second while drawing
MAX_CSS_SIDE = 360  # px: fits a 390 px wide phone with the page's margins
DEFAULT_LABEL = "Draw one digit, big or small, anywhere"

# gr.HTML renders its templates with Handlebars and then as a JavaScript template literal, so
# they hold no backticks, "${", "{{" or backslashes. The pad never shows its value, so the
# markup never re-renders and the canvas and its strokes stay put.
HTML_TEMPLATE = """
<div class="digit-pad">
  <div class="digit-pad-label" PAD_WORDS>LABEL</div>
  <div class="digit-pad-surface digit-pad-empty">
    <canvas style="touch-action: none;" role="img" aria-label="Drawing pad: draw one digit" data-i18n-aria="pad_aria"></canvas>
    <span class="digit-pad-hint" aria-hidden="true" data-i18n="pad_hint">draw here</span>
  </div>
  <div class="digit-pad-buttons">
    <button type="button" data-action="undo" disabled data-i18n="pad_undo">Undo last stroke</button>
    <button type="button" data-action="clear" disabled data-i18n="pad_clear">Clear</button>
  </div>
</div>
"""

# Scoped by Gradio to this component (nested under its root's id).
CSS_TEMPLATE = """
& .digit-pad { display: flex; flex-direction: column; align-items: center; gap: 6px; }
& .digit-pad-label { width: min(100%, MAX_SIDEpx); font-size: var(--block-label-text-size, 14px);
  color: var(--block-label-text-color, #555); }
& .digit-pad-surface { position: relative; width: min(100%, MAX_SIDEpx); aspect-ratio: 1 / 1;
  background: #fff; border: 1px solid var(--border-color-primary, #ccc); border-radius: 8px;
  overflow: hidden; touch-action: none; cursor: crosshair; }
& .digit-pad-surface canvas { display: block; width: 100%; height: 100%; touch-action: none;
  user-select: none; -webkit-user-select: none; -webkit-touch-callout: none; }
& .digit-pad-hint { position: absolute; inset: 0; display: none; align-items: center;
  justify-content: center; color: #bbb; font-size: 18px; pointer-events: none; }
& .digit-pad-empty .digit-pad-hint { display: flex; }
& .digit-pad-buttons { display: flex; gap: 8px; width: min(100%, MAX_SIDEpx); }
& .digit-pad-buttons button { flex: 1; padding: 6px 10px; border-radius: 6px; cursor: pointer;
  border: 1px solid var(--button-secondary-border-color, #ccc);
  background: var(--button-secondary-background-fill, #f3f4f6);
  color: var(--button-secondary-text-color, #111); font-size: 14px; }
& .digit-pad-buttons button:disabled { opacity: 0.5; cursor: default; }
""".replace("MAX_SIDE", str(MAX_CSS_SIDE))

# The pad's behaviour lives in static/pad.js (served by the app, loaded through ``head``).
JS_ON_LOAD = "window.DigitNetPad.mount(element, props, trigger, watch);"


def script_tag(name: str) -> str:
    """A <script> tag for a file of static/ (for a gr.HTML's ``head``, which runs it before ``js_on_load``)."""
    return f'<script src="{html.escape(static_url(STATIC_DIR / name), quote=True)}"></script>'


def _template_text(text: str) -> str:
    """``text`` made safe inside gr.HTML's template: HTML-escaped, no Handlebars or JS-literal syntax."""
    out = html.escape(text)
    for char, entity in (("`", "&#96;"), ("$", "&#36;"), ("{", "&#123;"), ("}", "&#125;"), ("\\", "&#92;")):
        out = out.replace(char, entity)
    return out


def drawing_pad(elem_id: str = "digit-pad", label: str = DEFAULT_LABEL, send_interval_ms: int = 0,
                **kwargs: Any) -> gr.HTML:
    """Create the drawing pad in the caller's Blocks context; its value is "" or a pad payload.

    ``kwargs`` go to ``gr.HTML`` (e.g. ``visible``, ``elem_classes``, ``scale``). The page's
    answer panel listens to its ink; ``send_interval_ms`` > 0 (benchmarks only) also sends the
    value while drawing.
    """
    options: dict[str, Any] = dict(
        value="",
        label=label,  # not shown by gr.HTML (show_label=False); names the pad on the API page
        # The default label follows the page's language (words.js); a caller's own label stays as given.
        html_template=HTML_TEMPLATE.replace("PAD_WORDS", 'data-i18n="pad_label"' if label == DEFAULT_LABEL else "")
        .replace("LABEL", _template_text(label)),
        css_template=CSS_TEMPLATE,
        js_on_load=JS_ON_LOAD,
        head=script_tag("pad.js"),
        elem_id=elem_id,
        apply_default_css=False,  # Gradio's prose styles would restyle the buttons
        # Read by pad.js as props.<name>: one source for these numbers, here.
        payload_side=PAD_SIDE,
        brush_fraction=BRUSH_FRACTION,
        send_interval_ms=send_interval_ms,
    )
    options.update(kwargs)
    return gr.HTML(**options)


def pad_value(value: Any) -> str:
    """The pad's value, checked: "" or a pad payload; anything else raises gr.Error (never read as a path)."""
    try:
        return check_pad_value(value)
    except ImageError as exc:
        raise gr.Error(facts.refusal(exc)) from exc
