"""The reference loader: shard index + ``os.pread`` + numpy augmentation in a torch DataLoader.

Each DataLoader item is a whole step: a worker reads the step's samples (only from the step's
resolution), decodes (raw reshape, or PIL for png/jpg), crops/flips them as ``pipeline.augment``
says and normalises to float32 CHW. Slower than DALI but simple enough to trust; the tests compare
the two pixel for pixel.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from pipeline import augment
from pipeline.index import SplitIndex
from pipeline.loader_base import Batch, Loader
from pipeline.plan import Planner, StepPlan
from pipeline.reader import ShardReader
from preprocess.dataset_format import decode_image


class _EpochSteps(torch.utils.data.Dataset):
    """Steps start_step.. of one epoch; item i is the decoded, augmented, normalised batch of one step."""

    def __init__(self, plans: list[StepPlan], reader: ShardReader, mean_255: np.ndarray, inv_std_255: np.ndarray):
        self.plans, self.reader = plans, reader
        self.mean_255, self.inv_std_255 = mean_255, inv_std_255

    def __len__(self) -> int:
        return len(self.plans)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        plan = self.plans[i]
        images, labels = read_batch(self.reader, plan.resolution, plan.positions)
        images = augment.apply_numpy(images, plan.aug)
        chw = ((images.astype(np.float32) - self.mean_255) * self.inv_std_255).transpose(0, 3, 1, 2)
        return torch.from_numpy(np.ascontiguousarray(chw)), torch.from_numpy(labels)


def read_batch(reader: ShardReader, resolution: str, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decoded uint8 (N, H, W, C) images and int64 labels of ``positions``, read one by one with pread."""
    index = reader.index
    h, w, c = index.at(resolution).shape
    images = np.empty((len(positions), h, w, c), np.uint8)
    labels = np.empty(len(positions), np.int64)
    for i, position in enumerate(positions):
        data, labels[i] = reader.pread_sample(resolution, int(position))
        images[i] = decode_image(data, index.encoding, (h, w, c),
                                 lambda: index.describe(resolution, int(position)))
    return images, labels


class TorchLoader(Loader):
    """``Loader`` over a torch DataLoader with ``num_workers`` worker processes (0: in-process)."""

    def __init__(self, index: SplitIndex, planner: Planner, *, device, channels_last: bool, num_workers: int,
                 batches_ahead: int = 1) -> None:
        super().__init__(index, planner, device, channels_last, batches_ahead)
        self.num_workers = num_workers

    def _batches(self, epoch: int, start_step: int) -> Iterator[Batch]:
        plans = list(self.planner.plans(epoch, start_step))
        if not plans:
            return
        dataset = _EpochSteps(plans, self.reader, self.mean_255, self.inv_std_255)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=None, shuffle=False, num_workers=min(self.num_workers, len(plans)),
            pin_memory=self.device.type == "cuda",
        )
        for plan, (images, labels) in zip(plans, loader):
            self._check_labels(plan, labels)  # here, not in a worker: its error would arrive wrapped
            images, labels = self._to_device(images, labels)
            yield Batch(step=plan.step, resolution=plan.resolution, images=images, labels=labels, keys=self.planner.keys(plan))
