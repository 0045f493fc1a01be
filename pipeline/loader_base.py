"""What every loader delivers: ``Batch``, and the ``Loader`` base class both implementations share.

Images are float32 N×C×H×W, normalised with the manifest's FULL-resolution mean/std (0..1 scale)
at every resolution, on the requested device; labels int64 (N,) in [0, manifest.num_classes): a label
outside is a DatasetFormatError naming the shard and key (``Loader._check_labels``, on the host,
before the batch goes to the device). Normalisation is computed as
``(pixel - 255*mean) * (1 / (255*std))`` in float32 by both loaders, so their pixels are bitwise equal.
``pipeline.loader.make_loader`` picks an implementation.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.handover import ahead
from pipeline.index import SplitIndex
from pipeline.plan import Planner, StepPlan
from pipeline.reader import ShardReader
from pipeline.schedule import mode_of
from preprocess.dataset_format import DatasetFormatError, Manifest


def in_memory_format(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``images`` (N, C, H, W) with the canonical strides of NCHW, or of NHWC when ``channels_last``.

    With one channel both layouts are the same bytes and torch calls either stride pattern contiguous,
    so ``.contiguous()`` keeps whatever strides the loader happened to make — but convolution and
    pooling kernels choose their algorithm from the strides (a stride-1 channel runs as NHWC). That made
    the model's speed depend on the loader (the torch loader's 1-channel batches ran NHWC, DALI's NCHW;
    measured in docs/RESULTS.md). Restriding to the requested layout is a free view.
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    images = images.contiguous(memory_format=fmt)
    n, c, h, w = images.shape
    if c == 1:
        images = images.as_strided((n, c, h, w), (h * w, 1, w, 1) if channels_last else (h * w, h * w, w, 1))
    return images


@dataclass
class Batch:
    """One step's data on one rank."""

    step: int
    resolution: str
    """The dataset resolution its images were read at ("full", "low", "low<H>"; the schedule's choice)."""
    images: torch.Tensor
    """float32 (N, C, H, W), normalised, on the loader's device (channels_last if asked); N is the step's
    per-rank batch size (k x the loader's batch for a low step with schedule.low_batch_scale k)."""
    labels: torch.Tensor
    """int64 (N,), on the loader's device."""
    keys: list[str]

    @property
    def mode(self) -> str:
        """The step's mode, ``pipeline.schedule.MODES``: "full" at the full resolution, "low" at every other
        (what ``set_mode`` switches the model to)."""
        return mode_of(self.resolution)


class Loader(abc.ABC):
    """Per-step batches of one rank; ``epoch(e, start_step)`` may be called repeatedly, in any order."""

    def __init__(self, index: SplitIndex, planner: Planner, device: str | torch.device, channels_last: bool,
                 batches_ahead: int = 1) -> None:
        if batches_ahead < 0:
            raise ValueError(f"batches_ahead must be >= 0, got {batches_ahead}")
        self.index = index
        self.batches_ahead = batches_ahead
        """Batches prepared ahead on a handover thread (0: on the caller's thread, as before)."""
        self.planner = planner
        self.reader = ShardReader(index)
        self.device = torch.device(device)
        self.channels_last = channels_last
        manifest = index.manifest  # validated: one mean and one std > 0 per channel
        self.mean_255 = (np.asarray(manifest.mean, np.float64) * 255.0).astype(np.float32)
        """Per-channel mean on the 0..255 scale (float32)."""
        self.std_255 = (np.asarray(manifest.std, np.float64) * 255.0).astype(np.float32)
        """Per-channel std on the 0..255 scale (float32)."""
        self.inv_std_255 = (np.float32(1.0) / self.std_255).astype(np.float32)
        """Per-channel 1 / std on the 0..255 scale (float32)."""

    @property
    def steps_per_epoch(self) -> int:
        """Steps of every epoch (validation, or training with low_batch_scale 1); raises ValueError for
        training with low_batch_scale > 1, where it varies: use ``steps_in_epoch(epoch)``."""
        return self.planner.steps_per_epoch

    def steps_in_epoch(self, epoch: int) -> int:
        """Steps of ``epoch``: a pure function of (seed, epoch, world size, batch, schedule), equal on every rank."""
        return self.planner.steps_in_epoch(epoch)

    @property
    def num_samples(self) -> int:
        """Samples in the split (all ranks; after ``max_samples``)."""
        return self.index.num_samples

    @property
    def rank_samples(self) -> int:
        """Samples this rank reads per epoch (train: steps x batch; val: its r::W share); raises ValueError for
        training with low_batch_scale > 1: use ``rank_samples_in_epoch(epoch)``."""
        return self.planner.rank_samples

    def rank_samples_in_epoch(self, epoch: int) -> int:
        """Samples this rank reads in ``epoch`` (train: the sum of its steps' batch sizes)."""
        return self.planner.rank_samples_in_epoch(epoch)

    @property
    def manifest(self) -> Manifest:
        """The dataset's manifest (classes, shapes, ratio, statistics, ``fingerprint()``)."""
        return self.index.manifest

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[Batch]:
        """Batches of steps start_step..steps_in_epoch(epoch)-1 of ``epoch``, prepared ``batches_ahead``
        ahead on a handover thread (``pipeline.handover``); close the iterator to stop early."""
        device = self.device
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())

        def batches() -> Iterator[Batch]:
            # A new thread starts on CUDA device 0: give it the caller's, so a rank's copies land on its
            # own GPU. (Its torch thread count is the caller's already: torch initialises each new
            # thread's OpenMP count from torch.set_num_threads; tested.)
            if self.batches_ahead and device.type == "cuda":
                torch.cuda.set_device(device)
            return self._batches(epoch, start_step)

        return ahead(batches, self.batches_ahead)

    @abc.abstractmethod
    def _batches(self, epoch: int, start_step: int) -> Iterator[Batch]:
        """The implementation of ``epoch``: runs on the handover thread when ``batches_ahead`` > 0."""

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_labels(self, plan: StepPlan, labels: torch.Tensor) -> None:
        """DatasetFormatError naming the shard and key of the first label outside [0, num_classes).
        Unchecked, cross-entropy fails on it with an IndexError (a device assert on CUDA) naming neither,
        or ignores the sample silently when it is -100. One min/max over the host batch: cheap."""
        num_classes = self.manifest.num_classes
        low, high = torch.aminmax(labels)
        if int(low) >= 0 and int(high) < num_classes:
            return
        flat = labels.reshape(-1)
        first = int(torch.nonzero((flat < 0) | (flat >= num_classes))[0, 0])
        where = self.index.describe(plan.resolution, int(plan.positions[first]))
        raise DatasetFormatError(f"{where}: label {int(flat[first])} is outside [0, {num_classes}) "
                                 f"(the manifest lists {num_classes} classes)")

    def _to_device(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        non_blocking = self.device.type == "cuda"
        images = in_memory_format(images.to(self.device, non_blocking=non_blocking), self.channels_last)
        return images, labels.to(self.device, non_blocking=non_blocking)
