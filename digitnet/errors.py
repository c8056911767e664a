"""Refusals: what the library refuses, as facts (a reason and its fields) with an English sentence.

The library writes no sentence for the page: it raises an exception that says *why* (a stable
``reason`` such as ``"checkpoint.missing"``) and *with what* (``fields``: the names and numbers).
Its ``str()`` is the English sentence the API and the command line answer with; ``digitnet/ui/``
words the same facts in the visitor's language (``ui/facts.refusal``, Chinese templates per reason
in ``ui/words_errors.py``).

``Refusal`` is a mixin, not a base of its own kind: each exception keeps the base it always had
(``ImageError`` and ``MyDigitsError`` are ``ValueError``s, ``CheckpointError`` a ``RuntimeError``), so
callers that catch those catch them as before. Raise one with its reason, its English template and
the fields the template names::

    raise CheckpointError.because("checkpoint.missing", "checkpoint {name} does not exist", name=name)

The template is ``str.format``ted with the fields (so ``{{``/``}}`` for literal braces, and format
specs such as ``{mb:.1f}`` apply in every language). tests/test_errors.py finds every ``because`` in
``digitnet/`` and checks that its reason has a Chinese template whose fields that call supplies.
"""

from __future__ import annotations

from typing import Any


class Refusal(Exception):
    """An exception that carries its facts: ``reason`` (None where a subclass words itself, as
    ``upload.UploadTooLarge`` does with its own attributes) and ``fields``."""

    reason: str | None = None
    fields: dict[str, Any] = {}

    @classmethod
    def because(cls, reason: str, template: str, /, **fields: Any) -> "Refusal":
        """An instance whose message is ``template`` filled in with ``fields`` (its English sentence)."""
        exc = cls(template.format(**fields))
        exc.reason, exc.fields = reason, fields
        return exc
