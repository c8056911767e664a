"""The Train tab: the visitor queues a run, watches it (pushed to their tab only), compares their runs.

Live updates are a streaming event that starts with the Train click (or a fine-tune click
on the Draw tab) and ends with the run: the server pushes each change to the tab of the
run's owner, and an idle tab asks for nothing. Its folds have modules of their own: the seed article's
mistakes (``mistakes.py``), the runs table and the overlay of their curves (``runs.py``), and the weights as
files, downloaded or loaded (``weight_files.py``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
from dataclasses import asdict
from typing import Callable

import gradio as gr
import numpy as np
from matplotlib.figure import Figure

from ..models import DEFAULT_MODEL, DISPLAY_NAMES
from ..scheduler import QueueFull, Run, RunState, TrainingDisabled
from ..training import FAST_RECIPES, SEED_RECIPE, Setting, TrainConfig, visitor_settings
from .gallery import misclassified_images
from ..workspace import AlreadyTraining, Workspace, run_status
from . import curves, facts, words
from . import runs as runs_ui
from . import weight_files
from .facts import run_message, run_title
from .words import say, t
from .common import STATE_ICONS, Context, enlarge, visitor_handler
from .answer import page_weights
from .mistakes import MISTAKES
from .mistakes import fold as mistakes_fold
from .draw import DrawTab, weights_view

# The form's controls and /train's keywords: TrainConfig's visitor settings, in field order.
FORM = visitor_settings(TrainConfig)
# What a preset fills in: the recipe, not the visitor's choice of model and seed.
PRESET = [s for s in FORM if s.name not in ("model", "seed", *MISTAKES)]  # a preset leaves the mistakes be
GALLERY_SCALE = 3  # misclassified digits at 84x84
MISCLASSIFIED_SHOWN = 24
WATCH_SECONDS = 0.5  # how often the live view looks at its run (server side: no request from the tab)
ETA_STEP_SECONDS = 5  # a waiting visitor's start estimate is redrawn when it moves by this much
START_WAIT_SECONDS = 1.0  # /train waits at most this long for a run that starts at once


# ------------------------------------------------------------------------------ pure functions


def clock(seconds: float) -> str:
    """75.2 -> '1:15'."""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"


def status_line(s: RunState | None) -> str:
    """The one-line status: icon, the run, its state, its message."""
    if s is None:
        return say("status_idle_line")
    return f"{STATE_ICONS.get(s.state, '')} **{run_title(s)} · {say('state_' + s.state)}** · {run_message(s)}"


def confusion_figure(confusion: list[list[int]]) -> Figure:
    """A 10x10 heatmap of counts (rows = true digit, columns = prediction), for the page's ``gr.Plot``.

    Numbers only (the digits on both axes, the counts in the cells): the picture is the same in every language,
    and its meaning is the caption beside it (``confusion_caption``, in the page's language; a Space has no
    font for Chinese). Drawn with matplotlib's object API (no pyplot state, so safe in any thread).
    """
    cm = np.asarray(confusion)
    fig = Figure(figsize=(4.4, 4.4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    # Log-ish colour so the few mistakes show next to the ~1,000 correct ones on the diagonal.
    ax.imshow(np.log1p(cm), cmap="Blues")
    threshold = np.log1p(cm).max() / 2
    for t in range(10):
        for p in range(10):
            if cm[t, p]:
                ax.text(p, t, str(cm[t, p]), ha="center", va="center", fontsize=7,
                        color="white" if np.log1p(cm[t, p]) > threshold else "black")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.xaxis.set_ticks_position("top")  # the answers along the top, as the caption reads: rows, then columns
    ax.tick_params(length=0)
    return fig


def results_markdown(s: RunState | None) -> str:
    """Test accuracy of a finished run, or why there is none."""
    if s is None or s.state in ("queued", "running"):
        return say("results_none")
    if s.state != "done" or s.result is None:
        return say("results_unfinished")
    r = s.result
    wrong = total = 0
    if r.confusion:
        total = sum(sum(row) for row in r.confusion)
        wrong = total - sum(r.confusion[i][i] for i in range(10))
    name = DISPLAY_NAMES[s.model]
    what = say("finetuned_on_yours", name=name) if s.kind == "finetune" else name
    return say("results_line", run=say("run_number", number=s.number), what=what, acc=f"{r.test_acc:.2%}",
               wrong=wrong, total=f"{total:,}", seconds=f"{r.train_seconds:.0f}")


# ------------------------------------------------------------------------------ handlers


def with_form_parameters(fn: Callable) -> Callable:
    """Give ``fn(ctx, ws, *values, **params)`` the form's settings as its visible parameters (names,
    TrainConfig's defaults and types): Gradio counts them to pass the form's values, and ``gr.api``
    documents them as ``/train``'s keywords. Parameters ``fn`` names between ``ws`` and ``*values`` come first."""
    lead = [p for p in list(inspect.signature(fn).parameters.values())[2:] if p.kind == p.POSITIONAL_OR_KEYWORD]
    fn.__signature__ = inspect.Signature([
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Context),
        inspect.Parameter("ws", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Workspace),
        *lead,
        *(inspect.Parameter(s.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation(s),
                            default=inspect.Parameter.empty if s.required else s.default) for s in FORM),
    ], return_annotation=fn.__annotations__.get("return", inspect.Signature.empty))
    fn.__annotations__ = {"ctx": Context, "ws": Workspace, **{p.name: p.annotation for p in lead},
                          **{s.name: annotation(s) for s in FORM},
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
        gr.Warning(facts.refusal(exc))
        return say("train_refused", reason=facts.refusal(exc))
    if ctx.scheduler.starts_now(run):  # an empty queue: it starts now, say so
        run.wait_started(START_WAIT_SECONDS)
    position = ctx.scheduler.position(run)
    if position is None:
        return say("train_running", title=run_title(run.snapshot()))
    return say("train_queued", title=run_title(run.snapshot()), position=position)


# The Train button hands over the visitor's last drawing as the page read it (answer.js), to follow during the run.
OWN_DRAWING_JS = """(own, ...form) => {
  const a = window.DigitNetAnswer, x = a && a.seen(), answer = a && a.latest();
  return [x && answer && answer.digit !== null ? JSON.stringify({x, digit: answer.digit}) : '', ...form];
}"""
OWN_DRAWING_MAX_CHARS = 64_000  # 784 numbers as JSON take ~16,000


def own_drawing(value: str | None) -> tuple[np.ndarray, int] | None:
    """The page's drawing, ``{"x": 784 numbers in 0..1, "digit": 0-9}`` as JSON, as (28x28, digit); None for
    anything else (no drawing, a blank one, a malformed or oversized value): the run then just has no strip."""
    if not isinstance(value, str) or not value or len(value) > OWN_DRAWING_MAX_CHARS:
        return None
    try:
        d = json.loads(value)
        x, digit = np.asarray(d["x"], dtype=np.float32), d["digit"]
    except (ValueError, TypeError, KeyError):
        return None
    if x.shape != (784,) or not np.isfinite(x).all() or x.min() < 0 or x.max() > 1 or x.max() == 0:
        return None
    if not isinstance(digit, int) or isinstance(digit, bool) or not 0 <= digit <= 9:
        return None
    return x.reshape(28, 28), digit


@with_form_parameters
def train_click_drawing(ctx: Context, ws: Workspace, own: str | None, *values) -> str:
    """The Train button with the visitor's last drawing, which the run's view follows beside the test digits."""
    return train_click(ctx, ws, *values, own=own_drawing(own))


def stop_click(ctx: Context, ws: Workspace) -> str:
    """The Stop button: take the visitor's run out of the queue, or stop it before its next batch."""
    s = ws.stop()
    if s is None:
        return say("stop_none")
    return run_message(s)


def view(ctx: Context, ws: Workspace, selected: list[str] | None, feed: curves.LiveFeed | None = None,
         results: bool = True, tables: bool = True) -> tuple:
    """What the Train tab shows of the visitor's latest run (the live chart gets only what ``feed`` has not
    sent), and, with ``tables``, their runs and the overlay."""
    run = ws.latest()
    s = None if run is None else run.snapshot()
    position = None if run is None else ctx.scheduler.position(run)
    starts_in = None if run is None else ctx.scheduler.seconds_until_start(run)
    feed = feed or curves.LiveFeed(ctx.data_root)  # a fresh one sends the whole picture
    live = feed.update(None if run is None else run.number, s, position, starts_in)
    if not results:
        done = (gr.skip(),) * 3
    elif s is not None and s.state == "done" and s.result is not None and s.result.confusion:
        shown = zip(misclassified_images(s.result, ctx.data_root, MISCLASSIFIED_SHOWN), s.result.misclassified)
        gallery = [(enlarge(img, GALLERY_SCALE), say("read_as", true=m["true"], pred=m["pred"], prob=f"{m['prob']:.0%}"))
                   for (img, _), m in shown]
        done = (results_markdown(s), confusion_figure(s.result.confusion), gallery)
    else:
        done = (results_markdown(s), None, [])
    if not tables:
        return (status_line(s), live, *done, gr.skip(), gr.skip(), gr.skip())
    return (status_line(s), live, *done, *runs_ui.tables(ws, selected))


async def watch(ctx: Context, ws: Workspace, selected: list[str] | None, model: str, train_model: str = DEFAULT_MODEL):
    """Stream the visitor's latest run to their tab until it ends (server-side checks, no polling by the tab).

    Each update carries the run's new points only; the run table and the overlay are redrawn when the
    run's state changes. The answers under Train (and under the Draw tab's fine-tune button) are cleared
    or replaced once they are out of date. When the run ends, its weights go to the page (the Draw tab's
    answer panel), which draws with them.
    """
    feed = curves.LiveFeed(ctx.data_root)
    run = ws.latest()
    if run is None:
        yield (*view(ctx, ws, selected, feed), gr.skip(), gr.skip(), *weights_view(ws, model),
               weight_files.download_file(ws, train_model), gr.skip())
        return
    last = state = None
    while True:
        s = run.snapshot()
        starts_in = ctx.scheduler.seconds_until_start(run)
        key = (s.version, ctx.scheduler.position(run), None if starts_in is None else round(starts_in / ETA_STEP_SECONDS))
        if s.ended:
            # "Your run 1: LeNet is training." is history now: the status line and the chart say how it ended.
            teach = run_message(s) if s.kind == "finetune" else gr.skip()
            yield (*view(ctx, ws, selected, feed), "", teach, *weights_view(ws, model), weight_files.download_file(ws, train_model),
                   page_weights(ws, [s.model]))
            return
        if key != last:
            changed = state is not None and s.state != state  # queued -> running: "Queued as ..." is out of date
            yield (*view(ctx, ws, selected, feed, results=last is None, tables=last is None or changed),
                   "" if changed else gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip())
            last, state = key, s.state
        await asyncio.sleep(WATCH_SECONDS)


def preset(ctx: Context, model: str, recipe: dict) -> tuple:
    """The form's ``PRESET`` values of ``recipe`` for ``model`` (TrainConfig's defaults, the model's fast
    recipe, where it says nothing), epochs capped by the deployment."""
    values = asdict(TrainConfig(**{**recipe, "model": model}))
    values["epochs"] = min(values["epochs"], ctx.max_epochs)
    return tuple(values[s.name] for s in PRESET)


def fast_preset(ctx: Context, model: str) -> tuple:
    """The fast recipe for ``model``: TrainConfig's defaults."""
    return preset(ctx, model, {})


def recipe_note(ctx: Context, model: str, seed: bool) -> str:
    """What the form's recipe is and how long it takes here (the queue's own estimate for such a run)."""
    recipe = SEED_RECIPE if seed else {}
    cfg = TrainConfig(**{**recipe, "model": model})
    cfg.epochs = min(cfg.epochs, ctx.max_epochs)
    estimate = ctx.scheduler.expected_seconds(Run("", 0, "training", model, asdict(cfg), cfg.epochs))
    about = say("about_clock", clock=clock(estimate)) if estimate < 120 else say("about_minutes", minutes=f"{estimate / 60:.0f}")
    if seed:
        return say("recipe_seed_note", epochs=f"{cfg.epochs:g}", about=about)
    return say("recipe_fast_note", name=DISPLAY_NAMES[model], epochs=f"{cfg.epochs:g}", optimizer=cfg.optimizer,
               batch=cfg.batch_size, about=about)


def preset_click(ctx: Context, model: str, seed: bool, request: gr.Request | None) -> tuple:
    """A recipe button: the form's values and the note that says what they are, in the visitor's language."""
    words.use_request(request)
    return (*(seed_preset if seed else fast_preset)(ctx, model), recipe_note(ctx, model, seed))


def seed_preset(ctx: Context, model: str) -> tuple:
    """The seed article's recipe (SGD + StepLR, 20 epochs, capped by the deployment)."""
    return preset(ctx, model, SEED_RECIPE)


def follow_model(ctx: Context, model: str, *values) -> tuple:
    """The visitor picked another model: a form still showing some model's fast recipe shows the new
    model's (its registry entry's recipe, FAST_RECIPES); any other form stays."""
    shown = tuple(values)
    if any(shown == fast_preset(ctx, m) for m in FAST_RECIPES):
        return fast_preset(ctx, model)
    return tuple(gr.skip() for _ in PRESET)


# ---- the documented API (/train, /status, /stop): typed, keyword-callable by these api_names ---------------

@with_form_parameters
def train_api(ctx: Context, ws: Workspace, *values, **params) -> dict:
    """Queue a training run for this session and return at once with its /status (queued with position, or running)."""
    try:
        run = ws.train(**form_values(values, params))
    except (AlreadyTraining, TrainingDisabled, QueueFull, ValueError) as exc:
        raise gr.Error(facts.refusal(exc)) from exc
    if ctx.scheduler.starts_now(run):  # an empty queue: answer "running", not "queued" for a millisecond
        run.wait_started(START_WAIT_SECONDS)
    return run_status(ws, run_message)


def status_api(ctx: Context, ws: Workspace) -> dict:
    """This session's latest run: state (idle, queued, running, done, stopped, error), model, epoch, epochs,
    history (every validation point), running_loss (every training-loss point: [epochs done, loss]) and
    running_loss_seconds, test_acc, message, and its queue position while it waits."""
    return run_status(ws, run_message)


def stop_api(ctx: Context, ws: Workspace) -> dict:
    """Stop this session's run (or take it out of the queue); returns its /status once it has stopped."""
    ws.stop()
    return run_status(ws, run_message)


# ------------------------------------------------------------------------------ the tab


def control(s: Setting, max_epochs: int, interactive: bool) -> gr.components.Component:
    """The form's control for one setting, showing TrainConfig's default for the default model: a choice
    is a radio, a yes/no a checkbox, a number with a step a slider (over its bounds; epochs up to this
    deployment's cap), any other number a box."""
    value = getattr(TrainConfig(), s.name)
    common = dict(label=words.form_label(s.name, s.label), interactive=interactive)
    if s.choices:
        return gr.Radio(list(s.choices), value=value, **common)
    if s.kind is bool:
        return gr.Checkbox(value, **common)
    if s.step is not None:
        top = max_epochs if s.hi == "max_epochs" else s.hi
        info = words.in_both(f"epochs_hint_{max_epochs}", lambda: say("epochs_hint", limit=max_epochs)) \
            if s.hi == "max_epochs" else None
        return gr.Slider(s.lo, top, value=min(value, top), step=s.step, info=info, **common)
    return gr.Number(value, precision=0 if s.kind is int else None, **common)


def build(ctx: Context, draw: DrawTab) -> None:
    """Create the Train tab's components inside the caller's ``gr.Tab`` and wire its events and API."""
    bind = lambda fn: visitor_handler(fn, ctx)  # noqa: E731
    allow, cap = ctx.allow_training, ctx.max_epochs
    if not allow:
        gr.Markdown(t("training_off"))
    # On a phone the columns stack: the model, the recipe buttons, Train and the curves come first; the
    # settings are folded (a preset or the model fills them in).
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            by_name = {c.name: c for c in FORM}
            controls = {name: control(by_name[name], cap, allow) for name in ("model", "epochs")}
            with gr.Row():
                fast_btn = gr.Button(t("fast_recipe"), size="sm", interactive=allow)
                seed_btn = gr.Button(t("seed_recipe"), size="sm", interactive=allow)
            recipe_md = gr.Markdown(words.in_both("recipe_initial", lambda: recipe_note(ctx, DEFAULT_MODEL, False)),
                                    elem_id="recipe-note")
            with gr.Row():
                train_btn = gr.Button(t("train"), variant="primary", interactive=allow)
                stop_btn = gr.Button(t("stop"), variant="stop", interactive=allow)
            form_msg = gr.Markdown(elem_id="train-answer")
            basic = [c for c in FORM if not c.advanced and c.name not in controls and c.name not in MISTAKES]
            advanced = [c for c in FORM if c.advanced]
            with gr.Accordion(words.listing("settings_fold", "settings", basic[:4]), open=False):
                controls.update({c.name: control(c, cap, allow) for c in basic})
                with gr.Accordion(words.listing("more_settings_fold", "more_settings", advanced), open=False):
                    controls.update({c.name: control(c, cap, allow) for c in advanced})
            controls.update(mistakes_fold(lambda c: control(c, cap, allow), by_name))
        with gr.Column(scale=2):
            status_md = gr.Markdown(t("status_idle_line"), elem_id="train-status")
            chart = curves.curves_component("train-curves", seed=curves.load_seed_curves())
            results_md = gr.Markdown(t("results_none"))
            with gr.Accordion(t("confusion_fold"), open=True):
                # No label over the picture (the fold names it); the caption says what its rows and columns are.
                confusion = gr.Plot(show_label=False, format="png", elem_id="confusion")
                gr.Markdown(t("confusion_caption"), elem_id="confusion-caption")
                # Three columns and short captions ("4 → 9 · 87%") fit a phone's width.
                gallery = gr.Gallery(label=t("mistakes"), elem_id="misclassified", columns=3, height=480,
                                     object_fit="contain")
    runs_df, overlay_pick, overlay = runs_ui.build(bind)  # "Your runs": the table and the overlay
    download_btn, uploaded = weight_files.build(bind, controls["model"], draw.panel)  # "Your models": files

    # ---- wiring ----------------------------------------------------------------------------------
    form = [controls[c.name] for c in FORM]
    presets = [controls[c.name] for c in PRESET]
    live = [status_md, chart, results_md, confusion, gallery, runs_df, overlay_pick, overlay, form_msg, draw.teach_msg,
            draw.weights_md, draw.weights_pick, download_btn, draw.panel]
    private = dict(api_visibility="private")
    stream = dict(show_progress="hidden", concurrency_limit=None, **private)
    def seed_click(model: str, request: gr.Request) -> tuple:
        return preset_click(ctx, model, True, request)

    def fast_click(model: str, request: gr.Request) -> tuple:
        return preset_click(ctx, model, False, request)

    seed_btn.click(seed_click, controls["model"],
                   [*presets, recipe_md], queue=False, **private)
    fast_btn.click(fast_click, controls["model"],
                   [*presets, recipe_md], queue=False, **private)
    controls["model"].input(lambda model, *values: follow_model(ctx, model, *values), [controls["model"], *presets],
                            presets, queue=False, **private)
    watching = bind(watch)
    watch_inputs = [overlay_pick, draw.model, controls["model"]]
    own_box = gr.Textbox(visible=False, elem_id="own-drawing")  # filled by OWN_DRAWING_JS at the click
    train_btn.click(bind(train_click_drawing), [own_box, *form], form_msg, js=OWN_DRAWING_JS, concurrency_limit=None,
                    **private).then(
        watching, watch_inputs, live, **stream)
    draw.finetune_event.then(watching, watch_inputs, live, **stream)
    stop_btn.click(bind(stop_click), None, form_msg, concurrency_limit=None, **private)
    uploaded.then(watching, watch_inputs, live, **stream)

    gr.api(bind(train_api), api_name="train", concurrency_limit=None)
    gr.api(bind(status_api), api_name="status", concurrency_limit=None)
    gr.api(bind(stop_api), api_name="stop", concurrency_limit=None)

