"""Atomic, exactly-resumable checkpoints in RUN/checkpoints/step-<global step>.pt.

A checkpoint holds the model, optimizer and LR-scheduler state, the progress counters (epoch,
next step in the epoch, global step), the current epoch's metric sums, every rank's RNG states,
the cumulative training wall-clock, the byte length of RUN/metrics.jsonl at save time (a resume
truncates the file there, so metrics equal those of an uninterrupted run), the W&B run id, and the
config hash (trainer.config.TrainConfigRoot.hash) plus the hashed config view, so a checkpoint from
another configuration is refused naming the differing keys.

Everything that is not a tensor is a plain Python value, so ``torch.load(weights_only=True)``
reads it: a checkpoint is data, never code.
"""

from __future__ import annotations

import io
import random
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from preprocess.dataset_format import atomic_write_bytes
from trainer.config import diff_keys

FORMAT = "lowmode-checkpoint"
VERSION = 1
_NAME = re.compile(r"^step-(\d+)\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used (unreadable, wrong format, or from another config)."""


def checkpoint_path(directory: str | Path, global_step: int) -> Path:
    """Zero-padded so names sort by step."""
    return Path(directory) / f"step-{global_step:09d}.pt"


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Checkpoint files in ``directory``, oldest first (temp files of interrupted saves ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


# ----------------------------------------------------------------------------- RNG


def rng_state() -> dict[str, Any]:
    """This process's RNG states (torch CPU/CUDA, numpy, python) as weights_only-loadable values."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": _python_state_to_plain(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state_to_plain(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


# ----------------------------------------------------------------------------- save / load


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Serialise ``payload`` and write it atomically (temp file + fsync + rename)."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **payload}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def prune_checkpoints(directory: str | Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints (after a successful save)."""
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with weights_only=True; CheckpointError when unreadable or foreign."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/corrupt files
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a lowmode checkpoint (field 'format' != {FORMAT!r})")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')!r}, this lowmode reads {VERSION}")
    return payload


def find_resume_checkpoint(directory: str | Path, resume: str) -> dict[str, Any] | None:
    """The checkpoint to resume from, or None for a fresh start.

    ``resume``: "never" (fresh start), "auto" (newest readable checkpoint in ``directory``;
    corrupt ones are skipped with a warning), or a checkpoint path (must be readable).
    """
    if resume == "never":
        return None
    if resume != "auto":
        if not Path(resume).is_file():
            raise CheckpointError(f"--resume {resume}: no such checkpoint file")
        return load_checkpoint(resume)
    for path in reversed(list_checkpoints(directory)):
        try:
            return load_checkpoint(path)
        except CheckpointError as exc:
            warnings.warn(f"skipping checkpoint: {exc}", RuntimeWarning, stacklevel=2)
    return None


def check_compatible(payload: dict[str, Any], config_hash: str, hashed_view: dict[str, Any],
                     dataset_fingerprint: str, world_size: int) -> None:
    """Refuse a checkpoint written under another config or dataset (message names keys); warn on world size."""
    if payload["config_hash"] != config_hash:
        keys = diff_keys(payload["hashed_config"], hashed_view)
        shown = ", ".join(f"{k} ({payload['hashed_config'].get(k, '<missing>')!r} -> {hashed_view.get(k, '<missing>')!r})"
                          for k in keys[:8])
        raise CheckpointError(
            f"checkpoint was written with a different config; differing keys: {shown}. "
            "Use the run's own config (RUN/config.toml), or --resume never with a new run directory"
        )
    if payload["dataset_fingerprint"] != dataset_fingerprint:
        raise CheckpointError("checkpoint was written for a different dataset (manifest shards differ)")
    if payload["world_size"] != world_size:
        # The global batch (and so the optimisation) is unchanged, but per-rank RNG streams and
        # data shards differ: the continuation is valid, not bitwise equal to the original run.
        warnings.warn(
            f"checkpoint was written by {payload['world_size']} ranks, this job has {world_size}: "
            "training continues with the same global batch, but not bitwise as the original would",
            RuntimeWarning, stacklevel=2,
        )
