"""The Compare tab: the three models side by side, with the weights this visitor draws with."""

from __future__ import annotations

import gradio as gr

from ..compare import compare_table
from ..workspace import Workspace
from .common import Context, visitor_handler
from .words import t


def compare_view(ctx: Context, ws: Workspace):
    """The three models side by side, measured now, with the visitor's weights where they chose some."""
    return compare_table(weights=ws)


def build(ctx: Context, tab: gr.Tab) -> None:
    """Create the Compare tab's components inside ``tab`` and wire them (measured when the tab opens)."""
    # The help's training step is measured on compare.TRAIN_BATCH images.
    gr.Markdown(t("compare_help"))
    again = gr.Button(t("measure"), size="sm", scale=0)
    table = gr.Dataframe(label=t("models_table"), interactive=False, wrap=True, elem_id="compare-table")
    handler = visitor_handler(compare_view, ctx)
    tab.select(handler, None, table, concurrency_id="compare", api_visibility="private")
    again.click(handler, None, table, api_name="compare", concurrency_id="compare", api_visibility="undocumented")
