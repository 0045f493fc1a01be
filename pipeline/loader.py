"""Pick a loader: ``make_loader`` opens a split and returns the implementation ``kind`` names.

    loader = make_loader(DATA, "train", batch_size_per_rank=125, seed=0, rank=r, world_size=W,
                         kind="dali", schedule=ModeSchedule(ScheduleConfig(p=0.5), seed=0))
    for batch in loader.epoch(epoch, start_step=step):   # resume at (epoch, step)
        model_in_mode(batch.mode)(batch.images) ...

The batch contract (``Batch``, ``Loader``) is in pipeline/loader_base.py.
"""

from __future__ import annotations

import torch

from pipeline.index import open_split
from pipeline.loader_base import Loader
from pipeline.plan import DEFAULT_CROP_PAD_PX, Planner
from pipeline.schedule import ModeSchedule

KINDS = ("torch", "dali")


def make_loader(
    data_dir, split: str, *, batch_size_per_rank: int, seed: int, rank: int = 0, world_size: int = 1,
    device: str | torch.device = "cpu", kind: str = "torch", schedule: ModeSchedule | None = None,
    augment: bool = True, channels_last: bool = False, num_workers: int = 2, max_samples: int = 0,
    crop_pad_px: int = DEFAULT_CROP_PAD_PX, batches_ahead: int = 1,
) -> Loader:
    """Open ``split`` of the dataset directory ``data_dir`` and return a loader of ``kind``.

    ``schedule=None``: every step is full. Train split: shuffled per (seed, epoch), every rank runs
    ``n // (batch_size_per_rank * world_size)`` steps (last partial global batch dropped; with
    ``schedule.config.low_batch_scale`` k > 1 a low step takes k * batch_size_per_rank samples per rank
    and the count varies per epoch: ``loader.steps_in_epoch(epoch)``), random
    crop (``crop_pad_px`` zero padding at full resolution, / ratio in low mode) and flip if
    ``augment``. Other splits: full resolution, no augmentation, rank r gets samples r::world_size,
    last partial batch kept. ``num_workers``: torch DataLoader workers, or DALI CPU threads.
    ``max_samples`` > 0 uses only the split's first ``max_samples`` samples (quick runs).
    ``batches_ahead``: batches prepared ahead on a handover thread (``pipeline.handover``; 0 = on the
    thread that iterates, which then pays each batch's handover work itself).
    Raises DatasetFormatError (bad dataset) or ValueError (bad argument), naming the culprit.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    index = open_split(data_dir, split, max_samples=max_samples)
    planner = Planner(
        index, batch_size_per_rank=batch_size_per_rank, seed=seed, rank=rank, world_size=world_size,
        schedule=schedule, augment=augment, crop_pad_px=crop_pad_px,
    )
    if kind == "torch":
        from pipeline.torch_loader import TorchLoader

        return TorchLoader(index, planner, device=device, channels_last=channels_last, num_workers=num_workers,
                           batches_ahead=batches_ahead)
    from pipeline.dali_loader import DaliLoader

    return DaliLoader(index, planner, device=device, channels_last=channels_last, num_threads=max(1, num_workers),
                     batches_ahead=batches_ahead)
