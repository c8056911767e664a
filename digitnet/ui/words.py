"""Every word the app shows people, in English and Simplified Chinese, and the one place that picks between them.

The texts themselves are tables of (key, English, Chinese) rows, each key written once (``words_page.py``,
``words_folds.py``); this module builds the two dictionaries from them (``EN``, ``ZH``). Three kinds of text
come from here:
- the page's fixed texts (tab names, headings, buttons, labels, help): ``t(key)``, a ``gr.I18n`` key that
  Gradio's page translates by the browser's language (or the page's language switch);
- what handlers answer (a run's status, a refusal, a note): ``say(key, **numbers)`` in the language of the
  request being answered (``language``: the switch's cookie, else the browser's Accept-Language);
- the texts the page's own JavaScript writes (the answer, the pad, the charts): the ``js.*`` keys, handed to
  the page in a head script (``head_script``) and picked there by the same rule.

The library (``digitnet/`` outside ``ui/``) returns facts (``run.News``, numbers, exceptions with fields);
``ui/facts.py`` words them with these dictionaries. Numbers stay as they are in both languages.
"""

from __future__ import annotations

import contextvars
import json

import gradio as gr

from . import words_folds, words_page


LANGUAGES = ("en", "zh-CN")
DEFAULT = "en"
COOKIE = "digitnet-lang"  # set by the page's language switch (words.js); read with every request


def dictionaries(*tables) -> tuple[dict[str, str], dict[str, str]]:
    """The English and the Chinese dictionaries from tables of (key, English, Chinese) rows, in row order.

    Each key is written once, with both its texts: a row without a Chinese text (or with an empty one) and a
    key written twice are errors here, when the app starts, not a blank on the page.
    """
    en: dict[str, str] = {}
    zh: dict[str, str] = {}
    for rows in tables:
        for row in rows:
            if not (isinstance(row, tuple) and len(row) == 3 and all(isinstance(x, str) and x.strip() for x in row)):
                raise ValueError(f"words: a row needs a key, an English and a Chinese text, got {row!r}")
            key, english, chinese = row
            if key in en:
                raise ValueError(f"words: {key!r} is written twice")
            en[key], zh[key] = english, chinese
    return en, zh


# The page's texts (words_page.py), then the Draw tab's folds, the seed's mistakes, the curves (words_folds.py).
EN, ZH = dictionaries(words_page.ROWS, words_folds.ROWS)
WORDS = {"en": EN, "zh-CN": ZH}
_language: contextvars.ContextVar[str] = contextvars.ContextVar("digitnet_language", default=DEFAULT)


def normalise(tag: str | None) -> str | None:
    """'zh-CN', 'zh', 'zh-Hans-CN', 'zh-TW' -> 'zh-CN'; 'en-GB' -> 'en'; anything else None."""
    tag = (tag or "").strip().lower()
    if tag.startswith("zh"):
        return "zh-CN"
    if tag.startswith("en"):
        return "en"
    return None


def language(headers=None, cookies=None) -> str:
    """The language to answer a request in: the switch's cookie, else the first of the browser's languages
    we have (Accept-Language, in the browser's order), else English."""
    chosen = normalise((cookies or {}).get(COOKIE))
    if chosen:
        return chosen
    accept = (headers or {}).get("accept-language") or ""
    for part in accept.split(","):
        found = normalise(part.split(";")[0])
        if found:
            return found
    return DEFAULT


def use(lang: str) -> None:
    """Answer in ``lang`` for the rest of this handler call (``common.visitor_handler`` sets it per request)."""
    _language.set(lang if lang in WORDS else DEFAULT)


def current() -> str:
    """The language of the request being answered."""
    return _language.get()


def say(key: str, **values) -> str:
    """The text ``key`` in the current language with ``values`` filled in (English where a key lacks one)."""
    text = WORDS[current()].get(key) or EN[key]
    return text.format(**values) if values else text


def t(key: str) -> gr.i18n.I18nData:
    """A fixed text of the page, translated there by the page's language (a ``gr.I18n`` key)."""
    assert key in FIXED["en"], key
    return I18N(key)


def page_words() -> dict[str, dict[str, str]]:
    """The texts the page's JavaScript writes, per language, without their ``js.`` prefix, and the tabs' names
    (words.js renames the tabs Gradio leaves in the old language after a switch)."""
    return {lang: {k.removeprefix("js."): v for k, v in words.items() if k.startswith(("js.", "tab_"))}
            for lang, words in WORDS.items()}


def fixed_words() -> dict[str, dict[str, str]]:
    """The page's fixed texts per language: what ``gr.I18n`` gets (no placeholders, no JavaScript texts)."""
    return {lang: {k: v for k, v in words.items() if not k.startswith("js.") and "{" not in v}
            for lang, words in WORDS.items()}


def head_script() -> str:
    """The page's dictionaries as a script for <head>: words.js reads ``window.DigitNetDictionary``."""
    data = json.dumps({"languages": list(LANGUAGES), "cookie": COOKIE, "words": page_words()}, ensure_ascii=False)
    return f"<script>window.DigitNetDictionary = {data.replace('</', '<' + chr(92) + '/')};</script>"


def setting_label(name: str, label: str, lang: str = DEFAULT) -> str:
    """A Train form setting's name in ``lang`` (its own ``label`` where the dictionaries have none)."""
    return WORDS[lang].get(f"setting_{name}", label)


def form_label(name: str, label: str):
    """A Train form control's label: "Batch size" / "批量大小" (a gr.I18n key registered before launch), or the
    setting's own label, capitalised, where the dictionaries have none."""
    key = f"setting_{name}"
    if key not in EN:
        return label[0].upper() + label[1:]
    for lang in LANGUAGES:
        text = WORDS[lang][key]
        FIXED[lang][key + "_label"] = text[0].upper() + text[1:]
    return I18N(key + "_label")


def in_both(key: str, text) -> gr.i18n.I18nData:
    """A text the page shows before any request, computed now in each language (``text()`` calls ``say``) and
    registered as the fixed text ``key`` (before launch: Gradio reads the dictionaries then)."""
    for lang in LANGUAGES:
        token = _language.set(lang)
        try:
            FIXED[lang][key] = text()
        finally:
            _language.reset(token)
    return I18N(key)


def use_request(request) -> None:
    """Answer a request in its visitor's language (the switch's cookie, else the browser's)."""
    use(language(getattr(request, "headers", None), getattr(request, "cookies", None)))


def listing(key: str, head: str, settings) -> gr.i18n.I18nData:
    """A fixed text made of others, "Settings: batch size, optimizer, ..." in each language, registered as ``key``
    (before launch: Gradio reads the dictionaries then)."""
    for lang in LANGUAGES:
        names = [setting_label(s.name, s.label, lang) for s in settings]
        sep, colon = (", ", ": ") if lang == "en" else ("、", "：")
        FIXED[lang][key] = WORDS[lang][head] + colon + sep.join(names) + (sep + "..." if lang == "en" else "……")
    return I18N(key)


FIXED = fixed_words()
I18N = gr.I18n(**FIXED)  # Blocks.launch(i18n=I18N): app.LAUNCH_OPTIONS
