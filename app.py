"""digitnet's Gradio app: draw a digit and three models read it; train any of them, your own runs only.

Run it with ``python app.py`` (honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT). This file
only composes the tabs (``digitnet/ui/``) around the one shared training queue
(``digitnet.scheduler``) and each visitor's workspace (``digitnet.workspace``).

Public API (``gradio_client``), each call acting for the calling session only:
  /predict(sketch, model)    -> gr.Label value with all ten classes ("Draw a digit" when blank)
  /train(model, epochs, ...) -> this session's /status: queued (with its position) or running
  /status()                  -> this session's latest run: state, model, epoch, epochs, history, test_acc, message
  /stop()                    -> stops this session's run (or takes it out of the queue); its /status after
"""

from __future__ import annotations

import os

import gradio as gr
import torch

from digitnet import settings
from digitnet.predict import CACHE
from digitnet.scheduler import TRAINER_NICENESS, Scheduler
from digitnet.ui import compare, draw, guard, inpage, train, words
from digitnet.ui.common import Context
from digitnet.ui.words import t
from digitnet.visitors import Visitors

QUEUE_MAX_SIZE = 256  # Gradio's own event queue: beyond this, visitors are told it is full instead of waiting
# After every event (a /status poll, an Explain click, ...) Gradio's queue rebuilds a pandas summary of its last
# 10,000 events for its monitoring page, which this app does not turn on: 1.7 ms of the server's CPU an event
# with 100 kept, 7.4 ms with 10,000 (measured here), and about 3 of the 10 ms that a /status poll cost the
# server (py-spy). Every this-many events instead; set the variable to choose (Gradio's default is 1).
ANALYTICS_EVERY = 1_000_000
MAX_UPLOAD_SIZE = "10mb"  # per uploaded file: a drawing is ~20 kB, a phone photo ~5 MB; bigger is refused
# launch() settings for every way the app is served (python app.py, tests, Spaces): no share link
# (Spaces serves the app itself; a laptop needs none) and no server-side rendering, which would
# need Node.js beside Python and gains nothing for a three-tab tool. inpage: the page's own
# recognition code (digitnet-core.js in <head>, and the folder of static/ files served) and the page's
# words in English and Chinese (i18n: the fixed texts; the head's dictionaries for the page's own JavaScript).
LAUNCH_OPTIONS = dict(share=False, ssr_mode=False, css=draw.CSS, max_file_size=MAX_UPLOAD_SIZE, i18n=words.I18N,
                      **inpage.launch_options())


def build_demo(
    train_overrides: dict | None = None,
    data_root: str | os.PathLike | None = None,
    allow_training: bool | None = None,
    max_epochs: int | None = None,
    max_queue: int | None = None,
    train_threads: int | None = None,
    train_niceness: int = TRAINER_NICENESS,
    finetune_overrides: dict | None = None,
    max_run_seconds: float | None = None,
    visitors_budget_mb: int | None = None,
) -> gr.Blocks:
    """Build the Blocks app around one training queue; every visitor gets their own workspace.

    ``train_overrides`` are TrainConfig fields fixed by the deployment (tests use small MNIST
    slices); ``allow_training``, ``max_epochs`` and ``max_queue`` default to
    ``DIGITNET_ALLOW_TRAINING`` / ``DIGITNET_MAX_EPOCHS`` / ``DIGITNET_MAX_QUEUE``;
    ``finetune_overrides`` are FineTuneConfig fields for "Fine-tune on my digits"; ``max_run_seconds``
    and ``visitors_budget_mb`` default to ``DIGITNET_MAX_RUN_SECONDS`` / ``DIGITNET_MAX_VISITORS_MB``.
    """
    # Every thread of the server computes with one torch thread (a drawing is one small image); only
    # the training worker sets more, for its own thread. This sets the default that threads started
    # later inherit. A thread that once ran a multi-threaded OpenMP region keeps its pool of workers
    # alive, and while more pool threads exist than cores, OpenMP stops spin-waiting between regions:
    # a LeNet training step took 28-31 ms instead of 19-20 ms whenever another thread had computed
    # with two threads (benchmarks/RESULTS-speed.md), so every visitor's run took 1.7x as long.
    torch.set_num_threads(1)
    allow = settings.allow_training() if allow_training is None else allow_training
    cap = settings.max_epochs() if max_epochs is None else max_epochs
    scheduler = Scheduler(data_root=data_root, overrides=train_overrides, finetune_overrides=finetune_overrides,
                          max_epochs=cap, max_queue=settings.max_queue() if max_queue is None else max_queue,
                          threads=train_threads, niceness=train_niceness, allow=allow,
                          max_run_seconds=settings.max_run_seconds() if max_run_seconds is None else max_run_seconds)
    budget_mb = settings.max_visitors_mb() if visitors_budget_mb is None else visitors_budget_mb
    visitors = Visitors(scheduler, CACHE, budget_bytes=budget_mb * 2**20)
    ctx = Context(scheduler=scheduler, visitors=visitors, data_root=data_root,
                  allow_training=allow, max_epochs=cap)
    CACHE.status()  # load the shipped models now: the first drawing should not wait for them

    # delete_cache: every drawing writes its 28x28 view to Gradio's cache; keep an hour of them.
    with gr.Blocks(title="digitnet: draw a digit, train the models", delete_cache=(3600, 3600)) as demo:
        demo.ctx = ctx  # tests and scripts reach the queue and the visitors here
        with gr.Row(equal_height=False):
            gr.Markdown(t("intro"), elem_id="intro")
            # The language switch: the page's words change at once (words.js); the server's next answers follow.
            gr.Button(t("switch"), size="sm", scale=0, min_width=80, elem_id="language-switch").click(
                None, js="() => { window.DigitNetWords && window.DigitNetWords.toggle(); }")
        with gr.Tabs():
            with gr.Tab(t("tab_draw"), id="draw"):
                draw_tab = draw.build(ctx)
            with gr.Tab(t("tab_train"), id="train"):
                train.build(ctx, draw_tab)
            with gr.Tab(t("tab_compare"), id="compare") as compare_tab:
                compare.build(ctx, compare_tab)

        def leave(request: gr.Request) -> None:
            """A visitor closed their tab (or a client its session): free their runs, weights and digits."""
            ctx.visitors.leave(request.session_hash)

        demo.unload(leave)
    # guard: at most MAX_PENDING_PER_SESSION events of one session in the queue; heartbeats seen.
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", str(ANALYTICS_EVERY))  # read by demo.queue()
    return guard.protect(demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=1))


if __name__ == "__main__":
    # GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are read by launch() itself.
    build_demo().launch(**LAUNCH_OPTIONS)
