"""Read samples back from a dataset directory through its index files (for verify, show, tests).

``resolution`` is any of the manifest's resolutions (``Manifest.resolutions``: "full", "low" and, in a
version-2 dataset, each "low<H>"); another name is a ValueError listing them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from preprocess.dataset_format import LABEL_DTYPE, LABEL_EXT, Manifest, ShardEntry, decode_image
from preprocess.index_format import parse_index


def iter_shard(data_dir: str | Path, manifest: Manifest, resolution: str,
               shard: ShardEntry) -> Iterator[tuple[str, int, np.ndarray]]:
    """(key, label, image) of each sample of one shard, in shard order, read via its index."""
    data_dir = Path(data_dir)
    encoding, shape = manifest.encoding, manifest.shape(resolution)  # ValueError for an unknown resolution
    files = shard.files(resolution)
    entries = parse_index(data_dir / files.idx)
    tar = data_dir / files.tar
    with open(tar, "rb") as f:
        for entry in entries:
            blobs = {}
            for ext, (offset, size) in entry.components.items():
                f.seek(offset)
                blobs[ext] = f.read(size)
            label = int(np.frombuffer(blobs[LABEL_EXT], dtype=LABEL_DTYPE)[0])
            yield entry.key, label, decode_image(blobs[encoding], encoding, shape, f"{tar} key {entry.key}")


def read_split(data_dir: str | Path, manifest: Manifest, split: str, resolution: str,
               limit: int | None = None) -> Iterator[tuple[str, int, np.ndarray]]:
    """(key, label, image) of a split's samples in stored order at ``resolution``, at most ``limit`` of them."""
    manifest.shape(resolution)  # an unknown resolution fails here, even for a split without shards
    count = 0
    for shard in manifest.splits[split].shards:
        for sample in iter_shard(data_dir, manifest, resolution, shard):
            if limit is not None and count >= limit:
                return
            count += 1
            yield sample
