"""The Compare tab: the three models side by side, with the weights this visitor draws with."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from ..compare import TRAIN_BATCH, compare_models
from ..workspace import Workspace
from .common import Context, visitor_handler
from .words import say, t

COLUMNS = ("cmp_model", "cmp_parameters", "cmp_test", "cmp_drawn", "cmp_latency", "cmp_step")  # words_folds.py


def compare_frame(rows: list[dict]) -> pd.DataFrame:
    """``compare.compare_models``' rows as display strings in the request's language (in English the same as the
    library's ``compare_table``)."""
    def percent(value, missing):
        return say(missing) if value is None else f"{100 * value:.2f}%"

    table = []
    for r in rows:
        if r["error"]:
            table.append([r["model"]] + [say("cmp_unavailable")] * (len(COLUMNS) - 1))
            continue
        test = percent(r["test_acc"], "cmp_unknown")
        if r["finetuned_on"]:
            test += say("cmp_finetuned", digits=r["finetuned_on"])
        drawn = percent(r["drawn_acc"], "cmp_not_measured")
        if r["drawn_acc"] is not None and r["drawn_stale"]:
            drawn += say("cmp_stale")
        table.append([r["model"], f"{r['parameters']:,}", test, drawn, f"{r['latency_ms']:.2f}",
                      f"{r['train_step_ms']:.1f}"])
    return pd.DataFrame(table, columns=[say(c, batch=TRAIN_BATCH) for c in COLUMNS])


def compare_view(ctx: Context, ws: Workspace):
    """The three models side by side, measured now, with the visitor's weights where they chose some."""
    return compare_frame(compare_models(weights=ws))


def build(ctx: Context, tab: gr.Tab) -> None:
    """Create the Compare tab's components inside ``tab`` and wire them (measured when the tab opens)."""
    # The help's training step is measured on compare.TRAIN_BATCH images.
    gr.Markdown(t("compare_help"))
    again = gr.Button(t("measure"), size="sm", scale=0)
    table = gr.Dataframe(label=t("models_table"), interactive=False, wrap=True, elem_id="compare-table")
    handler = visitor_handler(compare_view, ctx)
    tab.select(handler, None, table, concurrency_id="compare", api_visibility="private")
    again.click(handler, None, table, api_name="compare", concurrency_id="compare", api_visibility="undocumented")
