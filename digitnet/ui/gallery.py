"""The Train tab's gallery of a run's most confident test mistakes."""

from __future__ import annotations

import os

import numpy as np

from .. import data as mdata
from ..events import TrainResult


def misclassified_images(result: TrainResult, data_root: str | os.PathLike | None = None,
                         limit: int = 24) -> list[tuple[np.ndarray, str]]:
    """The most confident test mistakes of a run as (28x28 uint8 image, "true 4, predicted 9 (87%)")."""
    if not result.misclassified:
        return []
    images = mdata.load_mnist(data_root).test_images  # cached: no second read of the files
    return [
        (images[m["index"]].numpy(), f"true {m['true']}, predicted {m['pred']} ({m['prob']:.0%})")
        for m in result.misclassified[:limit]
    ]
