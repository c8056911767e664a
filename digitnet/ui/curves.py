"""The Train tab's curves: a ``gr.HTML`` component drawn by ``static/curves.js``, and the values streamed to it.

``gr.LinePlot`` (6.31) draws nothing for one point, labels ticks with every decimal and resends
the whole frame on each update; this component draws in the page and receives only what is
new. Its JavaScript is ``digitnet/ui/static/curves.js``, read once at import and handed to
Gradio as the component's ``js_on_load`` (the way the app serves its own scripts without a
build step or a CDN). Values (see the top of curves.js):

- ``reset_value``: the whole picture (a run's points so far, or several runs for the overlay);
- ``LiveFeed.update``: a run's new points since the last value it made, its progress, the
  answers of the 16 probe digits and the captions.

The chart element (``.curves``) carries ``data-loss-points``, ``data-val-points`` and
``data-series`` (what it holds), ``data-probe-answers`` and ``data-probe-right``: tests and
screen readers read them.
"""

from __future__ import annotations

import base64
import functools
import io
import itertools
import json
import math
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from .. import data as mdata
from ..models import DISPLAY_NAMES
from ..scheduler import RunState
from ..training import PROBE_INDICES
from .mistakes import run_name
from .words import say

STATIC = Path(__file__).resolve().parent / "static"
CURVES_JS = (STATIC / "curves.js").read_text(encoding="utf-8")
SEED_CURVES_JSON = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "seed_curves.json"
_SEQ = itertools.count(1)  # every value differs from the last: the page redraws on each

# No backticks, "${", "{{" or backslashes: gr.HTML renders this as a template. The markup never
# shows the value, so it is never re-rendered and the drawing stays put between updates.
HTML_TEMPLATE = """
<div class="curves" data-loss-points="0" data-val-points="0" data-series="0">
  <div class="curves-progress" aria-live="polite"></div>
  <div class="curves-controls">
    <span data-i18n="x_axis">x-axis:</span>
    <label><input type="radio" data-role="x" value="epoch" checked> <span data-i18n="x_epochs">epochs</span></label>
    <label><input type="radio" data-role="x" value="seconds"> <span data-i18n="x_seconds">wall seconds</span></label>
    <label><input type="checkbox" data-role="seed" checked> <span data-i18n="seed_faint">the seed article's recipe, faint</span></label>
  </div>
  <div class="curves-charts">
    <figure class="curves-chart" data-chart="loss"><figcaption data-i18n="loss">Loss</figcaption>
      <svg role="img" aria-label="loss curves" data-i18n-aria="loss_aria"></svg><div class="curves-legend"></div><div class="curves-note"></div>
    </figure>
    <figure class="curves-chart" data-chart="acc"><figcaption data-i18n="accuracy">Accuracy (%)</figcaption>
      <svg role="img" aria-label="accuracy curves" data-i18n-aria="acc_aria"></svg><div class="curves-legend"></div><div class="curves-note"></div>
    </figure>
  </div>
  <div class="curves-probe"></div>
</div>
"""

CSS_TEMPLATE = """
& .curves { display: flex; flex-direction: column; gap: 8px; font-size: 13px; }
& .curves-progress progress { width: 100%; height: 10px; }
& .curves-controls { display: flex; flex-wrap: wrap; gap: 4px 14px; align-items: center; color: var(--body-text-color-subdued, #555); }
& .curves-controls label { display: inline-flex; gap: 4px; align-items: center; cursor: pointer; }
& .curves-controls input { appearance: auto; -webkit-appearance: auto; background-image: none; width: 14px;
  height: 14px; margin: 0; accent-color: #2563eb; }
& .curves-charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr)); gap: 10px; }
& .curves-chart { margin: 0; border: 1px solid var(--border-color-primary, #ddd); border-radius: 8px; padding: 6px; }
& .curves-chart figcaption { font-weight: 600; }
& .curves-chart svg { width: 100%; height: auto; display: block; }
& .curves-chart .grid { stroke: var(--border-color-primary, #e5e7eb); stroke-width: 1; }
& .curves-chart .axis { stroke: #9ca3af; }
& .curves-chart .tick, & .curves-chart .title { font-size: 10.5px; fill: var(--body-text-color-subdued, #555); }
& .curves-chart .faint { opacity: 0.45; }
& .curves-legend { display: flex; flex-wrap: wrap; gap: 2px 12px; font-size: 12px; }
& .curves-key i { display: inline-block; width: 14px; height: 3px; margin-right: 4px; vertical-align: middle; }
& .curves-key.faint { opacity: 0.6; }
& .curves-note { font-size: 12px; color: var(--body-text-color-subdued, #555); margin-top: 2px; }
& .curves-probe-title { font-weight: 600; margin-bottom: 4px; }
& .curves-probe-grid { display: grid; grid-template-columns: repeat(8, minmax(0, 48px)); gap: 4px; }
& .curves-probe-grid figure { margin: 0; text-align: center; border-radius: 6px; padding: 2px; border: 2px solid #d1d5db; }
& .curves-probe-grid figure.right { border-color: #16a34a; }
& .curves-probe-grid figure.wrong { border-color: #dc2626; }
& .curves-probe-grid img { width: 100%; image-rendering: pixelated; display: block; }
& .curves-probe-grid figcaption { font-weight: 700; font-size: 14px; }
& .curves-probe-grid .right figcaption { color: #16a34a; }
& .curves-probe-grid .wrong figcaption { color: #dc2626; }
& .curves-own { margin: 6px 0 0 0; display: flex; gap: 8px; align-items: center; }
& .curves-own img { width: 48px; border: 2px solid #6366f1; border-radius: 6px; image-rendering: pixelated; }
& .curves-own figcaption { font-weight: 600; }
"""


def curves_component(elem_id: str, seed: dict | None = None, **kwargs) -> gr.HTML:
    """The curves component (in the caller's Blocks context); ``seed`` is ``load_seed_curves()``'s."""
    options = dict(value=None, html_template=HTML_TEMPLATE, css_template=CSS_TEMPLATE, js_on_load=CURVES_JS,
                   elem_id=elem_id, apply_default_css=False, seed=seed or {})
    return gr.HTML(**{**options, **kwargs})


SPEED_JSON = SEED_CURVES_JSON.with_name("speed.json")


def _speed_seed_curves(path: Path) -> dict:
    """The seed's test-accuracy curve (one epoch, 5 points, wall seconds from the process's data loading)
    measured by benchmarks/vs_seed.py: the reference until benchmarks/seed_curves.py has run."""
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    out = {}
    for name, entry in (report.get("models") or {}).items():
        runs = entry.get("runs") or []
        curve = (runs[0].get("seed") or {}).get("curve") if runs else None
        if name in DISPLAY_NAMES and curve:
            out[name] = {"label": f"seed article's recipe · {DISPLAY_NAMES[name]} (test accuracy, first epoch, "
                                  f"vs_seed {report.get('date', '')[:10]})",
                         "words": "seed_vs", "name": DISPLAY_NAMES[name], "date": report.get("date", "")[:10],
                         "loss": [], "val": [[round(e, 4), round(t, 2), acc, None] for t, e, acc in curve]}
    return out


@functools.lru_cache(maxsize=1)
def load_seed_curves(path: str = str(SEED_CURVES_JSON)) -> dict:
    """{model: {label, loss, val}} of the seed article's recipe, from benchmarks/seed_curves.py's JSON, else
    vs_seed's curves in speed.json ({} without either)."""
    fallback = _speed_seed_curves(SPEED_JSON)
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return fallback
    out = dict(fallback)
    for name, entry in (report.get("models") or {}).items():
        seed = entry.get("seed") or {}
        if name in DISPLAY_NAMES and seed.get("val"):
            out[name] = {"label": f"seed article's recipe · {DISPLAY_NAMES[name]} (SGD 0.01, batch 64, StepLR; "
                                  f"measured {report.get('date', '')[:10]})",
                         "words": "seed_measured", "name": DISPLAY_NAMES[name], "date": report.get("date", "")[:10],
                         "loss": [[p[0], p[1], p[2]] for p in seed.get("loss", [])],
                         "val": [[p[0], p[1], p[2], p[3]] for p in seed["val"]]}
    return out


def png_url(image: np.ndarray) -> str:
    """A 28x28 (ink 1 on 0) as a PNG data URL, dark ink on white like the page's digits."""
    buf = io.BytesIO()
    Image.fromarray((255 - np.clip(image, 0, 1) * 255).round().astype(np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def own_probs(s: RunState) -> list:
    """The model's probability for the visitor's drawing's digit at each validation point so far."""
    return [_num(h.get("own")) for h in s.history]


def own_value(s: RunState) -> dict | None:
    """The visitor's own drawing beside the test digits: its picture, its digit and the probabilities so far."""
    if not s.own:
        return None
    image, digit = s.own
    return {"image": png_url(image), "digit": digit, "probs": own_probs(s)}


@functools.lru_cache(maxsize=4)
def probe_images(data_root: str | None = None) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The ``PROBE_INDICES`` test digits as PNG data URLs, and their labels (empty without MNIST)."""
    try:
        mnist = mdata.load_mnist(data_root)
    except Exception:  # no MNIST here (training off): no grid  # noqa: BLE001
        return (), ()
    urls = [png_url(mnist.test_images[i].numpy() / 255) for i in PROBE_INDICES]
    return tuple(urls), tuple(int(mnist.test_labels[i]) for i in PROBE_INDICES)


def _num(v):
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


def loss_points(s: RunState) -> list[list]:
    """[epochs done, seconds, loss] of every training-loss point of a run (/status's running_loss)."""
    seconds = s.loss_seconds + [None] * (len(s.loss_points) - len(s.loss_seconds))
    return [[round(x, 4), t, _num(loss)] for (x, loss), t in zip(s.loss_points, seconds)]


def val_points(s: RunState) -> list[list]:
    """[epochs done, seconds, val acc, val loss, train acc] of every validation point (/status's history)."""
    return [[h.get("epoch"), _num(h.get("elapsed")), _num(h.get("val_acc")), _num(h.get("val_loss")),
             _num(h.get("train_acc"))] for h in s.history]


def progress_data(s: RunState | None, position: int | None = None, starts_in: float | None = None) -> dict | None:
    """What curves.js shows above the charts: the queue place and countdown, or epoch, batch and ETA."""
    if s is None or s.kind == "upload":
        return None
    return {"state": s.state, "position": position, "starts_in": None if starts_in is None else round(starts_in, 1),
            "epoch": s.epoch, "passes": math.ceil(s.epochs) if s.epochs else 0, "epochs": s.epochs,
            "batch": s.batch, "batches": s.batches, "done": round(s.done, 4),
            "eta": None if s.eta_seconds is None else round(s.eta_seconds, 1), "elapsed": round(s.elapsed, 1)}


def captions(s: RunState | None) -> dict:
    """The words under each chart: the latest values, and why the training loss sits above the validation loss."""
    if s is None:
        return {"loss": say("cap_click_train"), "acc": ""}
    loss = acc = ""
    if s.loss_points:
        x, value = s.loss_points[-1]
        loss = say("cap_train_loss", value=f"{value:.3f}", epoch=f"{x:.2f}")
    last = s.history[-1] if s.history else None
    if last is not None and last.get("val_loss") is not None:
        loss += say("cap_val_loss", value=f"{last['val_loss']:.3f}")
    smoothing = (s.config or {}).get("label_smoothing") or 0
    if smoothing and s.kind == "training":
        loss += say("cap_smoothing", smoothing=f"{smoothing:g}")
    if last is not None and last.get("val_acc") is not None:
        images = last.get("val_images") or 0
        what = say("cap_val_all", images=f"{images:,}") if last.get("epoch_end") and s.ended else \
            say("cap_val_some", images=f"{images:,}") if images else say("cap_val_the")
        acc = say("cap_val", acc=f"{last['val_acc']:.2%}", epoch=f"{last['epoch']:g}", what=what)
    elif s.state == "running":
        acc = say("cap_first_val")
    return {"loss": loss, "acc": acc}


def reset_value(series: list[dict], seed_models: list[str], overlay: bool = False, progress: dict | None = None,
                probe: dict | None = None, caption: dict | None = None) -> dict:
    """A whole picture: every series' points (name, loss, val)."""
    return {"seq": next(_SEQ), "reset": True, "series": series, "seed_models": seed_models, "overlay": overlay,
            "progress": progress, "probe": probe, "caption": caption or {}}


def run_series(s: RunState) -> dict:
    """One run as a series of the chart."""
    return {"name": run_name(s), "loss": loss_points(s), "val": val_points(s)}


class LiveFeed:
    """What one live view has sent of its run, so that each update carries only what is new."""

    def __init__(self, data_root=None) -> None:
        self.data_root = data_root
        self.run_key = None
        self.loss_sent = self.val_sent = 0
        self.answers = None
        self.own = None

    def update(self, run_key, s: RunState | None, position: int | None = None,
               starts_in: float | None = None) -> dict:
        """The next value for the live chart: a reset for a new run, else the new points since the last."""
        progress = progress_data(s, position, starts_in)
        if s is None:
            self.run_key = None
            return reset_value([], [], progress=None, caption=captions(None))
        answers = s.history[-1].get("probe") if s.history else None
        if run_key != self.run_key:
            self.run_key = run_key
            images, labels = probe_images(self.data_root) if s.kind != "upload" else ((), ())
            value = reset_value([run_series(s)], [s.model], progress=progress, caption=captions(s),
                                probe={"images": list(images), "labels": list(labels), "answers": answers,
                                       "own": own_value(s)})
        else:
            loss, val = loss_points(s), val_points(s)
            value = {"seq": next(_SEQ), "add": {"loss": loss[self.loss_sent:], "loss_from": self.loss_sent,
                                                "val": val[self.val_sent:], "val_from": self.val_sent},
                     "progress": progress, "caption": captions(s)}
            if answers is not None and answers != self.answers:
                value["answers"] = answers
            if s.own and own_probs(s) != self.own:
                value["own"] = own_probs(s)
        self.loss_sent, self.val_sent, self.answers = len(s.loss_points), len(s.history), answers
        self.own = own_probs(s) if s.own else None
        return value


def overlay_value(runs: list[RunState]) -> dict:
    """The overlay: every ticked run in the same charts (training loss, validation accuracy), each its colour."""
    return reset_value([run_series(s) for s in runs], sorted({s.model for s in runs}), overlay=True,
                       caption={"loss": say("cap_overlay_loss"),
                                "acc": say("cap_overlay_acc") if runs else say("cap_overlay_tick")})
