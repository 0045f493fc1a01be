"""The dataset directory contract shared by `preprocess` (writer) and `pipeline` (reader).

A dataset directory DATA holds::

    DATA/manifest.json                      written last, atomically
    DATA/full/<split>-<k:06d>.tar (+ .idx)  full-resolution samples of shard k
    DATA/low/<split>-<k:06d>.tar  (+ .idx)  the same keys, same order, at 1/ratio resolution

Each sample is two tar members, ``<key>.<encoding>`` (raw HWC uint8 bytes, or png/jpg) and
``<key>.label`` (8 bytes, little-endian int64). Keys are the sample's zero-padded index within its
split in the source dataset (``000012345``); shards hold them in a seeded shuffled order.
Index files are DALI's ``wds2idx`` v1.2 text format, so DALI and the torch loader can seek straight
to any sample's bytes. See ../shared/DESIGN.md ("Dataset directory").
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "lowmode-dataset"
MANIFEST_VERSION = 1
RESOLUTIONS = ("full", "low")
SPLITS = ("train", "val")
KEY_DIGITS = 9
LABEL_EXT = "label"
LABEL_DTYPE = "<i8"  # 8 raw little-endian bytes: DALI reads it with dtypes=INT64, no text parsing
INDEX_VERSION = "v1.2"
TAR_BLOCK = 512


class DatasetFormatError(ValueError):
    """A dataset directory or one of its files does not match the contract (message names the file)."""


def sample_key(index: int) -> str:
    """The key of the sample at ``index`` within its split: zero-padded, no dots."""
    return f"{index:0{KEY_DIGITS}d}"


def shard_stem(split: str, shard: int) -> str:
    """File stem of shard ``shard`` of ``split`` (same in ``full/`` and ``low/``)."""
    return f"{split}-{shard:06d}"


def shard_paths(resolution: str, split: str, shard: int) -> tuple[str, str]:
    """(tar, idx) paths of a shard, relative to the dataset directory."""
    stem = f"{resolution}/{shard_stem(split, shard)}"
    return f"{stem}.tar", f"{stem}.idx"


# ----------------------------------------------------------------------------- files


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def json_sha256(obj: Any) -> str:
    """Hex sha256 of ``obj`` as key-sorted JSON: a stable digest of configs and manifests."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def file_mode() -> int:
    """Permission bits for new files: 0o666 minus the process umask (mkstemp alone gives 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented, key-sorted JSON (stable bytes for equal content)."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


# ----------------------------------------------------------------------------- index files


@dataclass(frozen=True)
class IndexEntry:
    """One sample of a shard: its key and, per component extension, (data offset, size) in the tar."""

    key: str
    components: dict[str, tuple[int, int]]


def format_index(entries: list[tuple[str, list[tuple[str, int, int]]]]) -> str:
    """Render a wds2idx v1.2 index.

    ``entries``: per sample, its key and its components as (extension, data offset, size), in tar
    order. Each line lists ``<ext> <offset> <size> <member name>`` per component, as DALI's
    ``wds2idx`` writes it.
    """
    lines = [f"{INDEX_VERSION} {len(entries)}"]
    for key, components in entries:
        lines.append(" ".join(f"{ext} {off} {size} {key}.{ext}" for ext, off, size in components))
    return "\n".join(lines) + "\n"


def parse_index(path: str | os.PathLike) -> list[IndexEntry]:
    """Read a wds2idx v1.2 index file; raise DatasetFormatError naming the file on any problem."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DatasetFormatError(f"{path}: cannot read index file ({exc.strerror})") from exc
    if not lines:
        raise DatasetFormatError(f"{path}: empty index file, expected a '{INDEX_VERSION} <count>' header")
    header = lines[0].split()
    if len(header) != 2 or header[0] != INDEX_VERSION or not header[1].isdigit():
        raise DatasetFormatError(f"{path}: bad header {lines[0]!r}, expected '{INDEX_VERSION} <count>'")
    count = int(header[1])
    if len(lines) - 1 != count:
        raise DatasetFormatError(f"{path}: header says {count} samples, file lists {len(lines) - 1}")
    entries = []
    for lineno, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if not fields or len(fields) % 4:
            raise DatasetFormatError(f"{path}:{lineno}: expected groups of '<ext> <offset> <size> <name>'")
        key, components = None, {}
        for i in range(0, len(fields), 4):
            ext, off, size, name = fields[i : i + 4]
            if not (off.isdigit() and size.isdigit()):
                raise DatasetFormatError(f"{path}:{lineno}: offset/size must be integers, got {off!r} {size!r}")
            stem = name.split(".", 1)[0]
            if key is None:
                key = stem
            elif stem != key:
                raise DatasetFormatError(f"{path}:{lineno}: members of one sample have keys {key!r} and {stem!r}")
            components[ext] = (int(off), int(size))
        entries.append(IndexEntry(key=key, components=components))
    return entries


# ----------------------------------------------------------------------------- manifest


def load_manifest(data_dir: str | os.PathLike) -> dict[str, Any]:
    """Read and sanity-check ``DATA/manifest.json``; unknown format/version is a clear error.

    The manifest (version 1) has these fields::

        format, version          "lowmode-dataset", 1
        dataset                  source name, e.g. "fashion-mnist"
        classes                  list of class names (label i is classes[i])
        ratio                    integer downsampling ratio r
        method, sigma            downsampling method ("gaussian"|"area"|"bilinear") and its blur sigma
        encoding                 "raw" | "png" | "jpg"
        shapes                   {"full": [H, W, C], "low": [H/r, W/r, C]}
        mean, std                per-channel, on the 0..1 pixel scale, of the full-resolution train split
        low_mean, low_std        the same for the low-resolution train split
        seed                     write-time shuffle seed
        config                   the preprocess build config (for refusing mismatched reruns)
        splits                   {split: {"num_samples": n, "shards": [shard, ...]}}
          shard                  {"num_samples": n, "first_key": k0, "last_key": kn,
                                  "full": {"tar", "idx", "bytes", "sha256", "idx_sha256"},
                                  "low":  {... same fields ...}}
    """
    path = Path(data_dir) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DatasetFormatError(f"{path}: no manifest; build the dataset with 'lowmode-preprocess build'") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetFormatError(f"{path}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise DatasetFormatError(f"{path}: field 'format' must be {MANIFEST_FORMAT!r}")
    if manifest.get("version") != MANIFEST_VERSION:
        raise DatasetFormatError(
            f"{path}: manifest version {manifest.get('version')!r} is not supported "
            f"(this lowmode reads version {MANIFEST_VERSION}); rebuild with this version's lowmode-preprocess"
        )
    for field in ("classes", "ratio", "encoding", "shapes", "mean", "std", "splits"):
        if field not in manifest:
            raise DatasetFormatError(f"{path}: missing field {field!r}")
    return manifest
