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
# DIGITNET_MAX_RUN_SECONDS when unset: what 30 epochs of the slowest model's fast recipe (CNNNet,
# ~5 s an epoch) take on 2 cores, with room to spare: ~2.5 minutes, so every run the form's
# defaults and presets allow fits, and a run of batch 1 (an hour) does not.
DEFAULT_MAX_RUN_SECONDS = 300
# DIGITNET_MAX_VISITORS_MB when unset: what all visitors' runs, weights and digits may hold
# together before the least recently used idle ones are freed (one visitor: 64 MB at most).
DEFAULT_MAX_VISITORS_MB = 1024


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


def max_run_seconds() -> int:
    """``DIGITNET_MAX_RUN_SECONDS``: the longest a run may be estimated to take, and may take (default 300)."""
    return env_int("DIGITNET_MAX_RUN_SECONDS", DEFAULT_MAX_RUN_SECONDS)


def max_visitors_mb() -> int:
    """``DIGITNET_MAX_VISITORS_MB``: memory all visitors' workspaces may hold together (default 1024)."""
    return env_int("DIGITNET_MAX_VISITORS_MB", DEFAULT_MAX_VISITORS_MB)


def feature_cache() -> str | None:
    """``DIGITNET_CACHE``: where /nearest keeps the training set's features (default: next to MNIST)."""
    return os.environ.get("DIGITNET_CACHE") or None
