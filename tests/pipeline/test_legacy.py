"""Datasets written before the typed Manifest (tests/data/legacy_v1) still load, sample for sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline import Manifest, make_loader
from pipeline.schedule import FULL, LOW, MODES, ModeSchedule, ScheduleConfig
from preprocess.reader import read_split

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy_v1"


def _normalise(images: np.ndarray, manifest: Manifest) -> torch.Tensor:
    mean = (np.asarray(manifest.mean) * 255).astype(np.float32)
    inv = np.float32(1) / (np.asarray(manifest.std) * 255).astype(np.float32)
    return torch.from_numpy(((images.astype(np.float32) - mean) * inv).transpose(0, 3, 1, 2).copy())


@pytest.mark.parametrize("name", ["dataset", "dataset_png"])
@pytest.mark.parametrize("split, mode", [("train", FULL), ("train", LOW), ("val", FULL)])  # val is full-only
def test_torch_loader_reads_every_legacy_sample(name, split, mode):
    data = LEGACY / name
    manifest = Manifest.load(data)
    expected = {key: (label, image) for key, label, image in read_split(data, manifest, split, mode)}
    n = manifest.splits[split].num_samples
    assert len(expected) == n
    # train: one step holding the whole (shuffled) split; val: every sample in index order
    loader = make_loader(data, split, batch_size_per_rank=n, seed=0, kind="torch", num_workers=0, augment=False,
                         schedule=ModeSchedule(ScheduleConfig(p=1.0 if mode == LOW else 0.0), seed=0))
    assert loader.manifest == manifest and loader.manifest.fingerprint() == manifest.fingerprint()
    batches = list(loader.epoch(0))
    loader.close()
    assert len(batches) == 1 and batches[0].mode == mode
    batch = batches[0]
    assert sorted(batch.keys) == sorted(expected)
    h, w, c = manifest.shape(mode)
    assert tuple(batch.images.shape) == (n, c, h, w)
    assert batch.labels.tolist() == [expected[k][0] for k in batch.keys]
    images = np.stack([expected[k][1] for k in batch.keys])
    assert torch.equal(batch.images, _normalise(images, manifest))


def test_modes_are_the_resolutions():
    from preprocess.dataset_format import RESOLUTIONS

    assert MODES == RESOLUTIONS == (FULL, LOW) == ("full", "low")
