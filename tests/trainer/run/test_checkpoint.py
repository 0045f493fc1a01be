"""Checkpoint files: atomic save, weights_only load, RNG round trip, corrupt-file skipping, refusal."""

from __future__ import annotations

import io
import pickle
import random

import numpy as np
import pytest
import torch

from trainer import checkpoint as ckpt


def _payload(step: int) -> dict:
    model = torch.nn.Linear(3, 2)
    return {"model": model.state_dict(), "progress": {"epoch": 1, "step_in_epoch": 2, "global_step": step,
                                                      "train_wall_s": 1.5}, "rng": [ckpt.rng_state()]}


def test_save_load_round_trip_and_listing(tmp_path):
    for step in (3, 12, 7):
        ckpt.save_checkpoint(ckpt.checkpoint_path(tmp_path, step), _payload(step))
    (tmp_path / ".step-000000099.pt.abc.tmp").write_bytes(b"half")  # an interrupted save
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-000000003.pt", "step-000000007.pt", "step-000000012.pt"]
    loaded = ckpt.load_checkpoint(ckpt.checkpoint_path(tmp_path, 12))
    assert loaded["progress"]["global_step"] == 12 and loaded["format"] == ckpt.FORMAT
    ckpt.prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-000000007.pt", "step-000000012.pt"]


def test_rng_state_round_trip():
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    state = ckpt.rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(2), np.random.seed(2), random.seed(2)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    ckpt.set_rng_state(torch.load(buffer, weights_only=True))  # plain data only
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1]) and expected[2] == again[2]


def test_code_in_a_checkpoint_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "step-000000001.pt"
    path.write_bytes(pickle.dumps({"format": ckpt.FORMAT, "x": Evil()}, protocol=2))
    with pytest.raises(ckpt.CheckpointError, match="unreadable checkpoint"):
        ckpt.load_checkpoint(path)


def test_auto_resume_skips_corrupt_and_never_starts_fresh(tmp_path):
    ckpt.save_checkpoint(ckpt.checkpoint_path(tmp_path, 5), _payload(5))
    ckpt.checkpoint_path(tmp_path, 9).write_bytes(b"\x00" * 64)
    with pytest.warns(RuntimeWarning, match="skipping checkpoint.*step-000000009.pt"):
        found = ckpt.find_resume_checkpoint(tmp_path, "auto")
    assert found["progress"]["global_step"] == 5
    assert ckpt.find_resume_checkpoint(tmp_path, "never") is None
    assert ckpt.find_resume_checkpoint(tmp_path / "empty", "auto") is None
    with pytest.raises(ckpt.CheckpointError, match="no such checkpoint"):
        ckpt.find_resume_checkpoint(tmp_path, str(tmp_path / "missing.pt"))


def test_other_config_or_dataset_is_refused_naming_keys():
    payload = {"config_hash": "a", "hashed_config": {"optim.lr": 0.1, "train.seed": 0}, "dataset_fingerprint": "d",
               "world_size": 1}
    with pytest.raises(ckpt.CheckpointError, match=r"optim.lr \(0.1 -> 0.2\)"):
        ckpt.check_compatible(payload, "b", {"optim.lr": 0.2, "train.seed": 0}, "d", 1)
    with pytest.raises(ckpt.CheckpointError, match="different dataset"):
        ckpt.check_compatible(payload, "a", payload["hashed_config"], "other", 1)
    with pytest.warns(RuntimeWarning, match="written by 1 ranks, this job has 2"):
        ckpt.check_compatible(payload, "a", payload["hashed_config"], "d", 2)
