"""Placeholder until the light pad lands: the Gradio Sketchpad the app used so far."""

from __future__ import annotations

import gradio as gr


def drawing_pad(elem_id: str = "digit-pad", label: str = "Draw one digit, big or small, anywhere", **kwargs):
    """A Sketchpad with a black brush on an 800x800 transparent canvas."""
    return gr.Sketchpad(label=label, elem_id=elem_id, canvas_size=(800, 800), height=500, type="numpy",
                        image_mode="RGBA", brush=gr.Brush(default_size=24, colors=["#000000"], color_mode="fixed"),
                        layers=False, transforms=(), buttons=[], **kwargs)
