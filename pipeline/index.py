"""The per-split sample index: key -> (shard, offset, size) at every resolution the dataset stores.

``open_split(DATA, split)`` reads ``manifest.json`` (refusing an unknown version) and every shard's
wds2idx index, and runs the cheap open check: each tar and index exists, each tar's size equals the
manifest's ``bytes``, each index lists the manifest's sample count, every resolution's folder lists
the keys of ``full/`` in the same order, every sample has an image and a LABEL_BYTES label, and raw images have
exactly H*W*C bytes. The sha256 of the tars is NOT checked here (``lowmode-preprocess verify`` does
that). Positions 0..n-1 enumerate the split in *index order*: shards in manifest order, samples in
tar order. No tar byte is read here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from preprocess.dataset_format import (
    FULL,
    LABEL_BYTES,
    LABEL_EXT,
    LOW,
    DatasetFormatError,
    Manifest,
    ShardEntry,
)
from preprocess.index_format import IndexEntry, parse_index


@dataclass(frozen=True)
class ResolutionIndex:
    """Where each sample's bytes are at one resolution. Arrays are indexed by position (n,)."""

    resolution: str
    shape: tuple[int, int, int]
    """(H, W, C) of an image at this resolution."""
    tar_paths: tuple[Path, ...]
    """Absolute tar path per shard (in manifest order)."""
    shard: np.ndarray
    """int32 shard number (into ``tar_paths``) of each position."""
    image_offset: np.ndarray
    """int64 byte offset of the image data in its tar."""
    image_size: np.ndarray
    """int64 size in bytes of the image data."""
    label_offset: np.ndarray
    """int64 byte offset of the label (LABEL_BYTES bytes of LABEL_DTYPE) in its tar."""


@dataclass(frozen=True)
class SplitIndex:
    """Every resolution of one split, position-aligned (same key at the same position)."""

    data_dir: Path
    split: str
    manifest: Manifest
    keys: tuple[str, ...]
    resolutions: dict[str, ResolutionIndex]
    """By name, in ``manifest.resolutions`` order."""

    @property
    def full(self) -> ResolutionIndex:
        return self.resolutions[FULL]

    @property
    def low(self) -> ResolutionIndex:
        return self.resolutions[LOW]

    @property
    def num_samples(self) -> int:
        return len(self.keys)

    @property
    def encoding(self) -> str:
        return self.manifest.encoding

    @property
    def ratio(self) -> int | float:
        return self.manifest.ratio

    def at(self, resolution: str) -> ResolutionIndex:
        """The index of ``resolution`` (one of ``manifest.resolutions``)."""
        if resolution not in self.resolutions:
            raise ValueError(f"resolution must be one of {tuple(self.resolutions)}, got {resolution!r}")
        return self.resolutions[resolution]

    def describe(self, resolution: str, position: int) -> str:
        """'<tar path> key <key>' for error messages about one sample."""
        res = self.at(resolution)
        return f"{res.tar_paths[res.shard[position]]} key {self.keys[position]}"


def open_split(data_dir: str | os.PathLike, split: str, *, max_samples: int = 0) -> SplitIndex:
    """Read and check the manifest and index files of ``split``; see the module docstring.

    ``max_samples`` > 0 keeps only the first ``max_samples`` positions (shards are shuffled at
    write time, so this is a random subset); the cheap check still covers every shard.
    Raises DatasetFormatError naming the file (and key) on any problem.
    """
    data_dir = Path(data_dir)
    manifest = Manifest.load(data_dir)
    manifest_path = data_dir / Manifest.NAME
    if split not in manifest.splits:
        raise DatasetFormatError(f"{manifest_path}: no split {split!r} (has {sorted(manifest.splits)})")
    shards = manifest.splits[split].shards
    if not shards:
        raise DatasetFormatError(f"{manifest_path}: split {split!r} lists no shards")
    names = manifest.resolutions
    per_res = {res: [_read_shard_index(data_dir, shard, res) for shard in shards] for res in names}
    keys: list[str] = []
    for k, full_entries in enumerate(per_res[FULL]):
        for res in names[1:]:
            _check_same_keys(data_dir, shards[k], res, full_entries, per_res[res][k])
        keys.extend(e.key for e in full_entries)
    expected = manifest.splits[split].num_samples
    if expected != len(keys):
        raise DatasetFormatError(f"{manifest_path}: split {split!r} says {expected} samples, shards hold {len(keys)}")
    n = min(max_samples, len(keys)) if max_samples > 0 else len(keys)
    indexes = {res: _resolution_index(data_dir, res, shards, per_res[res], manifest, n) for res in names}
    return SplitIndex(data_dir=data_dir, split=split, manifest=manifest, keys=tuple(keys[:n]), resolutions=indexes)


def _read_shard_index(data_dir: Path, shard: ShardEntry, resolution: str) -> list[IndexEntry]:
    """Check that one shard's tar and index exist and match the manifest; return its entries."""
    files = shard.files(resolution)
    tar, idx = data_dir / files.tar, data_dir / files.idx
    try:
        size = tar.stat().st_size
    except OSError as exc:
        raise DatasetFormatError(f"{tar}: shard missing or unreadable ({exc.strerror}); rebuild the dataset") from exc
    if size != files.bytes:
        raise DatasetFormatError(
            f"{tar}: size {size} bytes, manifest says {files.bytes}; shard is truncated or replaced"
        )
    entries = parse_index(idx)
    if len(entries) != shard.num_samples:
        raise DatasetFormatError(f"{idx}: lists {len(entries)} samples, manifest says {shard.num_samples}")
    return entries


def _check_same_keys(data_dir: Path, shard: ShardEntry, resolution: str, full: list[IndexEntry],
                     low: list[IndexEntry]) -> None:
    for position, (f, lo) in enumerate(zip(full, low)):
        if f.key != lo.key:
            raise DatasetFormatError(
                f"{data_dir / shard.files(resolution).tar}: key {lo.key} at sample {position} differs from "
                f"{data_dir / shard.full.tar} key {f.key}; full/ and {resolution}/ shards must list the same keys"
            )


def _resolution_index(
    data_dir: Path, resolution: str, shards: tuple[ShardEntry, ...], entries: list[list[IndexEntry]],
    manifest: Manifest, n: int,
) -> ResolutionIndex:
    """Flatten the entries of every shard into position-indexed arrays, checking each sample."""
    shape = manifest.shape(resolution)
    encoding = manifest.encoding
    raw_bytes = shape[0] * shape[1] * shape[2]
    columns: list[tuple[int, int, int, int]] = []
    for k, (shard, shard_entries) in enumerate(zip(shards, entries)):
        tar = data_dir / shard.files(resolution).tar
        tar_bytes = shard.files(resolution).bytes
        for e in shard_entries:
            if encoding not in e.components or LABEL_EXT not in e.components:
                raise DatasetFormatError(
                    f"{tar}: key {e.key} has components {sorted(e.components)}, expected {encoding!r} and {LABEL_EXT!r}"
                )
            (img_off, img_size), (lab_off, lab_size) = e.components[encoding], e.components[LABEL_EXT]
            if lab_size != LABEL_BYTES:
                raise DatasetFormatError(f"{tar}: key {e.key} label has {lab_size} bytes, expected {LABEL_BYTES}")
            if encoding == "raw" and img_size != raw_bytes:
                raise DatasetFormatError(
                    f"{tar}: key {e.key} image has {img_size} bytes, "
                    f"expected {raw_bytes} for shape {list(shape)} (HWC uint8)"
                )
            if max(img_off + img_size, lab_off + lab_size) > tar_bytes:
                raise DatasetFormatError(f"{tar}: key {e.key} lies past the end of the tar ({tar_bytes} bytes)")
            columns.append((k, img_off, img_size, lab_off))
    table = np.asarray(columns[:n], dtype=np.int64).reshape(-1, 4)
    return ResolutionIndex(
        resolution=resolution, shape=shape,
        tar_paths=tuple(data_dir / s.files(resolution).tar for s in shards),
        shard=table[:, 0].astype(np.int32), image_offset=table[:, 1].copy(), image_size=table[:, 2].copy(),
        label_offset=table[:, 3].copy(),
    )
