"""Write one shard: the same samples, same order, at every resolution (full, low, and any ``low<H>``).

Each resolution's shard is a tar with the bytes webdataset's ``TarWriter`` writes (fixed mtime,
owner and mode, so equal samples give equal bytes; written by ``preprocess.tarpack`` unless
``tar_writer="webdataset"``) plus its wds2idx index. All resolutions' files are written to
temporary names first and then renamed into place; the caller records the result (sha256s,
per-channel pixel sums) in a sidecar only after the renames, so a shard with a sidecar is complete.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

from preprocess.dataset_format import (LABEL_BYTES, LABEL_DTYPE, LABEL_EXT, TAR_BLOCK, ShardFiles, encode_image,
                                       sample_key, shard_paths)
from preprocess.files import write_temp
from preprocess.index_format import format_index
from preprocess.tarpack import TAR_MODE, TAR_MTIME, TAR_OWNER, pack_fixed, pack_variable, padded

TAR_WRITERS = ("fast", "webdataset")


def tar_with_webdataset(keys: list[str], label_rows: np.ndarray, payloads: list[bytes], ext: str):
    """(tar bytes, index entries) written by webdataset's ``TarWriter`` (the reference writer).

    Offsets follow the USTAR layout (one 512-byte header per member, data padded to 512): names
    are short, so no long-name headers appear; ``verify`` cross-checks offsets against the tar.
    """
    import webdataset  # ~1 s of import time that the fast path does not need

    buf = io.BytesIO()
    entries, offset = [], 0
    with webdataset.TarWriter(buf, user=TAR_OWNER, group=TAR_OWNER, mode=TAR_MODE, encoder=False,
                              mtime=TAR_MTIME) as writer:
        for key, label, payload in zip(keys, label_rows, payloads):
            sample = {"__key__": key, LABEL_EXT: label.tobytes(), ext: payload}
            components = []
            for member in sorted(k for k in sample if k != "__key__"):  # TarWriter's member order
                size = len(sample[member])
                components.append((member, offset + TAR_BLOCK, size))
                offset += TAR_BLOCK + padded(size)
            entries.append((key, components))
            writer.write(sample)
    return buf.getvalue(), entries


def shard_bytes(keys: list[str], labels: np.ndarray, images: np.ndarray, encoding: str, jpeg_quality: int = 95,
                tar_writer: str = "fast") -> tuple[bytes, str]:
    """(tar bytes, wds2idx text) of one shard: per sample ``<key>.label`` and ``<key>.<encoding>``.

    ``tar_writer``: "fast" (tarpack, same bytes) or "webdataset" (``TarWriter``).
    """
    n = len(keys)
    label_rows = np.ascontiguousarray(labels, dtype=LABEL_DTYPE).view(np.uint8).reshape(n, LABEL_BYTES)
    if tar_writer == "webdataset":
        payloads = [encode_image(img, encoding, jpeg_quality) for img in images]
        data, entries = tar_with_webdataset(keys, label_rows, payloads, encoding)
    elif encoding == "raw":
        data, entries = pack_fixed(keys, {LABEL_EXT: label_rows, "raw": images.reshape(n, -1)})
    else:
        payloads = [encode_image(img, encoding, jpeg_quality) for img in images]
        data, entries = pack_variable(keys, {LABEL_EXT: [r.tobytes() for r in label_rows], encoding: payloads})
    return data, format_index(entries)


def write_shard(out_dir: Path, split: str, shard: int, indices: np.ndarray, labels: np.ndarray,
                images: dict[str, np.ndarray], encoding: str, jpeg_quality: int,
                tar_writer: str = "fast") -> dict[str, ShardFiles]:
    """Write shard ``shard`` of ``split`` at every resolution of ``images`` (resolution -> batch, in that
    order): each resolution's tar and idx go to temporary names, and only when all are written are they
    renamed into place (a failure removes the temporary files and leaves no partial shard behind)."""
    keys = [sample_key(int(i)) for i in indices]
    staged: list[tuple[Path, Path]] = []
    result = {}
    try:
        for resolution, batch in images.items():
            tar_data, idx_text = shard_bytes(keys, labels, batch, encoding, jpeg_quality, tar_writer)
            tar_rel, idx_rel = shard_paths(resolution, split, shard)
            idx_data = idx_text.encode()
            for rel, data in ((tar_rel, tar_data), (idx_rel, idx_data)):
                # no fsync: a shard damaged by a power cut fails its sha256 check on the next run and is redone
                staged.append((write_temp(out_dir / rel, data), out_dir / rel))
            result[resolution] = ShardFiles(tar=tar_rel, idx=idx_rel, bytes=len(tar_data),
                                            sha256=hashlib.sha256(tar_data).hexdigest(),
                                            idx_sha256=hashlib.sha256(idx_data).hexdigest())
        for tmp, final in staged:
            os.replace(tmp, final)
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    return result


_SQUARES = (np.arange(256, dtype=np.uint32) ** 2).astype(np.uint16)  # 255**2 fits


def channel_sums(images: np.ndarray) -> dict[str, list[int]]:
    """Exact per-channel pixel count, sum and sum of squares (0..255 scale) of a uint8 NHWC batch.

    Integers make the dataset's mean/std independent of how shards were split among workers.
    """
    planes = np.ascontiguousarray(images.reshape(-1, images.shape[-1]).T)  # (C, pixels): fast reductions
    return {"count": int(planes.shape[1]), "sum": [int(v) for v in planes.sum(axis=1, dtype=np.uint64)],
            "sumsq": [int(_SQUARES[plane].sum(dtype=np.uint64)) for plane in planes]}
