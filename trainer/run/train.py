"""One training job from a resolved config: set up the rank, build, resume, train, summarise.

``run_training`` is what ``python -m trainer`` / ``lowmode-train`` / torchrun call; it returns when
training is done and raises TrainingStopped (signal, exit 75) or NonFiniteLossError (exit 3).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from trainer.report.metrics import MetricsWriter, read_records, summarize
from trainer.report.rundir import RunDir, environment
from trainer.report.wandb_logger import WandbLogger
from trainer.run import checkpoint as ckpt
from trainer.run import distributed
from trainer.run.build import build
from trainer.run.config import TrainConfigRoot, hashed_view
from trainer.run.distributed import DistInfo
from trainer.run.loop import NonFiniteLossError, Trainer, TrainingStopped
from trainer.run.signals import StopRequest

log = logging.getLogger("lowmode.train")


def setup_logging(info: DistInfo) -> None:
    """INFO lines on rank 0, warnings only (prefixed with the rank) elsewhere."""
    fmt = "%(asctime)s %(message)s" if info.is_main else f"[rank {info.rank}] %(asctime)s %(message)s"
    logging.basicConfig(level=logging.INFO if info.is_main else logging.WARNING, format=fmt,
                        datefmt="%H:%M:%S", stream=sys.stderr, force=True)


def _resume_state(trainer: Trainer, resume: str) -> dict[str, Any] | None:
    """Rank 0 picks the checkpoint, every rank loads that same file; compatibility is checked, then
    the trainer continues from it. Returns the state (None for a fresh start)."""
    chosen: str | Exception | None = None
    if trainer.info.is_main:
        try:
            found = trainer.checkpoints.find_resume(resume)
            chosen = None if found is None else str(found[0])
        except ckpt.CheckpointError as exc:
            chosen = exc
    chosen = distributed.broadcast_object(chosen)
    if isinstance(chosen, Exception):
        raise chosen
    if chosen is None:
        return None
    state = ckpt.load_checkpoint(chosen)
    config = trainer.config
    ckpt.check_compatible(state, config.hash(), hashed_view(config.to_dict()), trainer.dataset_fingerprint,
                          trainer.info.world_size)
    trainer.load_state_dict(state, source=chosen)
    log.info("resuming from %s (epoch %d, step %d)", chosen, state["progress"]["epoch"], state["progress"]["step_in_epoch"])
    return state


def _start_logging(config: TrainConfigRoot, run_dir: RunDir, payload: dict | None, info: DistInfo,
                   device: str, conversion: dict | None) -> tuple[MetricsWriter | None, WandbLogger | None]:
    """Rank 0: run directory files, metrics writer (truncated on resume) and the W&B run."""
    if not info.is_main:
        return None, None
    env = environment(info.world_size, device)
    env["dual_mode_conversion"] = conversion
    run_dir.prepare(config.to_dict(), env)
    metrics = MetricsWriter(run_dir.metrics, truncate_to=payload["metrics_bytes"] if payload else None)
    lc = config.logging
    wandb = WandbLogger(mode=lc.wandb, project=lc.wandb_project, group=lc.experiment, job_type=config.job_type(),
                        name=run_dir.path.name, config=config.to_dict(), run_dir=run_dir.path,
                        run_id=payload.get("wandb_run_id") if payload else None)
    return metrics, wandb


def _summary_extra(config: TrainConfigRoot, info: DistInfo, device: str) -> dict[str, Any]:
    return {"experiment": config.logging.experiment, "job_type": config.job_type(), "model": config.model.name,
            "schedule_policy": config.schedule.policy, "schedule_p": config.schedule.p,
            "global_batch_size": config.train.global_batch_size, "world_size": info.world_size,
            "device": device, "planned_epochs": config.train.epochs}


def run_training(config: TrainConfigRoot, run_dir: str | Path, *, resume: str = "auto") -> dict[str, Any] | None:
    """Train to the end; returns the summary on rank 0 (None elsewhere)."""
    info = distributed.dist_info_from_env()
    setup_logging(info)
    device = distributed.resolve_device(config.train.device, info)
    distributed.init_distributed(device, info, config.train.dist_timeout_s)
    rd = RunDir(run_dir)
    stop = StopRequest().install()
    parts = metrics = wandb = None
    exit_code = 1
    started = False
    try:
        if info.is_main:
            rd.lock()  # before anything is written: a second trainer on this directory exits 2
            for path in rd.remove_stale_temps():
                log.info("removed %s (an interrupted write)", path)
        parts = build(config, info, device)
        trainer = Trainer(config, parts, info, rd, stop=stop)
        payload = _resume_state(trainer, resume)
        metrics, wandb = _start_logging(config, rd, payload, info, str(device), parts.conversion)
        log.info("training %s on %d rank(s), %s, %d steps in this epoch, global batch %d", config.model.name, info.world_size,
                 device, parts.train_loader.steps_in_epoch(trainer.progress.epoch), config.train.global_batch_size)
        if info.is_main:
            rd.write_status("running", global_step=trainer.progress.global_step)
            started = True
        trainer.run(metrics, wandb)
        summary = None
        if info.is_main:
            metrics.sync()
            summary = summarize(list(read_records(rd.metrics)), _summary_extra(config, info, str(device)))
            rd.write_summary(summary)
            wandb.log_summary(summary)
            rd.write_status("done", global_step=trainer.progress.global_step)
        exit_code = 0
        return summary
    except TrainingStopped as exc:
        exit_code = 75
        if info.is_main:
            rd.write_status("stopped", reason=str(exc), signal=stop.signal_name, exit_code=75)
        raise
    except BaseException as exc:  # status.json never stays "running": non-finite loss, errors, bugs
        if started:
            rd.write_status("failed", reason=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        stop.restore()
        if wandb is not None:
            wandb.finish(exit_code)
        if metrics is not None:
            metrics.close()
        if parts is not None:
            parts.close()
        distributed.shutdown()
        rd.unlock()
