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

import logging
import math
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from trainer import checkpoint as ckpt
from trainer import distributed
from trainer.build import Components
from trainer.config import TrainConfigRoot, hashed_view
from trainer.distributed import DistInfo
from trainer.dualmode import recalibrate_bn, set_mode
from trainer.evaluate import autocast_context, evaluate
from trainer.metrics import EpochAccumulator, MetricsWriter
from trainer.rundir import RunDir
from trainer.signals import StopRequest
from trainer.wandb_logger import WandbLogger

log = logging.getLogger("lowmode.train")


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
                 *, dataset_fingerprint: str, stop: StopRequest) -> None:
        self.config, self.parts, self.info, self.run_dir = config, parts, info, run_dir
        self.dataset_fingerprint = dataset_fingerprint
        self.stop = stop
        self.progress = Progress()
        self.acc = EpochAccumulator()
        self.metrics: MetricsWriter | None = None
        self.wandb: WandbLogger | None = None
        self.wandb_run_id: str | None = None
        self.bf16 = config.train.precision == "bf16"
        self.bar = None

    # ------------------------------------------------------------------ state

    def restore(self, payload: dict[str, Any]) -> None:
        """Continue from a checkpoint (already checked for compatibility)."""
        p = self.parts
        p.model.load_state_dict(payload["model"])
        p.optimizer.load_state_dict(payload["optimizer"])
        p.scheduler.load_state_dict(payload["scheduler"])
        self.progress = Progress(**payload["progress"])
        self.acc = EpochAccumulator(payload["epoch_sums"])
        self.wandb_run_id = payload.get("wandb_run_id")
        if payload["world_size"] == self.info.world_size:
            ckpt.set_rng_state(payload["rng"][self.info.rank])

    def _payload(self, rng_states: list[dict]) -> dict[str, Any]:
        p = self.parts
        return {
            "model": p.model.state_dict(),
            "optimizer": p.optimizer.state_dict(),
            "scheduler": p.scheduler.state_dict(),
            "progress": vars(self.progress).copy(),
            "epoch_sums": self.acc.state(),
            "rng": rng_states,
            "metrics_bytes": self.metrics.size if self.metrics else 0,
            "wandb_run_id": self.wandb.run_id if self.wandb else self.wandb_run_id,
            "config_hash": self.config.hash(),
            "hashed_config": hashed_view(self.config.to_dict()),
            "dataset_fingerprint": self.dataset_fingerprint,
            "world_size": self.info.world_size,
        }

    def save(self) -> None:
        """Checkpoint on all ranks: every rank's RNG state is gathered, rank 0 writes atomically."""
        rng_states = distributed.all_gather_objects(ckpt.rng_state())
        if self.info.is_main:
            self.metrics.sync()
            directory = self.run_dir.checkpoints
            ckpt.save_checkpoint(ckpt.checkpoint_path(directory, self.progress.global_step), self._payload(rng_states))
            ckpt.prune_checkpoints(directory, self.config.checkpoint.keep)
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
        if self.progress.step_in_epoch >= loader.steps_per_epoch:
            return  # a checkpoint taken after the epoch's last step: only the epoch end remains
        self._open_bar(epoch, loader.steps_per_epoch)
        batches = iter(loader.epoch(epoch, start_step=self.progress.step_in_epoch))
        try:
            while True:
                start = time.perf_counter()
                batch = next(batches, None)
                if batch is None:
                    break
                self._step(batch, epoch, start, time.perf_counter())
        finally:
            self._close_bar()
        if self.progress.step_in_epoch != loader.steps_per_epoch:
            raise RuntimeError(f"epoch {epoch}: the loader ended after {self.progress.step_in_epoch} of "
                               f"{loader.steps_per_epoch} steps")

    def _step(self, batch, epoch: int, start: float, data_ready: float) -> None:
        p, tc = self.parts, self.config.train
        self._check_batch(batch)
        set_mode(p.train_model, batch.mode)
        with autocast_context(p.device, self.bf16):
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
            raise NonFiniteLossError(
                f"non-finite loss {mean_loss} at global step {self.progress.global_step + 1} "
                f"(epoch {epoch}, step {batch.step}, mode {batch.mode}); no checkpoint written for it, "
                f"the last good one is in {self.run_dir.checkpoints}"
            )
        lr = p.optimizer.param_groups[0]["lr"]
        p.optimizer.step()
        if p.device.type == "cuda":
            torch.cuda.synchronize(p.device)  # honest step time: the GPU work is done
        end = time.perf_counter()
        self._after_step(batch, epoch, mean_loss, lr, correct_sum, count, start, data_ready, end)
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

    def _after_step(self, batch, epoch, mean_loss, lr, correct, count, start, data_ready, end) -> None:
        step_s = end - start
        pr = self.progress
        pr.global_step += 1
        pr.step_in_epoch += 1
        pr.train_wall_s += step_s
        self.acc.add(batch.mode, mean_loss * count, correct, count)
        record = {"kind": "step", "step": pr.global_step, "epoch": epoch, "mode": batch.mode,
                  "loss": mean_loss, "lr": lr, "step_s": step_s, "data_wait_s": data_ready - start,
                  "images_per_s": count / step_s, "train_wall_s": pr.train_wall_s}
        if self.info.is_main:
            self.metrics.write(record)
            if self.wandb:
                self.wandb.log_step(record)
            self._report_step(record)

    def _end_epoch(self, epoch: int) -> None:
        p, tc = self.parts, self.config.train
        record: dict[str, Any] = {"kind": "epoch", "epoch": epoch, "global_step": self.progress.global_step,
                                  "lr": p.optimizer.param_groups[0]["lr"], **self.acc.record_fields()}
        record.update(val_loss=None, val_acc=None)
        last = epoch == tc.epochs - 1
        if last or (epoch + 1) % tc.eval_every_epochs == 0:
            self._recalibrate(epoch)
            record.update(evaluate(p.eval_model, p.val_loader.epoch(0), p.device, bf16=self.bf16))
        record["train_wall_s"] = self.progress.train_wall_s
        p.scheduler.step()
        self.progress.epoch += 1
        self.progress.step_in_epoch = 0
        self.acc = EpochAccumulator()
        if self.info.is_main:
            self.metrics.write(record)
            if self.wandb:
                self.wandb.log_epoch(record)
            log.info(_epoch_line(record))
        self.save()

    def _recalibrate(self, epoch: int) -> None:
        n = self.config.model.bn_recalibrate_batches
        if not n:
            return
        recalibrate_bn(self.parts.eval_model, self.parts.recal_loader.epoch(epoch), max_batches=n)
        distributed.broadcast_buffers(self.parts.model)

    # ------------------------------------------------------------------ console

    def _open_bar(self, epoch: int, total: int) -> None:
        mode = self.config.logging.progress
        if not self.info.is_main or mode == "lines" or (mode == "auto" and not sys.stderr.isatty()):
            return
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=self.progress.step_in_epoch, desc=f"epoch {epoch}",
                        unit="step", dynamic_ncols=True, leave=False)
        self._low_steps = 0

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _report_step(self, record: dict[str, Any]) -> None:
        if self.bar is not None:
            low = self.acc.sums["low"]["steps"]
            total = low + self.acc.sums["full"]["steps"]
            self.bar.set_postfix(loss=f"{record['loss']:.3f}", low=f"{low / total:.0%}",
                                 img_s=f"{record['images_per_s']:.0f}", refresh=False)
            self.bar.update(1)
        elif record["step"] % self.config.logging.print_every_steps == 0:
            log.info("epoch %d step %d (%s) loss %.4f lr %.4g %.1f img/s", record["epoch"], record["step"],
                     record["mode"], record["loss"], record["lr"], record["images_per_s"])


def _epoch_line(record: dict[str, Any]) -> str:
    def fmt(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    return (f"epoch {record['epoch']} done: val_acc {fmt(record['val_acc'], '.4f')} val_loss {fmt(record['val_loss'], '.4f')} "
            f"train_loss full {fmt(record['train_loss_full'], '.4f')} low {fmt(record['train_loss_low'], '.4f')} "
            f"low steps {record['low_step_fraction']:.0%} wall {record['train_wall_s']:.1f}s")
