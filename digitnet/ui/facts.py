"""The library's facts in words: a run's title and news, a refusal, a duration (``words.py``'s dictionaries).

The library returns facts (``run.News`` and numbers on a ``RunState``, exceptions with fields); these
functions word them in the language of the request being answered (``words.say``).
"""

from __future__ import annotations

import math

from ..errors import Refusal
from ..models import DISPLAY_NAMES
from ..run import News, RunState
from ..scheduler import QueueFull, TooCostly, TooFewDigits, TrainingDisabled
from ..upload import UploadTooLarge, WrongModel
from ..workspace import AlreadyTraining, OverBudget
from . import words_errors
from .words import say


def duration(seconds: float) -> str:
    """300 -> '5 min', 75 -> '1 min 15 s', 40 -> '40 s' (in the current language)."""
    minutes, secs = divmod(int(round(seconds)), 60)
    if not minutes:
        return say("seconds", s=secs)
    return say("minutes_seconds", m=minutes, s=secs) if secs else say("minutes", m=minutes)


def run_title(s: RunState) -> str:
    """'run 2: LeNet' (the same words in the run list, the overlay and the Draw tab)."""
    key = {"finetune": "run_title_finetune", "upload": "run_title_upload"}.get(s.kind, "run_title")
    return say(key, number=s.number, name=DISPLAY_NAMES[s.model])


def run_message(s: RunState | None) -> str:
    """What happened last to a run, in a sentence (/status's "message", the Train tab's status line)."""
    if s is None:
        return say("status_idle")
    name = DISPLAY_NAMES[s.model]
    news = News(s.news)
    if news is News.TRAINING:
        unit = say("round" if s.kind == "finetune" else "epoch")
        return say("news_training", name=name, unit=unit, epoch=s.epoch, epochs=math.ceil(s.epochs),
                   batch=s.batch, batches=s.batches, speed=f"{s.images_per_second:,.0f}")
    if news is News.FAILED:
        return say("news_failed", name=name, error=s.error)
    if news is News.OVERRAN:
        return say("news_overran", name=name, seconds=f"{s.elapsed:.0f}", limit=duration(s.limit_seconds or 0))
    if news is News.STOPPED:
        word = ("round" if s.kind == "finetune" else "epoch") + ("" if s.full_epochs == 1 else "s")
        return say("news_stopped", name=name, done=s.full_epochs, units=say(word))
    if news is News.DONE:
        acc = say("test_accuracy", acc=f"{s.test_acc:.2%}") if s.test_acc is not None else say("no_test_set")
        seconds = f"{s.train_seconds or 0:.0f}"
        f = s.finetune
        if f is None:
            return say("news_done", name=name, seconds=seconds, accuracy=acc)
        return say("news_done_finetune", name=name, digits=f["personal_digits"], seconds=seconds, accuracy=acc,
                   before=f"{f['personal_acc_before']:.0%}", after=f"{f['personal_acc_after']:.0%}")
    if news is News.LOADED:
        return say("news_loaded", name=name, source=s.source)
    return say(f"news_{news.value}", name=name)


def refusal(exc: Exception) -> str:
    """Why something a visitor asked for was refused, from the library's exception: its facts in words (a
    ``Refusal``'s reason and fields: ``words_errors.py``), its own text for any other exception."""
    if isinstance(exc, TrainingDisabled):
        return say("refused_disabled")
    if isinstance(exc, QueueFull):
        return say("refused_queue_full", waiting=exc.waiting)
    if isinstance(exc, TooCostly):
        return say("refused_cost", seconds=duration(exc.seconds), steps=f"{exc.steps:,}", batch=exc.batch,
                   limit=duration(exc.limit), raw=f"{exc.limit:g}")
    if isinstance(exc, TooFewDigits):
        return say("refused_digits", need=exc.need, have=exc.have)
    if isinstance(exc, AlreadyTraining):
        key = "refused_waiting" if exc.run.state == "queued" else "refused_training"
        return say(key, title=run_title(exc.run), position=exc.position)
    if isinstance(exc, UploadTooLarge):
        return say("refused_too_large", name=exc.name, mb=f"{exc.size / 2**20:.1f}", limit=exc.limit // 2**20)
    if isinstance(exc, WrongModel):
        return say("refused_wrong_model", name=exc.name, found=DISPLAY_NAMES[exc.found],
                   wanted=DISPLAY_NAMES[exc.wanted])
    if isinstance(exc, OverBudget):
        return say("refused_budget", held=f"{exc.held / 2**20:.0f}", limit=exc.limit // 2**20)
    if isinstance(exc, Refusal):
        return words_errors.word(exc)
    return str(exc)


def digits_summary(digits) -> str:
    """'12 digits: 0 x2, 3 x1, 7 x9' or 'no digits yet' (finetune.my_digits_summary's facts, in words)."""
    if not digits:
        return say("digits_none")
    counts = [0] * 10
    for _, label in digits:
        counts[int(label)] += 1
    parts = ", ".join(f"{d} x{c}" for d, c in enumerate(counts) if c)
    return say("digits_one", parts=parts) if len(digits) == 1 else say("digits_many", count=len(digits), parts=parts)


def maps_title(e) -> str:
    """What the Explain view's middle picture shows (``explain.Explanation``'s maps), in words."""
    if e.filters is not None:
        return say("maps_conv", channels=e.maps.shape[0])
    return say("maps_fc", units=len(e.units))
