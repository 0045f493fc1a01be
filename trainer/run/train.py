"""One training job from a resolved config: set up the rank, build, resume, train, summarise.

``run_training`` is what ``python -m trainer`` / ``lowmode-train`` / torchrun call; it returns when
training is done and raises TrainingStopped (signal, exit 75), NonFiniteLossError (exit 3), or, for the
one-line errors of exit 2, ConfigError / CheckpointError / DatasetFormatError / RunDirError / an OSError
naming a file (a full disk while checkpointing). Once training has started, status.json ends "failed"
with the reason on any error. A start from step 0 never silently replaces a run's history (metrics
records or checkpoints): ``fresh`` (``--fresh``) discards it, see :func:`_choose_checkpoint`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import torch

from trainer.report.metrics import MetricsWriter, read_records, summarize
from trainer.report.rundir import RunDir, RunDirError, environment, tomllib
from trainer.report.wandb_logger import WandbLogger
from trainer.run import checkpoint as ckpt
from trainer.run import distributed
from trainer.run.build import Components, build
from trainer.run.config import ConfigError, TrainConfigRoot, diff_keys, hashed_view
from trainer.run.distributed import DistInfo
from trainer.run.loop import NonFiniteLossError, Trainer, TrainingStopped
from trainer.run.signals import StopRequest

log = logging.getLogger("lowmode.train")


def setup_logging(info: DistInfo) -> None:
    """INFO lines on rank 0, warnings only (prefixed with the rank) elsewhere."""
    fmt = "%(asctime)s %(message)s" if info.is_main else f"[rank {info.rank}] %(asctime)s %(message)s"
    logging.basicConfig(level=logging.INFO if info.is_main else logging.WARNING, format=fmt,
                        datefmt="%H:%M:%S", stream=sys.stderr, force=True)


def _resume_state(trainer: Trainer, resume: str, fresh: bool) -> dict[str, Any] | None:
    """Rank 0 picks the checkpoint (:func:`_choose_checkpoint`), every rank loads that same file;
    compatibility is checked, then the trainer continues from it. Returns the state (None for step 0)."""
    chosen: str | Exception | None = None
    if trainer.info.is_main:
        try:
            chosen = _choose_checkpoint(trainer, resume, fresh)
        except (ckpt.CheckpointError, RunDirError) as exc:
            chosen = exc
    chosen = distributed.broadcast_object(chosen)
    if isinstance(chosen, Exception):
        raise chosen
    if chosen is None:
        return None
    state = ckpt.load_checkpoint(chosen)
    config = trainer.config
    ckpt.check_compatible(state, hashed_view(config.to_dict()), trainer.dataset_fingerprint,
                          trainer.info.world_size)
    trainer.load_state_dict(state, source=chosen)
    log.info("resuming from %s (epoch %d, step %d)", chosen, state["progress"]["epoch"], state["progress"]["step_in_epoch"])
    return state


def _choose_checkpoint(trainer: Trainer, resume: str, fresh: bool) -> str | None:
    """Rank 0, under the run-dir lock: the checkpoint to continue from, or None to start at step 0.

    A start at step 0 never silently replaces a history (metrics records or checkpoints): ``fresh``
    discards it first; without it ``--resume never`` over a history is refused, and so is ``--resume
    auto`` over records without a checkpoint, unless they are this config's (:func:`_check_restart`).
    """
    rd, checkpoints = trainer.run_dir, trainer.checkpoints
    if fresh:
        _discard_history(rd, checkpoints)
        return None
    records, saved = rd.metrics_records(), checkpoints.existing()
    if resume == "never" and (records or saved):
        raise RunDirError(f"--run-dir {rd.path}: holds a run's history ({records} metrics records, {len(saved)} "
                          "checkpoints) and --resume never does not start over it; add --fresh to discard the "
                          "history and start from step 0, or use a new --run-dir")
    found = checkpoints.find_resume(resume)
    if found is not None:
        return str(found[0])
    if records:
        _check_restart(rd, trainer.config, records)
    return None


def _check_restart(rd: RunDir, config: TrainConfigRoot, records: int) -> None:
    """``--resume auto`` over metrics records but no checkpoint: the run was killed before its first
    checkpoint. Restarting it from step 0 loses nothing when RUN/config.toml is this config (the restart
    rewrites the same records), so a requeued job or a rerun study needs no flag; records of another
    config are a history, refused without ``--fresh``."""
    try:
        saved = rd.read_config()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        saved = None
    if saved is None or not all(isinstance(v, dict) for v in saved.values()):
        differing = [f"{rd.config.name} missing or unreadable"]
    else:
        differing = diff_keys(hashed_view(saved), hashed_view(config.to_dict()))
    if differing:
        raise RunDirError(f"--run-dir {rd.path}: holds {records} metrics records but no checkpoint to resume "
                          f"from, written with another config (differing: {', '.join(differing[:8])}); add --fresh "
                          "to discard them and start from step 0, or use a new --run-dir")
    log.warning("%s: %d metrics records but no checkpoint (stopped before the first one); restarting this config "
                "from step 0", rd.path, records)


def _discard_history(rd: RunDir, checkpoints: ckpt.CheckpointManager) -> None:
    """``--fresh``: delete every checkpoint and the records (rank 0, under the lock, after the build
    succeeded, so a bad config or dataset leaves the old history in place)."""
    records = rd.metrics_records()
    removed = checkpoints.remove_all()
    rd.discard_records()
    if records or removed:
        log.info("--fresh: discarded %d checkpoint(s) and %d metrics records in %s", len(removed), records, rd.path)


def _resolve_device(config: TrainConfigRoot, info: DistInfo) -> torch.device:
    """This rank's device; train.device = cuda without a GPU is a config error (exit 2), not a bug."""
    try:
        return distributed.resolve_device(config.train.device, info)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


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


def _summary_extra(config: TrainConfigRoot, info: DistInfo, device: str, parts: Components) -> dict[str, Any]:
    batch = config.train.global_batch_size // info.world_size
    schedule, manifest = parts.schedule, parts.manifest
    return {"experiment": config.logging.experiment, "job_type": config.job_type(), "model": config.model.name,
            "schedule_policy": config.schedule.policy, "schedule_p": config.schedule.p,
            "global_batch_size": config.train.global_batch_size, "world_size": info.world_size,
            "device": device, "planned_epochs": config.train.epochs, "full_size": manifest.height("full"),
            # a low step's batch over the configured one, per low size read (full-step equivalents weigh by it)
            "low_batch_scale_by_size": {str(manifest.height(r)): schedule.step_batch(r, batch) / batch
                                        for r in schedule.rungs}}


def _record_failure(rd: RunDir, exc: BaseException) -> None:
    """status.json "failed" with the reason; when that write fails too (the disk that caused ``exc`` is
    still full), a warning, so the original error is what the trainer reports."""
    try:
        rd.write_status("failed", reason=f"{type(exc).__name__}: {exc}")
    except OSError as write_error:
        log.warning("could not record the failure in %s: %s", rd.status, write_error)


def run_training(config: TrainConfigRoot, run_dir: str | Path, *, resume: str = "auto",
                 fresh: bool = False) -> dict[str, Any] | None:
    """Train to the end; returns the summary on rank 0 (None elsewhere).

    ``resume``: "auto", "never" or a checkpoint path (:meth:`CheckpointManager.find_resume`);
    ``fresh``: discard RUN's history (checkpoints, metrics) and start from step 0 (needs "never").
    """
    if fresh and resume != "never":
        raise ValueError(f"fresh=True starts from step 0; it cannot resume={resume!r}")
    info = distributed.dist_info_from_env()
    setup_logging(info)
    device = _resolve_device(config, info)
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
        payload = _resume_state(trainer, resume, fresh)
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
            summary = summarize(list(read_records(rd.metrics)), _summary_extra(config, info, str(device), parts))
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
            _record_failure(rd, exc)
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
