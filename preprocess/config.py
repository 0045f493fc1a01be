"""BuildConfig: everything that defines one preprocess build (validated on construction)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from preprocess.dataset_format import ENCODINGS
from preprocess.downsample import METHODS
from preprocess.errors import InputError
from preprocess.shards import TAR_WRITERS
from preprocess.sources import CHANNELS, FROM_INPUT, INPUT_ONLY_OPTIONS, NO_INPUT, OPTION_DEFAULTS, SOURCE_OPTIONS, \
    SOURCE_REVISIONS, SOURCES, option_sources
from preprocess.sources.cifar import LABEL_SETS

DEFAULT_INPUTS = {"fashion-mnist": "/usr/share/datasets/fashion-mnist"}
# Fields that define the output bytes for every source (plus the input path and the options the
# source reads, see output_config); the rest, e.g. workers or part, a rerun may change freely.
_COMMON_FIELDS = ("source", "ratio", "method", "encoding", "samples_per_shard", "seed")


def _check(ok: bool, option: str, expected: str, got: Any) -> None:
    if not ok:
        raise InputError(f"--{option}: expected {expected}, got {got!r}")


@dataclass(frozen=True)
class BuildConfig:
    """One build of a dataset directory (see preprocess/dataset_format.py for what it writes)."""

    source: str
    """Dataset source: cifar10 | cifar100 | fashion-mnist | mnist | imagefolder | imagenette | synthetic."""
    out: str
    """Dataset directory to write."""
    input: str | None = None
    """Source archive/folder (None: the source's default, e.g. /usr/share/datasets/fashion-mnist)."""
    ratio: int | None = None
    """Downsampling ratio r of the single low resolution; image sides must be divisible by it. Unset: 2,
    unless ``low_sizes`` is given (then it stays None: the sizes define the low resolutions)."""
    low_sizes: tuple[int, ...] | None = None
    """Heights of the low resolutions, any number, each below the full height (``--low-sizes 64,96``): the
    first is "low", each further one ``low<H>`` (``preprocess.dataset_format.extra_resolution_name``); widths
    scale with the height. None: one low resolution at 1/ratio. Not together with ``ratio``."""
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
    """Image side in pixels: synthetic side (default 32); imagefolder / imagenette centre-crop/resize target
    (default: the images' side when they all share one square size)."""
    channels: int | None = None
    """Image channels, 1 (grayscale) or 3 (RGB): synthetic (default 3); imagefolder (default: 1 if every
    image is grey, else 3); imagenette (default 3: photos, a few of them grey)."""
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
    """CIFAR: download the python-version archive, imagenette: the 320-px release, with torchvision into
    --input first."""
    tar_writer: str = "fast"
    """Tar writer: fast (preprocess.tarpack) or webdataset (TarWriter); both write the same bytes."""

    def __post_init__(self) -> None:
        _check(self.source in SOURCES, "source", f"one of {', '.join(SOURCES)}", self.source)
        _check(bool(str(self.out)), "out", "a directory path", self.out)
        if self.low_sizes is not None:
            sizes = self.low_sizes
            ok = isinstance(sizes, (tuple, list)) and len(sizes) >= 1 and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in sizes)
            _check(ok, "low-sizes", "comma-separated positive integers (low image heights)", sizes)
            repeated = sorted({v for v in sizes if list(sizes).count(v) > 1})
            _check(not repeated, "low-sizes", f"distinct sizes ({repeated[0] if repeated else ''} given twice)",
                   ",".join(map(str, sizes)))
            if self.ratio is not None:
                raise InputError(f"--low-sizes: not together with --ratio {self.ratio} (the first low size "
                                 "defines the \"low\" resolution; give one of the two options)")
            object.__setattr__(self, "low_sizes", tuple(sizes))
        elif self.ratio is None:
            object.__setattr__(self, "ratio", 2)
        _check(self.ratio is None or (isinstance(self.ratio, int) and self.ratio >= 2), "ratio", "an integer >= 2",
               self.ratio)
        _check(self.method in METHODS, "method", f"one of {', '.join(METHODS)}", self.method)
        _check(self.encoding in ENCODINGS, "encoding", f"one of {', '.join(ENCODINGS)}", self.encoding)
        _check(self.samples_per_shard >= 1, "samples-per-shard", "an integer >= 1", self.samples_per_shard)
        _check(self.seed >= 0, "seed", "an integer >= 0", self.seed)
        _check(self.workers >= 1, "workers", "an integer >= 1", self.workers)
        _check(self.part is None or (len(self.part) == 2 and 0 <= self.part[0] < self.part[1]),
               "part", "I/N with 0 <= I < N", self.part)
        _check(self.label in LABEL_SETS, "label", " or ".join(LABEL_SETS), self.label)
        _check(self.size is None or self.size >= 1, "size", "an integer >= 1", self.size)
        _check(self.tar_writer in TAR_WRITERS, "tar-writer", f"one of {', '.join(TAR_WRITERS)}", self.tar_writer)
        _check(self.channels is None or self.channels in CHANNELS, "channels", " or ".join(map(str, CHANNELS)),
               self.channels)
        _check(self.num_classes >= 2, "num-classes", "an integer >= 2", self.num_classes)
        _check(self.num_train >= 1, "num-train", "an integer >= 1", self.num_train)
        _check(self.num_val >= 0, "num-val", "an integer >= 0", self.num_val)
        _check(0 < self.val_fraction < 1, "val-fraction", "a number between 0 and 1 (exclusive)", self.val_fraction)
        _check(1 <= self.jpeg_quality <= 100, "jpeg-quality", "an integer in 1..100", self.jpeg_quality)
        for option, value in self.source_options().items():  # an option the source reads, with no default
            _check(value is not None or option in FROM_INPUT.get(self.source, ()), option.replace("_", "-"),
                   f"a value for {self.source}", None)
        _check(not self.download or self.source in option_sources("download"), "download",
               f"a source that downloads ({' or '.join(option_sources('download'))})", self.source)
        _check(self.source in NO_INPUT or self.input is not None or self.source in DEFAULT_INPUTS
               or self.download, "input", f"a path for source {self.source}", None)

    def input_path(self) -> Path | None:
        """The source input (the source's default when --input was not given; None if it reads none)."""
        if self.source in NO_INPUT:
            return None
        if self.input is not None:
            return Path(self.input).expanduser()
        if self.download:
            return Path("~/.cache/lowmode").expanduser() / self.source
        return Path(DEFAULT_INPUTS[self.source])

    def source_options(self) -> dict[str, Any]:
        """The options the source reads (``SOURCE_OPTIONS``), unset ones resolved to the source's default."""
        defaults = OPTION_DEFAULTS.get(self.source, {})
        options = {k: getattr(self, k) for k in SOURCE_OPTIONS[self.source]}
        return {k: defaults[k] if v is None and k in defaults else v for k, v in options.items()}

    def output_config(self) -> dict[str, Any]:
        """The fields that define the output bytes (recorded in the manifest; reruns must match).

        Only options the source reads are included, with defaults resolved, so ``--size 32`` and
        the synthetic default give the same config. An option the source decides from its input
        (``FROM_INPUT``, e.g. imagefolder's size and channels) is recorded as None when left unset.
        """
        fields = {k: v for k, v in asdict(self).items() if k in _COMMON_FIELDS}
        if self.low_sizes is not None:  # recorded only when given: a default build's config stays as it was
            del fields["ratio"]
            fields["low_sizes"] = list(self.low_sizes)
        path = self.input_path()
        fields["input"] = None if path is None else str(path.resolve())
        fields.update({k: v for k, v in self.source_options().items() if k not in INPUT_ONLY_OPTIONS})
        if self.encoding == "jpg":
            fields["jpeg_quality"] = self.jpeg_quality
        if SOURCE_REVISIONS.get(self.source, 1) > 1:
            # a source whose pixels changed: a half-built dataset of the old revision is not resumed
            fields["source_revision"] = SOURCE_REVISIONS[self.source]
        return fields
