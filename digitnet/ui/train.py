"""The Train tab: the visitor queues a run, watches it (pushed to their tab only), compares their runs.

Live updates are a streaming event that starts with the Train click (or a fine-tune click
on the Draw tab) and ends with the run: the server pushes each change to the tab of the
run's owner, and an idle tab asks for nothing.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import asdict, dataclass
from typing import Callable

import gradio as gr
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..checkpoint import CheckpointError
from ..models import DISPLAY_NAMES
from ..scheduler import QueueFull, RunState, TrainingDisabled
from ..training import FAST_RECIPES, SEED_RECIPE, Setting, TrainConfig, misclassified_images, visitor_settings
from ..workspace import AlreadyTraining, Workspace, run_status
from .common import STATE_ICONS, Context, enlarge, percent, visitor_handler
from .answer import page_weights
from .draw import DOWNLOADS, DrawTab, weights_view

# The form's controls and /train's keywords: TrainConfig's visitor settings, in field order.
FORM = visitor_settings(TrainConfig)
# What a preset fills in: the recipe, not the visitor's choice of model and seed.
PRESET = [s for s in FORM if s.name not in ("model", "seed")]
GALLERY_SCALE = 3  # misclassified digits at 84x84
MISCLASSIFIED_SHOWN = 24
WATCH_SECONDS = 0.5  # how often the live view looks at its run (server side: no request from the tab)
ETA_STEP_SECONDS = 5  # a waiting visitor's start estimate is redrawn when it moves by this much
OVERLAY_DEFAULT = 4  # runs ticked in the overlay at most by default (the latest ones)
START_WAIT_SECONDS = 1.0  # /train waits at most this long for a run that starts at once


# ------------------------------------------------------------------------------ pure functions


def progress_html(s: RunState | None, position: int | None = None, starts_in: float | None = None) -> str:
    """A progress bar plus "epoch 2/5 · batch 150/430 · ETA 0:42", or the queue position while waiting."""
    if s is None or s.kind == "upload":
        return ""
    if s.state == "queued":
        when = "" if starts_in is None else f" · starts in about {clock(starts_in)}"
        return f"<div>🕒 waiting: number {position} in the queue{when}</div>" if position else ""
    if s.epochs == 0:
        return ""
    done = s.state == "done"
    frac = 1.0 if done else s.done / s.epochs
    parts = [f"epoch {max(s.epoch, 1)}/{s.epochs:g}"]
    if s.batches:
        parts.append(f"batch {s.batch}/{s.batches}")
    if s.state == "running" and s.eta_seconds is not None:
        parts.append(f"ETA {clock(s.eta_seconds)}")
    elif s.state == "running":
        parts.append("loading data...")
    return (f'<progress value="{frac:.4f}" max="1" style="width:100%"></progress>'
            f'<div>{" · ".join(parts)}</div>')


def clock(seconds: float) -> str:
    """75.2 -> '1:15'."""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"


def status_line(s: RunState | None) -> str:
    """The one-line status: icon, the run, its state, its message."""
    if s is None:
        return f"{STATE_ICONS['idle']} **idle** · Pick a model and click Train: your run joins the queue."
    return f"{STATE_ICONS.get(s.state, '')} **{s.title()} · {s.state}** · {s.message}"


def loss_frame(s: RunState | None) -> pd.DataFrame:
    """Running train loss (several points per epoch) and validation loss (one per epoch)."""
    rows = [] if s is None else [(x, loss, "train (running)") for x, loss in s.loss_points]
    if s is not None:
        rows += [(float(h["epoch"]), h["val_loss"], "validation") for h in s.history if h.get("val_loss") is not None]
    return pd.DataFrame(rows, columns=["epoch", "loss", "curve"]).astype(
        {"epoch": "float64", "loss": "float64", "curve": "string"})


def accuracy_frame(s: RunState | None) -> pd.DataFrame:
    """Train and validation accuracy per epoch, in percent."""
    rows = []
    for h in [] if s is None else s.history:
        rows.append((float(h["epoch"]), 100.0 * h["train_acc"], "train"))
        if h.get("val_acc") is not None:
            rows.append((float(h["epoch"]), 100.0 * h["val_acc"], "validation"))
    return pd.DataFrame(rows, columns=["epoch", "accuracy", "curve"]).astype(
        {"epoch": "float64", "accuracy": "float64", "curve": "string"})


def curve_captions(s: RunState | None) -> tuple[str, str]:
    """Captions under the loss and accuracy plots, e.g. "train loss 0.084 at epoch 2.35".

    They change with every new point, which also matters to Gradio 6.31's plot: it fixes the
    colour legend's categories when the chart is (re)built and only swaps the data on a plain
    value update, so a chart that started empty would never draw its lines. A changed caption
    makes it rebuild the chart with the current categories.
    """
    running = s is not None and s.state == "running"
    if s is None or not s.loss_points:
        loss = "train loss: no batches yet" if running else "no run yet"
    else:
        x, value = s.loss_points[-1]
        loss = f"train loss {value:.3f} at epoch {x:.2f}"
        if s.history and s.history[-1].get("val_loss") is not None:
            loss += f" · validation loss {s.history[-1]['val_loss']:.3f}"
    if s is None or not s.history:
        acc = "accuracy appears after the first epoch" if running else "no run yet"
    else:
        h = s.history[-1]
        acc = f"epoch {h['epoch']}: train {h['train_acc']:.2%}"
        if h.get("val_acc") is not None:
            acc += f" · validation {h['val_acc']:.2%}"
    return loss, acc


def curve_plots(s: RunState | None) -> tuple[gr.LinePlot, gr.LinePlot]:
    """The loss and accuracy plots of one run, x from 0 to its last epoch."""
    x_max = float(max(s.epochs if s is not None else 1, 1))
    loss_caption, acc_caption = curve_captions(s)
    return (gr.LinePlot(value=plot_value(loss_frame(s)), x_lim=[0.0, x_max], caption=loss_caption),
            gr.LinePlot(value=plot_value(accuracy_frame(s)), x_lim=[0.0, x_max], caption=acc_caption))


def plot_value(frame: pd.DataFrame) -> pd.DataFrame | None:
    """A plot's value: None rather than an empty frame. Gradio 6.31's LinePlot that once held an empty
    frame draws no lines for its first data (the axes move, the colour scale stays empty); one that
    held None draws them."""
    return None if frame.empty else frame


def confusion_image(confusion: list[list[int]]) -> np.ndarray:
    """A 10x10 heatmap of counts (rows = true digit, columns = prediction) as an RGBA image.

    Drawn with matplotlib's object API (no pyplot state, so safe in any thread).
    """
    cm = np.asarray(confusion)
    fig = Figure(figsize=(5, 4.4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    # Log-ish colour so the few mistakes show next to the ~1,000 correct ones on the diagonal.
    im = ax.imshow(np.log1p(cm), cmap="Blues")
    threshold = np.log1p(cm).max() / 2
    for t in range(10):
        for p in range(10):
            if cm[t, p]:
                ax.text(p, t, str(cm[t, p]), ha="center", va="center", fontsize=7,
                        color="white" if np.log1p(cm[t, p]) > threshold else "black")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (test set)")
    fig.colorbar(im, ax=ax, label="log(1 + count)")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def results_markdown(s: RunState | None) -> str:
    """Test accuracy of a finished run, or why there is none."""
    if s is None or s.state in ("queued", "running"):
        return "Results appear here when a run finishes."
    if s.state != "done" or s.result is None:
        return "The last run did not finish: no test results, and your drawings keep their weights."
    r = s.result
    wrong = total = 0
    if r.confusion:
        total = sum(sum(row) for row in r.confusion)
        wrong = total - sum(r.confusion[i][i] for i in range(10))
    what = f"{DISPLAY_NAMES[s.model]} fine-tuned on your digits" if s.kind == "finetune" else DISPLAY_NAMES[s.model]
    return (f"### {s.title().split(':')[0]}, {what}: test accuracy **{r.test_acc:.2%}**\n"
            f"{wrong} of {total:,} test digits misread · trained in {r.train_seconds:.0f} s · your drawings "
            "use these weights now (Draw tab); download them below.")


def settings_text(s: RunState) -> str:
    """A run's settings in a few words: "2 ep · adamw lr 0.005 · onecycle · batch 128"."""
    c = s.config
    if s.kind == "upload":
        return "loaded from a file"
    if s.kind == "finetune":
        return f"fine-tune: {c.get('epochs')}x{c.get('steps_per_epoch')} steps, lr {c.get('lr')}"
    text = f"{c.get('epochs')} ep · {c.get('optimizer')} lr {c.get('lr'):g} · {c.get('schedule')} · batch {c.get('batch_size')}"
    if c.get("dropout"):
        text += f" · dropout {c['dropout']:g}"
    if c.get("augment"):
        text += " · augmented"
    return text


def runs_frame(ws: Workspace) -> pd.DataFrame:
    """The visitor's run history: one row per run, newest first."""
    rows = []
    for run in reversed(ws.runs()):
        s = run.snapshot()
        time_text = "" if s.train_seconds is None else f"{s.train_seconds:.0f} s"
        rows.append((s.number, DISPLAY_NAMES[s.model], settings_text(s), s.state, percent(s.test_acc), time_text))
    return pd.DataFrame(rows, columns=["run", "model", "settings", "state", "test acc", "time"])


def overlay_choices(ws: Workspace) -> list[tuple[str, str]]:
    """The runs with curves to overlay: (title, run number)."""
    return [(s.title(), str(s.number)) for s in (r.snapshot() for r in ws.runs()) if s.history]


def overlay_frame(ws: Workspace, selected: list[str] | None) -> pd.DataFrame:
    """Validation accuracy per epoch of the selected runs, one colour per run."""
    rows = []
    for run in ws.runs():
        s = run.snapshot()
        if str(s.number) not in (selected or []):
            continue
        label = f"run {s.number}"  # plain words: the settings are in the run table and the caption
        rows += [(float(h["epoch"]), 100.0 * h["val_acc"], label) for h in s.history if h.get("val_acc") is not None]
    return pd.DataFrame(rows, columns=["epoch", "val_acc", "run"]).astype(
        {"epoch": "float64", "val_acc": "float64", "run": "string"})


def overlay_plot(ws: Workspace, selected: list[str] | None) -> gr.LinePlot:
    """The overlay plot of the selected runs (its caption names them, so the chart rebuilds its legend)."""
    frame = overlay_frame(ws, selected)
    shown = [run.snapshot() for run in ws.runs() if str(run.number) in (selected or [])]
    caption = "tick runs above to compare their curves" if frame.empty else \
        " · ".join(f"run {r.number}: {DISPLAY_NAMES[r.model]}, {settings_text(r)}" for r in shown)
    return gr.LinePlot(value=plot_value(frame), caption=caption)


def default_overlay(ws: Workspace, selected: list[str] | None) -> list[str]:
    """What is ticked: the visitor's ticks that still exist plus their latest run (else the latest few runs)."""
    available = [value for _, value in overlay_choices(ws)]
    kept = [v for v in (selected or []) if v in available]
    latest = ws.latest()
    if kept and latest is not None and str(latest.number) in available and str(latest.number) not in kept:
        kept.append(str(latest.number))  # a run that just ended joins the comparison
    return kept or available[-OVERLAY_DEFAULT:]


# ------------------------------------------------------------------------------ handlers


def with_form_parameters(fn: Callable) -> Callable:
    """Give ``fn(ctx, ws, *values, **params)`` the form's settings as its visible parameters (names,
    TrainConfig's defaults and types): Gradio counts them to pass the form's values, and ``gr.api``
    documents them as ``/train``'s keywords."""
    fn.__signature__ = inspect.Signature([
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Context),
        inspect.Parameter("ws", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Workspace),
        *(inspect.Parameter(s.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation(s),
                            default=inspect.Parameter.empty if s.required else s.default) for s in FORM),
    ], return_annotation=fn.__annotations__.get("return", inspect.Signature.empty))
    fn.__annotations__ = {"ctx": Context, "ws": Workspace, **{s.name: annotation(s) for s in FORM},
                          **{k: v for k, v in fn.__annotations__.items() if k == "return"}}
    return fn


def annotation(s: Setting) -> type:
    """A setting's type as a parameter annotation (``int | None`` where None is allowed)."""
    return s.kind | None if s.optional else s.kind


def form_values(values: tuple, params: dict) -> dict:
    """The settings a handler with the form's parameters was called with, by name."""
    return {**dict(zip((s.name for s in FORM), values)), **params}


@with_form_parameters
def train_click(ctx: Context, ws: Workspace, *values, **params) -> str:
    """The Train button: queue the visitor's run, or say clearly why not."""
    try:
        run = ws.train(**form_values(values, params))
    except (AlreadyTraining, TrainingDisabled, QueueFull, ValueError) as exc:
        gr.Warning(str(exc))
        return f"⚠️ {exc} Nothing new was queued."
    if ctx.scheduler.starts_now(run):  # an empty queue: it starts now, say so
        run.wait_started(START_WAIT_SECONDS)
    position = ctx.scheduler.position(run)
    if position is None:
        return f"Your {run.snapshot().title()} is training."
    return f"Queued as your {run.snapshot().title()} (number {position} in the queue)."


def stop_click(ctx: Context, ws: Workspace) -> str:
    """The Stop button: take the visitor's run out of the queue, or stop it before its next batch."""
    s = ws.stop()
    if s is None:
        return "You have no run waiting or running."
    return s.message


def view(ctx: Context, ws: Workspace, selected: list[str] | None, results: bool = True) -> tuple:
    """Everything the Train tab shows of the visitor's latest run, their runs, and the Draw tab's weights."""
    run = ws.latest()
    s = None if run is None else run.snapshot()
    position = None if run is None else ctx.scheduler.position(run)
    starts_in = None if run is None else ctx.scheduler.seconds_until_start(run)
    loss, acc = curve_plots(s)
    if not results:
        done = (gr.skip(),) * 3
    elif s is not None and s.state == "done" and s.result is not None and s.result.confusion:
        gallery = [(enlarge(img, GALLERY_SCALE), caption)
                   for img, caption in misclassified_images(s.result, ctx.data_root, MISCLASSIFIED_SHOWN)]
        done = (results_markdown(s), confusion_image(s.result.confusion), gallery)
    else:
        done = (results_markdown(s), None, [])
    ticked = default_overlay(ws, selected)
    return (status_line(s), progress_html(s, position, starts_in), loss, acc, *done, runs_frame(ws),
            gr.CheckboxGroup(choices=overlay_choices(ws), value=ticked), overlay_plot(ws, ticked))


async def watch(ctx: Context, ws: Workspace, selected: list[str] | None, model: str):
    """Stream the visitor's latest run to their tab until it ends (server-side checks, no polling by the tab);
    when it ends, its weights go to the page (the Draw tab's answer panel)."""
    run = ws.latest()
    if run is None:
        yield (*view(ctx, ws, selected), *weights_view(ws, model), gr.skip())
        return
    last = None
    while True:
        s = run.snapshot()
        starts_in = ctx.scheduler.seconds_until_start(run)
        key = (s.version, ctx.scheduler.position(run), None if starts_in is None else round(starts_in / ETA_STEP_SECONDS))
        if s.ended:
            # The run's weights (adopted by the workspace as it ended) go to the page, which draws with them.
            yield (*view(ctx, ws, selected), *weights_view(ws, model), page_weights(ws, [s.model]))
            # Once more without the results panel: Gradio 6.31's chart could drop the update that
            # carried the last epoch when it coincided with the results panel's redraw.
            await asyncio.sleep(WATCH_SECONDS)
            yield (*view(ctx, ws, selected, results=False), gr.skip(), gr.skip(), gr.skip())
            return
        if key != last:
            last = key
            yield (*view(ctx, ws, selected, results=False), gr.skip(), gr.skip(), gr.skip())
        await asyncio.sleep(WATCH_SECONDS)


def show_overlay(ctx: Context, ws: Workspace, selected: list[str] | None) -> gr.LinePlot:
    """The overlay ticks changed: redraw the overlay plot."""
    return overlay_plot(ws, selected)


def download_weights(ctx: Context, ws: Workspace, model: str):
    """The weights the visitor draws with for ``model``, as a checkpoint file to download."""
    w = ws.in_use(model)
    name = f"{model}-{'shipped' if w.run is None else f'run{w.run}'}.pt"
    path = DOWNLOADS.new_file(name)
    path.write_bytes(ws.export(model))
    return gr.File(value=str(path), visible=True)


def upload_weights(ctx: Context, ws: Workspace, file) -> tuple[str, str]:
    """Load a checkpoint file: it joins the visitor's runs, their drawings use it for its model (pushed to the page)."""
    if file is None:
        raise gr.Error("No file was uploaded.")
    try:
        run = ws.load(file)
    except CheckpointError as exc:
        raise gr.Error(str(exc)) from exc
    s = run.snapshot()
    return (f"Loaded as your {s.title()} ({percent(s.test_acc)} on MNIST test): your drawings use it now.",
            page_weights(ws, [s.model]))


def preset(ctx: Context, model: str, recipe: dict) -> tuple:
    """The form's ``PRESET`` values of ``recipe`` for ``model`` (TrainConfig's defaults, the model's fast
    recipe, where it says nothing), epochs capped by the deployment."""
    values = asdict(TrainConfig(**{**recipe, "model": model}))
    values["epochs"] = min(values["epochs"], ctx.max_epochs)
    return tuple(values[s.name] for s in PRESET)


def fast_preset(ctx: Context, model: str) -> tuple:
    """The fast recipe for ``model``: TrainConfig's defaults."""
    return preset(ctx, model, {})


def seed_preset(ctx: Context, model: str) -> tuple:
    """The seed article's recipe (SGD + StepLR, 20 epochs, capped by the deployment)."""
    return preset(ctx, model, SEED_RECIPE)


def follow_model(ctx: Context, model: str, *values) -> tuple:
    """The visitor picked another model: a form still showing some model's fast recipe shows the new
    model's (FAST_RECIPES: CNNNet one epoch, LeNet 1.5, the MLP two); any other form stays."""
    shown = tuple(values)
    if any(shown == fast_preset(ctx, m) for m in FAST_RECIPES):
        return fast_preset(ctx, model)
    return tuple(gr.skip() for _ in PRESET)


# ---- the documented API: typed, keyword-callable (scripts call it by these names) --------------------------------------

@with_form_parameters
def train(ctx: Context, ws: Workspace, *values, **params) -> dict:
    """Queue a training run for this session and return at once with its /status (queued with position, or running)."""
    try:
        run = ws.train(**form_values(values, params))
    except (AlreadyTraining, TrainingDisabled, QueueFull, ValueError) as exc:
        raise gr.Error(str(exc)) from exc
    if ctx.scheduler.starts_now(run):  # an empty queue: answer "running", not "queued" for a millisecond
        run.wait_started(START_WAIT_SECONDS)
    return run_status(ws)


def status(ctx: Context, ws: Workspace) -> dict:
    """This session's latest run: state (idle, queued, running, done, stopped, error), model, epoch, epochs,
    history, test_acc, message, and its queue position while it waits."""
    return run_status(ws)


def stop(ctx: Context, ws: Workspace) -> dict:
    """Stop this session's run (or take it out of the queue); returns its /status once it has stopped."""
    ws.stop()
    return run_status(ws)


# ------------------------------------------------------------------------------ the tab


def control(s: Setting, max_epochs: int, interactive: bool) -> gr.components.Component:
    """The form's control for one setting, showing TrainConfig's default for the default model: a choice
    is a radio, a yes/no a checkbox, a number with a step a slider (over its bounds; epochs up to this
    deployment's cap), any other number a box."""
    value = getattr(TrainConfig(), s.name)
    common = dict(label=s.label[0].upper() + s.label[1:], interactive=interactive)
    if s.choices:
        return gr.Radio(list(s.choices), value=value, **common)
    if s.kind is bool:
        return gr.Checkbox(value, **common)
    if s.step is not None:
        top = max_epochs if s.hi == "max_epochs" else s.hi
        info = f"at most {max_epochs} here (DIGITNET_MAX_EPOCHS)" if s.hi == "max_epochs" else None
        return gr.Slider(s.lo, top, value=min(value, top), step=s.step, info=info, **common)
    return gr.Number(value, precision=0 if s.kind is int else None, **common)


@dataclass
class TrainTab:
    """The Train tab's live view (what a run's stream updates)."""

    view: list
    overlay_pick: gr.CheckboxGroup


def build(ctx: Context, draw: DrawTab) -> TrainTab:
    """Create the Train tab's components inside the caller's ``gr.Tab`` and wire its events and API."""
    bind = lambda fn: visitor_handler(fn, ctx)  # noqa: E731
    allow, cap = ctx.allow_training, ctx.max_epochs
    if not allow:
        gr.Markdown("### Training is turned off here\nThis deployment serves the shipped models only "
                    "(`DIGITNET_ALLOW_TRAINING=0`). Run the app on your own machine to train: `python app.py`.")
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            controls = {c.name: control(c, cap, allow) for c in FORM if not c.advanced}
            advanced = [c for c in FORM if c.advanced]
            with gr.Accordion("More settings: " + ", ".join(c.label for c in advanced), open=False):
                controls.update({c.name: control(c, cap, allow) for c in advanced})
            with gr.Row():
                fast_btn = gr.Button("Fast recipe", size="sm", interactive=allow)
                seed_btn = gr.Button("The seed article's recipe", size="sm", interactive=allow)
            with gr.Row():
                train_btn = gr.Button("Train", variant="primary", interactive=allow)
                stop_btn = gr.Button("Stop", variant="stop", interactive=allow)
            form_msg = gr.Markdown()
        with gr.Column(scale=2):
            status_md = gr.Markdown(status_line(None), elem_id="train-status")
            progress = gr.HTML()
            with gr.Row():
                loss_plot = gr.LinePlot(None, x="epoch", y="loss", color="curve", label="Loss",
                                        x_title="epoch", y_title="loss")
                acc_plot = gr.LinePlot(None, x="epoch", y="accuracy", color="curve",
                                       label="Accuracy (%)", x_title="epoch", y_title="accuracy (%)")
            results_md = gr.Markdown(results_markdown(None))
            confusion = gr.Image(label="Confusion matrix", interactive=False, buttons=["download"], format="png")
            # Four columns leave room for the whole caption "true 4, predicted 9 (87%)".
            gallery = gr.Gallery(label="Most confident mistakes", elem_id="misclassified", columns=4, height=480,
                                 object_fit="contain")
    with gr.Accordion("Your runs: compare their curves", open=True):
        runs_df = gr.Dataframe(runs_frame_empty(), label="Your runs (newest first)", interactive=False, wrap=True,
                               elem_id="runs-table")
        overlay_pick = gr.CheckboxGroup([], value=[], label="Overlay these runs", elem_id="overlay-pick")
        overlay = gr.LinePlot(None, x="epoch", y="val_acc", color="run",
                              label="Validation accuracy of your runs (%)", x_title="epoch",
                              y_title="validation accuracy (%)", elem_id="overlay-plot")
    with gr.Accordion("Your models: download or load weights", open=False):
        gr.Markdown("Download the weights your drawings use for the model selected on the left (the same "
                    "checkpoint format as the shipped ones), or load a checkpoint file saved earlier.")
        with gr.Row():
            download_btn = gr.Button("Download these weights")
            upload_btn = gr.UploadButton("Load weights from a file", file_types=[".pt"], type="filepath")
        weights_file = gr.File(label="Weights, ready to download", visible=False, interactive=False)
        weights_msg = gr.Markdown()

    # ---- wiring ----------------------------------------------------------------------------------
    form = [controls[c.name] for c in FORM]
    presets = [controls[c.name] for c in PRESET]
    live = [status_md, progress, loss_plot, acc_plot, results_md, confusion, gallery, runs_df, overlay_pick, overlay,
            draw.weights_md, draw.weights_pick, draw.panel]
    private = dict(api_visibility="private")
    stream = dict(show_progress="hidden", concurrency_limit=None, **private)
    seed_btn.click(lambda model: seed_preset(ctx, model), controls["model"], presets, queue=False, **private)
    fast_btn.click(lambda model: fast_preset(ctx, model), controls["model"], presets, queue=False, **private)
    controls["model"].input(lambda model, *values: follow_model(ctx, model, *values), [controls["model"], *presets],
                            presets, queue=False, **private)
    train_btn.click(bind(train_click), form, form_msg, concurrency_limit=None, **private).then(
        bind(watch), [overlay_pick, draw.model], live, **stream)
    draw.finetune_event.then(bind(watch), [overlay_pick, draw.model], live, **stream)
    stop_btn.click(bind(stop_click), None, form_msg, concurrency_limit=None, **private)
    overlay_pick.input(bind(show_overlay), overlay_pick, overlay, concurrency_limit=None, **private)
    download_btn.click(bind(download_weights), controls["model"], weights_file, concurrency_limit=None, **private)
    upload_btn.upload(bind(upload_weights), upload_btn, [weights_msg, draw.panel], concurrency_limit=None,
                      **private).then(
        bind(watch), [overlay_pick, draw.model], live, **stream)

    gr.api(bind(train), api_name="train", concurrency_limit=None)
    gr.api(bind(status), api_name="status", concurrency_limit=None)
    gr.api(bind(stop), api_name="stop", concurrency_limit=None)
    return TrainTab(view=live, overlay_pick=overlay_pick)


def runs_frame_empty() -> pd.DataFrame:
    """The run table's columns, no rows."""
    return pd.DataFrame(columns=["run", "model", "settings", "state", "test acc", "time"])
