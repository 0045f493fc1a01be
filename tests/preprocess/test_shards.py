"""The fast tar packer writes exactly webdataset.TarWriter's bytes; index offsets match the tar."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from preprocess.index_format import parse_index
from preprocess.shards import channel_sums, shard_bytes


@pytest.mark.parametrize("encoding", ["raw", "png", "jpg"])
@pytest.mark.parametrize("channels", [1, 3])
def test_fast_writer_equals_webdataset(tmp_path, encoding, channels):
    rng = np.random.default_rng(channels)
    images = rng.integers(0, 256, (9, 6, 10, channels), dtype=np.uint8)
    labels = rng.integers(0, 100, 9)
    keys = [f"{k:09d}" for k in rng.permutation(50)[:9]]
    fast = shard_bytes(keys, labels, images, encoding, tar_writer="fast")
    reference = shard_bytes(keys, labels, images, encoding, tar_writer="webdataset")
    assert fast == reference
    tar_bytes, index_text = fast
    (tmp_path / "s.idx").write_text(index_text)
    entries = parse_index(tmp_path / "s.idx")
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        members = tar.getmembers()
        assert [m.mtime for m in members] == [0] * 18 and {m.uname for m in members} == {"lowmode"}
        by_name = {m.name: (m.offset_data, m.size) for m in members}
        for key, entry in zip(keys, entries):
            assert entry.key == key
            for ext, (offset, size) in entry.components.items():
                assert by_name[f"{key}.{ext}"] == (offset, size)
                if ext == "label":
                    assert tar_bytes[offset:offset + size] == np.int64(labels[keys.index(key)]).tobytes()


def test_channel_sums_exact():
    images = np.random.default_rng(0).integers(0, 256, (7, 5, 5, 3), dtype=np.uint8)
    sums = channel_sums(images)
    flat = images.reshape(-1, 3).astype(np.int64)
    assert sums == {"count": 175, "sum": flat.sum(0).tolist(), "sumsq": (flat ** 2).sum(0).tolist()}
