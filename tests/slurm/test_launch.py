"""slurm/launch.py: which torchrun worker exit codes mean "checkpointed, requeue me" (no Slurm needed)."""

from __future__ import annotations

import importlib.util

import pytest

from tests.slurm.slurm_helpers import ROOT


@pytest.fixture(scope="module")
def launch():
    spec = importlib.util.spec_from_file_location("lowmode_slurm_launch", ROOT / "slurm" / "launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("codes, expected", [
    ([75, 75], True),    # every rank checkpointed and exited 75
    ([75, -15], True),   # rank 1 was past the checkpoint barrier, then SIGTERMed by the agent on teardown
    ([75], True),
    ([], False),         # nothing failed: not a requeue
    ([1, 75], False),    # a real error beside the requeue request wins
    ([-15], False),      # killed without anyone checkpointing
    ([3, 3], False),     # non-finite loss
])
def test_requeue_requested(launch, codes, expected):
    assert launch.requeue_requested(codes) is expected
