"""Read samples back from a dataset directory through its index files (for verify, show, tests)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from preprocess.dataset_format import LABEL_DTYPE, LABEL_EXT, parse_index


def decode_image(data: bytes, encoding: str, shape: list[int]) -> np.ndarray:
    """uint8 HWC array from a sample's image bytes (raw with the manifest's shape, or png/jpg)."""
    if encoding == "raw":
        return np.frombuffer(data, dtype=np.uint8).reshape(shape)
    image = np.asarray(Image.open(io.BytesIO(data)))
    return image[..., None] if image.ndim == 2 else image


def iter_shard(data_dir: str | Path, manifest: dict[str, Any], resolution: str,
               shard: dict[str, Any]) -> Iterator[tuple[str, int, np.ndarray]]:
    """(key, label, image) of each sample of one shard, in shard order, read via its index."""
    data_dir = Path(data_dir)
    encoding, shape = manifest["encoding"], manifest["shapes"][resolution]
    entries = parse_index(data_dir / shard[resolution]["idx"])
    with open(data_dir / shard[resolution]["tar"], "rb") as f:
        for entry in entries:
            blobs = {}
            for ext, (offset, size) in entry.components.items():
                f.seek(offset)
                blobs[ext] = f.read(size)
            label = int(np.frombuffer(blobs[LABEL_EXT], dtype=LABEL_DTYPE)[0])
            yield entry.key, label, decode_image(blobs[encoding], encoding, shape)


def read_split(data_dir: str | Path, manifest: dict[str, Any], split: str, resolution: str,
               limit: int | None = None) -> Iterator[tuple[str, int, np.ndarray]]:
    """(key, label, image) of a split's samples in stored order, at most ``limit`` of them."""
    count = 0
    for shard in manifest["splits"][split]["shards"]:
        for sample in iter_shard(data_dir, manifest, resolution, shard):
            if limit is not None and count >= limit:
                return
            count += 1
            yield sample
