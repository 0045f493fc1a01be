"""Both loaders: keys, modes, pixels, resume, rank split, and that low steps never touch full/ shards."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline import Manifest, make_loader
from pipeline.schedule import ModeSchedule, ScheduleConfig
from tests.integrations import need
from tests.pipeline.conftest import REPO

BATCH = 32
KINDS = ["torch", "dali"]


def _loader(data, kind, p=0.5, **kw):
    if kind == "dali":
        need("dali")
    kw.setdefault("num_workers", 0 if kind == "torch" else 1)
    return make_loader(data, kw.pop("split", "train"), batch_size_per_rank=kw.pop("batch", BATCH), seed=3,
                       kind=kind, schedule=ModeSchedule(ScheduleConfig(p=p), seed=3), **kw)


def _shard_pixels(data: Path, resolution: str, split: str = "train") -> dict[str, tuple[np.ndarray, int]]:
    """key -> (HWC uint8 image, label) of ``split``, read with the stdlib tarfile module (independent of
    pipeline.reader). Keys are unique within a split only."""
    manifest = json.loads((data / "manifest.json").read_text())
    h, w, c = manifest["shapes"][resolution]
    out: dict[str, list] = {}
    for shard in manifest["splits"][split]["shards"]:
        with tarfile.open(data / shard[resolution]["tar"]) as tar:
            for member in tar.getmembers():
                key, ext = member.name.split(".", 1)
                payload = tar.extractfile(member).read()
                entry = out.setdefault(key, [None, None])
                if ext == "raw":
                    entry[0] = np.frombuffer(payload, np.uint8).reshape(h, w, c)
                else:
                    entry[1] = int.from_bytes(payload, "little", signed=True)
    return {k: (v[0], v[1]) for k, v in out.items()}


def _normalise(images: np.ndarray, manifest: Manifest) -> torch.Tensor:
    mean = (np.asarray(manifest.mean) * 255).astype(np.float32)
    inv = np.float32(1) / (np.asarray(manifest.std) * 255).astype(np.float32)
    return torch.from_numpy(((images.astype(np.float32) - mean) * inv).transpose(0, 3, 1, 2).copy())


def _assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x.step, x.resolution, x.mode, x.keys) == (y.step, y.resolution, y.mode, y.keys)
        assert torch.equal(x.labels, y.labels)
        assert torch.equal(x.images, y.images), f"step {x.step} ({x.mode}) pixels differ"


def test_same_keys_for_p0_p1_and_both_loaders(data_dir):
    need("dali")
    runs = {(kind, p): list(_loader(data_dir, kind, p=p).epoch(1)) for kind in KINDS for p in (0.0, 1.0)}
    reference = [b.keys for b in runs[("torch", 0.0)]]
    assert len(reference) == 256 // BATCH
    for (kind, p), batches in runs.items():
        assert [b.keys for b in batches] == reference, (kind, p)
        assert {b.mode for b in batches} == {"full" if p == 0 else "low"}
        side = 32 if p == 0 else 16
        assert all(tuple(b.images.shape) == (BATCH, 3, side, side) and b.images.dtype == torch.float32 for b in batches)
        assert all(b.labels.dtype == torch.int64 for b in batches)


@pytest.mark.parametrize("augment", [False, True])
def test_dali_and_torch_give_identical_pixels(data_dir, augment):
    need("dali")
    torch_batches = list(_loader(data_dir, "torch", augment=augment, num_workers=2).epoch(2))
    dali_batches = list(_loader(data_dir, "dali", augment=augment, num_workers=2).epoch(2))
    assert {b.mode for b in torch_batches} == {"full", "low"}
    _assert_batches_equal(torch_batches, dali_batches)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("p, resolution", [(1.0, "low"), (0.0, "full")])
def test_pixels_and_labels_equal_the_shards_without_augmentation(data_dir, kind, p, resolution):
    shard = _shard_pixels(data_dir, resolution)
    loader = _loader(data_dir, kind, p=p, augment=False)
    for batch in loader.epoch(0):
        expected = np.stack([shard[k][0] for k in batch.keys])
        assert torch.equal(batch.images, _normalise(expected, loader.manifest))
        assert batch.labels.tolist() == [shard[k][1] for k in batch.keys]


def test_augmentation_changes_pixels_but_only_by_crop_and_flip(data_dir):
    """With augmentation on, each image is a zero-padded shifted (and maybe mirrored) copy of the shard's."""
    shard = _shard_pixels(data_dir, "low")
    loader = _loader(data_dir, "torch", p=1.0)
    batch = next(iter(loader.epoch(0)))
    zero = _normalise(np.zeros((1, 1, 1, 3), np.uint8), loader.manifest)[0, :, 0, 0]
    changed = 0
    for img, key in zip(batch.images, batch.keys):
        src = _normalise(shard[key][0][None], loader.manifest)[0]
        padded = zero[:, None, None].expand(3, 20, 20).clone()
        padded[:, 2:18, 2:18] = src
        windows = [padded[:, y : y + 16, x : x + 16] for y in range(5) for x in range(5)]
        candidates = windows + [w.flip(-1) for w in windows]
        assert any(torch.equal(img, c) for c in candidates), key
        changed += not torch.equal(img, src)
    assert changed > BATCH // 2


@pytest.mark.parametrize("kind", KINDS)
def test_resume_at_step_k_yields_the_remaining_batches(data_dir, kind):
    loader = _loader(data_dir, kind)
    whole = list(loader.epoch(4))
    assert len(whole) == loader.steps_per_epoch == 8
    partial = list(loader.epoch(4, start_step=5))
    _assert_batches_equal(whole[5:], partial)
    # a second, fresh loader (a restarted process) resumes the same way
    _assert_batches_equal(whole[3:], list(_loader(data_dir, kind).epoch(4, start_step=3)))


def test_interrupted_epoch_does_not_leak_into_the_next(data_dir):
    need("dali")
    loader = _loader(data_dir, "dali")
    it = loader.epoch(0)
    next(it)
    it.close()  # stopped mid-epoch, with batches prefetched
    _assert_batches_equal(list(_loader(data_dir, "torch").epoch(1)), list(loader.epoch(1)))


def test_low_epoch_reads_no_byte_of_full_shards(data_copy, data_dir):
    need("dali")
    dali = _loader(data_copy, "dali", p=1.0)
    torch_ref = _loader(data_copy, "torch", p=1.0, num_workers=0)
    torch_workers = _loader(data_copy, "torch", p=1.0, num_workers=2)
    control = _loader(data_copy, "dali", p=0.0)
    expected = list(_loader(data_dir, "torch", p=1.0).epoch(0))
    # after the open check, overwrite every full/ tar in place with same-size garbage
    rng = np.random.default_rng(0)
    for tar in sorted((data_copy / "full").glob("*.tar")):
        with open(tar, "r+b") as f:
            f.write(rng.integers(0, 256, tar.stat().st_size, dtype=np.uint8).tobytes())
    for loader in (dali, torch_ref, torch_workers):
        _assert_batches_equal(expected, list(loader.epoch(0)))
    for loader in (dali, torch_ref):  # in-process readers: count what was touched
        assert loader.reader.bytes_read["full"] == 0 and loader.reader.bytes_read["low"] > 0
        assert not any("full" in p.parts for p in loader.reader.opened)
    # the control proves the garbage is visible to a full epoch: its labels are out of range
    from preprocess.dataset_format import DatasetFormatError

    with pytest.raises(DatasetFormatError, match=r"/full/train-\d+\.tar key \d+: label -?\d+ is outside"):
        next(iter(control.epoch(0)))


def test_ranks_disjoint_same_step_count_and_cover_epoch(data_dir):
    per_rank = [list(_loader(data_dir, "torch", batch=40, rank=r, world_size=3).epoch(5)) for r in range(3)]
    assert [len(b) for b in per_rank] == [256 // 120] * 3
    keys = [k for batches in per_rank for b in batches for k in b.keys]
    assert len(keys) == len(set(keys)) == 2 * 120
    for step in range(2):  # the same mode on every rank at every step
        assert len({per_rank[r][step].mode for r in range(3)}) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_val_counts_every_sample_once_full_resolution(data_dir, kind):
    shard = _shard_pixels(data_dir, "full", split="val")
    seen = []
    for rank in range(3):
        loader = _loader(data_dir, kind, p=1.0, split="val", batch=6, rank=rank, world_size=3)
        batches = list(loader.epoch(0))
        assert len(batches) == loader.steps_per_epoch
        for b in batches:
            assert b.mode == "full"
            assert torch.equal(b.images, _normalise(np.stack([shard[k][0] for k in b.keys]), loader.manifest))
            seen.extend(b.keys)
    assert len(seen) == len(set(seen)) == 40
    assert [len(b.keys) for b in _loader(data_dir, kind, split="val", batch=6, world_size=3).epoch(0)] == [6, 6, 2]


def test_channels_last_and_max_samples(data_dir):
    need("dali")
    loader = _loader(data_dir, "dali", channels_last=True, max_samples=100)
    assert loader.num_samples == 100 and loader.steps_per_epoch == 3
    batch = next(iter(loader.epoch(0)))
    assert batch.images.is_contiguous(memory_format=torch.channels_last)
    assert batch.images.device.type == "cpu"


def test_png_decoding_matches_between_loaders(png_data_dir):
    need("dali")
    torch_batches = list(_loader(png_data_dir, "torch", batch=16).epoch(0))
    dali_batches = list(_loader(png_data_dir, "dali", batch=16).epoch(0))
    assert {b.mode for b in torch_batches} == {"full", "low"}
    _assert_batches_equal(torch_batches, dali_batches)


@pytest.mark.parametrize("kind", KINDS)
def test_out_of_range_label_is_a_format_error_naming_shard_and_key(data_copy, kind):
    """A label >= the manifest's classes in a val shard: the batch that holds it raises DatasetFormatError
    naming the tar and the sample key (not an IndexError inside cross-entropy); earlier batches are fine."""
    from preprocess.dataset_format import DatasetFormatError
    from preprocess.index_format import parse_index

    tar = data_copy / "full" / "val-000000.tar"
    entry = parse_index(tar.with_suffix(".idx"))[9]  # index order: the second batch of 6
    offset, size = entry.components["label"]
    raw = bytearray(tar.read_bytes())
    raw[offset:offset + size] = (10).to_bytes(size, "little", signed=True)
    tar.write_bytes(bytes(raw))
    batches = _loader(data_copy, kind, split="val", batch=6).epoch(0)
    assert next(batches).step == 0
    with pytest.raises(DatasetFormatError) as error:
        next(batches)
    assert str(error.value) == f"{tar} key {entry.key}: label 10 is outside [0, 10) (the manifest lists 10 classes)"


def test_in_memory_format_gives_canonical_strides_even_with_one_channel():
    from pipeline.loader_base import in_memory_format

    # (N, H, W, 1) permuted: contiguous in both formats as far as torch is concerned, NHWC for the kernels
    gray = torch.arange(2 * 5 * 4, dtype=torch.float32).reshape(2, 5, 4, 1).permute(0, 3, 1, 2)
    assert gray.stride() == (20, 1, 4, 1)
    nchw, nhwc = in_memory_format(gray, False), in_memory_format(gray, True)
    assert nchw.stride() == (20, 20, 4, 1) and nhwc.stride() == (20, 1, 4, 1)
    assert torch.equal(nchw, gray) and torch.equal(nhwc, gray)
    rgb = torch.zeros(2, 3, 5, 4)
    assert in_memory_format(rgb, True).stride() == (60, 1, 12, 3) and in_memory_format(rgb, False).stride() == (
        60, 20, 4, 1)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("channels_last", [False, True])
def test_one_channel_batches_have_the_requested_layout_whatever_the_loader(tmp_path_factory, kind, channels_last):
    """Kernels pick NCHW or NHWC from the strides: both loaders must hand over the layout the config asks for."""
    data = tmp_path_factory.mktemp("gray") / "d"
    subprocess.run([sys.executable, "-m", "preprocess", "build", "--source", "synthetic", "--out", str(data),
                    "--num-train", "64", "--num-val", "8", "--size", "8", "--channels", "1", "--quiet"],
                   check=True, cwd=REPO, capture_output=True)
    loader = _loader(data, kind, batch=16, channels_last=channels_last)
    try:
        images = next(iter(loader.epoch(0))).images
    finally:
        loader.close()
    side = images.shape[-1]
    assert images.stride()[1] == (1 if channels_last else side * side)
