"""All torch.distributed code of the trainer: process group, reductions, sync checks, DDP wrap.

torchrun sets RANK / LOCAL_RANK / WORLD_SIZE (+ MASTER_ADDR/PORT); without them the trainer runs
as one process and every helper here degrades to a no-op. Backend: nccl on GPU, gloo on CPU.

Dead ranks: every collective runs under ``timeout_s`` (``train.dist_timeout_s``, default 300 s),
so when a peer dies the survivors raise instead of hanging (gloo notices a closed socket at once;
a silent peer costs at most the timeout). torchrun additionally tears the whole group down when
one worker exits non-zero.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from pipeline.schedule import MODES

DEVICES = ("auto", "cpu", "cuda")
_timeout = timedelta(seconds=300)  # set by init_distributed (train.dist_timeout_s)


class SyncError(RuntimeError):
    """Ranks disagree on something they must agree on (the mode or step of a training step)."""


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (world_size 1 = plain single process)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 owns all side effects: files, W&B, printing."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r}: expected an integer") from None


def dist_info_from_env() -> DistInfo:
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) without it."""
    info = DistInfo(_env_int("RANK", 0), _env_int("LOCAL_RANK", 0), _env_int("WORLD_SIZE", 1))
    if not 0 <= info.rank < info.world_size:
        raise ValueError(f"RANK={info.rank} is not in [0, WORLD_SIZE={info.world_size})")
    return info


def resolve_device(requested: str, info: DistInfo) -> torch.device:
    """The device of this rank for ``requested`` (one of DEVICES): cuda:LOCAL_RANK on GPU jobs (never a
    hard-coded cuda:0), else cpu. ValueError (a config problem, not a bug) for cuda without a GPU."""
    use_cuda = requested == "cuda" or (requested == "auto" and torch.cuda.is_available())
    if not use_cuda:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("train.device: 'cuda', but no CUDA device is available; use 'auto' or 'cpu'")
    device = torch.device("cuda", info.local_rank % torch.cuda.device_count())
    torch.cuda.set_device(device)
    return device


def init_distributed(device: torch.device, info: DistInfo, timeout_s: float) -> None:
    """Join the process group (no-op for one process): nccl on GPU, gloo on CPU."""
    if not info.is_distributed or dist.is_initialized():
        return
    global _timeout
    _timeout = timedelta(seconds=timeout_s)
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend=backend, timeout=_timeout, **kwargs)


def shutdown() -> None:
    """Leave the process group if one was joined (safe to call always)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place (identity for one process) and return it."""
    if _active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def check_sync(mode: str, global_step: int, model: torch.nn.Module, device: torch.device) -> None:
    """All-reduce (mode, step, parameter fingerprint) with MIN and MAX; SyncError if ranks differ.

    Ranks never exchange the mode during training (each draws it from the shared seeded
    schedule); this is the verification behind ``--check-sync N``. The fingerprint (float64 sum
    of all parameters) also catches replicas whose weights drifted apart.
    """
    if not _active():
        return
    with torch.no_grad():
        fingerprint = sum(p.detach().double().sum() for p in model.parameters())
    local = torch.stack([torch.tensor(float(MODES.index(mode)), dtype=torch.float64, device=device),
                         torch.tensor(float(global_step), dtype=torch.float64, device=device),
                         torch.as_tensor(fingerprint, dtype=torch.float64, device=device)])
    low, high = local.clone(), local.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if not torch.equal(low, high):
        lo, hi = low.tolist(), high.tolist()
        raise SyncError(
            f"ranks out of sync at rank {dist.get_rank()}'s global step {global_step}: mode codes "
            f"{lo[0]:.0f}..{hi[0]:.0f} (indexes into {MODES}), steps {lo[1]:.0f}..{hi[1]:.0f}, parameter sums "
            f"{lo[2]!r}..{hi[2]!r} (the mode schedule, loader or model differs between ranks)"
        )


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order (``[obj]`` for one process); small picklable objects only."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait for all ranks (bounded by the process group's timeout)."""
    if not _active():
        return
    if dist.get_backend() == "gloo":
        # monitored_barrier names the rank that failed to arrive, instead of a bare timeout.
        dist.monitored_barrier(timeout=_timeout)
    else:
        dist.barrier()


def wrap_ddp(model: torch.nn.Module, device: torch.device, *, find_unused_parameters: bool = False) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` when running distributed, else ``model`` itself.

    ``find_unused_parameters``: some parameters get no gradient in some steps (the ``private`` BN
    policy's low-mode affine parameters in full steps); DDP then has to look for them every step.
    """
    if not _active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused_parameters)


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Copy rank 0's buffers (e.g. re-estimated BN statistics) to every rank, so evaluation agrees."""
    if not _active():
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)
