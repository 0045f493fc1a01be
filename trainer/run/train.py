"""One training job from a resolved config: set up the rank, build, resume, train, summarise.

``run_training`` is what ``python -m trainer`` / ``lowmode-train`` / torchrun call; it returns when
training is done and raises TrainingStopped (signal, exit 75) or NonFiniteLossError (exit 3).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from trainer import checkpoint as ckpt
from trainer import distributed
from trainer.build import build, dataset_fingerprint
from trainer.config import ConfigError, TrainConfigRoot, hashed_view
from trainer.distributed import DistInfo
from trainer.loop import NonFiniteLossError, Trainer, TrainingStopped
from trainer.metrics import MetricsWriter, read_records, summarize
from trainer.rundir import RunDir, environment
from trainer.signals import StopRequest
from trainer.wandb_logger import WandbLogger

log = logging.getLogger("lowmode.train")


def setup_logging(info: DistInfo) -> None:
    """INFO lines on rank 0, warnings only (prefixed with the rank) elsewhere."""
    fmt = "%(asctime)s %(message)s" if info.is_main else f"[rank {info.rank}] %(asctime)s %(message)s"
    logging.basicConfig(level=logging.INFO if info.is_main else logging.WARNING, format=fmt,
                        datefmt="%H:%M:%S", stream=sys.stderr, force=True)


def _resume_payload(config: TrainConfigRoot, run_dir: RunDir, resume: str, info: DistInfo,
                    fingerprint: str) -> dict[str, Any] | None:
    """Rank 0 picks the checkpoint, every rank loads that same file; compatibility is checked."""
    chosen = None
    if info.is_main:
        if resume == "never" and ckpt.list_checkpoints(run_dir.checkpoints):
            chosen = ConfigError(f"--resume never: {run_dir.checkpoints} already holds checkpoints; "
                                 "use a new --run-dir or --resume auto")
        else:
            payload = ckpt.find_resume_checkpoint(run_dir.checkpoints, resume)
            chosen = None if payload is None else _path_of(run_dir, resume, payload)
    chosen = distributed.broadcast_object(chosen)
    if isinstance(chosen, Exception):
        raise chosen
    if chosen is None:
        return None
    payload = ckpt.load_checkpoint(chosen)
    ckpt.check_compatible(payload, config.hash(), hashed_view(config.to_dict()), fingerprint, info.world_size)
    log.info("resuming from %s (epoch %d, step %d)", chosen, payload["progress"]["epoch"], payload["progress"]["step_in_epoch"])
    return payload


def _path_of(run_dir: RunDir, resume: str, payload: dict[str, Any]) -> str:
    if resume not in ("auto", "never"):
        return resume
    return str(ckpt.checkpoint_path(run_dir.checkpoints, payload["progress"]["global_step"]))


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
    try:
        parts = build(config, info, device)
        fingerprint = dataset_fingerprint(parts.train_loader.manifest)
        payload = _resume_payload(config, rd, resume, info, fingerprint)
        trainer = Trainer(config, parts, info, rd, dataset_fingerprint=fingerprint, stop=stop)
        if payload is not None:
            trainer.restore(payload)
        metrics, wandb = _start_logging(config, rd, payload, info, str(device), parts.conversion)
        log.info("training %s on %d rank(s), %s, %d steps/epoch, global batch %d", config.model.name, info.world_size,
                 device, parts.train_loader.steps_per_epoch, config.train.global_batch_size)
        if info.is_main:
            rd.write_status("running", global_step=trainer.progress.global_step)
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
    except NonFiniteLossError as exc:
        if info.is_main:
            rd.write_status("failed", reason=str(exc))
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
