"""Loaders on a dataset with several low resolutions (32 px full; 16 and 24 px low, 24 a non-integer ratio):
every step reads the resolution its schedule chose, both loaders give identical pixels at every size,
the crop padding scales with the size, and constant_pixels scales the batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline import make_loader
from pipeline.augment import pad_for
from pipeline.schedule import FULL, LOW, ModeSchedule, ScheduleConfig
from preprocess.build import build_dataset
from preprocess.config import BuildConfig
from preprocess.reader import read_split
from tests.integrations import need
from tests.pipeline.test_loaders import _assert_batches_equal

SEED = 5
EPOCHS = 5


@pytest.fixture(scope="module", params=["raw", "png"])
def ladder_dir(tmp_path_factory, request):
    out = tmp_path_factory.mktemp(f"ladder_{request.param}")
    build_dataset(BuildConfig(source="synthetic", out=str(out), size=32, low_sizes=(16, 24), channels=3,
                              num_classes=4, num_train=160, num_val=32, samples_per_shard=64, seed=0,
                              encoding=request.param))
    return out


def _progressive(**kw) -> ModeSchedule:
    # t = e / 5, linear ramp over [0, 0.8): target 16 + 16 t / 0.8 -> 16, 20, 24, 28; then full
    return ModeSchedule(ScheduleConfig(policy="progressive", ramp_end=0.8, **kw), SEED, total_epochs=EPOCHS)


def _loader(data, kind, schedule, **kw):
    return make_loader(data, "train", batch_size_per_rank=8, seed=SEED, kind=kind, schedule=schedule,
                       num_workers=0, **kw)


def test_each_epoch_reads_its_rung_only(ladder_dir):
    loader = _loader(ladder_dir, "torch", _progressive())
    expected = [LOW, LOW, "low24", "low24", FULL]
    assert loader.planner.schedule.rungs == (LOW, "low24")
    stored = {key: image for key, _, image in read_split(ladder_dir, loader.manifest, "train", "low24")}
    for epoch, resolution in enumerate(expected):
        before = dict(loader.reader.bytes_read)
        batches = list(loader.epoch(epoch))
        assert {b.resolution for b in batches} == {resolution}
        assert {b.mode for b in batches} == {FULL if resolution == FULL else LOW}
        side = loader.manifest.height(resolution)
        assert {tuple(b.images.shape[1:]) for b in batches} == {(3, side, side)}
        read = {r: n - before.get(r, 0) for r, n in loader.reader.bytes_read.items() if n != before.get(r, 0)}
        assert set(read) == {resolution}  # nothing read at any other resolution
    # without augmentation a low24 batch is exactly the stored 24-px images, normalised with the full statistics
    plain = _loader(ladder_dir, "torch", _progressive(), augment=False)
    batch = next(iter(plain.epoch(2)))
    mean = np.asarray(plain.manifest.mean, np.float64) * 255
    std = np.asarray(plain.manifest.std, np.float64) * 255
    for key, image in zip(batch.keys, batch.images):
        want = (stored[key].astype(np.float64) - mean) / std
        assert np.allclose(image.permute(1, 2, 0).numpy(), want, atol=1e-4)
    loader.close()
    plain.close()


@pytest.mark.parametrize("augment_on", [False, True])
def test_dali_and_torch_give_identical_pixels_at_every_size(ladder_dir, augment_on):
    need("dali")
    for constant_pixels in (False, True):
        schedule = _progressive(constant_pixels=constant_pixels)
        loaders = {kind: _loader(ladder_dir, kind, schedule, augment=augment_on) for kind in ("torch", "dali")}
        for epoch in range(EPOCHS):
            batches = {kind: list(loader.epoch(epoch)) for kind, loader in loaders.items()}
            _assert_batches_equal(batches["torch"], batches["dali"])
        for loader in loaders.values():
            loader.close()


def test_crop_padding_scales_with_the_size(ladder_dir):
    loader = _loader(ladder_dir, "torch", _progressive())
    pads = {p.resolution: p.aug.pad for e in range(EPOCHS) for p in loader.planner.plans(e)}
    # 4 px at 32; round(4 / 2) = 2 at 16; round(4 / (32 / 24)) = round(3.0) = 3 at 24
    assert pads == {LOW: 2, "low24": 3, FULL: 4}
    assert pad_for(4, 128 / 112, LOW) == 4 and pad_for(4, 128 / 80, LOW) == 2 and pad_for(4, 8, LOW) == 1
    loader.close()


def test_constant_pixels_batches(ladder_dir):
    loader = _loader(ladder_dir, "torch", _progressive(constant_pixels=True))
    sizes = {e: {len(p.positions) for p in loader.planner.plans(e)} for e in range(EPOCHS)}
    # 8 x (32 / 16)^2 = 32 at 16 px, 8 x (32 / 24)^2 = 14.2 -> 14 at 24 px, 8 at full
    assert sizes == {0: {32}, 1: {32}, 2: {14}, 3: {14}, 4: {8}}
    assert [loader.steps_in_epoch(e) for e in range(EPOCHS)] == [160 // 32] * 2 + [160 // 14] * 2 + [160 // 8]
    loader.close()


def test_low_size_reads_the_chosen_rung(ladder_dir):
    schedule = ModeSchedule(ScheduleConfig(policy="bernoulli", p=1.0, low_size=24), SEED)
    loader = _loader(ladder_dir, "torch", schedule)
    assert {b.resolution for b in loader.epoch(0)} == {"low24"}
    bad = ModeSchedule(ScheduleConfig(policy="bernoulli", low_size=20), SEED)
    with pytest.raises(ValueError, match=r"schedule.low_size: 20 is not one of the dataset's low sizes \(16, 24"):
        _loader(ladder_dir, "torch", bad)
    loader.close()


def test_a_two_level_dataset_is_the_one_rung_ladder(data_dir):
    """A dataset with one low resolution: the progressive policy's rungs are just "low"."""
    loader = make_loader(data_dir, "train", batch_size_per_rank=16, seed=SEED, kind="torch", num_workers=0,
                         schedule=ModeSchedule(ScheduleConfig(policy="progressive", ramp_end=0.5), SEED,
                                               total_epochs=4))
    assert loader.planner.schedule.rungs == (LOW,)
    assert [next(iter(loader.epoch(e))).resolution for e in range(4)] == [LOW, LOW, FULL, FULL]
    assert torch.is_tensor(next(iter(loader.epoch(0))).images)
    loader.close()
