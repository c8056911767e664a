"""The Train tab's fold "The seed article's mistakes": its two faults that still run, as switches.

``TrainConfig.softmax_before_loss`` and ``TrainConfig.hflip`` (off by default) are ordinary visitor
settings (``/train`` keywords, validated like the others); this module only places them under their
own heading with one sentence each on what goes wrong, and names a run trained with one, so that
the runs table and the overlay of curves tell it from a run without.
"""

from __future__ import annotations

from typing import Callable

import gradio as gr

from ..scheduler import RunState
from . import facts

MISTAKES = ("softmax_before_loss", "hflip")  # TrainConfig's switches, in the fold's order
TITLE = "The seed article's mistakes"
INTRO = ("The article's code trains with two mistakes that still run. Turn one on, train, then tick this run and "
         "one without it under \"Your runs\" to overlay their curves.")
WHAT_GOES_WRONG = {
    "softmax_before_loss": ("The model's output goes through softmax and then into CrossEntropyLoss, which applies "
                            "log-softmax again: the loss can never fall below about 1.46 and its gradients fade as "
                            "the model grows sure, so it learns more slowly and ends less accurate."),
    "hflip": ("Half of the training digits are mirrored left to right: a mirrored 3, 7 or 2 is no digit anyone "
              "writes, so the model spends its effort on shapes it will never see and confuses those it will."),
}
SHORT = {"softmax_before_loss": "softmax before the loss", "hflip": "flipped digits"}  # in a run's name


def fold(control: Callable, by_name: dict) -> dict:
    """The fold (inside the caller's column): one checkbox per mistake, with its sentence; {name: control}."""
    controls = {}
    with gr.Accordion(TITLE, open=False, elem_id="seed-mistakes"):
        gr.Markdown(INTRO)
        for name in MISTAKES:
            controls[name] = control(by_name[name])
            gr.Markdown(WHAT_GOES_WRONG[name], elem_id=f"mistake-{name.replace('_', '-')}")
    return controls


def mistakes_of(config: dict) -> list[str]:
    """The short names of the mistakes a run's config has on."""
    return [SHORT[name] for name in MISTAKES if config.get(name)]


def run_name(s: RunState) -> str:
    """'run 2: LeNet' or, with a mistake on, 'run 2: LeNet with softmax before the loss' (runs list, overlay)."""
    wrong = mistakes_of(s.config or {}) if s.kind == "training" else []
    return facts.run_title(s) + (" with " + " and ".join(wrong) if wrong else "")
