"""What every source returns: a validated ``Source`` of labelled uint8 HWC images per split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class SplitData:
    """One split of a source.

    labels: int64 (N,), the label of source sample i (its key is ``sample_key(i)``).
    load: maps an int64 index array to a uint8 (len, H, W, C) image batch, in that order.
    """

    labels: np.ndarray
    load: Callable[[np.ndarray], np.ndarray]

    @property
    def num_samples(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Source:
    """A validated dataset: name, class names, image shape (H, W, C) and its splits."""

    name: str
    classes: tuple[str, ...]
    shape: tuple[int, int, int]
    splits: dict[str, SplitData]


def array_split(images: np.ndarray, labels: np.ndarray) -> SplitData:
    """A split held in memory as a uint8 (N, H, W, C) array (shared with forked workers)."""
    return SplitData(labels=np.asarray(labels, dtype=np.int64), load=lambda idx: images[idx])
