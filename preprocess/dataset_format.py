"""The dataset directory contract shared by `preprocess` (writer) and `pipeline` (reader).

A dataset directory DATA holds::

    DATA/manifest.json                      written last, atomically (see ``Manifest``)
    DATA/full/<split>-<k:06d>.tar (+ .idx)  full-resolution samples of shard k
    DATA/low/<split>-<k:06d>.tar  (+ .idx)  the same keys, same order, at 1/ratio resolution
    DATA/low<H>/<split>-<k:06d>.tar (+ .idx)  manifest v2 only: each further low resolution, H pixels high

Each sample is two tar members, ``<key>.<encoding>`` (raw HWC uint8 bytes, or png/jpg; see
``encode_image`` / ``decode_image``) and ``<key>.label`` (``LABEL_BYTES`` bytes of ``LABEL_DTYPE``).
Keys are the sample's zero-padded index within its split in the source dataset (``000012345``);
shards hold them in a seeded shuffled order. Index files are DALI's ``wds2idx`` v1.2 text format
(``preprocess.index_format``), so DALI and the torch loader can seek straight to any sample's bytes.
"""

from __future__ import annotations

import copy
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, ClassVar, NoReturn

import numpy as np

from preprocess import files

FULL, LOW = "full", "low"
RESOLUTIONS = (FULL, LOW)
"""The two resolutions every dataset stores (folder names in the dataset directory). A version-2 dataset
may hold further low resolutions, named ``low<H>`` (``extra_resolution_name``): ``Manifest.resolutions``."""
_EXTRA_NAME = re.compile(r"low([1-9][0-9]*)")
SPLITS = ("train", "val")
ENCODINGS = ("raw", "png", "jpg")
"""Image encodings in the tars: raw (C-order HWC uint8 bytes), PNG or JPEG."""
KEY_DIGITS = 9
LABEL_EXT = "label"
LABEL_DTYPE = "<i8"  # raw little-endian int64: DALI reads it with dtypes=INT64, no text parsing
LABEL_BYTES = np.dtype(LABEL_DTYPE).itemsize
TAR_BLOCK = 512


class DatasetFormatError(ValueError):
    """A dataset directory or one of its files does not match the contract (message names the file)."""


def sample_key(index: int) -> str:
    """The key of the sample at ``index`` within its split: zero-padded, no dots."""
    return f"{index:0{KEY_DIGITS}d}"


def extra_resolution_name(height: int) -> str:
    """Folder and manifest name of a further low resolution ``height`` pixels high (manifest v2): ``low<H>``."""
    return f"low{height}"


def is_resolution_name(name: Any) -> bool:
    """"full", "low" or ``low<H>`` (H a positive integer without leading zeros)."""
    return isinstance(name, str) and (name in RESOLUTIONS or _EXTRA_NAME.fullmatch(name) is not None)


def shard_stem(split: str, shard: int) -> str:
    """File stem of shard ``shard`` of ``split`` (same in ``full/`` and ``low/``)."""
    return f"{split}-{shard:06d}"


def shard_paths(resolution: str, split: str, shard: int) -> tuple[str, str]:
    """(tar, idx) paths of a shard, relative to the dataset directory."""
    stem = f"{resolution}/{shard_stem(split, shard)}"
    return f"{stem}.tar", f"{stem}.idx"


# ----------------------------------------------------------------------------- image codec


def encode_image(image: np.ndarray, encoding: str, jpeg_quality: int = 95) -> bytes:
    """Bytes of one uint8 HWC image: raw (C-order HWC), PNG or JPEG (PIL, deterministic settings)."""
    if encoding == "raw":
        return np.ascontiguousarray(image).tobytes()
    from PIL import Image

    pil = Image.fromarray(image[..., 0] if image.shape[2] == 1 else image)
    buf = io.BytesIO()
    if encoding == "png":
        pil.save(buf, format="PNG", compress_level=6)
    elif encoding == "jpg":
        pil.save(buf, format="JPEG", quality=jpeg_quality, subsampling=0, optimize=False)
    else:
        raise ValueError(f"--encoding: expected one of {', '.join(ENCODINGS)}, got {encoding!r}")
    return buf.getvalue()


def decode_image(data: bytes, encoding: str, shape: tuple[int, int, int],
                 where: str | Callable[[], str] = "") -> np.ndarray:
    """uint8 (H, W, C) array of one sample's image bytes, checked against ``shape``.

    raw: the bytes reshaped (a read-only view); png/jpg: decoded with PIL and converted to L or
    RGB by ``shape``'s channel count. ``where`` names the sample in errors (a callable is only
    evaluated on error). Undecodable bytes or a wrong shape raise DatasetFormatError.
    """
    def fail(message: str, cause: BaseException | None = None) -> NoReturn:
        name = where() if callable(where) else where
        raise DatasetFormatError(f"{name}: {message}" if name else message) from cause

    shape = tuple(shape)
    if encoding == "raw":
        if len(data) != math.prod(shape):
            fail(f"raw image has {len(data)} bytes, expected {math.prod(shape)} for shape {list(shape)} (HWC uint8)")
        return np.frombuffer(data, np.uint8).reshape(shape)
    if encoding not in ENCODINGS:
        fail(f"unknown image encoding {encoding!r}, expected one of {', '.join(ENCODINGS)}")
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            array = np.asarray(img.convert("L" if shape[2] == 1 else "RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        fail(f"cannot decode {encoding} image ({exc})", exc)
    array = array.reshape(*array.shape[:2], -1)
    if array.shape != shape:
        fail(f"decoded shape {list(array.shape)}, manifest says {list(shape)}")
    return array


# ----------------------------------------------------------------------------- manifest


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Fields:
    """Reads fields of one JSON object, raising DatasetFormatError that names the file and field."""

    def __init__(self, obj: Any, where: str, prefix: str, required: tuple[str, ...], optional: tuple[str, ...] = ()):
        self.where, self.prefix = where, prefix
        if not isinstance(obj, dict):
            self.fail("", "an object", obj)
        for name in required:
            if name not in obj:
                raise DatasetFormatError(f"{where}: missing field {prefix + name!r}")
        unknown = sorted(set(obj) - set(required) - set(optional))
        if unknown:
            raise DatasetFormatError(f"{where}: unknown field {prefix + unknown[0]!r} (not part of manifest "
                                     f"versions {', '.join(map(str, Manifest.VERSIONS))})")
        self.obj = obj

    def fail(self, name: str, expected: str, got: Any) -> NoReturn:
        text = repr(got)
        text = text if len(text) <= 80 else text[:77] + "..."
        label = self.prefix + name if name else self.prefix.rstrip(".")
        raise DatasetFormatError(f"{self.where}: field {label!r} must be {expected}, got {text}")

    def get(self, name: str, ok: Callable[[Any], bool], expected: str) -> Any:
        value = self.obj[name]
        if not ok(value):
            self.fail(name, expected, value)
        return value

    def numbers(self, name: str, count: int, positive: bool = False) -> tuple[float, ...]:
        what = "positive numbers" if positive else "numbers"
        return tuple(self.get(name, lambda v: isinstance(v, list) and len(v) == count and all(
            _is_number(x) and (x > 0 or not positive) for x in v), f"a list of {count} {what} (one per channel)"))


def _is_inner_path(value: Any) -> bool:
    """A manifest's file path may only name a file below the dataset directory: readers (verify, the
    loaders) open it, so an absolute path or a '..' would read files elsewhere."""
    if not isinstance(value, str) or not value or "\\" in value or "\x00" in value:
        return False
    path = PurePosixPath(value)
    return not path.is_absolute() and ".." not in path.parts


@dataclass(frozen=True)
class ShardFiles:
    """One resolution of a shard: tar and idx paths (relative to the dataset directory), tar size, sha256s."""

    tar: str
    idx: str
    bytes: int
    sha256: str
    idx_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"tar": self.tar, "idx": self.idx, "bytes": self.bytes, "sha256": self.sha256,
                "idx_sha256": self.idx_sha256}

    @classmethod
    def from_dict(cls, d: Any, where: str, prefix: str) -> ShardFiles:
        names = ("tar", "idx", "bytes", "sha256", "idx_sha256")
        f = _Fields(d, where, prefix, names)
        is_str = lambda v: isinstance(v, str) and v != ""  # noqa: E731
        inside = "a relative path inside the dataset directory (no '..', not absolute)"
        return cls(tar=f.get("tar", _is_inner_path, inside), idx=f.get("idx", _is_inner_path, inside),
                   bytes=f.get("bytes", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
                   sha256=f.get("sha256", is_str, "a hex sha256"),
                   idx_sha256=f.get("idx_sha256", is_str, "a hex sha256"))


@dataclass(frozen=True)
class ShardEntry:
    """One shard: its sample count, first and last keys, and its files at each resolution."""

    num_samples: int
    first_key: str
    last_key: str
    full: ShardFiles
    low: ShardFiles
    extra: dict[str, ShardFiles] = field(default_factory=dict)
    """Files of the further low resolutions of a version-2 dataset, by name (``low<H>``)."""

    def files(self, resolution: str) -> ShardFiles:
        """The files of ``resolution`` ("full", "low" or one of ``extra``)."""
        if resolution == FULL:
            return self.full
        if resolution == LOW:
            return self.low
        if resolution not in self.extra:
            raise ValueError(f"resolution must be one of {(*RESOLUTIONS, *sorted(self.extra))}, got {resolution!r}")
        return self.extra[resolution]

    def to_dict(self) -> dict[str, Any]:
        d = {"num_samples": self.num_samples, "first_key": self.first_key, "last_key": self.last_key,
             FULL: self.full.to_dict(), LOW: self.low.to_dict()}
        d.update({name: files.to_dict() for name, files in self.extra.items()})
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str, prefix: str, resolutions: tuple[str, ...] = RESOLUTIONS) -> ShardEntry:
        f = _Fields(d, where, prefix, ("num_samples", "first_key", "last_key", *resolutions))
        is_key = lambda v: isinstance(v, str)  # noqa: E731
        by_name = {r: ShardFiles.from_dict(d[r], where, f"{prefix}{r}.") for r in resolutions}
        return cls(num_samples=f.get("num_samples", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
                   first_key=f.get("first_key", is_key, "a sample key"),
                   last_key=f.get("last_key", is_key, "a sample key"),
                   full=by_name.pop(FULL), low=by_name.pop(LOW), extra=by_name)


@dataclass(frozen=True)
class SplitEntry:
    """One split: its sample count and its shards in order."""

    num_samples: int
    shards: tuple[ShardEntry, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "shards", tuple(self.shards))

    def to_dict(self) -> dict[str, Any]:
        return {"num_samples": self.num_samples, "shards": [s.to_dict() for s in self.shards]}

    @classmethod
    def from_dict(cls, d: Any, where: str, prefix: str, resolutions: tuple[str, ...] = RESOLUTIONS) -> SplitEntry:
        f = _Fields(d, where, prefix, ("num_samples", "shards"))
        shards = f.get("shards", lambda v: isinstance(v, list), "a list of shards")
        return cls(num_samples=f.get("num_samples", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
                   shards=tuple(ShardEntry.from_dict(s, where, f"{prefix}shards[{i}].", resolutions)
                                for i, s in enumerate(shards)))


_REQUIRED = ("classes", "ratio", "encoding", "shapes", "mean", "std", "splits")
_OPTIONAL = ("dataset", "method", "sigma", "low_mean", "low_std", "seed", "config")


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """``DATA/manifest.json``, version 2 (version 1 read and kept as read): what a dataset directory holds.
    Typed and immutable.

    The JSON object has these fields::

        format, version          "lowmode-dataset", 1 | 2
        dataset                  source name, e.g. "fashion-mnist"
        classes                  list of class names (label i is classes[i])
        ratio                    downsampling ratio r of "low" = full H / low H: an integer (v1, and v2 when
                                 it divides); v2: a number > 1 when it does not (e.g. 128 -> 96)
        method, sigma            downsampling method ("gaussian"|"area"|"bilinear") and the blur sigma of "low"
        encoding                 "raw" | "png" | "jpg"
        shapes                   {"full": [H, W, C], "low": [H/r, W/r, C]}; v2 also "low<H>": [H, W', C] for each
                                 further low resolution (H below the full H, distinct from every other)
        mean, std                per-channel, on the 0..1 pixel scale, of the full-resolution train split
        low_mean, low_std        the same for the low-resolution train split
        seed                     write-time shuffle seed
        config                   the preprocess build config (for refusing mismatched reruns)
        splits                   {split: {"num_samples": n, "shards": [shard, ...]}}
          shard                  {"num_samples": n, "first_key": k0, "last_key": kn,
                                  "full": {"tar", "idx", "bytes", "sha256", "idx_sha256"},
                                  "low":  {... same fields ...}, and in v2 one such entry
                                  per further resolution of ``shapes``}

    It is written as indented, key-sorted JSON (``save``), so equal manifests have equal bytes.
    ``from_dict(d).to_dict() == d`` for every valid v1 and v2 dict: the optional fields (dataset, method,
    sigma, low_mean, low_std, seed, config) default to None and, when absent from the JSON read,
    stay absent when written (``omitted``). Unknown fields are an error, not silently dropped.
    """

    FORMAT: ClassVar[str] = "lowmode-dataset"
    VERSION: ClassVar[int] = 2
    """The version this lowmode writes."""
    VERSIONS: ClassVar[tuple[int, ...]] = (1, 2)
    """The versions it reads. A v1 manifest stays v1 when read and written back (its bytes, its fingerprint)."""
    NAME: ClassVar[str] = "manifest.json"

    classes: tuple[str, ...]
    ratio: int | float
    encoding: str
    shapes: dict[str, tuple[int, int, int]]
    """{"full": (H, W, C), "low": (H/r, W/r, C), v2: "low<H>": (H, W', C), ...}; see ``shape(resolution)``."""
    mean: tuple[float, ...]
    std: tuple[float, ...]
    splits: dict[str, SplitEntry]
    dataset: str | None = None
    method: str | None = None
    sigma: float | None = None
    low_mean: tuple[float, ...] | None = None
    low_std: tuple[float, ...] | None = None
    seed: int | None = None
    config: dict[str, Any] | None = None
    """The build config's output-defining fields (``preprocess.config.BuildConfig.output_config``)."""
    version: int = 2
    """The manifest's format version (``VERSION`` for a new dataset; as read for an existing one)."""
    omitted: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    """Optional fields that were absent from the JSON this manifest was read from (kept absent)."""

    def __post_init__(self) -> None:
        # Lists (as JSON gives them) become tuples: the manifest is a value, not shared mutable state.
        for name in ("classes", "mean", "std", "low_mean", "low_std"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "shapes", {r: tuple(s) for r, s in self.shapes.items()})
        object.__setattr__(self, "splits", dict(self.splits))
        object.__setattr__(self, "omitted", frozenset(self.omitted))

    # ------------------------------------------------------------------ views

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        """Image channels C (the same at both resolutions)."""
        return self.shapes[FULL][2]

    @property
    def resolutions(self) -> tuple[str, ...]:
        """Every stored resolution: "full", "low", then the further low ones (v2) by increasing height."""
        extra = sorted((r for r in self.shapes if r not in RESOLUTIONS), key=lambda r: self.shapes[r][0])
        return (*RESOLUTIONS, *extra)

    @property
    def low_resolutions(self) -> tuple[str, ...]:
        """Every stored resolution but "full", ordered by increasing height."""
        return tuple(sorted(self.resolutions[1:], key=lambda r: self.shapes[r][0]))

    def shape(self, resolution: str) -> tuple[int, int, int]:
        """(H, W, C) of an image at ``resolution`` (one of ``resolutions``)."""
        if resolution not in self.shapes:
            raise ValueError(f"resolution must be one of {self.resolutions}, got {resolution!r}")
        return self.shapes[resolution]

    def height(self, resolution: str) -> int:
        """Image height in pixels at ``resolution`` (a resolution's "size" in schedules and options)."""
        return self.shape(resolution)[0]

    def ratio_of(self, resolution: str) -> float:
        """full H / H of ``resolution`` (1.0 for "full"; an integer-valued float when it divides)."""
        return self.height(FULL) / self.height(resolution)

    def resolution_of_height(self, height: int) -> str:
        """The resolution whose images are ``height`` pixels high; ValueError listing the stored sizes if none."""
        for name in self.resolutions:
            if self.shapes[name][0] == height:
                return name
        sizes = ", ".join(str(self.shapes[r][0]) for r in self.resolutions)
        raise ValueError(f"no resolution of height {height} (the dataset stores {sizes})")

    def fingerprint(self) -> str:
        """sha256 over the shard hashes, shapes, statistics and classes (independent of the path).

        Stored in checkpoints to refuse resuming on a different dataset; its definition must not change.
        """
        d = self.to_dict()
        return files.json_sha256({k: d.get(k) for k in ("splits", "shapes", "ratio", "mean", "std", "classes")})

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (fresh containers: mutating it does not touch the manifest)."""
        d: dict[str, Any] = {
            "format": self.FORMAT, "version": self.version, "classes": list(self.classes), "ratio": self.ratio,
            "encoding": self.encoding, "shapes": {r: list(s) for r, s in self.shapes.items()},
            "mean": list(self.mean), "std": list(self.std),
            "splits": {name: split.to_dict() for name, split in self.splits.items()},
        }
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value is None and name in self.omitted:
                continue
            d[name] = list(value) if isinstance(value, tuple) else copy.deepcopy(value)
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = NAME) -> Manifest:
        """Validate a v1 or v2 JSON object; DatasetFormatError names ``where`` (the file) and the field."""
        if not isinstance(d, dict) or d.get("format") != cls.FORMAT:
            got = d.get("format") if isinstance(d, dict) else d
            raise DatasetFormatError(f"{where}: field 'format' must be {cls.FORMAT!r}, got {got!r}")
        version = d.get("version")
        if not _is_int(version) or version not in cls.VERSIONS:
            raise DatasetFormatError(
                f"{where}: manifest version {version!r} is not supported "
                f"(this lowmode reads versions {', '.join(map(str, cls.VERSIONS))}); "
                f"rebuild with this version's lowmode-preprocess"
            )
        f = _Fields(d, where, "", _REQUIRED, ("format", "version", *_OPTIONAL))
        shapes = _shapes(f, version)
        resolutions = tuple(shapes)
        channels = shapes[FULL][2]
        optional: dict[str, Any] = {}
        checks = {
            "dataset": (lambda v: isinstance(v, str), "a source name"),
            "method": (lambda v: isinstance(v, str), "a downsampling method name"),
            "sigma": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
            "seed": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
            "config": (lambda v: isinstance(v, dict), "an object (the build config)"),
        }
        for name in _OPTIONAL:
            if d.get(name) is None:
                continue
            if name in ("low_mean", "low_std"):
                optional[name] = f.numbers(name, channels)
            else:
                optional[name] = copy.deepcopy(f.get(name, *checks[name]))
        splits = f.get("splits", lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v),
                       "an object {split: {...}}")
        return cls(
            classes=tuple(f.get("classes", lambda v: isinstance(v, list) and v != [] and all(
                isinstance(c, str) for c in v), "a non-empty list of class names")),
            ratio=_ratio(f, version, shapes),
            encoding=f.get("encoding", lambda v: v in ENCODINGS, f"one of {ENCODINGS}"),
            shapes=shapes,
            mean=f.numbers("mean", channels),
            std=f.numbers("std", channels, positive=True),
            splits={name: SplitEntry.from_dict(s, where, f"splits.{name}.", resolutions)
                    for name, s in splits.items()},
            **optional,
            version=version,
            omitted=frozenset(name for name in _OPTIONAL if name not in d),
        )

    # ------------------------------------------------------------------ files

    @classmethod
    def load(cls, data_dir: str | os.PathLike) -> Manifest:
        """Read and validate ``DATA/manifest.json``; any problem is a DatasetFormatError naming the file."""
        path = Path(data_dir) / cls.NAME
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise DatasetFormatError(f"{path}: no manifest; build the dataset with 'lowmode-preprocess build'") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetFormatError(f"{path}: unreadable manifest ({exc})") from exc
        return cls.from_dict(d, str(path))

    def save(self, data_dir: str | os.PathLike) -> Path:
        """Validate, then atomically write ``DATA/manifest.json``; returns its path."""
        path = Path(data_dir) / self.NAME
        d = self.to_dict()
        Manifest.from_dict(d, str(path))
        files.atomic_write_json(path, d)
        return path


def _shapes(f: _Fields, version: int) -> dict[str, tuple[int, int, int]]:
    if version == 1:
        shapes = f.get("shapes", lambda v: isinstance(v, dict) and set(v) == set(RESOLUTIONS),
                       '{"full": [H, W, C], "low": [H, W, C]}')
    else:
        shapes = f.get("shapes", lambda v: isinstance(v, dict) and set(RESOLUTIONS) <= set(v)
                       and all(is_resolution_name(k) for k in v),
                       '{"full": [H, W, C], "low": [H, W, C], "low<H>": [H, W, C], ...}')
    out = {}
    for r in (*RESOLUTIONS, *(k for k in shapes if k not in RESOLUTIONS)):
        value = shapes[r]
        if not (isinstance(value, list) and len(value) == 3 and all(_is_int(v) for v in value)):
            f.fail(f"shapes.{r}", "[H, W, C]", value)
        if min(value) < 1:
            f.fail(f"shapes.{r}", "positive [H, W, C]", value)
        out[r] = tuple(value)
    channels = out[FULL][2]
    for r, value in out.items():
        if value[2] != channels:
            f.fail(f"shapes.{r}", f"[H, W, {channels}] (the channels of shapes.full)", list(value))
    if version >= 2:
        full_h = out[FULL][0]
        heights: dict[int, str] = {}
        for r, value in out.items():
            if r != FULL and value[0] >= full_h:
                f.fail(f"shapes.{r}", f"a height below the full height {full_h}", list(value))
            if r not in RESOLUTIONS and r != extra_resolution_name(value[0]):
                f.fail(f"shapes.{r}", f"[{r[3:]}, W, {channels}] (a low<H> resolution is H pixels high)", list(value))
            if value[0] in heights:
                f.fail(f"shapes.{r}", f"a height no other resolution has ({heights[value[0]]} is {value[0]} high)",
                       list(value))
            heights[value[0]] = r
    return out


def _ratio(f: _Fields, version: int, shapes: dict[str, tuple[int, int, int]]) -> int | float:
    if version == 1:
        return f.get("ratio", lambda v: _is_int(v) and v >= 1, "an integer >= 1")
    exact = shapes[FULL][0] / shapes[LOW][0]
    expected = int(exact) if exact.is_integer() else exact
    what = f"full H / low H = {shapes[FULL][0]} / {shapes[LOW][0]} ({expected!r}" + (
        ", an integer)" if _is_int(expected) else ")")
    return f.get("ratio", lambda v: _is_number(v) and (_is_int(v) and v == expected if _is_int(expected) else
                                                       not _is_int(v) and math.isclose(v, exact, rel_tol=1e-12)), what)


def load_manifest(data_dir: str | os.PathLike) -> Manifest:
    """``Manifest.load(data_dir)``: read and validate ``DATA/manifest.json``."""
    return Manifest.load(data_dir)
