"""Build everything a run needs: loaders first (they own the dataset's Manifest), then the model ->
dual-mode conversion -> device / channels_last -> optional torch.compile -> DDP, then the optimiser and
LR schedule. Each builder takes only its config section(s).
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pipeline import DatasetFormatError, make_loader
from pipeline.loader_base import Loader
from pipeline.schedule import LOW, Ladder, ModeSchedule
from preprocess.dataset_format import Manifest
from trainer.run import distributed, host
from trainer.run.config import ConfigError, DataConfig, ModelConfig, OptimConfig, TrainConfigRoot
from trainer.run.distributed import DistInfo
from trainer.run.lr_schedule import PROGRESS_SCHEDULES, ProgressLR
from trainer.run.model_checks import LowResolutions, check_low_mode_fits, conversion_ratio, model_io

log = logging.getLogger("lowmode.train")


@dataclass
class Components:
    """The built run: ``model`` is the plain converted module (state dicts), ``train_model`` the
    compiled/DDP-wrapped one used for training steps, ``eval_model`` the compiled one without DDP."""

    model: torch.nn.Module
    train_model: torch.nn.Module
    eval_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.MultiStepLR | ProgressLR
    schedule: ModeSchedule
    train_loader: Loader
    val_loader: Loader
    recal_loader: Loader | None
    device: torch.device
    conversion: dict[str, Any] | None

    @property
    def manifest(self) -> Manifest:
        """The dataset's manifest, as the train loader read it."""
        return self.train_loader.manifest

    def close(self) -> None:
        for loader in (self.train_loader, self.val_loader, self.recal_loader):
            if loader is not None:
                loader.close()


def seed_everything(seed: int, deterministic: bool) -> None:
    """Same seed on every rank: identical initial weights (DDP also broadcasts rank 0's)."""
    if deterministic:
        # cuBLAS needs this before its first use to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    # Autotuned cuDNN kernels are fast (one tuning per input shape: full and low) but not reproducible.
    torch.backends.cudnn.benchmark = not deterministic
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def per_rank_batch(global_batch_size: int, world_size: int) -> int:
    """Global batch split over ranks; a remainder is an error, never a silent change."""
    if global_batch_size % world_size:
        raise ConfigError(
            f"train.global_batch_size: {global_batch_size} is not divisible by the world size {world_size}; "
            f"choose a multiple of {world_size} (the batch size is global, so results do not depend on it)"
        )
    return global_batch_size // world_size


def stale_recalibration_enabled(mc: ModelConfig) -> bool:
    """Whether evaluations after epochs with too few full steps re-estimate BN statistics first: a
    converted model whose low steps leave the running statistics alone (every policy but ``shared``)."""
    return mc.dual_mode and mc.bn_stale_batches > 0 and mc.bn_policy != "shared"


def build_run_model(mc: ModelConfig, manifest: Manifest,
                    low: LowResolutions = (LOW,)) -> tuple[torch.nn.Module, dict | None]:
    """The registry model for the dataset, converted for low mode when ``model.dual_mode`` (report as a
    dict, else None) for the low resolutions ``low`` the schedule reads (``ModeSchedule.rungs``). Zoo names
    ("torchvision:NAME", "timm:NAME") go to trainer.run.build_zoo."""
    from trainer.method.zoo import is_zoo_name

    if is_zoo_name(mc.name):
        from trainer.run.build_zoo import build_zoo_run_model

        return build_zoo_run_model(mc, manifest, low)
    from trainer.method.dualmode import convert_to_dual_mode
    from trainer.method.models import build_model, default_preset

    in_channels, num_classes = model_io(mc, manifest)
    model = build_model(mc.name, num_classes=num_classes, in_channels=in_channels, stem=mc.stem,
                        width=mc.width or None)
    if not mc.dual_mode:
        return model, None
    preset = default_preset(mc.name) if mc.dual_preset == "auto" else (mc.dual_preset or None)
    report = convert_to_dual_mode(
        model, preset=preset, name_pattern=mc.name_pattern or None, kernel_sizes=mc.kernel_sizes,
        skip_in_low=mc.skip_in_low or None, bn_policy=mc.bn_policy, ratio=conversion_ratio(mc, manifest, low),
        low_kernels=mc.low_kernels,
    )
    check_low_mode_fits(model, mc, manifest, in_channels, low)
    log.info(report.summary())
    return model, report.to_dict()


COMPILE_GRAPHS_BESIDE_TRAINING = 4
"""Graphs a compiled run needs besides its training shapes: evaluation, its short last batch, BN re-estimation
batches, and one to spare."""


def wrap_model(model: torch.nn.Module, mc: ModelConfig, device: torch.device,
               train_shapes: int = 2) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(train_model, eval_model): device / memory format, then compile, then DDP.

    ``model.compile``: ``torch.compile(dynamic=False)``, so every (mode, batch shape, train/eval) the
    run meets gets a static graph of its own, compiled once at its first step and then reused: the full
    step, the low step (its smaller input, and the k x larger batch of ``schedule.low_batch_scale``),
    evaluation and its last short batch, BN re-calibration. That is at most about six graphs, under
    dynamo's recompile limit (8 per frame); without ``dynamic=False`` the second shape would be traced
    again as a dynamic-shape graph, slower than the static ones. A resolution ladder trains at one shape per
    rung (``train_shapes``: the full step and one per low resolution read); when that would pass the limit,
    the limit is raised to fit, since past it dynamo silently runs the frame eagerly. Counted in
    tests/trainer/run/test_compile_graphs.py.
    """
    model.to(device)
    if mc.channels_last:
        model.to(memory_format=torch.channels_last)
    from trainer.method.bn_policy import has_mode_specific_parameters

    if mc.compile:
        from torch import _dynamo  # not "import torch._dynamo": that would make torch a local name here

        needed = train_shapes + COMPILE_GRAPHS_BESIDE_TRAINING
        if needed > _dynamo.config.recompile_limit:
            _dynamo.config.recompile_limit = needed
            _dynamo.config.cache_size_limit = needed
    compiled = torch.compile(model, dynamic=False) if mc.compile else model
    return distributed.wrap_ddp(compiled, device, find_unused_parameters=has_mode_specific_parameters(model)), compiled


def build_optimizer(model: torch.nn.Module, oc: OptimConfig,
                    epochs: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.MultiStepLR | ProgressLR]:
    """SGD + its LR schedule: per-epoch MultiStepLR (``step``, stepped at each epoch end) or a per-step
    :class:`ProgressLR` (``cosine`` / ``linear``, set before each step)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=oc.lr, momentum=oc.momentum,
                                weight_decay=oc.weight_decay, nesterov=oc.nesterov)
    if oc.lr_schedule in PROGRESS_SCHEDULES:
        return optimizer, ProgressLR(optimizer, shape=oc.lr_schedule, base_lr=oc.lr, epochs=epochs,
                                     warmup_epochs=oc.warmup_epochs)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(oc.lr_milestones_epochs), gamma=oc.lr_gamma)
    return optimizer, scheduler


def mode_schedule(config: TrainConfigRoot, manifest: Manifest | None = None) -> ModeSchedule:
    """The run's mode schedule: the ``schedule`` section, the run's seed, the optimiser's LR milestones, the
    number of epochs (the ramp and progressive policies' clock) and the dataset's resolutions (its ladder;
    None: two-level). A schedule the dataset cannot serve (a ``schedule.low_size`` it does not store) is a
    ConfigError naming the key."""
    try:
        return ModeSchedule(config.schedule, config.train.seed,
                            lr_milestones_epochs=config.optim.lr_milestones_epochs, total_epochs=config.train.epochs,
                            ladder=Ladder.from_manifest(manifest) if manifest is not None else None)
    except ValueError as exc:
        where = f" ({config.data.dir})" if manifest is not None else ""
        raise ConfigError(f"{exc}{where}") from None


def build_loaders(dc: DataConfig, *, batch_size_per_rank: int, seed: int, info: DistInfo, device: torch.device,
                  schedule: ModeSchedule, channels_last: bool,
                  recalibrate: bool) -> tuple[Loader, Loader, Loader | None]:
    """Train (with the mode schedule), val (full mode, every sample once) and, when ``recalibrate``, a
    full-mode train loader without augmentation for BN re-calibration and low-step-value probes."""
    common = dict(batch_size_per_rank=batch_size_per_rank, seed=seed, rank=info.rank, world_size=info.world_size,
                  device=device, kind=dc.loader, channels_last=channels_last, num_workers=dc.num_workers,
                  batches_ahead=dc.batches_ahead)
    try:
        train = make_loader(dc.dir, "train", schedule=schedule, augment=dc.augment, max_samples=dc.max_train_samples, **common)
        val = make_loader(dc.dir, "val", schedule=None, augment=False, **common)
        recal = None
        if recalibrate:
            recal = make_loader(dc.dir, "train", schedule=None, augment=False, max_samples=dc.max_train_samples, **common)
    except DatasetFormatError:
        raise
    except ValueError as exc:  # e.g. a global batch larger than the (limited) training split
        raise ConfigError(f"data / train.global_batch_size: cannot build the {dc.loader} loader for {dc.dir}: {exc}") from None
    return train, val, recal


def build(config: TrainConfigRoot, info: DistInfo, device: torch.device) -> Components:
    """Everything, in the order the module docstring gives."""
    tc, mc = config.train, config.model
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    if tc.keep_freed_memory:
        host.keep_freed_memory()
    seed_everything(tc.seed, tc.deterministic)
    if tc.precision == "bf16" and device.type != "cuda":
        raise ConfigError("train.precision: 'bf16' autocast is for GPU runs; use 'fp32' on CPU")
    manifest = Manifest.load(config.data.dir)
    schedule = mode_schedule(config, manifest)
    train, val, recal = build_loaders(
        config.data, batch_size_per_rank=per_rank_batch(tc.global_batch_size, info.world_size), seed=tc.seed,
        info=info, device=device, schedule=schedule, channels_last=mc.channels_last,
        recalibrate=(mc.bn_recalibrate_batches > 0 or stale_recalibration_enabled(mc) or config.schedule.policy == "adaptive"
                     or config.logging.low_step_value_every > 0))
    model, conversion = build_run_model(mc, train.manifest, schedule.rungs)
    train_model, eval_model = wrap_model(model, mc, device, train_shapes=1 + len(schedule.rungs))
    optimizer, scheduler = build_optimizer(model, config.optim, tc.epochs)
    return Components(model, train_model, eval_model, optimizer, scheduler, schedule, train, val, recal, device,
                      conversion)
