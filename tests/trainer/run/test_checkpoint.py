"""Checkpoint files: atomic save, weights_only load, RNG round trip, corrupt-file skipping, refusal."""

from __future__ import annotations

import io
import pickle
import random

import numpy as np
import pytest
import torch

from trainer.run import checkpoint as ckpt


def _payload(step: int) -> dict:
    model = torch.nn.Linear(3, 2)
    state = {key: None for key in ckpt.STATE_KEYS}
    state.update(model=model.state_dict(), rng=[ckpt.rng_state()],
                 progress={"epoch": 1, "step_in_epoch": 2, "global_step": step, "train_wall_s": 1.5})
    return state


def test_save_load_round_trip_listing_and_pruning(tmp_path):
    manager = ckpt.CheckpointManager(tmp_path, keep=3)
    for step in (3, 12, 7):
        manager.save(_payload(step))
    (tmp_path / ".step-000000099.pt.abc.tmp").write_bytes(b"half")  # an interrupted save
    assert [p.name for p in manager.existing()] == ["step-000000003.pt", "step-000000007.pt", "step-000000012.pt"]
    loaded = ckpt.load_checkpoint(manager.path(12))
    assert loaded["progress"]["global_step"] == 12 and loaded["format"] == ckpt.FORMAT
    assert loaded["version"] == ckpt.VERSION and set(ckpt.STATE_KEYS) <= set(loaded)
    ckpt.CheckpointManager(tmp_path, keep=2).save(_payload(13))  # keeps the 2 newest after a save
    assert [p.name for p in manager.existing()] == ["step-000000012.pt", "step-000000013.pt"]


def test_incomplete_checkpoint_is_refused_naming_keys(tmp_path):
    manager = ckpt.CheckpointManager(tmp_path)
    with pytest.raises(ValueError, match="lacks"):
        manager.save({"progress": {"global_step": 1}})
    state = _payload(4)
    del state["optimizer"], state["progress"]["train_wall_s"]
    torch.save({"format": ckpt.FORMAT, "version": ckpt.VERSION, **state}, manager.path(4))
    with pytest.raises(ckpt.CheckpointError, match="step-000000004.pt: checkpoint lacks optimizer"):
        ckpt.load_checkpoint(manager.path(4))
    state["optimizer"] = None
    torch.save({"format": ckpt.FORMAT, "version": ckpt.VERSION, **state}, manager.path(4))
    with pytest.raises(ckpt.CheckpointError, match="lacks progress.train_wall_s"):
        ckpt.load_checkpoint(manager.path(4))


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
    manager = ckpt.CheckpointManager(tmp_path)
    manager.save(_payload(5))
    manager.path(9).write_bytes(b"\x00" * 64)
    with pytest.warns(RuntimeWarning, match="skipping checkpoint.*step-000000009.pt"):
        path, found = manager.find_resume("auto")
    assert path == manager.path(5) and found["progress"]["global_step"] == 5
    with pytest.raises(ckpt.CheckpointError, match="--resume never: .* already holds checkpoints"):
        manager.find_resume("never")
    assert ckpt.CheckpointManager(tmp_path / "empty").find_resume("auto") is None
    assert ckpt.CheckpointManager(tmp_path / "empty").find_resume("never") is None
    with pytest.raises(ckpt.CheckpointError, match="no such checkpoint"):
        manager.find_resume(str(tmp_path / "missing.pt"))
    assert manager.find_resume(str(manager.path(5)))[1]["progress"]["global_step"] == 5


def test_other_config_or_dataset_is_refused_naming_keys():
    payload = {"config_hash": "a", "hashed_config": {"optim.lr": 0.1, "train.seed": 0}, "dataset_fingerprint": "d",
               "world_size": 1}
    with pytest.raises(ckpt.CheckpointError, match=r"optim.lr \(0.1 -> 0.2\)"):
        ckpt.check_compatible(payload, {"optim.lr": 0.2, "train.seed": 0}, "d", 1)
    with pytest.raises(ckpt.CheckpointError, match="different dataset"):
        ckpt.check_compatible(payload, payload["hashed_config"], "other", 1)
    with pytest.warns(RuntimeWarning, match="written by 1 ranks, this job has 2"):
        ckpt.check_compatible(payload, payload["hashed_config"], "d", 2)


def test_a_key_made_resumable_later_does_not_refuse_older_checkpoints():
    """Checkpoints written while model.channels_last was hashed (before it joined RESUMABLE_KEYS) hold it
    in their view; they resume under either layout, and a real difference is still named."""
    old_view = {"optim.lr": 0.1, "model.channels_last": False, "train.seed": 0}
    payload = {"config_hash": "old-hash", "hashed_config": old_view, "dataset_fingerprint": "d", "world_size": 1}
    ckpt.check_compatible(payload, {"optim.lr": 0.1, "train.seed": 0}, "d", 1)
    with pytest.raises(ckpt.CheckpointError, match=r"differing keys: train.seed \(0 -> 1\)$|train.seed \(0 -> 1\)\."):
        ckpt.check_compatible(payload, {"optim.lr": 0.1, "train.seed": 1}, "d", 1)
