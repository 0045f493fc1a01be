"""Dataset sources: each turns user input into labelled uint8 HWC images per split.

A source is opened (and its input validated) in the main process before anything is written;
worker processes, forked afterwards, call ``SplitData.load`` for the indices of one shard
(``preprocess.sources.base``). Each opener takes its input path and, as keyword arguments,
exactly the options ``SOURCE_OPTIONS`` lists for it; the CLI and ``BuildConfig`` derive from
that table which options belong to which source and which define the output bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from preprocess.sources.base import Source

SOURCES = ("cifar10", "cifar100", "fashion-mnist", "mnist", "imagefolder", "imagenette", "synthetic")
SOURCE_OPTIONS: dict[str, tuple[str, ...]] = {
    "cifar10": ("download",),
    "cifar100": ("label", "download"),
    "fashion-mnist": (),
    "mnist": (),
    "imagefolder": ("size", "channels", "val_fraction"),
    "imagenette": ("size", "channels", "download"),
    "synthetic": ("size", "channels", "num_classes", "num_train", "num_val"),
}
"""The build options each source reads (names of ``BuildConfig`` fields / ``--options``)."""
INPUT_ONLY_OPTIONS = ("download",)
"""Options that only fetch the input: they do not change the output bytes (not in the build config)."""
OPTION_DEFAULTS: dict[str, dict[str, Any]] = {"synthetic": {"size": 32, "channels": 3}, "imagenette": {"channels": 3}}
"""Per source, the value used for an option left unset (None)."""
FROM_INPUT: dict[str, tuple[str, ...]] = {"imagefolder": ("size", "channels"), "imagenette": ("size",)}
"""Per source, the options that, left unset, the opener decides from its input (they stay None in the
build config: the recorded config says "from the images", the manifest's shapes say what that was)."""
NO_INPUT = ("synthetic",)
"""Sources that generate their images and read no input path."""
SOURCE_REVISIONS: dict[str, int] = {"imagefolder": 3}
"""Sources whose output pixels changed since they were first written (imagefolder 2: the centre square is
resized straight to --size, alpha composited over black, 16-bit scaled; 3: EXIF orientation applied). Recorded in the build config when
> 1, so reruns over an older half-built dataset refuse to mix revisions; absent = 1 (configs unchanged)."""
CHANNELS = (1, 3)
"""Image channels a source can be asked for (``channels``): grayscale or RGB."""


def option_sources(option: str) -> tuple[str, ...]:
    """The sources that read ``option``."""
    return tuple(s for s in SOURCES if option in SOURCE_OPTIONS[s])


def open_source(source: str, path: Path | None, **options: Any) -> Source:
    """Open and validate ``source`` at ``path`` (None for generated sources); raises InputError on bad input.

    ``options``: exactly the options ``SOURCE_OPTIONS[source]`` lists.
    """
    if source not in SOURCES:
        raise ValueError(f"--source: expected one of {', '.join(SOURCES)}, got {source!r}")
    if set(options) != set(SOURCE_OPTIONS[source]):
        raise TypeError(f"source {source} takes options {SOURCE_OPTIONS[source]}, got {tuple(options)}")
    if source == "synthetic":
        from preprocess.sources.synthetic import open_synthetic

        return open_synthetic(path, **options)
    if source == "cifar10":
        from preprocess.sources.cifar import open_cifar10

        return open_cifar10(path, **options)
    if source == "cifar100":
        from preprocess.sources.cifar import open_cifar100

        return open_cifar100(path, **options)
    if source == "fashion-mnist":
        from preprocess.sources.idx import open_fashion_mnist

        return open_fashion_mnist(path, **options)
    if source == "mnist":
        from preprocess.sources.idx import open_mnist

        return open_mnist(path, **options)
    if source == "imagenette":
        from preprocess.sources.imagenette import open_imagenette

        return open_imagenette(path, **options)
    from preprocess.sources.imagefolder import open_imagefolder

    return open_imagefolder(path, **options)
