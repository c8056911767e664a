"""How the page gets its own recognition code: ``digitnet/ui/static/digitnet-core.js``, served by the app.

The script is a plain file (no CDN, no build step, not a Python string). Gradio 6.31 serves a
file at ``gradio_api/file=<absolute path>`` when its folder is allowed (``launch(allowed_paths=
[...])``), and puts ``launch(head=...)`` into the page's <head>; its frontend re-creates each
<script> of ``head`` (``async = false``) so the browser loads and runs it. Wiring, in app.py::

    demo.launch(**LAUNCH_OPTIONS, **inpage.launch_options())

or, equivalently, ``head=inpage.page_head()`` and ``allowed_paths=[str(inpage.STATIC_DIR)]``
merged into the options already passed. The URL is relative (no leading "/"), so it also works
when the app is served under a path prefix; it carries the file's content hash (``?v=``), so a
browser never runs a stale copy after the file changes.

In the page the script defines ``window.DigitNet`` and then fires the window event
``digitnet-core-ready``. Code that may run first (a ``gr.HTML`` component's ``js_on_load``) waits
for it::

    const ready = window.DigitNet ? Promise.resolve() :
        new Promise((r) => window.addEventListener('digitnet-core-ready', r, { once: true }));

The models' weights come from ``digitnet.webmodel.page_model`` / ``page_models``.
"""

from __future__ import annotations

import hashlib
import html
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
CORE_JS = STATIC_DIR / "digitnet-core.js"
WORDS_JS = STATIC_DIR / "words.js"
READY_EVENT = "digitnet-core-ready"  # fired on window once window.DigitNet exists


def static_url(path: Path = CORE_JS) -> str:
    """The page-relative URL at which the app serves a file of STATIC_DIR, with its content hash."""
    path = Path(path).resolve()
    if STATIC_DIR not in path.parents:
        raise ValueError(f"{path} is not in {STATIC_DIR}: only that folder is served")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return f"gradio_api/file={path.as_posix()}?v={digest}"


def page_head() -> str:
    """The <script> tags that load digitnet-core.js and the page's words (``words.py``'s dictionaries, then
    words.js, which picks the language and runs the switch), for ``launch(head=...)``."""
    from .words import head_script  # imported when called: words imports gradio

    tags = [f'<script src="{html.escape(static_url(path), quote=True)}"></script>' for path in (CORE_JS, WORDS_JS)]
    return head_script() + "".join(tags)


def launch_options() -> dict:
    """What ``launch()`` needs so that the page loads digitnet-core.js: the <head> tag and the served folder."""
    return {"head": page_head(), "allowed_paths": [str(STATIC_DIR)]}
