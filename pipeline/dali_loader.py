"""The DALI loader: one pipeline per epoch serves every resolution, fed by a serial external source.

The source is a callable that, for iteration i, takes the epoch's i-th ``StepPlan`` and returns
that step's bytes read from the step's resolution only (a low step never touches ``full/``), the
labels, and per-sample augmentation arguments. DALI then decodes (png/jpg: ``fn.decoders.image``,
"mixed" on a GPU, "cpu" otherwise; raw: already an HWC array), crops with zero padding
(``fn.slice`` with per-sample absolute ``start``/``shape`` and ``out_of_bounds_policy="pad"``:
``crop_mirror_normalize``'s ``crop_pos`` cannot place a window outside the image) and flips and
normalises to float CHW (``fn.crop_mirror_normalize`` with a per-sample ``mirror``).

Why serial, not ``parallel=True``: gathering a batch of raw samples from memory-mapped shards is a
few numpy copies (~0.1–0.5 ms), cheaper than shipping it from a worker process; DALI's own threads do
the per-pixel work, and the callback runs inside ``pipe.run()``, which the loader's handover thread
(``pipeline.handover``) calls, not the training thread. The output shape changes between steps of different resolutions without a rebuild.
Why a new pipeline per ``epoch()`` call: a pipeline that was stopped mid-epoch (resume, inspect)
still holds prefetched batches; building a CPU pipeline takes a few ms.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from pipeline.index import SplitIndex
from pipeline.loader_base import Batch, Loader
from pipeline.plan import Planner, StepPlan
from pipeline.reader import ShardReader

PREFETCH_DEPTH = 2


class _StepSource:
    """External source callable: iteration i -> the i-th plan's (images, labels, starts, shapes, flips)."""

    def __init__(self, reader: ShardReader, plans: list[StepPlan]) -> None:
        self.reader, self.plans = reader, plans

    def __call__(self, info):
        if info.iteration >= len(self.plans):
            raise StopIteration
        plan = self.plans[info.iteration]
        images, labels = self.reader.gather(plan.resolution, plan.positions)
        h, w, _ = self.reader.index.at(plan.resolution).shape
        shapes = np.tile(np.array([h, w], np.int32), (len(plan.positions), 1))
        return images, labels, plan.aug.starts(), shapes, plan.aug.flips


class DaliLoader(Loader):
    """``Loader`` over NVIDIA DALI; CPU-only pipelines (device_id=None) unless ``device`` is CUDA."""

    def __init__(self, index: SplitIndex, planner: Planner, *, device, channels_last: bool, num_threads: int,
                 batches_ahead: int = 1) -> None:
        super().__init__(index, planner, device, channels_last, batches_ahead)
        try:
            import nvidia.dali  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                f"kind='dali' needs NVIDIA DALI (pip install 'lowmode[dali]'): {exc}; or use kind='torch'"
            ) from exc

        self.num_threads = num_threads
        self.gpu = self.device.type == "cuda"

    def _batches(self, epoch: int, start_step: int) -> Iterator[Batch]:
        plans = list(self.planner.plans(epoch, start_step))
        if not plans:
            return
        pipe = self._build(_StepSource(self.reader, plans), max(len(p.positions) for p in plans))
        try:
            for plan in plans:
                images, labels = self._outputs(pipe.run())
                if images.shape[0] != len(plan.positions):
                    raise RuntimeError(
                        f"DALI returned {images.shape[0]} images for step {plan.step}, expected {len(plan.positions)}"
                    )
                self._check_labels(plan, labels)  # DALI passes the label bytes through unchecked
                images, labels = self._to_device(images, labels)
                yield Batch(step=plan.step, resolution=plan.resolution, images=images, labels=labels, keys=self.planner.keys(plan))
        finally:
            del pipe

    def _outputs(self, outputs) -> tuple[torch.Tensor, torch.Tensor]:
        from nvidia.dali.plugin.pytorch import feed_ndarray

        images_tl, labels_tl = outputs
        images_t = images_tl.as_tensor()
        labels_t = labels_tl.as_tensor()
        images = torch.empty(images_t.shape(), dtype=torch.float32, device=self.device if self.gpu else "cpu")
        labels = torch.empty(labels_t.shape(), dtype=torch.int64)
        stream = torch.cuda.current_stream(self.device) if self.gpu else None
        feed_ndarray(images_t, images, cuda_stream=stream)
        feed_ndarray(labels_t, labels)
        return images, labels

    def _build(self, source: _StepSource, batch_size: int):
        from nvidia.dali import fn, pipeline_def, types

        encoded = self.index.encoding != "raw"
        channels = self.index.manifest.channels
        device_id = None  # CPU-only pipeline
        if self.gpu:
            device_id = self.device.index if self.device.index is not None else torch.cuda.current_device()

        @pipeline_def(batch_size=batch_size, num_threads=self.num_threads, device_id=device_id,
                      prefetch_queue_depth=PREFETCH_DEPTH)
        def step_pipeline():
            images, labels, starts, shapes, flips = fn.external_source(
                source=source, batch=True, batch_info=True, num_outputs=5, parallel=False,
                layout=["" if encoded else "HWC", "", "", "", ""],
            )
            if encoded:
                out_type = types.GRAY if channels == 1 else types.RGB
                images = fn.decoders.image(images, device="mixed" if self.gpu else "cpu", output_type=out_type)
            elif self.gpu:
                images = images.gpu()
            images = fn.slice(images, start=starts, shape=shapes, axis_names="HW",
                              out_of_bounds_policy="pad", fill_values=0)
            images = fn.crop_mirror_normalize(
                images, mirror=flips, mean=[float(m) for m in self.mean_255],
                std=[float(s) for s in self.std_255],
                dtype=types.FLOAT, output_layout="CHW",
            )
            return images, labels

        pipe = step_pipeline()
        pipe.build()
        return pipe
