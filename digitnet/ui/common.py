"""What the tab modules share: the app's context, binding handlers to a visitor, images and words.

Handlers are module-level functions whose first two parameters are the app's ``Context``
and the visitor's ``Workspace``; tests call them directly. ``visitor_handler`` turns one
into what Gradio calls: the same parameters minus those two, plus a ``gr.Request`` from
which the visitor's session is found. Why not ``gr.State`` or a ``gr.Request`` in each handler:
CONTRIBUTING.md, "Why a queue of our own, and why visitor_handler".
"""

from __future__ import annotations

import functools
import inspect
import shutil
import tempfile
import threading
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gradio as gr
import numpy as np

from .. import settings
from ..explain import upscale
from ..models import DEFAULT_MODEL  # noqa: F401  (the tabs import it from here)
from .. import training
from ..scheduler import Scheduler
from ..visitors import Visitors
from ..workspace import Workspace
from . import words

MODEL_CHOICES = list(training.MODEL_CHOICES)  # (shown, API value)
BLANK_MESSAGE = "Draw a digit"  # what a blank pad shows instead of a guess
NO_DRAWING_MESSAGE = "Draw a digit (or upload a photo) first."  # words.EN["no_drawing"]: handlers say() it
# A file handed to Gradio (a saved my-digits file, a weights download) is copied into Gradio's own cache;
# our copy is deleted by a later one once it is this old.
DOWNLOAD_KEEP_SECONDS = 120
STATE_ICONS = {"idle": "💤", "queued": "🕒", "running": "⏳", "done": "✅", "stopped": "⏹️", "error": "❌"}


@dataclass
class Context:
    """What every handler of one app shares: the training queue, the visitors, the deployment's limits."""

    scheduler: Scheduler
    visitors: Visitors
    data_root: Any = None
    allow_training: bool = True
    max_epochs: int = settings.DEFAULT_MAX_EPOCHS


def visitor_handler(fn: Callable, ctx: Context) -> Callable:
    """Bind ``fn(ctx, workspace, *inputs)`` to this app: Gradio calls ``handler(*inputs, request)``.

    The wrapper keeps ``fn``'s remaining parameters (names, defaults, type hints, so
    ``gr.api`` documents them) and adds a ``request: gr.Request`` for the session id.
    Generators (streaming views) stay generators.
    """
    signature = inspect.signature(fn)
    params = list(signature.parameters.values())[2:]
    hints = typing.get_type_hints(fn)
    request = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                annotation=gr.Request)

    def split(args: tuple, kwargs: dict) -> tuple[Workspace, tuple, dict]:
        kwargs = dict(kwargs)
        req = kwargs.pop("request", None)
        if req is None:
            *args, req = args
        words.use(words.language(getattr(req, "headers", None), getattr(req, "cookies", None)))  # this request's answers in the visitor's language
        return ctx.visitors.get(req.session_hash), tuple(args), kwargs

    if inspect.isasyncgenfunction(fn):
        async def handler(*args, **kwargs):
            ws, args, kwargs = split(args, kwargs)
            lang = words.current()
            async for item in fn(ctx, ws, *args, **kwargs):
                yield item
                words.use(lang)  # a stream may resume in another context: keep its language
    else:
        def handler(*args, **kwargs):
            ws, args, kwargs = split(args, kwargs)
            return fn(ctx, ws, *args, **kwargs)

    functools.update_wrapper(handler, fn, assigned=("__module__", "__name__", "__qualname__", "__doc__"))
    handler.__signature__ = signature.replace(parameters=[*params, request])
    handler.__annotations__ = {**{p.name: hints[p.name] for p in params if p.name in hints},
                               "request": gr.Request, **({"return": hints["return"]} if "return" in hints else {})}
    return handler


def enlarge(image: np.ndarray, scale: int) -> np.ndarray:
    """A [0,1] float or uint8 grey image scaled up by an integer factor, nearest-neighbour, as uint8."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return upscale(a, scale)


def percent(value: float | None, digits: int = 2) -> str:
    """0.9912 -> '99.12%'; None -> '–'."""
    return "–" if value is None else f"{100 * value:.{digits}f}%"


class Downloads:
    """A temp folder for files handed to Gradio (which copies them into its cache at once), made on first use."""

    def __init__(self) -> None:
        self._folder: Path | None = None
        self._lock = threading.Lock()

    @property
    def folder(self) -> Path:
        """The folder (created the first time it is asked for, not when the module is imported)."""
        with self._lock:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="digitnet-downloads-"))
            return self._folder

    def new_file(self, name: str) -> Path:
        """A fresh path ``<new folder>/<name>``; folders older than DOWNLOAD_KEEP_SECONDS go first."""
        now = time.time()
        for old in self.folder.iterdir():
            if now - old.stat().st_mtime > DOWNLOAD_KEEP_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=self.folder)) / name


DOWNLOADS = Downloads()  # the my-digits files (ui/teach.py) and weights downloads (ui/weight_files.py)
