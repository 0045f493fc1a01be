"""The loader interface both implementations share, and ``make_loader`` to pick one.

    loader = make_loader(DATA, "train", batch_size_per_rank=125, seed=0, rank=r, world_size=W,
                         kind="dali", schedule=ModeSchedule(ScheduleConfig(p=0.5), seed=0))
    for batch in loader.epoch(epoch, start_step=step):   # resume at (epoch, step)
        model_in_mode(batch.mode)(batch.images) ...

Images are float32 N×C×H×W, normalised with the manifest's FULL-resolution mean/std (0..1 scale)
in both modes, on the requested device; labels int64 (N,). Normalisation is computed as
``(pixel - 255*mean) * (1 / (255*std))`` in float32 by both loaders, so their pixels are bitwise equal.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.index import SplitIndex, open_split
from pipeline.plan import DEFAULT_CROP_PAD_PX, Planner
from pipeline.reader import ShardReader
from pipeline.schedule import ModeSchedule

KINDS = ("torch", "dali")


@dataclass
class Batch:
    """One step's data on one rank."""

    step: int
    mode: str
    images: torch.Tensor
    """float32 (N, C, H, W), normalised, on the loader's device (channels_last if asked)."""
    labels: torch.Tensor
    """int64 (N,), on the loader's device."""
    keys: list[str]


class Loader(abc.ABC):
    """Per-step batches of one rank; ``epoch(e, start_step)`` may be called repeatedly, in any order."""

    def __init__(self, index: SplitIndex, planner: Planner, device: str | torch.device, channels_last: bool) -> None:
        self.index = index
        self.planner = planner
        self.reader = ShardReader(index)
        self.device = torch.device(device)
        self.channels_last = channels_last
        mean = np.asarray(index.manifest["mean"], np.float64) * 255.0
        std = np.asarray(index.manifest["std"], np.float64) * 255.0
        channels = index.full.shape[2]
        if mean.shape != (channels,) or std.shape != (channels,) or (std <= 0).any():
            raise ValueError(f"{index.data_dir / 'manifest.json'}: 'mean'/'std' must list {channels} values, std > 0")
        self.mean_255 = mean.astype(np.float32)
        """Per-channel mean on the 0..255 scale (float32)."""
        self.std_255 = std.astype(np.float32)
        """Per-channel std on the 0..255 scale (float32)."""
        self.inv_std_255 = (np.float32(1.0) / self.std_255).astype(np.float32)
        """Per-channel 1 / std on the 0..255 scale (float32)."""

    @property
    def steps_per_epoch(self) -> int:
        return self.planner.steps_per_epoch

    @property
    def num_samples(self) -> int:
        """Samples in the split (all ranks; after ``max_samples``)."""
        return self.index.num_samples

    @property
    def rank_samples(self) -> int:
        """Samples this rank reads per epoch (train: steps x batch; val: its r::W share)."""
        return self.planner.rank_samples

    @property
    def manifest(self) -> dict:
        return self.index.manifest

    @abc.abstractmethod
    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[Batch]:
        """Batches of steps start_step..steps_per_epoch-1 of ``epoch``."""

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _to_device(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        non_blocking = self.device.type == "cuda"
        images = images.to(self.device, non_blocking=non_blocking)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, labels.to(self.device, non_blocking=non_blocking)


def make_loader(
    data_dir, split: str, *, batch_size_per_rank: int, seed: int, rank: int = 0, world_size: int = 1,
    device: str | torch.device = "cpu", kind: str = "torch", schedule: ModeSchedule | None = None,
    augment: bool = True, channels_last: bool = False, num_workers: int = 2, max_samples: int = 0,
    crop_pad_px: int = DEFAULT_CROP_PAD_PX,
) -> Loader:
    """Open ``split`` of the dataset directory ``data_dir`` and return a loader of ``kind``.

    ``schedule=None``: every step is full. Train split: shuffled per (seed, epoch), every rank runs
    ``n // (batch_size_per_rank * world_size)`` steps (last partial global batch dropped), random
    crop (``crop_pad_px`` zero padding at full resolution, / ratio in low mode) and flip if
    ``augment``. Other splits: full resolution, no augmentation, rank r gets samples r::world_size,
    last partial batch kept. ``num_workers``: torch DataLoader workers, or DALI CPU threads.
    ``max_samples`` > 0 uses only the split's first ``max_samples`` samples (quick runs).
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

        return TorchLoader(index, planner, device=device, channels_last=channels_last, num_workers=num_workers)
    from pipeline.dali_loader import DaliLoader

    return DaliLoader(index, planner, device=device, channels_last=channels_last, num_threads=max(1, num_workers))
