"""digitnet's Gradio app: draw a digit and three models read it; train any of them live.

Run it with ``python app.py`` (honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT).
UI only: the work is done by ``digitnet`` (predict, preprocess, the training job).
Order, as in Gradio's own demos: pure functions, then components, then wiring.

Public API (``gradio_client``):
  /predict(sketch, model)  -> gr.Label value with all ten classes ("Draw a digit" when blank)
  /train(model, epochs, ...) -> the /status JSON of the run it started (returns at once)
  /status()                -> JSON: state, model, epoch, epochs, history, test_acc, message, ...
  /stop()                  -> the /status JSON once the run has stopped
  /restore(model)          -> message; brings back the shipped weights of one model

The issue-8 extras are also callable by ``gradio_client`` but left out of the API page
(``api_visibility="undocumented"``), so the documented API stays the five above:
  /explain(sketch, photo, model) -> (text, saliency image, first-layer image, filters image or None)
  /compare()                     -> the compare table (gr.Dataframe value)
  /add_digit(sketch, photo, digit), /load_digits(file), /save_digits(), /clear_digits()
                                 -> this session's "my digits" (a gr.State per Client / browser tab)
  /finetune(model)               -> message; fine-tunes on this session's digits in the shared job
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
from gradio.components.image_editor import EditorData
from gradio.data_classes import FileData
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from digitnet.checkpoint import SHIPPED_DIR
from digitnet.compare import compare_table
from digitnet.explain import Explanation, explain
from digitnet.finetune import (
    MAX_MY_DIGITS, MY_DIGITS_FILENAME, MyDigits, MyDigitsError, add_digit, load_my_digits, my_digits_summary,
    save_my_digits,
)
from digitnet.job import (
    MIN_FINETUNE_DIGITS, TRAINER_NICENESS, JobBusy, JobSnapshot, TrainingDisabled, TrainingJob,
    allow_training_from_env, max_epochs_from_env, misclassified_images,
)
from digitnet.models import DISPLAY_NAMES, MODELS
from digitnet.predict import CACHE, ModelUnavailable, label_value, predict, predict_all
from digitnet.preprocess import ImageError, to_mnist_array
from digitnet.training import OPTIMIZERS, SCHEDULES, SEED_RECIPE, TrainConfig

MODEL_CHOICES = [(DISPLAY_NAMES[name], name) for name in MODELS]  # (shown, API value)
DEFAULT_MODEL = "lenet"
OPTIMIZER_CHOICES = [("SGD + momentum", "sgd"), ("Adam", "adam"), ("AdamW", "adamw")]
SCHEDULE_CHOICES = [("constant", "none"), ("StepLR (the seed's)", "step"), ("one-cycle", "onecycle")]
assert {v for _, v in OPTIMIZER_CHOICES} == set(OPTIMIZERS) and {v for _, v in SCHEDULE_CHOICES} == set(SCHEDULES)

BLANK_MESSAGE = "Draw a digit"  # what a blank canvas shows instead of a guess
CANVAS_SIZE = (800, 800)  # the drawing's pixel size; benchmarks/drawn.py renders digits on the same canvas
CANVAS_HEIGHT = 500  # on-screen size (toolbar included); the 800x800 canvas is scaled to fit
BRUSH_RADIUS = 24  # canvas pixels: a digit drawn 500 px tall gets MNIST-like strokes (~10% of its size)
SEEN_SCALE = 8  # the model's 28x28 input shown at 224x224, nearest-neighbour so pixels stay visible
GALLERY_SCALE = 3  # misclassified digits at 84x84
MISCLASSIFIED_SHOWN = 24
TOP_CLASSES = 3  # the Draw tab's label; the bar chart and the API carry all ten
MY_DIGITS_SCALE = 3  # "my digits" gallery thumbnails at 84x84
MY_DIGITS_SHOWN = 40  # the gallery shows the latest ones; the count covers all
# A saved my-digits file is handed to Gradio, which copies it into its own cache (cleaned
# with delete_cache); our copy is deleted by the next save once it is this old.
DOWNLOAD_KEEP_SECONDS = 120
NO_DRAWING_MESSAGE = "Draw a digit (or upload a photo) first."

# Queue: recognition is cheap (milliseconds) and must never wait behind anything, so it runs
# several at a time; training starts one at a time (the job refuses a second run anyway).
PREDICT_CONCURRENCY = 4
QUEUE_MAX_SIZE = 256  # beyond this, visitors are told the queue is full instead of waiting forever
MAX_UPLOAD_SIZE = "10mb"  # per uploaded file: a drawing is ~20 kB, a phone photo ~5 MB; bigger is refused
POLL_SECONDS = 1.0  # how often every open tab asks the shared training job for news

# Gradio 6's Sketchpad opens with no tool selected, and "Clear canvas" deselects the brush
# again; no Sketchpad parameter in 6.31 selects one, so click the toolbar's Brush button.
SELECT_BRUSH_JS = """
() => {
  const pick = (tries) => {
    const button = document.querySelector('#digit-sketch button[aria-label="Brush"]');
    if (button) { button.click(); return; }
    if (tries > 0) setTimeout(() => pick(tries - 1), 100);
  };
  setTimeout(() => pick(300), 60);  // keep trying for ~30 s: a slow phone renders the toolbar late
}
"""

CSS = """
#seen-image img { image-rendering: pixelated; }
#misclassified img { image-rendering: pixelated; }
#my-digits img { image-rendering: pixelated; }
/* Gradio 6.31 stretches a gallery's few items over the whole row (columns = min(columns, items));
   my digits stay small thumbnails however few there are. */
#my-digits .grid-container { grid-template-columns: repeat(auto-fill, 96px) !important; grid-auto-rows: 96px !important; }
"""


# launch() settings for every way the app is served (python app.py, tests, Spaces): no share link
# (Spaces serves the app itself; a laptop needs none) and no server-side rendering, which would
# need Node.js beside Python and gains nothing for a two-tab tool.
LAUNCH_OPTIONS = dict(share=False, ssr_mode=False, css=CSS, max_file_size=MAX_UPLOAD_SIZE)


class SketchData(EditorData):
    """A Sketchpad value whose ``layers`` may also be null (API callers send that for "no layers")."""

    layers: list[FileData] | None = None


# ------------------------------------------------------------------------------ pure functions


def empty_probabilities() -> pd.DataFrame:
    """All ten digits at probability 0 (a stable axis while nothing is drawn)."""
    return pd.DataFrame({"digit": [str(d) for d in range(10)], "probability": np.zeros(10, dtype="float64")})


def probability_frame(probs) -> pd.DataFrame:
    """The bar chart's data: one row per digit."""
    return pd.DataFrame({"digit": [str(d) for d in range(10)], "probability": np.asarray(probs, dtype="float64")})


def enlarge(image: np.ndarray, scale: int) -> np.ndarray:
    """A [0,1] float or uint8 grey image scaled up by an integer factor, nearest-neighbour, as uint8."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.kron(a, np.ones((scale, scale), dtype=np.uint8))


def model_answer(result) -> Any:
    """One model's answer for the side-by-side view: its top two classes, or why it is unavailable."""
    if result is None:
        return None
    if isinstance(result, str):
        return f"unavailable: {result}"
    return label_value(result)


def models_markdown(states: dict[str, str]) -> str:
    """One line on the models in use: "MLP: ok (test acc 98.1%) · CNNNet: ..." or why one is unavailable."""
    return "Models in use: " + " · ".join(f"**{DISPLAY_NAMES[name]}** {state}" for name, state in states.items())


def progress_html(s: JobSnapshot) -> str:
    """A progress bar plus "epoch 2/5 · batch 150/430 · ETA 0:42"."""
    if s.state == "idle" or s.epochs == 0:
        return ""
    done = s.state == "done"
    frac = 1.0 if done else ((s.epoch - 1) + (s.batch / s.batches if s.batches else 0.0)) / s.epochs
    parts = [f"epoch {s.epoch}/{s.epochs}"]
    if s.batches:
        parts.append(f"batch {s.batch}/{s.batches}")
    if s.state == "running" and s.eta_seconds is not None:
        minutes, seconds = divmod(int(round(s.eta_seconds)), 60)
        parts.append(f"ETA {minutes}:{seconds:02d}")
    elif s.state == "running":
        parts.append("loading data...")
    return (f'<progress value="{frac:.4f}" max="1" style="width:100%"></progress>'
            f'<div>{" · ".join(parts)}</div>')


STATE_ICONS = {"idle": "💤", "running": "⏳", "done": "✅", "stopped": "⏹️", "error": "❌"}


def status_line(s: JobSnapshot) -> str:
    """The one-line status: icon, state, message."""
    return f"{STATE_ICONS.get(s.state, '')} **{s.state}** · {s.message}"


def loss_frame(s: JobSnapshot) -> pd.DataFrame:
    """Running train loss (several points per epoch) and validation loss (one per epoch)."""
    rows = [(x, loss, "train (running)") for x, loss in s.loss_points]
    rows += [(float(h["epoch"]), h["val_loss"], "validation") for h in s.history if h.get("val_loss") is not None]
    return pd.DataFrame(rows, columns=["epoch", "loss", "curve"]).astype(
        {"epoch": "float64", "loss": "float64", "curve": "string"})


def accuracy_frame(s: JobSnapshot) -> pd.DataFrame:
    """Train and validation accuracy per epoch, in percent."""
    rows = []
    for h in s.history:
        rows.append((float(h["epoch"]), 100.0 * h["train_acc"], "train"))
        if h.get("val_acc") is not None:
            rows.append((float(h["epoch"]), 100.0 * h["val_acc"], "validation"))
    return pd.DataFrame(rows, columns=["epoch", "accuracy", "curve"]).astype(
        {"epoch": "float64", "accuracy": "float64", "curve": "string"})


def curve_captions(s: JobSnapshot) -> tuple[str, str]:
    """Captions under the loss and accuracy plots, e.g. "train loss 0.084 at epoch 2.35".

    They change with every new point, which also matters to Gradio 6.31's plot: it fixes the
    colour legend's categories when the chart is (re)built and only swaps the data on a plain
    value update, so a chart that started empty would never draw its lines. A changed caption
    makes it rebuild the chart with the current categories.
    """
    if not s.loss_points:
        loss = "train loss: no batches yet" if s.state == "running" else "no run yet"
    else:
        x, value = s.loss_points[-1]
        loss = f"train loss {value:.3f} at epoch {x:.2f}"
        if s.history and s.history[-1].get("val_loss") is not None:
            loss += f" · validation loss {s.history[-1]['val_loss']:.3f}"
    if not s.history:
        acc = "accuracy appears after the first epoch" if s.state == "running" else "no run yet"
    else:
        h = s.history[-1]
        acc = f"epoch {h['epoch']}: train {h['train_acc']:.2%}"
        if h.get("val_acc") is not None:
            acc += f" · validation {h['val_acc']:.2%}"
    return loss, acc


def confusion_image(confusion: list[list[int]]) -> np.ndarray:
    """A 10x10 heatmap of counts (rows = true digit, columns = prediction) as an RGBA image.

    Drawn once per run with matplotlib's object API (no pyplot state, so safe in worker
    threads) and handed to every tab as pixels.
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


def results_markdown(s: JobSnapshot) -> str:
    """Test accuracy and where the checkpoint went, after a finished run."""
    r = s.result
    if r is None:
        return "Results appear here when a run finishes."
    if r.state != "done":
        return "The last run was stopped: no test results, nothing saved."
    wrong = sum(sum(row) for row in r.confusion) - sum(r.confusion[i][i] for i in range(10)) if r.confusion else 0
    total = sum(sum(row) for row in r.confusion) if r.confusion else 0
    what = f"{DISPLAY_NAMES[s.model]} fine-tuned on personal digits" if s.kind == "finetune" else DISPLAY_NAMES[s.model]
    return (f"### {what}: test accuracy **{r.test_acc:.2%}**\n"
            f"{wrong} of {total:,} test digits misread · trained in {r.train_seconds:.0f} s"
            + (f" · saved to `{r.checkpoint}`" if r.checkpoint else ""))


def explanation_markdown(e: Explanation | None) -> str:
    """What the Explain view shows, in words, and how long it took."""
    if e is None:
        return NO_DRAWING_MESSAGE
    name = DISPLAY_NAMES[e.model]
    text = (f"**{name} reads a {e.digit}** ({e.probs[e.digit]:.0%}), explained in {1000 * e.seconds:.0f} ms.\n\n"
            f"**Left, saliency**: your drawing (grey) with the pixels that made it a {e.digit} in red and those "
            f"that spoke against it in blue (integrated gradients from a blank canvas; they add up to the "
            f"{e.digit}'s score).\n\n")
    if e.filters_image is not None:
        text += (f"**Middle**: the {e.maps_title}: bright where a filter found its pattern in your strokes. "
                 f"**Right**: the {len(e.filters)} learned 5x5 conv1 filters themselves (red +, blue -), "
                 f"one per map, in the same order.")
    else:
        text += (f"**Middle**: the {e.maps_title}, strongest first: the strokes each unit looks for. "
                 "The MLP has no convolution filters, so there is no right-hand picture.")
    return text


def finetune_line(s: JobSnapshot) -> str:
    """The Draw tab's word on a fine-tune in the shared job ('' when the last run was a training run)."""
    if s.kind != "finetune":
        return ""
    name = DISPLAY_NAMES[s.model]
    if s.state == "running":
        step = f", step {s.batch}/{s.batches}" if s.batches else ""
        return f"\n\n⏳ {name} is being fine-tuned on someone's digits: round {max(s.epoch, 1)}/{s.epochs}{step}."
    if s.state == "done" and s.finetune:
        f = s.finetune
        return (f"\n\n✅ {name} was fine-tuned on {f['personal_digits']} personal digits: they are read "
                f"{f['personal_acc_before']:.0%} -> {f['personal_acc_after']:.0%} right, MNIST test accuracy "
                f"{s.result.test_acc:.2%}. Restore the shipped weights on the Train tab.")
    return f"\n\n{STATE_ICONS.get(s.state, '')} {s.message}"


def my_digits_gallery(digits: MyDigits) -> list[tuple[np.ndarray, str]]:
    """The latest "my digits" as (enlarged image, "a 7") for a gr.Gallery."""
    return [(enlarge(image, MY_DIGITS_SCALE), f"a {label}") for image, label in digits[-MY_DIGITS_SHOWN:]][::-1]


def my_digits_markdown(digits: MyDigits) -> str:
    """'My digits: 12 digits: 0 x2, ...' plus what fine-tuning needs."""
    text = f"**My digits**: {my_digits_summary(digits)}"
    if len(digits) > MY_DIGITS_SHOWN:
        text += f" (showing the latest {MY_DIGITS_SHOWN})"
    if len(digits) < MIN_FINETUNE_DIGITS:
        text += f" · fine-tuning needs at least {MIN_FINETUNE_DIGITS}"
    return text


def train_defaults() -> TrainConfig:
    """The fast recipe (TrainConfig's defaults)."""
    return TrainConfig()


# ------------------------------------------------------------------------------ the app


def build_demo(
    train_overrides: dict | None = None,
    data_root: str | os.PathLike | None = None,
    allow_training: bool | None = None,
    max_epochs: int | None = None,
    train_threads: int | None = None,
    train_niceness: int = TRAINER_NICENESS,
    shipped_dir: str | os.PathLike = SHIPPED_DIR,
    poll_seconds: float = POLL_SECONDS,
    finetune_overrides: dict | None = None,
) -> gr.Blocks:
    """Build the Blocks app with its one shared training job.

    ``train_overrides`` are TrainConfig fields fixed by the deployment (tests use
    ``train_limit``/``test_limit``/``val_size`` for small MNIST slices); ``allow_training`` and
    ``max_epochs`` default to ``DIGITNET_ALLOW_TRAINING`` / ``DIGITNET_MAX_EPOCHS``.
    Finished runs save to ``DIGITNET_CHECKPOINTS``, else to the repo's checkpoints/ (where the
    model cache reads), keeping a copy of a shipped file first (see digitnet/job.py).
    ``finetune_overrides`` are FineTuneConfig fields for "Fine-tune on my digits" (tests use
    fewer steps); the slice's ``test_limit`` applies to fine-tunes too.
    """
    allow = allow_training_from_env() if allow_training is None else allow_training
    cap = max_epochs_from_env() if max_epochs is None else max_epochs
    job = TrainingJob(data_root=data_root, shipped_dir=shipped_dir, overrides=train_overrides, max_epochs=cap,
                      threads=train_threads, niceness=train_niceness, allow=allow, on_saved=CACHE.reload,
                      finetune_overrides=finetune_overrides)
    d = train_defaults()
    seed_recipe = {**SEED_RECIPE, "epochs": min(SEED_RECIPE["epochs"], cap)}

    # ---- handlers (closures over the job) ---------------------------------------------------

    def show(results: dict | None, model: str):
        """The Draw tab's outputs for predict_all's answer (None = nothing drawn)."""
        if results is None:
            return (BLANK_MESSAGE, empty_probabilities(), None, None, None, None)
        answers = [model_answer(results.get(name)) for name in MODELS]
        chosen = results.get(model)
        if isinstance(chosen, str):  # a broken checkpoint: say so in place of a guess, keep the others
            return (f"{DISPLAY_NAMES.get(model, model)} is unavailable", empty_probabilities(), None, *answers)
        return (label_value(chosen), probability_frame(chosen.probs), enlarge(chosen.seen, SEEN_SCALE), *answers)

    def read(image) -> dict | None:
        """All three models' answers for a drawing or photo; None when there is nothing to read."""
        if image is None:
            return None
        try:
            return predict_all(image)
        except ImageError as exc:
            raise gr.Error(str(exc)) from exc

    def recognise(image, model: str):
        """Draw tab: top classes, all ten as bars, the 28x28 the model saw, all three models."""
        return show(read(image), model)

    def recognise_either(sketch, photo, model: str):
        """Model changed: re-read the drawing, or the uploaded photo when nothing is drawn."""
        results = read(sketch)
        return show(results if results is not None else read(photo), model)

    def predict_api(sketch, model: str):
        """Recognise a Sketchpad drawing: a gr.Label value with all ten digits' probabilities."""
        try:
            pred = predict(sketch, model)
        except (ValueError, ModelUnavailable) as exc:  # unknown model, unreadable image, broken checkpoint
            raise gr.Error(str(exc)) from exc
        return BLANK_MESSAGE if pred is None else label_value(pred)

    def start_training(**params) -> JobSnapshot:
        try:
            return job.start(**params)
        except (JobBusy, TrainingDisabled, ValueError) as exc:
            raise gr.Error(str(exc)) from exc

    def train_click(model, epochs, batch_size, optimizer, lr, momentum, schedule, step_size, gamma,
                    weight_decay, dropout, augment, seed):
        """Train tab's button: start the shared job, or say clearly why not."""
        try:
            s = job.start(model=model, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
                          momentum=momentum, schedule=schedule, step_size=step_size, gamma=gamma,
                          weight_decay=weight_decay, dropout=dropout, augment=augment, seed=seed)
        except (JobBusy, TrainingDisabled, ValueError) as exc:
            gr.Warning(str(exc))
            return f"⚠️ {exc} Nothing was started."
        return f"Started: {s.message}"

    def stop_click():
        """Train tab's Stop button."""
        s = job.stop()
        return s.message if s.state != "running" else "Stopping at the next batch..."

    def restore_click(model):
        """Train tab's restore button (for the model selected in the form)."""
        try:
            return job.restore_shipped(model)
        except (JobBusy, TrainingDisabled, ValueError, FileNotFoundError) as exc:
            gr.Warning(str(exc))
            return f"⚠️ {exc}"

    drawn: dict[int, tuple] = {}  # run id -> (markdown, figure, gallery), drawn once for all tabs

    def finished_results(s: JobSnapshot) -> tuple:
        """Test accuracy, confusion heatmap and mistakes of a finished run (cached per run)."""
        if s.run_id not in drawn:
            gallery = [(enlarge(img, GALLERY_SCALE), caption)
                       for img, caption in misclassified_images(s.result, data_root, MISCLASSIFIED_SHOWN)]
            drawn.clear()  # only the latest run is ever shown
            drawn[s.run_id] = (results_markdown(s), confusion_image(s.result.confusion), gallery)
        return drawn[s.run_id]

    def refresh(seen_version: int, shown_results: str):
        """Timer tick (every tab): redraw only what changed since this tab last looked."""
        s = job.snapshot()
        if s.version == seen_version:
            return (gr.skip(),) * 10
        x_max = float(max(s.epochs, 1))
        loss_caption, acc_caption = curve_captions(s)
        loss = gr.LinePlot(value=loss_frame(s), x_lim=[0.0, x_max], caption=loss_caption)
        acc = gr.LinePlot(value=accuracy_frame(s), x_lim=[0.0, x_max], caption=acc_caption)
        # What the results panel should show; it is redrawn (figure, gallery) only when this changes.
        key = f"{s.run_id}:{s.result.state if s.result else s.state}"
        if key == shown_results:
            results = (gr.skip(),) * 3
        elif s.result is not None and s.result.state == "done":
            results = finished_results(s)
        else:
            results = (results_markdown(s), None, [])
        # The tick that first shows a run's results does not mark the version as seen, so the next
        # tick redraws the curves once more: under load Gradio 6.31's chart could drop the update
        # that carried the last epoch when it coincided with the results panel's redraw.
        version = s.version if key == shown_results else seen_version
        return (version, key, status_line(s), progress_html(s), loss, acc, *results,
                models_markdown(CACHE.status()) + finetune_line(s))

    def seed_preset():
        """Fill the form with the seed article's recipe."""
        r = seed_recipe
        return (r["epochs"], r["batch_size"], r["optimizer"], r["lr"], r["momentum"], r["schedule"],
                r["step_size"], r["gamma"], r["weight_decay"], r["dropout"], r["augment"])

    def fast_preset():
        """Fill the form with the fast recipe (the defaults)."""
        return (min(d.epochs, cap), d.batch_size, d.optimizer, d.lr, d.momentum, d.schedule,
                d.step_size, d.gamma, d.weight_decay, d.dropout, d.augment)

    # ---- the typed API-only endpoints --------------------------------------------------------

    def train(model: str, epochs: int, batch_size: int = d.batch_size, optimizer: str = d.optimizer,
              lr: float = d.lr, momentum: float = d.momentum, schedule: str = d.schedule,
              step_size: int = d.step_size, gamma: float = d.gamma, weight_decay: float = d.weight_decay,
              dropout: float = d.dropout, augment: bool = d.augment, seed: int = d.seed) -> dict:
        """Start training in the background and return at once with the /status JSON."""
        return start_training(model=model, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
                              momentum=momentum, schedule=schedule, step_size=step_size, gamma=gamma,
                              weight_decay=weight_decay, dropout=dropout, augment=augment, seed=seed).status()

    def status() -> dict:
        """The shared training job: state, model, epoch, epochs, history, test_acc, message."""
        return job.status()

    def stop() -> dict:
        """Stop the running training before its next batch; returns the /status JSON once stopped."""
        return job.stop().status()

    def restore(model: str) -> str:
        """Bring back the shipped checkpoint of one model (mlp, cnnnet or lenet)."""
        try:
            return job.restore_shipped(model)
        except (JobBusy, TrainingDisabled, ValueError, FileNotFoundError) as exc:
            raise gr.Error(str(exc)) from exc

    # ---- issue 8: explain, compare, my digits ------------------------------------------------

    def drawing_or_photo(sketch, photo) -> np.ndarray | None:
        """The preprocessed 28x28 of the drawing, or of the photo when nothing is drawn; None if neither."""
        try:
            seen = to_mnist_array(sketch) if sketch is not None else None
            return seen if seen is not None or photo is None else to_mnist_array(photo)
        except ImageError as exc:
            raise gr.Error(str(exc)) from exc

    def explain_view(sketch, photo, model: str):
        """Why this answer: text, saliency overlay, first-layer maps, conv1 filters (hidden for the MLP)."""
        seen = drawing_or_photo(sketch, photo)
        if seen is None:
            return NO_DRAWING_MESSAGE, None, None, gr.Image(value=None, visible=True)
        try:
            e = explain(seen, model)
        except (ValueError, ModelUnavailable) as exc:
            raise gr.Error(str(exc)) from exc
        maps_label = "First layer: conv1 feature maps" if e.filters_image is not None else "First layer: fc1 weight patterns"
        return (explanation_markdown(e), e.saliency_image, gr.Image(value=e.maps_image, label=maps_label),
                gr.Image(value=e.filters_image, visible=e.filters_image is not None))

    def compare_view():
        """The three models side by side, measured now."""
        return compare_table()

    def show_digits(digits: MyDigits):
        """State, summary line and gallery for a (new) my-digits list."""
        return digits, my_digits_markdown(digits), my_digits_gallery(digits)

    def add_to_my_digits(sketch, photo, digit, digits: MyDigits):
        """"That was a ...": the preprocessed drawing joins this session's digits with the right label."""
        seen = drawing_or_photo(sketch, photo)
        if seen is None:
            raise gr.Error(f"{NO_DRAWING_MESSAGE} Then say which digit it was and add it.")
        if digit is None or digit == "":
            raise gr.Error("Pick the digit it really was (0-9) under \"That was a ...\", then add it.")
        try:
            return show_digits(add_digit(digits, seen, digit))
        except MyDigitsError as exc:
            raise gr.Error(str(exc)) from exc

    def load_digits(file, digits: MyDigits):
        """Upload a my-digits file saved earlier: its digits join this session's."""
        if file is None:
            raise gr.Error("No file was uploaded.")
        try:
            loaded = load_my_digits(file)
        except MyDigitsError as exc:
            raise gr.Error(str(exc)) from exc
        merged = list(digits or []) + loaded
        if len(merged) > MAX_MY_DIGITS:
            raise gr.Error(f"With this file you would have {len(merged)} digits; this app keeps at most "
                           f"{MAX_MY_DIGITS}. Clear yours first, or load a smaller file.")
        gr.Info(f"Loaded {len(loaded)} digit{'s' if len(loaded) != 1 else ''} from {Path(file).name}.")
        return show_digits(merged)

    downloads = Path(tempfile.mkdtemp(prefix="digitnet-my-digits-"))

    def save_digits(digits: MyDigits):
        """Write this session's digits to a file for download (our copy goes at a later save)."""
        if not digits:
            raise gr.Error("There are no digits to save yet: correct a prediction with \"Add to my digits\" first.")
        now = time.time()
        for old in downloads.iterdir():  # Gradio has long copied these into its own cache
            if now - old.stat().st_mtime > DOWNLOAD_KEEP_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
        folder = Path(tempfile.mkdtemp(dir=downloads))
        return gr.File(value=str(save_my_digits(digits, folder / MY_DIGITS_FILENAME)), visible=True)

    def clear_digits():
        """Forget this session's digits."""
        return show_digits([])

    def finetune(model: str, digits: MyDigits) -> str:
        """Fine-tune ``model`` on this session's digits in the shared background job."""
        try:
            s = job.start_finetune(digits or [], model)
        except (JobBusy, TrainingDisabled, ValueError) as exc:
            raise gr.Error(str(exc)) from exc
        return f"Fine-tune started: {s.message} Watch it on the Train tab; the Draw tab uses the result once it is done."

    # ---- components --------------------------------------------------------------------------

    # delete_cache: every drawing writes its 28x28 view to Gradio's cache; keep an hour of them.
    with gr.Blocks(title="digitnet: draw a digit, train the models", delete_cache=(3600, 3600)) as demo:
        demo.job = job  # the single shared training job (tests and scripts reach it here)
        gr.Markdown("# digitnet\nDraw a digit: three PyTorch models read it as you draw. "
                    "Or train any of them on MNIST and watch the curves grow.")
        with gr.Tabs():
            with gr.Tab("Draw", id="draw") as draw_tab:
                with gr.Row():
                    with gr.Column(scale=3):
                        sketch = gr.Sketchpad(
                            label="Draw one digit, big or small, anywhere", elem_id="digit-sketch",
                            canvas_size=CANVAS_SIZE, height=CANVAS_HEIGHT, type="numpy", image_mode="RGBA",
                            brush=gr.Brush(default_size=BRUSH_RADIUS, colors=["#000000"], color_mode="fixed"),
                            layers=False, transforms=(), buttons=[],
                        )
                        sketch.data_model = SketchData  # Gradio validates it before any handler runs
                        with gr.Accordion("...or upload a photo or scan of a digit", open=False):
                            photo = gr.Image(label="Photo or scan (dark ink on paper, or light on dark)",
                                             sources=["upload", "clipboard"], type="numpy", image_mode=None,
                                             height=220)
                    with gr.Column(scale=2):
                        model = gr.Radio(MODEL_CHOICES, value=DEFAULT_MODEL, label="Model")
                        label = gr.Label(value=BLANK_MESSAGE, num_top_classes=TOP_CLASSES, label="Prediction")
                        bars = gr.BarPlot(empty_probabilities(), x="digit", y="probability", y_lim=[0, 1],
                                          sort="x", height=200, label="All ten digits", x_title="digit",
                                          y_title="probability")
                        seen = gr.Image(label="What the model saw (28x28, enlarged)", elem_id="seen-image",
                                        interactive=False, height=224, width=224, buttons=[], format="png")
                models_md = gr.Markdown(models_markdown(CACHE.load_all()))
                with gr.Row():
                    compare = [gr.Label(num_top_classes=2, label=DISPLAY_NAMES[name], min_width=120)
                               for name in MODELS]
                # /predict's own input and output: the model name reaches predict() unfiltered, so an
                # unknown one gets digitnet's message, and the label holds all ten classes.
                api_model = gr.Dropdown(MODEL_CHOICES, value=DEFAULT_MODEL, allow_custom_value=True, visible=False,
                                        label="model")
                api_label = gr.Label(visible=False, label="prediction")

                with gr.Accordion("Why this answer?", open=True):
                    with gr.Row():
                        explain_btn = gr.Button("Explain this answer", variant="primary", scale=0, min_width=200)
                        explain_md = gr.Markdown("See which of your strokes decided the answer and what the "
                                                 "model's first layer made of them: draw, then click the button.")
                    with gr.Row():
                        saliency_img = gr.Image(label="Saliency: red for the answer, blue against", interactive=False,
                                                height=260, buttons=[], format="png", elem_id="explain-saliency")
                        maps_img = gr.Image(label="First layer", interactive=False, height=260, buttons=[],
                                            format="png", elem_id="explain-maps")
                        filters_img = gr.Image(label="conv1 filters (5x5, learned)", interactive=False, height=260,
                                               buttons=[], format="png", elem_id="explain-filters")
                with gr.Accordion("Teach it your handwriting", open=True):
                    gr.Markdown(
                        "Wrong answer? Say which digit it was and add the drawing to *my digits*. They stay in "
                        "this browser tab only (save them as a file to keep them, load the file next time). "
                        f"With at least {MIN_FINETUNE_DIGITS}, fine-tune the model selected above on them: a "
                        "short run that mixes your digits (shifted, turned, scaled) with MNIST so the model "
                        "learns your style without forgetting MNIST. It runs in the shared training job "
                        "(Train tab), and the Draw tab uses the result as soon as it is done.")
                    with gr.Row(equal_height=True):
                        truth = gr.Radio([str(d) for d in range(10)], value=None, label="That was a ...", scale=4)
                        add_btn = gr.Button("Add to my digits", scale=1, min_width=160)
                    my_md = gr.Markdown(my_digits_markdown([]))
                    my_gallery = gr.Gallery(label="My digits (latest first)", elem_id="my-digits", columns=10,
                                            height=220, object_fit="contain", interactive=False)
                    with gr.Row():
                        finetune_btn = gr.Button("Fine-tune on my digits", variant="primary", interactive=allow)
                        save_btn = gr.Button("Save my digits as a file")
                        upload_btn = gr.UploadButton("Load my digits from a file", file_types=[".npz"],
                                                     type="filepath")
                        forget_btn = gr.Button("Forget my digits")
                    my_file = gr.File(label="Your digits, ready to download", visible=False, interactive=False)
                    teach_msg = gr.Markdown()

            with gr.Tab("Train", id="train"):
                if not allow:
                    gr.Markdown("### Training is turned off here\nThis deployment serves the shipped models "
                                "only (`DIGITNET_ALLOW_TRAINING=0`), so that one visitor cannot occupy the "
                                "shared CPU. Run the app on your own machine to train: `python app.py`.")
                with gr.Row():
                    with gr.Column(scale=1, min_width=300):
                        t_model = gr.Radio(MODEL_CHOICES, value=d.model, label="Model", interactive=allow)
                        t_epochs = gr.Slider(1, cap, value=min(d.epochs, cap), step=1, label="Epochs",
                                             info=f"at most {cap} here (DIGITNET_MAX_EPOCHS)", interactive=allow)
                        t_batch = gr.Number(d.batch_size, precision=0, label="Batch size", interactive=allow)
                        t_opt = gr.Radio(OPTIMIZER_CHOICES, value=d.optimizer, label="Optimizer", interactive=allow)
                        t_lr = gr.Number(d.lr, label="Learning rate (peak, for one-cycle)", interactive=allow)
                        t_sched = gr.Radio(SCHEDULE_CHOICES, value=d.schedule, label="Schedule", interactive=allow)
                        with gr.Row():
                            t_wd = gr.Number(d.weight_decay, label="Weight decay", interactive=allow)
                            t_dropout = gr.Slider(0.0, 0.9, value=d.dropout, step=0.05, label="Dropout",
                                                  interactive=allow)
                        with gr.Row():
                            t_augment = gr.Checkbox(d.augment, label="Augmentation (small shifts/rotations)",
                                                    interactive=allow)
                            t_seed = gr.Number(d.seed, precision=0, label="Seed", interactive=allow)
                        with gr.Accordion("SGD momentum and StepLR settings", open=False):
                            t_momentum = gr.Number(d.momentum, label="Momentum (SGD)", interactive=allow)
                            t_step = gr.Number(d.step_size, precision=0, label="StepLR step (epochs)",
                                               interactive=allow)
                            t_gamma = gr.Number(d.gamma, label="StepLR gamma", interactive=allow)
                        with gr.Row():
                            fast_btn = gr.Button("Fast recipe", size="sm", interactive=allow)
                            seed_btn = gr.Button("Seed's recipe", size="sm", interactive=allow)
                        with gr.Row():
                            train_btn = gr.Button("Train", variant="primary", interactive=allow)
                            stop_btn = gr.Button("Stop", variant="stop", interactive=allow)
                        restore_btn = gr.Button("Restore shipped weights of this model", size="sm",
                                                interactive=allow)
                        form_msg = gr.Markdown()
                    with gr.Column(scale=2):
                        status_md = gr.Markdown(status_line(job.snapshot()))
                        progress = gr.HTML()
                        with gr.Row():
                            loss_plot = gr.LinePlot(loss_frame(job.snapshot()), x="epoch", y="loss", color="curve",
                                                    label="Loss", x_title="epoch", y_title="loss")
                            acc_plot = gr.LinePlot(accuracy_frame(job.snapshot()), x="epoch", y="accuracy",
                                                   color="curve", label="Accuracy (%)",
                                                   x_title="epoch", y_title="accuracy (%)")
                        results_md = gr.Markdown(results_markdown(job.snapshot()))
                        confusion = gr.Image(label="Confusion matrix", interactive=False, buttons=["download"],
                                             format="png")
                        # Four columns leave room for the whole caption "true 4, predicted 9 (87%)".
                        gallery = gr.Gallery(label="Most confident mistakes", elem_id="misclassified",
                                             columns=4, height=480, object_fit="contain")
            with gr.Tab("Compare", id="compare") as compare_tab:
                gr.Markdown(
                    "### The three models side by side\n"
                    "Parameters are counted on the loaded model; test accuracy and seconds per training epoch "
                    "come from its checkpoint (the run that made the weights); drawn-digit accuracy from "
                    "`benchmarks/drawn.py` (digits drawn like on the canvas); latency is measured now, the median "
                    "of single-image predictions with one thread, as the Draw tab runs them.")
                compare_btn = gr.Button("Measure again", size="sm", scale=0)
                compare_df = gr.Dataframe(label="Models", interactive=False, wrap=True, elem_id="compare-table")
        my_digits = gr.State([])  # this browser tab's digits: per session, never shared, never written to disk
        seen_version = gr.State(-1)
        shown_results = gr.State("")
        timer = gr.Timer(poll_seconds)

        # ---- wiring -----------------------------------------------------------------------------

        outputs = [label, bars, seen, *compare]
        fast = dict(show_progress="hidden", concurrency_id="predict", concurrency_limit=PREDICT_CONCURRENCY,
                    api_visibility="private")
        # always_last: a burst of change events while drawing collapses to the latest drawing.
        sketch.change(recognise, [sketch, model], outputs, trigger_mode="always_last", **fast)
        photo.change(recognise, [photo, model], outputs, trigger_mode="always_last", **fast)
        model.change(recognise_either, [sketch, photo, model], outputs, trigger_mode="always_last", **fast)
        # The documented /predict: an API-only event (no UI trigger) whose output holds all ten classes.
        # preprocess=False: predict() reads the uploaded files itself (the composite only; a huge one
        # refused before decoding; a non-image a clear error) instead of Gradio decoding every
        # layer to a full-size RGBA array first, where a failure is only "an exception was raised".
        gr.on([], predict_api, [sketch, api_model], api_label, api_name="predict", show_progress="hidden",
              concurrency_id="predict", concurrency_limit=PREDICT_CONCURRENCY, preprocess=False)

        demo.load(None, js=SELECT_BRUSH_JS)
        sketch.clear(None, js=SELECT_BRUSH_JS)
        draw_tab.select(None, js=SELECT_BRUSH_JS)

        form = [t_model, t_epochs, t_batch, t_opt, t_lr, t_momentum, t_sched, t_step, t_gamma, t_wd, t_dropout,
                t_augment, t_seed]
        preset_outputs = [t_epochs, t_batch, t_opt, t_lr, t_momentum, t_sched, t_step, t_gamma, t_wd, t_dropout,
                          t_augment]
        view = [seen_version, shown_results, status_md, progress, loss_plot, acc_plot, results_md, confusion, gallery,
                models_md]
        private = dict(api_visibility="private")
        seed_btn.click(seed_preset, None, preset_outputs, queue=False, **private)
        fast_btn.click(fast_preset, None, preset_outputs, queue=False, **private)
        train_btn.click(train_click, form, form_msg, concurrency_id="train", concurrency_limit=1, **private).then(
            refresh, [seen_version, shown_results], view, show_progress="hidden", concurrency_limit=None, **private)
        stop_btn.click(stop_click, None, form_msg, concurrency_limit=None, **private)
        restore_btn.click(restore_click, t_model, form_msg, concurrency_limit=None, **private)
        timer.tick(refresh, [seen_version, shown_results], view, concurrency_limit=None, **private)
        demo.load(refresh, [seen_version, shown_results], view, concurrency_limit=None, **private)

        # Issue 8: on demand only (buttons), and callable by gradio_client without joining the documented API.
        extra = dict(api_visibility="undocumented")
        explain_btn.click(explain_view, [sketch, photo, model], [explain_md, saliency_img, maps_img, filters_img],
                          api_name="explain", concurrency_id="explain", concurrency_limit=2, **extra)
        compare_tab.select(compare_view, None, compare_df, concurrency_id="compare", **private)
        compare_btn.click(compare_view, None, compare_df, api_name="compare", concurrency_id="compare", **extra)
        digits_view = [my_digits, my_md, my_gallery]
        add_btn.click(add_to_my_digits, [sketch, photo, truth, my_digits], digits_view, api_name="add_digit",
                      concurrency_limit=None, **extra)
        upload_btn.upload(load_digits, [upload_btn, my_digits], digits_view, api_name="load_digits",
                          concurrency_limit=None, **extra)
        save_btn.click(save_digits, my_digits, my_file, api_name="save_digits", concurrency_limit=None, **extra)
        forget_btn.click(clear_digits, None, digits_view, api_name="clear_digits", concurrency_limit=None,
                         **extra).then(lambda: gr.File(value=None, visible=False), None, my_file, **private)
        finetune_btn.click(finetune, [model, my_digits], teach_msg, api_name="finetune", concurrency_id="train",
                           concurrency_limit=1, **extra).then(
            refresh, [seen_version, shown_results], view, show_progress="hidden", concurrency_limit=None, **private)

        gr.api(train, api_name="train", concurrency_id="train", concurrency_limit=1)
        gr.api(status, api_name="status", concurrency_limit=None)
        gr.api(stop, api_name="stop", concurrency_limit=None)
        gr.api(restore, api_name="restore", concurrency_limit=1)

    return demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=1)


if __name__ == "__main__":
    # GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are read by launch() itself.
    build_demo().launch(**LAUNCH_OPTIONS)
