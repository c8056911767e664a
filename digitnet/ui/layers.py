"""The Draw tab's "Every layer, live": each layer's output for the current drawing, run by ``static/layers.js``.

The page already runs the chosen model's forward pass for the answer (``static/answer.js`` ->
``DigitNet.model(spec).run``, ``static/digitnet-core.js``), and that pass returns every hidden layer
after ReLU (after pooling for a conv block). answer.js hands them over with each answer (the
document event ``digitnet-answer``), so this view costs the server nothing and is as live as the
answer. Shapes (checked against ``digitnet.models`` by tests/e2e/test_layers.py):

- LeNet: ``conv1 6×14×14``, ``conv2 16×5×5`` (grey feature maps), ``fc1 120``, ``fc2 84`` (bars);
- CNNNet: ``conv1 16×12×12``, ``conv2 30×4×4``, ``fc1 100``;
- MLP: ``fc1 300``, ``fc2 100`` (strips, one grey cell per unit);
- and each model's last layer as its ten probabilities.

A ``<details>`` fold: open beside the answer on a desktop, folded on a phone (390 px wide) so that
the pad and the answer stay on one screen.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..models import MODELS
from ..webmodel import LAYERS
from . import words
from .pad import script_tag

TITLE, NOTE, EMPTY = (words.EN[f"js.layers_{k}"] for k in ("title", "note", "empty"))  # English; words.js
# puts each in the page's language (data-i18n: DigitNetWords)

# gr.HTML renders its template with Handlebars and then as a JavaScript template literal: no
# backticks, "${", "{{" or backslashes.
TEMPLATE = f"""
<div class="dn-layers">
  <details><summary data-i18n="layers_title">{TITLE}</summary>
    <div class="dn-layers-note" data-i18n="layers_note">{NOTE}</div>
    <div class="dn-layers-empty" data-i18n="layers_empty">{EMPTY}</div>
    <div class="dn-layer-rows" hidden></div>
  </details>
</div>
"""

CSS = """
& .dn-layers summary { cursor: pointer; font-weight: 600; }
& .dn-layers-note, & .dn-layers-empty { font-size: 12px; color: var(--body-text-color-subdued, #666); margin: 2px 0 4px; }
& .dn-layer-rows { display: flex; flex-direction: column; gap: 6px; }
& .dn-layer { display: flex; flex-direction: column; gap: 2px; min-width: 0; }
& .dn-layer-name { font-size: 12px; font-family: var(--font-mono, monospace); }
& .dn-layer-body { display: flex; flex-wrap: wrap; gap: 2px; min-width: 0; }
& .dn-map { image-rendering: pixelated; background: #000; border-radius: 2px; }
& .dn-strip { width: 100%; max-width: 100%; height: 18px; image-rendering: pixelated; background: #000; }
& .dn-bars-c { width: 100%; max-width: 100%; height: 40px; background: var(--background-fill-secondary, #eee); }
& .dn-layer-bars .dn-bars-c { image-rendering: pixelated; }
"""


def output_layers() -> dict[str, str]:
    """Each model's output layer name, as the page labels its probabilities row (``fc3 10``)."""
    return {name: LAYERS[name][-1][0] for name in MODELS}


def layers_panel(elem_id: str = "layers-panel", **kwargs: Any) -> gr.HTML:
    """Create the layers view in the caller's Blocks context (fed by answer.js in the page; no server events)."""
    return gr.HTML(
        value="", html_template=TEMPLATE, css_template=CSS, elem_id=elem_id,
        head=script_tag("layers.js"),
        js_on_load="window.DigitNetLayers.mount(element, props);",
        apply_default_css=False, label="layers", padding=False,
        # Read by layers.js as props.<name>.
        strips=["mlp"], outputs=output_layers(), **kwargs)
