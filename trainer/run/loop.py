"""The training loop: per step, the loader's batch carries the mode (the shared seeded draw), the
model is switched to it, and forward / backward / update run; per epoch, full-mode validation,
the epoch record, the LR step and a checkpoint.

One small all-reduce per step ([loss sum, correct, count, stop flag], float64) gives every rank
the same global loss (for metrics and the NaN guard) and the same stop decision, so all ranks
stop and checkpoint after the same step. The mode itself is never exchanged.

Wall-clock (``train_wall_s``) sums each step's time from asking the loader for the batch to the
end of the optimiser update (CUDA synchronised); evaluation and checkpointing are excluded.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from pipeline.schedule import LOW
from trainer.method.dualmode import recalibrate_bn, set_mode
from trainer.report.metrics import EpochAccumulator, MetricsWriter
from trainer.report.rundir import RunDir
from trainer.report.wandb_logger import WandbLogger
from trainer.run import checkpoint as ckpt
from trainer.run import distributed
from trainer.run.build import Components
from trainer.run.config import TrainConfigRoot, hashed_view
from trainer.run.console import Console
from trainer.run.distributed import DistInfo
from trainer.run.evaluate import evaluate
from trainer.run.precision import autocast_context
from trainer.run.signals import StopRequest


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; no checkpoint was written for this step."""


class TrainingStopped(Exception):
    """A stop signal was honoured: checkpoint written, the job should be requeued."""


@dataclass
class Progress:
    """Where training stands: the next step to run is ``step_in_epoch`` of ``epoch``."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    train_wall_s: float = 0.0


class Trainer:
    """Runs one training job on one rank; rank 0 owns the files and W&B."""

    def __init__(self, config: TrainConfigRoot, parts: Components, info: DistInfo, run_dir: RunDir,
                 *, stop: StopRequest) -> None:
        self.config, self.parts, self.info, self.run_dir = config, parts, info, run_dir
        self.dataset_fingerprint = parts.manifest.fingerprint()
        self.checkpoints = ckpt.CheckpointManager(run_dir.checkpoints, config.checkpoint.keep)
        self.stop = stop
        self.progress = Progress()
        self.acc = EpochAccumulator()
        self.metrics: MetricsWriter | None = None
        self.wandb: WandbLogger | None = None
        self.wandb_run_id: str | None = None
        self.console = Console(config.logging.progress, config.logging.print_every_steps, info.is_main)
        # Mix&Match B+: a low step of k times the batch takes k times the LR (linear scaling) unless set.
        self.low_lr_scale = config.optim.low_lr_scale or float(config.schedule.low_batch_scale)

    # ------------------------------------------------------------------ state (the checkpoint format)

    def state_dict(self, rng_states: list[dict]) -> dict[str, Any]:
        """Everything a checkpoint holds (checkpoint.STATE_KEYS); ``rng_states``: every rank's, in rank order."""
        p = self.parts
        return {
            "model": p.model.state_dict(),
            "optimizer": p.optimizer.state_dict(),
            "scheduler": p.scheduler.state_dict(),
            "progress": dataclasses.asdict(self.progress),
            "epoch_sums": self.acc.state(),
            "rng": rng_states,
            "metrics_bytes": self.metrics.size if self.metrics else 0,
            "wandb_run_id": self.wandb.run_id if self.wandb else self.wandb_run_id,
            "config_hash": self.config.hash(),
            "hashed_config": hashed_view(self.config.to_dict()),
            "dataset_fingerprint": self.dataset_fingerprint,
            "world_size": self.info.world_size,
        }

    def load_state_dict(self, state: dict[str, Any], source: str = "checkpoint") -> None:
        """Continue from a checkpoint's state (already checked for compatibility); CheckpointError
        naming ``source`` when its tensors do not fit this model/optimizer."""
        p = self.parts
        try:
            p.model.load_state_dict(state["model"])
            p.optimizer.load_state_dict(state["optimizer"])
            p.scheduler.load_state_dict(state["scheduler"])
            progress = Progress(**{k: state["progress"][k] for k in ckpt.PROGRESS_KEYS})
            acc = EpochAccumulator(state["epoch_sums"])
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise ckpt.CheckpointError(f"{source}: does not fit this run ({type(exc).__name__}: "
                                       f"{str(exc).splitlines()[0] if str(exc) else exc!r})") from None
        self.progress, self.acc = progress, acc
        self.wandb_run_id = state["wandb_run_id"]
        if state["world_size"] == self.info.world_size:
            ckpt.set_rng_state(state["rng"][self.info.rank])

    def save(self) -> None:
        """Checkpoint on all ranks: every rank's RNG state is gathered, rank 0 writes atomically."""
        rng_states = distributed.all_gather_objects(ckpt.rng_state())
        if self.info.is_main:
            self.metrics.sync()
            self.checkpoints.save(self.state_dict(rng_states))
        distributed.barrier()

    # ------------------------------------------------------------------ the run

    def run(self, metrics: MetricsWriter | None, wandb: WandbLogger | None) -> None:
        """Train from ``self.progress`` to the last epoch (raises TrainingStopped / NonFiniteLossError)."""
        self.metrics, self.wandb = metrics, wandb
        epochs = self.config.train.epochs
        while self.progress.epoch < epochs:
            self._train_epoch(self.progress.epoch)
            self._end_epoch(self.progress.epoch)

    def _train_epoch(self, epoch: int) -> None:
        loader = self.parts.train_loader
        steps = loader.steps_in_epoch(epoch)  # varies by epoch when low steps take a larger batch
        if self.progress.step_in_epoch >= steps:
            return  # a checkpoint taken after the epoch's last step: only the epoch end remains
        self.console.open_epoch(epoch, steps, self.progress.step_in_epoch)
        batches = iter(loader.epoch(epoch, start_step=self.progress.step_in_epoch))
        try:
            while True:
                start = time.perf_counter()
                batch = next(batches, None)
                if batch is None:
                    break
                self._step(batch, epoch, start, time.perf_counter())
        finally:
            self.console.close_epoch()
        if self.progress.step_in_epoch != steps:
            raise RuntimeError(f"epoch {epoch}: the loader ended after {self.progress.step_in_epoch} of {steps} steps")

    def _step(self, batch, epoch: int, start: float, data_ready: float) -> None:
        p, tc = self.parts, self.config.train
        self._check_batch(batch)
        set_mode(p.train_model, batch.mode)
        with autocast_context(p.device, tc.precision):
            logits = p.train_model(batch.images)
        loss = F.cross_entropy(logits.float(), batch.labels)
        p.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        n = batch.labels.numel()
        correct = (logits.detach().argmax(dim=1) == batch.labels).sum()
        stats = torch.stack([loss.detach().double() * n, correct.double(),
                             torch.tensor(float(n), dtype=torch.float64, device=p.device),
                             torch.tensor(float(self.stop.requested), dtype=torch.float64, device=p.device)])
        loss_sum, correct_sum, count, stop_votes = distributed.all_reduce_sum(stats).tolist()
        mean_loss = loss_sum / count
        if not math.isfinite(mean_loss):
            saved = self.checkpoints.existing()
            last = f"the last good checkpoint is {saved[-1]}" if saved else "no checkpoint was written before it"
            raise NonFiniteLossError(
                f"non-finite loss {mean_loss} at global step {self.progress.global_step + 1} "
                f"(epoch {epoch}, step {batch.step}, mode {batch.mode}); no checkpoint written for it, {last}"
            )
        grad_norm = _grad_norm(p.model) if self.config.logging.grad_norm else None
        lr = self._optimizer_step(batch.mode)
        if p.device.type == "cuda":
            torch.cuda.synchronize(p.device)  # honest step time: the GPU work is done
        end = time.perf_counter()
        self._after_step(batch, epoch, mean_loss, lr, correct_sum, count, start, data_ready, end, grad_norm)
        if tc.check_sync_every_steps and self.progress.global_step % tc.check_sync_every_steps == 0:
            distributed.check_sync(batch.mode, self.progress.global_step, p.model, p.device)
        every = self.config.checkpoint.every_steps
        if stop_votes > 0:
            self.save()
            raise TrainingStopped(f"stopped by signal after global step {self.progress.global_step}")
        if every and self.progress.global_step % every == 0:
            self.save()

    def _check_batch(self, batch) -> None:
        expected = self.progress.step_in_epoch
        if batch.step != expected:
            raise RuntimeError(f"loader yielded step {batch.step}, the trainer expected {expected}")

    def _optimizer_step(self, mode: str) -> float:
        """The SGD update, with the LR scaled by ``low_lr_scale`` on low steps; returns the LR used."""
        groups = self.parts.optimizer.param_groups
        scale = self.low_lr_scale if mode == LOW else 1.0
        if scale != 1.0:
            base = [g["lr"] for g in groups]
            for g in groups:
                g["lr"] *= scale
        lr = groups[0]["lr"]
        self.parts.optimizer.step()
        if scale != 1.0:
            for g, value in zip(groups, base):
                g["lr"] = value  # the LR schedule's value, untouched
        return lr

    def _after_step(self, batch, epoch, mean_loss, lr, correct, count, start, data_ready, end,
                    grad_norm: float | None = None) -> None:
        step_s = end - start
        pr = self.progress
        pr.global_step += 1
        pr.step_in_epoch += 1
        pr.train_wall_s += step_s
        self.acc.add(batch.mode, mean_loss * count, correct, count)
        record = {"kind": "step", "step": pr.global_step, "epoch": epoch, "mode": batch.mode,
                  "loss": mean_loss, "lr": lr, "step_s": step_s, "data_wait_s": data_ready - start,
                  "images_per_s": count / step_s, "train_wall_s": pr.train_wall_s}
        if grad_norm is not None:
            record["grad_norm"] = grad_norm
        if self.info.is_main:
            self.metrics.write(record)
            if self.wandb:
                self.wandb.log_step(record)
        self.console.step(record, {mode: sums["steps"] for mode, sums in self.acc.sums.items()})

    def _end_epoch(self, epoch: int) -> None:
        p, tc = self.parts, self.config.train
        record: dict[str, Any] = {"kind": "epoch", "epoch": epoch, "global_step": self.progress.global_step,
                                  "lr": p.optimizer.param_groups[0]["lr"], **self.acc.record_fields()}
        record.update(val_loss=None, val_acc=None)
        last = epoch == tc.epochs - 1
        if last or (epoch + 1) % tc.eval_every_epochs == 0:
            self._recalibrate(epoch)
            record.update(evaluate(p.eval_model, p.val_loader.epoch(0), p.device, precision=tc.precision))
        record["train_wall_s"] = self.progress.train_wall_s
        p.scheduler.step()
        self.progress.epoch += 1
        self.progress.step_in_epoch = 0
        self.acc = EpochAccumulator()
        if self.info.is_main:
            self.metrics.write(record)
            if self.wandb:
                self.wandb.log_epoch(record)
        self.console.epoch(record)
        self.save()

    def _recalibrate(self, epoch: int) -> None:
        n = self.config.model.bn_recalibrate_batches
        if not n:
            return
        recalibrate_bn(self.parts.eval_model, self.parts.recal_loader.epoch(epoch), max_batches=n)
        distributed.broadcast_buffers(self.parts.model)


def _grad_norm(model: torch.nn.Module) -> float:
    """L2 norm of all parameter gradients (after DDP's all-reduce: the same on every rank)."""
    grads = [p.grad.detach().double().pow(2).sum() for p in model.parameters() if p.grad is not None]
    return float(torch.stack(grads).sum().sqrt()) if grads else 0.0
