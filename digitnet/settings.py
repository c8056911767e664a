"""The deployment's settings from the environment: one parser for flags and whole numbers.

Every ``DIGITNET_*`` variable that switches something on or off, or bounds something, is
read here, so they all accept the same spellings and fail with the same kind of message.
"""

from __future__ import annotations

import os

FALSE_WORDS = ("0", "false", "no", "off")

DEFAULT_MAX_EPOCHS = 30  # DIGITNET_MAX_EPOCHS when unset: a few minutes of LeNet on 2 cores
# DIGITNET_MAX_QUEUE when unset: runs waiting behind the running one. With the default fast
# recipe (seconds a run on 2 cores: benchmarks/RESULTS-speed.md) twenty runs are a wait of a few
# minutes, about what a visitor of a public demo will sit through; beyond that they are told to come back.
DEFAULT_MAX_QUEUE = 20


def env_flag(name: str, default: bool = True) -> bool:
    """A yes/no variable: unset means ``default``; 0/false/no/off mean False; anything else True."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    return raw not in FALSE_WORDS


def env_int(name: str, default: int, minimum: int = 1) -> int:
    """A whole-number variable of at least ``minimum``; a malformed value is an error naming the variable."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def allow_training() -> bool:
    """``DIGITNET_ALLOW_TRAINING``: training and fine-tuning on (default) or off for a read-only deployment."""
    return env_flag("DIGITNET_ALLOW_TRAINING", True)


def max_epochs() -> int:
    """``DIGITNET_MAX_EPOCHS``: the most epochs one run may ask for (default 30)."""
    return env_int("DIGITNET_MAX_EPOCHS", DEFAULT_MAX_EPOCHS)


def max_queue() -> int:
    """``DIGITNET_MAX_QUEUE``: how many runs may wait behind the running one (default 20)."""
    return env_int("DIGITNET_MAX_QUEUE", DEFAULT_MAX_QUEUE)


def download_allowed() -> bool:
    """``DIGITNET_DOWNLOAD``: 0 makes a missing MNIST fail at once instead of waiting on the network."""
    return env_flag("DIGITNET_DOWNLOAD", True)
