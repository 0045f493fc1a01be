"""Fixtures shared by the trainer's integration tests."""

from __future__ import annotations

import pytest

from tests.trainer.train_helpers import make_dataset


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    """A tiny synthetic dataset directory (read-only for the tests that use it)."""
    return make_dataset(tmp_path_factory.mktemp("data") / "synthetic")
