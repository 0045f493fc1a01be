"""BuildConfig: everything that defines one preprocess build (validated on construction)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from preprocess.downsample import METHODS
from preprocess.errors import InputError
from preprocess.shards import ENCODINGS, TAR_WRITERS
from preprocess.sources import SOURCES

DEFAULT_INPUTS = {"fashion-mnist": "/usr/share/datasets/fashion-mnist"}
# Fields that define the output bytes (the rest, e.g. workers or part, a rerun may change freely).
_COMMON_FIELDS = ("source", "ratio", "method", "encoding", "samples_per_shard", "seed")
_SOURCE_FIELDS = {
    "cifar100": ("label",),
    "synthetic": ("channels", "num_classes", "num_train", "num_val"),
    "imagefolder": ("size", "channels", "val_fraction"),
}


def _check(ok: bool, option: str, expected: str, got: Any) -> None:
    if not ok:
        raise InputError(f"--{option}: expected {expected}, got {got!r}")


@dataclass(frozen=True)
class BuildConfig:
    """One build of a dataset directory (see preprocess/dataset_format.py for what it writes)."""

    source: str
    """Dataset source: cifar10 | cifar100 | fashion-mnist | mnist | imagefolder | synthetic."""
    out: str
    """Dataset directory to write."""
    input: str | None = None
    """Source archive/folder (None: the source's default, e.g. /usr/share/datasets/fashion-mnist)."""
    ratio: int = 2
    """Downsampling ratio r of the low resolution; image sides must be divisible by it."""
    method: str = "gaussian"
    """Downsampling method: gaussian | area | bilinear (see preprocess/downsample.py)."""
    encoding: str = "raw"
    """Image encoding in the tars: raw (HWC uint8 bytes) | png | jpg."""
    samples_per_shard: int = 5000
    """Samples per shard (the last shard of a split may hold fewer)."""
    seed: int = 0
    """Seed of the write-time shuffle."""
    workers: int = 1
    """Worker processes (the output is byte-identical for any number)."""
    overwrite: bool = False
    """Replace a dataset directory that holds a build of a different config."""
    part: tuple[int, int] | None = None
    """(I, N): build only shards k with k % N == I and write no manifest (Slurm job arrays)."""
    label: str = "fine"
    """CIFAR-100 label set: fine | coarse."""
    size: int | None = None
    """Image side in pixels: imagefolder resize/crop target (required), synthetic side (default 32)."""
    channels: int = 3
    """Image channels for synthetic and imagefolder: 1 (grayscale) or 3 (RGB)."""
    num_classes: int = 10
    """Synthetic: number of classes."""
    num_train: int = 1024
    """Synthetic: training samples."""
    num_val: int = 256
    """Synthetic: validation samples."""
    val_fraction: float = 0.1
    """Imagefolder without train/val folders: fraction of each class held out for val."""
    jpeg_quality: int = 95
    """JPEG quality (1..100) for --encoding jpg."""
    download: bool = False
    """CIFAR: download the python-version archive with torchvision into --input first."""
    tar_writer: str = "fast"
    """Tar writer: fast (preprocess.tarpack) or webdataset (TarWriter); both write the same bytes."""

    def __post_init__(self) -> None:
        _check(self.source in SOURCES, "source", f"one of {', '.join(SOURCES)}", self.source)
        _check(bool(str(self.out)), "out", "a directory path", self.out)
        _check(isinstance(self.ratio, int) and self.ratio >= 2, "ratio", "an integer >= 2", self.ratio)
        _check(self.method in METHODS, "method", f"one of {', '.join(METHODS)}", self.method)
        _check(self.encoding in ENCODINGS, "encoding", f"one of {', '.join(ENCODINGS)}", self.encoding)
        _check(self.samples_per_shard >= 1, "samples-per-shard", "an integer >= 1", self.samples_per_shard)
        _check(self.seed >= 0, "seed", "an integer >= 0", self.seed)
        _check(self.workers >= 1, "workers", "an integer >= 1", self.workers)
        _check(self.part is None or (len(self.part) == 2 and 0 <= self.part[0] < self.part[1]),
               "part", "I/N with 0 <= I < N", self.part)
        _check(self.label in ("fine", "coarse"), "label", "fine or coarse", self.label)
        _check(self.size is None or self.size >= 1, "size", "an integer >= 1", self.size)
        _check(self.tar_writer in TAR_WRITERS, "tar-writer", f"one of {', '.join(TAR_WRITERS)}", self.tar_writer)
        _check(self.source != "imagefolder" or self.size is not None, "size", "a value for imagefolder", None)
        _check(self.channels in (1, 3), "channels", "1 or 3", self.channels)
        _check(self.num_classes >= 2, "num-classes", "an integer >= 2", self.num_classes)
        _check(self.num_train >= 1, "num-train", "an integer >= 1", self.num_train)
        _check(self.num_val >= 0, "num-val", "an integer >= 0", self.num_val)
        _check(0 < self.val_fraction < 1, "val-fraction", "a number between 0 and 1 (exclusive)", self.val_fraction)
        _check(1 <= self.jpeg_quality <= 100, "jpeg-quality", "an integer in 1..100", self.jpeg_quality)
        _check(not self.download or self.source in ("cifar10", "cifar100"), "download",
               "a CIFAR source (cifar10 or cifar100)", self.source)
        _check(self.source == "synthetic" or self.input is not None or self.source in DEFAULT_INPUTS
               or self.download, "input", f"a path for source {self.source}", None)

    def size_or(self, default: int) -> int:
        return self.size if self.size is not None else default

    def input_path(self) -> Path:
        """The source input (the default for the source when --input was not given)."""
        if self.input is not None:
            return Path(self.input).expanduser()
        if self.download:
            return Path("~/.cache/lowmode").expanduser() / self.source
        return Path(DEFAULT_INPUTS[self.source])

    def output_config(self) -> dict[str, Any]:
        """The fields that define the output bytes (recorded in the manifest; reruns must match).

        Only fields the source reads are included, with defaults resolved, so ``--size 32`` and
        the synthetic default give the same config.
        """
        fields = {k: v for k, v in asdict(self).items() if k in _COMMON_FIELDS}
        fields["input"] = None if self.source == "synthetic" else str(self.input_path().resolve())
        fields.update({k: getattr(self, k) for k in _SOURCE_FIELDS.get(self.source, ())})
        if self.source == "synthetic":
            fields["size"] = self.size_or(32)
        if self.encoding == "jpg":
            fields["jpeg_quality"] = self.jpeg_quality
        return fields
