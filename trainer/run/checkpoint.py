"""The checkpoint format, in one place: atomic, exactly-resumable files in RUN/checkpoints/.

A checkpoint is ``step-<global step, 9 digits>.pt``: a dict with ``format`` = FORMAT, ``version`` =
VERSION and the STATE_KEYS, which :meth:`trainer.run.loop.Trainer.state_dict` produces and
:meth:`~trainer.run.loop.Trainer.load_state_dict` consumes:

    model, optimizer, scheduler   state dicts (the model's are the unconverted keys, see dualmode)
    progress                      {epoch, step_in_epoch (next step to run), global_step, train_wall_s}
    epoch_sums                    the current epoch's per-mode metric sums (trainer.report.metrics)
    rng                           every rank's RNG states (rng_state), in rank order
    metrics_bytes                 byte length of RUN/metrics.jsonl at save time (a resume truncates there)
    wandb_run_id                  the W&B run to continue (None without W&B)
    config_hash, hashed_config    TrainConfigRoot.hash() and the view it hashes (refusals name keys)
    dataset_fingerprint           Manifest.fingerprint() of the dataset trained on
    world_size                    ranks that wrote it

Everything that is not a tensor is a plain Python value, so ``torch.load(weights_only=True)`` reads
it: a checkpoint is data, never code. :class:`CheckpointManager` names, writes, prunes, lists and
chooses checkpoints; nothing else touches the files.
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

from preprocess.files import atomic_write_bytes
from trainer.run.config import diff_keys, resume_view

FORMAT = "lowmode-checkpoint"
VERSION = 1
STATE_KEYS = ("model", "optimizer", "scheduler", "progress", "epoch_sums", "rng", "metrics_bytes", "wandb_run_id",
              "config_hash", "hashed_config", "dataset_fingerprint", "world_size")
PROGRESS_KEYS = ("epoch", "step_in_epoch", "global_step", "train_wall_s")
_NAME = re.compile(r"^step-(\d+)\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used (unreadable, wrong format, or from another config)."""


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


# ----------------------------------------------------------------------------- files


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with weights_only=True; CheckpointError when unreadable, foreign or incomplete."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/corrupt files
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a lowmode checkpoint (field 'format' != {FORMAT!r})")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')!r}, this lowmode reads {VERSION}")
    missing = [k for k in STATE_KEYS if k not in payload]
    progress = payload.get("progress")
    if not missing and (not isinstance(progress, dict) or any(k not in progress for k in PROGRESS_KEYS)):
        missing = [f"progress.{k}" for k in PROGRESS_KEYS if not isinstance(progress, dict) or k not in progress]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return payload


class CheckpointManager:
    """The checkpoints of one run directory: ``step-<global step>.pt``, newest ``keep`` kept."""

    def __init__(self, directory: str | Path, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = Path(directory)
        self.keep = keep

    def path(self, global_step: int) -> Path:
        """Zero-padded so names sort by step."""
        return self.directory / f"step-{global_step:09d}.pt"

    def existing(self) -> list[Path]:
        """Checkpoint files, oldest first (temp files of interrupted saves ignored)."""
        if not self.directory.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir() if (m := _NAME.match(p.name))]
        return [p for _, p in sorted(found)]

    def remove_all(self) -> list[Path]:
        """Delete every checkpoint, readable or not (``--fresh`` starts over; rank 0, under the run-dir
        lock). Returns the paths removed."""
        removed = self.existing()
        for path in removed:
            path.unlink(missing_ok=True)
        return removed

    def save(self, state: dict[str, Any]) -> Path:
        """Write ``state`` (the STATE_KEYS) atomically (temp file + fsync + rename), then prune old files.

        A failed write (a full disk) raises an OSError naming the checkpoint's path; its temp file is
        gone and the older checkpoints are untouched (pruning runs only after a complete write)."""
        missing = [k for k in STATE_KEYS if k not in state]
        if missing:
            raise ValueError(f"checkpoint state lacks {missing}")
        path = self.path(state["progress"]["global_step"])
        buffer = io.BytesIO()
        torch.save({"format": FORMAT, "version": VERSION, **state}, buffer)
        atomic_write_bytes(path, buffer.getvalue())  # an OSError names ``path`` (a full disk too)
        for old in self.existing()[:-self.keep]:
            old.unlink(missing_ok=True)
        return path

    def find_resume(self, resume: str) -> tuple[Path, dict[str, Any]] | None:
        """(path, state) to resume from, or None for a fresh start.

        ``resume``: "never" (fresh start; CheckpointError if checkpoints exist: ``--fresh`` removes them
        first, see trainer.run.train), "auto" (newest
        readable checkpoint; corrupt ones are skipped with a warning; CheckpointError when there are
        checkpoints but none is readable), or a checkpoint path.
        """
        if resume == "never":
            if self.existing():
                raise CheckpointError(f"--resume never: {self.directory} already holds checkpoints; "
                                      "use --resume auto, --fresh (discards them) or a new --run-dir")
            return None
        if resume != "auto":
            if not Path(resume).is_file():
                raise CheckpointError(f"--resume {resume}: no such checkpoint file")
            return Path(resume), load_checkpoint(resume)
        failures = []
        for path in reversed(self.existing()):
            try:
                return path, load_checkpoint(path)
            except CheckpointError as exc:
                warnings.warn(f"skipping checkpoint: {exc}", RuntimeWarning, stacklevel=2)
                failures.append(str(exc))
        if failures:  # a history exists but cannot be continued: never silently start over it
            raise CheckpointError(f"--resume auto: no checkpoint in {self.directory} is loadable "
                                  f"({'; '.join(failures)}); nothing was changed. Restore a checkpoint, "
                                  "start over in a new --run-dir, or discard this history with --fresh")
        return None


def check_compatible(payload: dict[str, Any], hashed_view: dict[str, Any],
                     dataset_fingerprint: str, world_size: int) -> None:
    """Refuse a checkpoint written under another config or dataset (message names keys); warn on world size.

    The checkpoint's view is re-filtered with today's rules (``config.resume_view``), so a key made
    resumable later does not refuse older checkpoints; ``config_hash`` stays in the payload as an id."""
    saved = resume_view(payload["hashed_config"])
    keys = diff_keys(saved, hashed_view)
    if keys:
        shown = ", ".join(f"{k} ({saved.get(k, '<missing>')!r} -> {hashed_view.get(k, '<missing>')!r})"
                          for k in keys[:8])
        raise CheckpointError(
            f"checkpoint was written with a different config; differing keys: {shown}. "
            "Use the run's own config (RUN/config.toml), a new --run-dir, or --fresh to discard this run's history"
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
