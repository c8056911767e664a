"""The Compare tab: the three models side by side, with the weights this visitor draws with."""

from __future__ import annotations

import gradio as gr

from ..compare import TRAIN_BATCH, compare_table
from ..workspace import Workspace
from .common import Context, visitor_handler


def compare_view(ctx: Context, ws: Workspace):
    """The three models side by side, measured now, with the visitor's weights where they chose some."""
    return compare_table(weights=ws)


def build(ctx: Context, tab: gr.Tab) -> None:
    """Create the Compare tab's components inside ``tab`` and wire them (measured when the tab opens)."""
    gr.Markdown(
        "### The three models side by side\n"
        "Parameters are counted on the loaded model; test accuracy comes from its checkpoint (the run that "
        "made the weights); drawn-digit accuracy from `benchmarks/drawn.py` (digits drawn like on the pad). "
        "Latency and training step are measured now, on this machine, the same way for all three: latency is "
        "the median of single-image predictions with one thread, as the Draw tab runs them; training step is "
        f"the median time of one training step (forward, backward and AdamW update) on {TRAIN_BATCH} images, "
        "also with one thread, so that the figures repeat and compare even while someone's run trains.")
    again = gr.Button("Measure again", size="sm", scale=0)
    table = gr.Dataframe(label="Models", interactive=False, wrap=True, elem_id="compare-table")
    handler = visitor_handler(compare_view, ctx)
    tab.select(handler, None, table, concurrency_id="compare", api_visibility="private")
    again.click(handler, None, table, api_name="compare", concurrency_id="compare", api_visibility="undocumented")
