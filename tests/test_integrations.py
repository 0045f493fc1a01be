"""The integrations CI requires are really present (fails, never skips, under LOWMODE_REQUIRE)."""

import pytest

from tests.integrations import FMNIST_FILES, _available, need, required


@pytest.mark.parametrize("name", ["dali", "fmnist", "ddp", "slurm", "wandb"])
def test_required_integration_present(name):
    need(name)
    ok, _ = _available(name)
    assert ok


def test_required_parses_env(monkeypatch):
    monkeypatch.setenv("LOWMODE_REQUIRE", "dali, fmnist,,slurm")
    assert required() == {"dali", "fmnist", "slurm"}
    assert len(FMNIST_FILES) == 4
