"""Dataset sources: each turns user input into labelled uint8 HWC images per split.

A source is opened (and its input validated) in the main process before anything is written;
worker processes, forked afterwards, call ``SplitData.load`` for the indices of one shard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from preprocess.build import BuildConfig

SOURCES = ("cifar10", "cifar100", "fashion-mnist", "mnist", "imagefolder", "synthetic")


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


def open_source(config: BuildConfig) -> Source:
    """Open and validate the source named by ``config.source``; raises InputError on bad input."""
    if config.source == "synthetic":
        from preprocess.sources.synthetic import open_synthetic

        return open_synthetic(config)
    if config.source in ("cifar10", "cifar100"):
        from preprocess.sources.cifar import open_cifar

        return open_cifar(config)
    if config.source in ("fashion-mnist", "mnist"):
        from preprocess.sources.idx import open_idx

        return open_idx(config)
    if config.source == "imagefolder":
        from preprocess.sources.imagefolder import open_imagefolder

        return open_imagefolder(config)
    raise ValueError(f"--source: expected one of {', '.join(SOURCES)}, got {config.source!r}")
