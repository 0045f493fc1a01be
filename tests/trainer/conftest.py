"""Fixtures shared by the trainer's integration tests."""

from __future__ import annotations

import pytest

from preprocess.build import build_dataset
from preprocess.config import BuildConfig
from tests.trainer.train_helpers import make_dataset


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    """A tiny synthetic dataset directory (read-only for the tests that use it)."""
    return make_dataset(tmp_path_factory.mktemp("data") / "synthetic")


@pytest.fixture(scope="session")
def ladder_data(tmp_path_factory):
    """A tiny synthetic 16-px dataset with low sizes 8 and 12 px (12 a non-integer ratio): a resolution ladder
    (read-only for the tests that use it)."""
    out = tmp_path_factory.mktemp("ladder") / "synthetic"
    build_dataset(BuildConfig(source="synthetic", out=str(out), size=16, low_sizes=(8, 12), channels=3,
                              num_classes=4, num_train=192, num_val=48, samples_per_shard=64, seed=0))
    return out
