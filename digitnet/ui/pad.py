"""A light drawing pad: a ``gr.HTML`` component with its own canvas, no Node build step.

Why not ``gr.Sketchpad``: in a browser without a GPU its 800x800 editor took ~2.9 s from the
end of a stroke to the server's answer (it composites, encodes and uploads full-size PNG
layers on every change), and in Gradio 6.31 the first stroke after "Clear canvas" fires no
``change`` event. This pad sends a few kB and answers while you draw.

The value (``props.value`` in the browser, the handler's argument on the server) is

- ``""`` when the pad is blank (never drawn on, cleared, or every stroke undone);
- otherwise a PNG data URL, ``data:image/png;base64,...``, of a
  ``preprocess.PAD_SIDE`` x ``PAD_SIDE`` (112x112) RGBA image whose **alpha channel is the
  ink** (255 = full ink, RGB 0). The strokes are rendered straight onto that small canvas,
  anti-aliased, with a round brush of radius ``BRUSH_FRACTION`` of the pad's side (the
  Sketchpad's 24 px on 800 px), so it holds what area-averaging an 800x800 drawing gives
  (``preprocess.pad_payload`` makes the same payload from such a drawing). Usually 1-4 kB.

``digitnet.preprocess.to_mnist_array`` (hence ``predict``/``predict_all``) reads this value
directly, through the same MNIST-style preprocessing as every other input. The value comes
from the browser as a plain string, so a handler must check it with ``pad_value`` first:
anything else (a file path, say) is refused instead of being opened.

Behaviour: pointer events (mouse, pen, touch; one pointer at a time, so a second finger
does not draw); ``touch-action: none`` so drawing never scrolls the page; the screen canvas
has devicePixelRatio x its CSS size in pixels (sharp on hi-DPI), strokes are kept in pad
units and redrawn on resize. While drawing the value is updated at most every
``SEND_INTERVAL_MS`` (8 per second), and once more when the stroke ends (pointerup /
pointercancel). "Clear" sets ""; "Undo last stroke" redraws the remaining strokes (or sets ""
when none are left). Setting the value is enough for Gradio 6.31 to fire ``change`` (its HTML
component dispatches ``change`` whenever ``props.value`` changes); calling ``trigger('change')``
as well sends every drawing twice (measured: 2 requests per dot and per Clear, against 1). If a server event sets the pad's value to "", the
pad clears itself.

Wiring (``always_last``: at most one request in flight, the latest drawing wins)::

    pad = drawing_pad()
    pad.change(recognise_pad, [pad, model], outputs, trigger_mode="always_last",
               show_progress="hidden")

with a handler that does ``predict_all(pad_value(value))``. Selectors for tests:
``#<elem_id> canvas``, ``#<elem_id> button[data-action=clear]``,
``#<elem_id> button[data-action=undo]``.
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from digitnet.preprocess import PAD_SIDE, ImageError, check_pad_value

# The app's Sketchpad drew with a brush of radius 24 on an 800x800 canvas: a digit drawn over
# most of the pad gets MNIST-like strokes (~10% of its size). Same ratio here, any pad size.
BRUSH_FRACTION = 24 / 800
SEND_INTERVAL_MS = 125  # at most ~8 values per second while drawing
MAX_CSS_SIDE = 360  # px: fits a 390 px wide phone with the page's margins
DEFAULT_LABEL = "Draw one digit, big or small, anywhere"

# gr.HTML renders its templates with Handlebars and then as a JavaScript template literal, so
# they hold no backticks, "${", "{{" or backslashes. The pad never shows its value, so the
# markup never re-renders and the canvas and its strokes stay put.
HTML_TEMPLATE = """
<div class="digit-pad">
  <div class="digit-pad-label">LABEL</div>
  <div class="digit-pad-surface digit-pad-empty">
    <canvas style="touch-action: none;" role="img" aria-label="Drawing pad: draw one digit"></canvas>
    <span class="digit-pad-hint" aria-hidden="true">draw here</span>
  </div>
  <div class="digit-pad-buttons">
    <button type="button" data-action="undo" disabled>Undo last stroke</button>
    <button type="button" data-action="clear" disabled>Clear</button>
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

JS_ON_LOAD = """
// Strokes are kept in pad units (0..1, y down) and drawn twice: on the screen canvas
// (devicePixelRatio x its CSS size, sharp) and, when a value is sent, on a small ink canvas
// of payload_side px whose PNG is the value.
const SIDE = props.payload_side;
const BRUSH = props.brush_fraction;  // brush radius / pad side
const INTERVAL = props.send_interval_ms;
const surface = element.querySelector('.digit-pad-surface');
const canvas = element.querySelector('canvas');
const screen = canvas.getContext('2d');
const ink = document.createElement('canvas');
ink.width = ink.height = SIDE;
const inkCtx = ink.getContext('2d');
const undoButton = element.querySelector('button[data-action=undo]');
const clearButton = element.querySelector('button[data-action=clear]');
canvas.style.touchAction = 'none';  // also set here in case the scoped CSS is not applied
let strokes = [];
let current = null;  // the stroke being drawn
let pointer = null;  // its pointerId: a second finger or a pen hovering nearby is ignored
let lastSend = -Infinity;
let timer = null;

function pen(ctx, side) {
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  ctx.lineWidth = 2 * BRUSH * side;
  ctx.strokeStyle = '#000';
  ctx.fillStyle = '#000';
}

// Draws stroke[from - 1 ..] as ONE path (a lone point as a dot): anti-aliased edges are not
// darkened twice where segments meet, so the ink canvas holds the stroke's true coverage.
function trace(ctx, side, stroke, from) {
  pen(ctx, side);
  ctx.beginPath();
  if (stroke.length === 1) {
    ctx.arc(stroke[0][0] * side, stroke[0][1] * side, BRUSH * side, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  const start = Math.max(from - 1, 0);
  ctx.moveTo(stroke[start][0] * side, stroke[start][1] * side);
  for (let i = start + 1; i < stroke.length; i++) ctx.lineTo(stroke[i][0] * side, stroke[i][1] * side);
  ctx.stroke();
}

function paint(ctx, side) {
  ctx.clearRect(0, 0, side, side);
  for (const stroke of strokes) trace(ctx, side, stroke, 0);
}

// Backing store = CSS size x devicePixelRatio (sharp on hi-DPI); the brush is a fraction of
// the side, so the drawing looks and reads the same at any size or zoom.
function fit() {
  const css = canvas.getBoundingClientRect().width;
  const px = Math.max(1, Math.round(css * (window.devicePixelRatio || 1)));
  if (css > 0 && canvas.width !== px) {
    canvas.width = canvas.height = px;
    paint(screen, px);
  }
}
new ResizeObserver(fit).observe(canvas);
fit();

function value() {
  if (!strokes.length) return '';
  paint(inkCtx, SIDE);
  return ink.toDataURL('image/png');
}

// Setting props.value makes Gradio fire "change" (only when the value differs): no
// trigger('change') here, or every drawing would be sent twice.
function send() {
  clearTimeout(timer);
  timer = null;
  lastSend = performance.now();
  const v = value();
  if (v !== props.value) props.value = v;
}

// Throttle: at most one value per INTERVAL while drawing; the latest strokes go out when it ends.
function soon() {
  if (timer !== null) return;
  const wait = INTERVAL - (performance.now() - lastSend);
  if (wait <= 0) send();
  else timer = setTimeout(send, wait);
}

function refresh() {
  const empty = strokes.length === 0;
  undoButton.disabled = empty;
  clearButton.disabled = empty;
  surface.classList.toggle('digit-pad-empty', empty);
}

function at(e, box) {
  return [(e.clientX - box.left) / box.width, (e.clientY - box.top) / box.height];
}

canvas.addEventListener('pointerdown', (e) => {
  // Only the main button (a mouse's left, a finger, a pen's tip): not a right-click or a pen's eraser.
  if (pointer !== null || e.button !== 0) return;
  e.preventDefault();
  fit();
  pointer = e.pointerId;
  try { canvas.setPointerCapture(e.pointerId); } catch (err) { /* synthetic events */ }
  current = [at(e, canvas.getBoundingClientRect())];
  strokes.push(current);
  trace(screen, canvas.width, current, 0);
  refresh();
  lastSend = performance.now();  // the first value goes out an interval into the stroke, not for a dot
  soon();
});

canvas.addEventListener('pointermove', (e) => {
  if (e.pointerId !== pointer) return;
  e.preventDefault();
  const box = canvas.getBoundingClientRect();
  const from = current.length;
  const events = (e.getCoalescedEvents && e.getCoalescedEvents()) || [];
  for (const c of (events.length ? events : [e])) current.push(at(c, box));
  trace(screen, canvas.width, current, from);
  soon();
});

function end(e) {
  if (e.pointerId !== pointer) return;
  pointer = null;
  current = null;
  send();  // the whole stroke, at once
}
canvas.addEventListener('pointerup', end);
canvas.addEventListener('pointercancel', end);
canvas.addEventListener('lostpointercapture', end);

undoButton.addEventListener('click', () => {
  if (pointer !== null || !strokes.length) return;
  strokes.pop();
  paint(screen, canvas.width);
  refresh();
  send();
});

clearButton.addEventListener('click', () => {
  strokes = [];
  current = null;
  pointer = null;
  paint(screen, canvas.width);
  refresh();
  send();
});

// A server event that sets the pad's value to "" clears it.
watch('value', () => {
  if (!props.value && strokes.length && pointer === null) {
    strokes = [];
    paint(screen, canvas.width);
    refresh();
  }
});
"""


def _template_text(text: str) -> str:
    """``text`` made safe inside gr.HTML's template: HTML-escaped, no Handlebars or JS-literal syntax."""
    out = html.escape(text)
    for char, entity in (("`", "&#96;"), ("$", "&#36;"), ("{", "&#123;"), ("}", "&#125;"), ("\\", "&#92;")):
        out = out.replace(char, entity)
    return out


def drawing_pad(elem_id: str = "digit-pad", label: str = DEFAULT_LABEL, **kwargs: Any) -> gr.HTML:
    """Create the drawing pad in the caller's Blocks context; its value is "" or a pad payload.

    ``kwargs`` go to ``gr.HTML`` (e.g. ``visible``, ``elem_classes``, ``scale``). Wire it with
    ``pad.change(fn, [pad, ...], outputs, trigger_mode="always_last", show_progress="hidden")``.
    """
    options: dict[str, Any] = dict(
        value="",
        label=label,  # not shown by gr.HTML (show_label=False); names the pad on the API page
        html_template=HTML_TEMPLATE.replace("LABEL", _template_text(label)),
        css_template=CSS_TEMPLATE,
        js_on_load=JS_ON_LOAD,
        elem_id=elem_id,
        apply_default_css=False,  # Gradio's prose styles would restyle the buttons
        # Read by JS_ON_LOAD as props.<name>: one source for these numbers, here.
        payload_side=PAD_SIDE,
        brush_fraction=BRUSH_FRACTION,
        send_interval_ms=SEND_INTERVAL_MS,
    )
    options.update(kwargs)
    return gr.HTML(**options)


def pad_value(value: Any) -> str:
    """The pad's value, checked: "" or a pad payload; anything else raises gr.Error (never read as a path)."""
    try:
        return check_pad_value(value)
    except ImageError as exc:
        raise gr.Error(str(exc)) from exc
