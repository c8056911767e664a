"""The Train tab's "Your runs" fold: the visitor's run history as a table, and their curves overlaid.

Each run is one row (newest first) with its settings in a few words; the runs that have curves
can be ticked, and the overlay draws every ticked run in the same charts as the live view
(``curves.overlay_value``). The Train tab redraws both when a run's state changes
(``train.view``); ticking redraws the overlay alone.
"""

from __future__ import annotations

from typing import Callable

import gradio as gr
import pandas as pd

from ..models import DISPLAY_NAMES
from ..run import RunState
from ..workspace import Workspace
from . import curves
from .common import Context, percent
from .mistakes import mistakes_of, run_name
from .words import say, t

OVERLAY_DEFAULT = 4  # runs ticked in the overlay at most by default (the latest ones)
# The run table's columns and their shares of its width, so that the whole table fits a phone's 390 px
# (the settings wrap; "#" is the run's number, "test" its test accuracy).
RUNS_COLUMNS = ["#", "model", "settings", "state", "test", "time"]  # in English; the page's words: col_<name>
RUNS_COLUMN_WIDTHS = ["8%", "19%", "26%", "17%", "15%", "15%"]


def settings_text(s: RunState) -> str:
    """A run's settings in a few words: "2 ep · adamw lr 0.005 · onecycle · batch 128"."""
    c = s.config
    if s.kind == "upload":
        return say("set_upload")
    if s.kind == "finetune":
        return say("set_finetune", rounds=c.get("rounds"), steps=c.get("steps_per_round"), lr=c.get("lr"))
    text = say("set_main", epochs=c.get("epochs"), optimizer=c.get("optimizer"), lr=f"{c.get('lr'):g}",
               schedule=c.get("schedule"), batch=c.get("batch_size"))
    if c.get("dropout"):
        text += say("set_dropout", dropout=f"{c['dropout']:g}")
    if c.get("augment"):
        text += say("set_augmented")
    return " · ".join([text, *mistakes_of(c)])


def runs_frame(ws: Workspace) -> pd.DataFrame:
    """The visitor's run history: one row per run, newest first."""
    rows = []
    for run in reversed(ws.runs()):
        s = run.snapshot()
        time_text = "" if s.train_seconds is None else say("seconds", s=f"{s.train_seconds:.0f}")
        rows.append((s.number, DISPLAY_NAMES[s.model], settings_text(s), say(f"state_{s.state}"), percent(s.test_acc),
                     time_text))
    return pd.DataFrame(rows, columns=[say("col_" + ("number" if c == "#" else c)) for c in RUNS_COLUMNS])


def runs_frame_empty() -> pd.DataFrame:
    """The run table's columns, no rows."""
    return pd.DataFrame(columns=RUNS_COLUMNS)


def overlay_choices(ws: Workspace) -> list[tuple[str, str]]:
    """The runs with curves to overlay: (title, run number)."""
    return [(run_name(s), str(s.number)) for s in (r.snapshot() for r in ws.runs()) if s.history]


def overlay_runs(ws: Workspace, selected: list[str] | None) -> list[RunState]:
    """The ticked runs, oldest first (one series each in the overlay)."""
    return [s for s in (run.snapshot() for run in ws.runs()) if str(s.number) in (selected or [])]


def overlay_value(ws: Workspace, selected: list[str] | None) -> dict:
    """The overlay chart's value: every ticked run's curves in the same charts as the live view."""
    return curves.overlay_value(overlay_runs(ws, selected))


def default_overlay(ws: Workspace, selected: list[str] | None) -> list[str]:
    """What is ticked: the visitor's ticks that still exist plus their latest run (else the latest few runs)."""
    available = [value for _, value in overlay_choices(ws)]
    kept = [v for v in (selected or []) if v in available]
    latest = ws.latest()
    if kept and latest is not None and str(latest.number) in available and str(latest.number) not in kept:
        kept.append(str(latest.number))  # a run that just ended joins the comparison
    return kept or available[-OVERLAY_DEFAULT:]


def tables(ws: Workspace, selected: list[str] | None) -> tuple:
    """The fold's three values after a run changed: the table, the ticks (choices and value) and the overlay."""
    ticked = default_overlay(ws, selected)
    table = gr.Dataframe(runs_frame(ws), visible=bool(ws.runs()))  # shown from the first run
    return table, gr.CheckboxGroup(choices=overlay_choices(ws), value=ticked), overlay_value(ws, ticked)


def show_overlay(ctx: Context, ws: Workspace, selected: list[str] | None) -> dict:
    """The overlay ticks changed: redraw the overlay with every ticked run."""
    return overlay_value(ws, selected)


def build(bind: Callable) -> tuple:
    """Create the fold inside the caller's Blocks context and wire the ticks: (table, ticks, overlay), which the
    Train tab's live view refreshes."""
    with gr.Accordion(t("runs_fold"), open=True):
        # Hidden until the first run: its column names are worded per request (runs_frame), and a table with no
        # rows would show them in English on a Chinese page (gr.Dataframe does not translate gr.I18n headers).
        runs_df = gr.Dataframe(runs_frame_empty(), label=t("runs_table"), interactive=False, wrap=True, visible=False,
                               elem_id="runs-table", max_height=300, column_widths=RUNS_COLUMN_WIDTHS)
        overlay_pick = gr.CheckboxGroup([], value=[], label=t("overlay"), elem_id="overlay-pick")
        overlay = curves.curves_component("overlay-curves", seed=curves.load_seed_curves(),
                                          value=curves.overlay_value([]))
    overlay_pick.input(bind(show_overlay), overlay_pick, overlay, concurrency_limit=None, api_visibility="private")
    return runs_df, overlay_pick, overlay
