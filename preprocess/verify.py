"""Check a dataset directory against its manifest; collect every problem instead of stopping at one.

Checks per shard and resolution: the files exist with the recorded size and sha256s; the tar's
members (read with ``tarfile``) pair a label and an image per key, with valid sizes and labels;
the index file lists exactly the tar's data offsets and sizes; the sample count and first/last
keys match the manifest. Across resolutions (every one of the manifest: full, low and any low<H>):
shard k holds the same keys and labels in the same order in each. Per split: shard counts add up to
the manifest's count, and no tar lies around unlisted in any resolution folder.

    lowmode-preprocess verify DATA        # prints each problem, exits 1 if there are any
"""

from __future__ import annotations

import math
import tarfile
from pathlib import Path
import numpy as np

from preprocess.dataset_format import (FULL, LABEL_BYTES, LABEL_DTYPE, LABEL_EXT, DatasetFormatError, Manifest,
                                       ShardEntry, ShardFiles)
from preprocess.files import sha256_file
from preprocess.index_format import parse_index
from preprocess.state import resolution_dirs


def _tar_samples(path: Path, encoding: str, image_bytes: int | None, problems: list[str]):
    """[(key, label, {ext: (offset, size)})] from the tar itself, noting malformed members."""
    samples: list[tuple[str, int, dict[str, tuple[int, int]]]] = []
    with tarfile.open(path, "r:") as tar:
        for member in tar:
            key, _, ext = member.name.partition(".")
            if not member.isfile() or ext not in (LABEL_EXT, encoding):
                problems.append(f"{path}: unexpected member {member.name!r}")
                continue
            if not samples or samples[-1][0] != key:
                samples.append((key, -1, {}))
            components = samples[-1][2]
            components[ext] = (member.offset_data, member.size)
            if ext == LABEL_EXT:
                data = tar.extractfile(member).read()
                if len(data) != LABEL_BYTES:
                    problems.append(f"{path}: {member.name} has {len(data)} bytes, expected {LABEL_BYTES} (int64)")
                    continue
                samples[-1] = (key, int(np.frombuffer(data, dtype=LABEL_DTYPE)[0]), components)
            elif image_bytes is not None and member.size != image_bytes:
                problems.append(f"{path}: {member.name} has {member.size} bytes, expected {image_bytes}")
    return samples


def _check_files(data_dir: Path, files: ShardFiles, problems: list[str]) -> bool:
    """Existence, size and sha256 of a shard's tar and idx; False if the tar is unusable."""
    tar, idx = data_dir / files.tar, data_dir / files.idx
    ok = True
    for path, sha256 in ((tar, files.sha256), (idx, files.idx_sha256)):
        if not path.is_file():
            problems.append(f"{path}: missing")
            ok = False
        elif sha256_file(path) != sha256:
            problems.append(f"{path}: sha256 differs from the manifest (corrupt or replaced file)")
    if tar.is_file() and tar.stat().st_size != files.bytes:
        problems.append(f"{tar}: {tar.stat().st_size} bytes, manifest says {files.bytes}")
    return ok


def _check_shard_resolution(data_dir: Path, manifest: Manifest, resolution: str, shard: ShardEntry,
                            problems: list[str]) -> list[tuple[str, int]] | None:
    """Check one resolution of a shard; return its (key, label) list, or None if unreadable."""
    files = shard.files(resolution)
    if not _check_files(data_dir, files, problems):
        return None
    tar_path = data_dir / files.tar
    encoding = manifest.encoding
    image_bytes = math.prod(manifest.shape(resolution)) if encoding == "raw" else None
    try:
        samples = _tar_samples(tar_path, encoding, image_bytes, problems)
    except (tarfile.TarError, OSError) as exc:
        problems.append(f"{tar_path}: not a readable tar ({exc})")
        return None
    num_classes = manifest.num_classes
    for key, label, components in samples:
        if set(components) != {LABEL_EXT, encoding}:
            problems.append(f"{tar_path}: sample {key} has members {sorted(components)}, "
                            f"expected {LABEL_EXT} and {encoding}")
        if not 0 <= label < num_classes:
            problems.append(f"{tar_path}: sample {key} has label {label}, expected 0..{num_classes - 1}")
    _check_index(data_dir / files.idx, samples, problems)
    keys = [key for key, _, _ in samples]
    if len(keys) != shard.num_samples:
        problems.append(f"{tar_path}: {len(keys)} samples, manifest says {shard.num_samples}")
    if keys and (keys[0], keys[-1]) != (shard.first_key, shard.last_key):
        problems.append(f"{tar_path}: first/last keys {keys[0]}/{keys[-1]}, "
                        f"manifest says {shard.first_key}/{shard.last_key}")
    return [(key, label) for key, label, _ in samples]


def _check_index(idx_path: Path, samples: list, problems: list[str]) -> None:
    try:
        entries = parse_index(idx_path)
    except DatasetFormatError as exc:
        problems.append(str(exc))
        return
    listed = [(e.key, e.components) for e in entries]
    actual = [(key, components) for key, _, components in samples]
    if listed != actual:
        first = next((i for i, (a, b) in enumerate(zip(listed, actual)) if a != b), min(len(listed), len(actual)))
        problems.append(f"{idx_path}: does not match its tar (first difference at sample {first})")


def _check_split(data_dir: Path, manifest: Manifest, split: str, problems: list[str]) -> None:
    info = manifest.splits[split]
    for shard in info.shards:
        keys = {r: _check_shard_resolution(data_dir, manifest, r, shard, problems) for r in manifest.resolutions}
        for r in manifest.resolutions[1:]:
            if keys[FULL] is not None and keys[r] is not None and keys[FULL] != keys[r]:
                i = next((i for i, (a, b) in enumerate(zip(keys[FULL], keys[r])) if a != b),
                         min(len(keys[FULL]), len(keys[r])))
                problems.append(f"{data_dir / shard.full.tar} and {data_dir / shard.files(r).tar}: "
                                f"keys/labels differ from sample {i} on (full and {r} must match in order)")
    total = sum(shard.num_samples for shard in info.shards)
    if total != info.num_samples:
        problems.append(f"{data_dir / Manifest.NAME}: {split} shards hold {total} samples, "
                        f"num_samples says {info.num_samples}")


def verify_dataset(data_dir: str | Path) -> list[str]:
    """Every problem found in the dataset directory (empty list: it is intact), one line each."""
    data_dir = Path(data_dir)
    try:
        manifest = Manifest.load(data_dir)
    except DatasetFormatError as exc:
        return [str(exc)]
    problems: list[str] = []
    for split in manifest.splits:
        _check_split(data_dir, manifest, split, problems)
    listed = {shard.files(r).tar for info in manifest.splits.values() for shard in info.shards
              for r in manifest.resolutions}
    for folder in resolution_dirs(data_dir):  # also a low<H>/ the manifest does not have
        for tar in sorted(folder.glob("*.tar")):
            if f"{folder.name}/{tar.name}" not in listed:
                problems.append(f"{tar}: shard not listed in the manifest")
    return problems
