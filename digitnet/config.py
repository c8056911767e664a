"""The settings framework: a config is a dataclass whose fields are made with ``setting()``.

Everything else about a setting is derived from its field: validation (``Config.validate``), the
command line's flags (``digitnet.train``), the Train tab's form and presets and ``/train``'s keywords
(``digitnet.ui.train``), and which settings a visitor may choose (``visitor_settings``). Adding a
hyperparameter means adding one field to ``recipes.TrainConfig`` (and a test of what it does).
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, field, fields

from .errors import Refusal


class SettingError(Refusal, ValueError):
    """A setting's value is refused: its ``fields`` name the setting (``setting``, ``label``), the value and
    the bound or choices it missed."""


def setting(default, help: str, *, label: str | None = None, lo=None, hi=None, lo_open: bool = False,
            hi_open: bool = False, choices: tuple | None = None, visitor: bool = False, advanced: bool = False,
            step: float | None = None, cli: bool = True, required: bool = False):
    """A config field and what may be set in it.

    ``lo``/``hi`` bound a number (inclusive unless ``lo_open``/``hi_open``); ``hi`` may name another
    field (epochs <= max_epochs). ``choices`` are (shown, value) pairs. ``visitor`` settings are the
    Train tab's controls and ``/train``'s keywords (``advanced`` ones folded away; a ``step`` makes a
    slider). ``label`` names the setting in messages and the form (default: the field's name in words).
    ``cli=False`` keeps a setting off the command line; a ``required`` one has no default in ``/train``.
    """
    return field(default=default, metadata=dict(
        help=help, label=label, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, choices=choices,
        visitor=visitor, advanced=advanced, step=step, cli=cli, required=required))


@dataclass(frozen=True)
class Setting:
    """One config field as validation, the command line and the form see it."""

    name: str
    kind: type  # int, float, bool or str
    optional: bool  # None is allowed
    default: object
    help: str
    label: str
    lo: object = None
    hi: object = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple | None = None
    visitor: bool = False
    advanced: bool = False
    step: float | None = None
    cli: bool = True
    required: bool = False

    @property
    def values(self) -> tuple:
        """The allowed values of a choice."""
        return tuple(value for _, value in self.choices or ())

    def check(self, value, config=None):
        """``value`` converted to this setting's type, or SettingError (a ValueError) saying what is wrong."""
        if value is None and self.optional:
            return None
        if self.choices:
            key = str(value).strip().lower() if value is not None else ""
            if key not in self.values:
                raise SettingError.because("setting.unknown_choice", "unknown {label} {value!r}: choose one of {choices}",
                                           setting=self.name, label=self.label, value=value,
                                           choices=", ".join(self.values))
            return key
        if self.kind is bool:
            if not isinstance(value, bool):
                raise SettingError.because("setting.not_bool", "{label} must be true or false, got {value!r}",
                                           setting=self.name, label=self.label, value=value)
            return value
        if self.kind is str:
            if not isinstance(value, str):
                raise SettingError.because("setting.not_text", "{label} must be a text, got {value!r}",
                                           setting=self.name, label=self.label, value=value)
            return value
        return self._number(value, config)

    def _number(self, value, config):
        integer = self.kind is int
        try:
            ok = not isinstance(value, bool) and math.isfinite(float(value))
        except (TypeError, ValueError, OverflowError):
            ok = False
        facts = dict(setting=self.name, label=self.label, value=value)
        if not ok or (integer and float(value) != int(float(value))):
            if integer:
                raise SettingError.because("setting.not_whole", "{label} must be a whole number, got {value!r}", **facts)
            raise SettingError.because("setting.not_finite", "{label} must be a finite number, got {value!r}", **facts)
        v = int(float(value)) if integer else float(value)
        hi = getattr(config, self.hi) if isinstance(self.hi, str) else self.hi
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            if self.lo_open:
                raise SettingError.because("setting.not_above", "{label} must be greater than {lo}, got {value!r}",
                                           lo=self.lo, **facts)
            raise SettingError.because("setting.too_small", "{label} must be at least {lo}, got {value!r}",
                                       lo=self.lo, **facts)
        if hi is not None and (v >= hi if self.hi_open else v > hi):
            if self.hi_open:
                raise SettingError.because("setting.not_below", "{label} must be below {hi}, got {value!r}",
                                           hi=hi, **facts)
            raise SettingError.because("setting.too_large", "{label} must be at most {hi}, got {value!r}",
                                       hi=hi, **facts)
        return v


@dataclass
class Config:
    """Base of the config dataclasses: their settings, ``from_dict`` and ``validate``."""

    @classmethod
    def settings(cls) -> list[Setting]:
        """Every field of this config as a ``Setting``, in field order."""
        hints = typing.get_type_hints(cls)
        out = []
        for f in fields(cls):
            types = typing.get_args(hints[f.name]) or (hints[f.name],)
            meta = dict(f.metadata)
            meta["label"] = meta.get("label") or f.name.replace("_", " ")
            out.append(Setting(name=f.name, kind=next(t for t in types if t is not type(None)),
                               optional=type(None) in types, default=f.default, **meta))
        return out

    @classmethod
    def from_dict(cls, values: dict):
        """Build one from a dict, ignoring keys it has no field for."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def validate(self):
        """Check and convert every field; raise ``ValueError`` with a message a person can act on."""
        # Bounds that name another field (epochs <= max_epochs) are checked after that field.
        for s in sorted(self.settings(), key=lambda s: isinstance(s.hi, str)):
            setattr(self, s.name, s.check(getattr(self, s.name), self))
        return self


def visitor_settings(cls: type[Config]) -> list[Setting]:
    """The settings a visitor of the app may choose (the Train tab's controls, ``/train``'s keywords)."""
    return [s for s in cls.settings() if s.visitor]
