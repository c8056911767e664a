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
from . import facts, words
from .words import say, t

MISTAKES = ("softmax_before_loss", "hflip")  # TrainConfig's switches, in the fold's order
TITLE = words.EN["mistakes_title"]  # the English of each text (words_folds.py); the page gets its language
INTRO = words.EN["mistakes_intro"]
WHAT_GOES_WRONG = {name: words.EN[f"mistake_{name}"] for name in MISTAKES}
SHORT = {name: words.EN[f"mistake_short_{name}"] for name in MISTAKES}  # in a run's name


def fold(control: Callable, by_name: dict) -> dict:
    """The fold (inside the caller's column): one checkbox per mistake, with its sentence; {name: control}."""
    controls = {}
    with gr.Accordion(t("mistakes_title"), open=False, elem_id="seed-mistakes"):
        gr.Markdown(t("mistakes_intro"))
        for name in MISTAKES:
            controls[name] = control(by_name[name])
            gr.Markdown(t(f"mistake_{name}"), elem_id=f"mistake-{name.replace('_', '-')}")
    return controls


def mistakes_of(config: dict) -> list[str]:
    """The short names of the mistakes a run's config has on (in the language of the request)."""
    return [say(f"mistake_short_{name}") for name in MISTAKES if config.get(name)]


def run_name(s: RunState) -> str:
    """'run 2: LeNet' or, with a mistake on, 'run 2: LeNet with softmax before the loss' (runs list, overlay)."""
    wrong = mistakes_of(s.config or {}) if s.kind == "training" else []
    if not wrong:
        return facts.run_title(s)
    joined = ("和" if words.current() == "zh-CN" else " and ").join(wrong)
    return say("run_with_mistakes", title=facts.run_title(s), mistakes=joined)
