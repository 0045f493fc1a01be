"""The training loop: per step, the loader's batch carries the mode (the shared seeded draw), the
model is switched to it, and forward / backward / update run; per epoch, full-mode validation,
the epoch record, the LR step and a checkpoint.

The host never waits for the device inside a window of ``train.sync_every_steps`` steps: each step's
[loss sum, correct, count, grad norm] stays on the device (:class:`StepWindow`). At a sync point (every
N steps, each step a checkpoint is due, and the epoch's end) one all-reduce of the window's rows plus
the stop vote gives every rank the same global numbers: the per-step records are written, a
non-finite loss is named by its step (nothing is checkpointed after the last good sync point), and
all ranks stop or checkpoint after the same step. With N = 1 every step is a sync point. The mode
itself is never exchanged.

Wall-clock (``train_wall_s``) sums each step's time from asking the loader for the batch to the
end of the optimiser update (on CUDA: between the steps' end events), plus any re-estimation of the BN
statistics before an evaluation (model.bn_recalibrate_batches / bn_stale_batches: work a user who keeps
the model pays); evaluation itself and checkpointing are excluded. Each epoch record also carries the
training loop's wall seconds and this process's CPU seconds over it (``loop_wall_s``, ``cpu_busy_s``, the part
run since the process started): their ratio, ``min_cpu_share`` in summary.json, tells a one-thread CPU run
whose core was shared (its wall-clock inflated) from one that had the core to itself.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from pipeline.schedule import FULL, LOW
from trainer.method.bn_policy import full_steps_to_refresh
from trainer.method.dualmode import recalibrate_bn, set_mode
from trainer.report.metrics import EpochAccumulator, MetricsWriter
from trainer.report.rundir import RunDir
from trainer.report.wandb_logger import WandbLogger
from trainer.run import checkpoint as ckpt
from trainer.run import distributed
from trainer.run.adaptive import AdaptiveController, probe_losses
from trainer.run.build import Components, stale_recalibration_enabled
from trainer.run.config import TrainConfigRoot, hashed_view
from trainer.run.console import Console
from trainer.run.distributed import DistInfo
from trainer.run.evaluate import evaluate
from trainer.run.low_step_value import PARTS, probe_sizes, summarise
from trainer.run.lr_schedule import ProgressLR
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
        self.loop_times: dict[str, float] = {}
        """The last training loop's wall and process-CPU seconds (this process's part of the epoch)."""
        self.console = Console(config.logging.progress, config.logging.print_every_steps, info.is_main)
        self.window = StepWindow(parts.device)
        # A low step of k times the batch (Mix&Match B+, or constant_pixels' (full H / H)^2) takes k times the
        # LR (linear scaling) unless optim.low_lr_scale sets the multiplier.
        self.batch_per_rank = config.train.global_batch_size // info.world_size
        # Full steps an epoch needs for its running BN statistics to be the current model's (29 at BN's
        # momentum 0.1); fewer, after low steps moved the weights, and evaluation re-estimates them.
        self.bn_refresh_steps = full_steps_to_refresh(parts.model)
        self.steps_in_epoch = 0  # of the epoch being trained (set by _train_epoch; the per-step LR reads it)
        self.controller = AdaptiveController(parts.schedule) if parts.schedule.config.policy == "adaptive" else None
        """schedule.policy "adaptive": decides the climbs (trainer/run/adaptive.py)."""
        self._replan = False  # a climb was decided: the running epoch's loader must be reopened at the next step
        self._adapt_probe: list | None = None  # the controller's fixed probe batches (loaded once per process)

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
            "adaptive": self.controller.state_dict() if self.controller else None,
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
            detail = " ".join(str(exc).split()) or repr(exc)  # torch's message spans lines; keep one
            raise ckpt.CheckpointError(f"{source}: does not fit this run ({type(exc).__name__}: "
                                       f"{detail[:400]})") from None
        self.progress, self.acc = progress, acc
        if self.controller is not None and state.get("adaptive") is not None:
            try:
                self.controller.load_state_dict(state["adaptive"])
                self._set_schedule(p.schedule.with_climbs(self.controller.climbs()))
            except ValueError as exc:
                raise ckpt.CheckpointError(f"{source}: {exc}") from None
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
        self.steps_in_epoch = steps
        if self.progress.step_in_epoch >= steps:
            return  # a checkpoint taken after the epoch's last step: only the epoch end remains
        self.console.open_epoch(epoch, steps, self.progress.step_in_epoch)
        loop_start, cpu_start = time.perf_counter(), time.process_time()
        batches = loader.epoch(epoch, start_step=self.progress.step_in_epoch)
        try:
            while True:
                start = time.perf_counter()
                batch = next(batches, None)
                if batch is None:
                    break
                self._step(batch, epoch, start, time.perf_counter())
                if self._sync_due():
                    self._sync()
                if self._replan:  # the controller climbed: the rest of the epoch reads the new resolution
                    batches.close()
                    batches = loader.epoch(epoch, start_step=self.progress.step_in_epoch)
                    self._replan = False
            self._sync()  # the epoch's last window
        finally:
            batches.close()  # stops the loader's handover thread now, not when the frame is collected
            self.console.close_epoch()
        # whether this process had its CPU while it trained: a one-thread run pinned to a core has
        # cpu_busy_s ~ loop_wall_s; well below it, another process took the core and slowed the wall-clock
        self.loop_times = {"loop_wall_s": time.perf_counter() - loop_start, "cpu_busy_s": time.process_time() - cpu_start}
        if self.progress.step_in_epoch != steps:
            raise RuntimeError(f"epoch {epoch}: the loader ended after {self.progress.step_in_epoch} of {steps} steps")

    def _step(self, batch, epoch: int, start: float, data_ready: float) -> None:
        """One optimiser step, queued: its numbers stay on the device until the next sync point."""
        p, tc = self.parts, self.config.train
        self._check_batch(batch)
        set_mode(p.train_model, batch.mode)
        if isinstance(p.scheduler, ProgressLR):  # cosine / linear: this step's LR from the progress
            p.scheduler.set_progress(epoch, batch.step, self.steps_in_epoch)
        with autocast_context(p.device, tc.precision):
            logits = p.train_model(batch.images)
        loss = F.cross_entropy(logits.float(), batch.labels, label_smoothing=self.config.optim.label_smoothing)
        p.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        n = batch.labels.numel()
        correct = (logits.detach().argmax(dim=1) == batch.labels).sum()
        grad_norm = _grad_norm(p.model) if self.config.logging.grad_norm else torch.zeros((), device=p.device)
        stats = torch.stack([loss.detach().double() * n, correct.double(),
                             torch.tensor(float(n), dtype=torch.float64, device=p.device),
                             grad_norm.double()])
        lr = self._optimizer_step(batch.resolution)
        self.window.add(stats, _Step(epoch=epoch, step=batch.step, mode=batch.mode, size=int(batch.images.shape[-2]),
                                     lr=lr, start=start, data_wait_s=data_ready - start))
        self.progress.global_step += 1
        self.progress.step_in_epoch += 1
        if tc.check_sync_every_steps and self.progress.global_step % tc.check_sync_every_steps == 0:
            distributed.check_sync(batch.mode, self.progress.global_step, p.model, p.device)

    def _sync_due(self) -> bool:
        """Every ``train.sync_every_steps`` steps, and at each step a checkpoint or a probe is due."""
        every, global_step = self.config.checkpoint.every_steps, self.progress.global_step
        probe = self.config.logging.low_step_value_every
        return (len(self.window) >= self.config.train.sync_every_steps or bool(every and global_step % every == 0)
                or bool(probe and global_step % probe == 0)
                or bool(self.controller and self.controller.due(global_step)))

    def _sync(self) -> None:
        """The sync point: one all-reduce of the window's per-step numbers and the stop vote, then the
        records, the non-finite check, and the stop / checkpoint decisions (the same on every rank)."""
        if not len(self.window):
            return
        rows, stop_votes = self.window.reduce(self.stop.requested, self.parts.device, self.info.world_size)
        first_step = self.progress.global_step - len(rows) + 1
        for offset, ((loss_sum, correct, count, grad_norm), step, step_s) in enumerate(rows):
            mean_loss = loss_sum / count
            if not math.isfinite(mean_loss):
                saved = self.checkpoints.existing()
                last = f"the last good checkpoint is {saved[-1]}" if saved else "no checkpoint was written before it"
                raise NonFiniteLossError(
                    f"non-finite loss {mean_loss} at global step {first_step + offset} "
                    f"(epoch {step.epoch}, step {step.step}, mode {step.mode}); no checkpoint written for it, {last}"
                )
            self._record_step(step, first_step + offset, mean_loss, correct, count, step_s,
                              grad_norm if self.config.logging.grad_norm else None)
        probe = self.config.logging.low_step_value_every
        if probe and self.progress.global_step % probe == 0:
            self._probe_low_step_value(rows[-1][1].epoch)
        if self.controller and self.controller.due(self.progress.global_step):
            self._adapt(rows[-1][1].epoch)
        if stop_votes > 0:
            self.save()
            raise TrainingStopped(f"stopped by signal after global step {self.progress.global_step}")
        every = self.config.checkpoint.every_steps
        if every and self.progress.global_step % every == 0:
            self.save()

    def _set_schedule(self, schedule) -> None:
        """Every part that reads the mode schedule reads ``schedule`` from now on (an adaptive climb)."""
        self.parts.schedule = schedule
        self.parts.train_loader.planner.rebind(schedule)

    def _adapt(self, epoch: int) -> None:
        """The adaptive controller's measurement (trainer/run/adaptive.py): the full-resolution loss of the
        fixed probe set, summed over ranks, and the decision it gives, the same on every rank. Nothing is
        measured once the controller has climbed to full resolution (inside a warm-up or after-milestone full
        window it still measures: the loss falls there, so it stays). Its time counts as training."""
        p, pr = self.parts, self.progress
        resolution = p.schedule.adaptive_resolution(epoch, pr.step_in_epoch)
        if resolution == FULL:
            return
        start = time.perf_counter()
        if self._adapt_probe is None:
            self._adapt_probe = [(b.images, b.labels)
                                 for b in self._recal_batches(0, 0, p.schedule.config.adapt_probe_batches)]
        height = p.manifest.height(resolution)
        sums, counts = probe_losses(p.model, self._adapt_probe, (height,), p.manifest.method or "gaussian")
        totals = distributed.all_reduce_sum(torch.tensor(sums + counts, dtype=torch.float64, device=p.device)).tolist()
        loss_full, loss_low = totals[0] / totals[2], totals[1] / totals[3]
        decision = self.controller.observe(loss_full, epoch=epoch, next_step=pr.step_in_epoch, schedule=p.schedule,
                                           resolution=resolution)
        if decision["decision"] == "climb":
            self._set_schedule(p.schedule.with_climbs(self.controller.climbs()))
            self._replan = pr.step_in_epoch < self.steps_in_epoch
        if p.device.type == "cuda":
            torch.cuda.synchronize(p.device)
        seconds = time.perf_counter() - start
        pr.train_wall_s += seconds
        target = decision.pop("to", None)
        record = {"kind": "adapt", "step": pr.global_step, "epoch": epoch, "size": height, "loss_low": loss_low,
                  **decision, **({"to_size": p.manifest.height(target)} if target else {}), "adapt_s": seconds}
        if self.info.is_main:
            self.metrics.write(record)
            if self.wandb:
                self.wandb.log_adapt(record)

    def _recal_batches(self, epoch: int, start: int, n: int) -> list:
        """Up to ``n`` full-resolution training batches of ``epoch`` from the re-calibration loader (no
        augmentation), from batch ``start`` (modulo the epoch's): the same batches for the same arguments on
        every run, resumes included. The adaptive controller's probe set and the in-loop probe's batch."""
        loader = self.parts.recal_loader
        steps = loader.steps_in_epoch(epoch)
        start %= steps
        batches = loader.epoch(epoch, start_step=start)
        try:
            return [next(batches) for _ in range(min(n, steps - start))]
        finally:
            batches.close()

    def _probe_rungs(self, batch, heights: tuple[int, ...]) -> dict[int, dict[str, float]]:
        """trainer/run/low_step_value.py's parts at each of ``heights``, summed over ranks (losses: rank means)."""
        p = self.parts
        parts = probe_sizes(p.model, batch.images, batch.labels, heights=heights, method=p.manifest.method or "gaussian")
        flat = torch.tensor([parts[h][k] for h in heights for k in PARTS], dtype=torch.float64, device=p.device)
        totals = distributed.all_reduce_sum(flat).tolist()
        out = {}
        for i, h in enumerate(heights):
            values = dict(zip(PARTS, totals[i * len(PARTS):(i + 1) * len(PARTS)]))
            values["loss_full"] /= self.info.world_size
            values["loss_low"] /= self.info.world_size
            out[h] = values
        return out

    def _probe_low_step_value(self, epoch: int) -> None:
        """What a low step would buy now (trainer/run/low_step_value.py) on one full-resolution training batch
        split in halves, at every low resolution the schedule may read; the same batch for a given global step
        on every run (resumes included). Parts are summed over ranks; the model, optimizer and RNG are
        untouched; the time counts as training."""
        p = self.parts
        start = time.perf_counter()
        batch, = self._recal_batches(epoch, self.progress.global_step // self.config.logging.low_step_value_every, 1)
        heights = tuple(p.manifest.height(name) for name in p.schedule.rungs)
        by_height = self._probe_rungs(batch, heights)
        if p.device.type == "cuda":
            torch.cuda.synchronize(p.device)
        seconds = time.perf_counter() - start
        self.progress.train_wall_s += seconds
        low = by_height[p.manifest.height(p.schedule.low)]
        record = {"kind": "probe", "step": self.progress.global_step, "epoch": epoch, **low, **summarise([low]),
                  "probe_s": seconds}
        if len(heights) > 1:
            record["by_size"] = {str(h): {**summarise([v]), "low_full_dot": v["low_full_dot"]}
                                 for h, v in by_height.items()}
        if self.info.is_main:
            self.metrics.write(record)
            if self.wandb:
                self.wandb.log_probe(record)

    def _check_batch(self, batch) -> None:
        expected = self.progress.step_in_epoch
        if batch.step != expected:
            raise RuntimeError(f"loader yielded step {batch.step}, the trainer expected {expected}")

    def lr_scale(self, resolution: str) -> float:
        """The LR multiplier of a step at ``resolution``: 1 at full resolution; at a low one
        ``optim.low_lr_scale``, or when that is 0 the step's batch over the configured one (linear scaling)."""
        if resolution == FULL:
            return 1.0
        schedule = self.parts.schedule
        return self.config.optim.low_lr_scale or schedule.step_batch(resolution, self.batch_per_rank) / self.batch_per_rank

    def _optimizer_step(self, resolution: str) -> float:
        """The SGD update, with the LR scaled by ``lr_scale`` on low steps; returns the LR used."""
        groups = self.parts.optimizer.param_groups
        scale = self.lr_scale(resolution)
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

    def _record_step(self, step: _Step, global_step: int, mean_loss: float, correct: float, count: float,
                     step_s: float, grad_norm: float | None) -> None:
        pr = self.progress
        pr.train_wall_s += step_s
        self.acc.add(step.mode, mean_loss * count, correct, count)
        record = {"kind": "step", "step": global_step, "epoch": step.epoch, "mode": step.mode, "size": step.size,
                  "loss": mean_loss, "lr": step.lr, "step_s": step_s, "data_wait_s": step.data_wait_s,
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
            record.update(self._recalibrate(epoch))
            record.update(evaluate(p.eval_model, p.val_loader.epoch(0), p.device, precision=tc.precision))
        record["train_wall_s"] = self.progress.train_wall_s
        record.update(self.loop_times)
        self.loop_times = {}
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

    def _recalibration_batches(self) -> int:
        """Full batches to re-estimate BN statistics from before this epoch's evaluation: every time with
        ``model.bn_recalibrate_batches``; else ``model.bn_stale_batches`` when the epoch had low steps and
        too few full steps to refresh the running statistics (the same numbers on every rank)."""
        mc = self.config.model
        if mc.bn_recalibrate_batches:
            return mc.bn_recalibrate_batches
        if self.parts.recal_loader is None or not stale_recalibration_enabled(mc):
            return 0
        full, low = (self.acc.sums[mode]["steps"] for mode in (FULL, LOW))
        return mc.bn_stale_batches if low and full < self.bn_refresh_steps else 0

    def _recalibrate(self, epoch: int) -> dict[str, Any]:
        """BN re-estimation before an evaluation, when due. Its time is training wall-clock (the model a
        user keeps needs it; counted as evaluation it would flatter low mode)."""
        n = self._recalibration_batches()
        if not n:
            return {}
        start = time.perf_counter()
        batches = self.parts.recal_loader.epoch(epoch)
        try:
            used = recalibrate_bn(self.parts.eval_model, batches, max_batches=n)
        finally:
            batches.close()  # stops the loader's handover thread (it is one batch ahead)
        distributed.broadcast_buffers(self.parts.model)
        if self.parts.device.type == "cuda":
            torch.cuda.synchronize(self.parts.device)
        seconds = time.perf_counter() - start
        self.progress.train_wall_s += seconds
        return {"bn_recalibrated_batches": used, "bn_recalibrate_s": seconds}


def _grad_norm(model: torch.nn.Module) -> torch.Tensor:
    """L2 norm of all parameter gradients, on the device (after DDP's all-reduce: the same on every rank)."""
    grads = [p.grad.detach().double().pow(2).sum() for p in model.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros((), dtype=torch.float64, device=next(model.parameters()).device)
    return torch.stack(grads).sum().sqrt()


@dataclass
class _Step:
    """What the host knows of a queued step (its loss and accuracy are still on the device)."""

    epoch: int
    step: int
    mode: str
    size: int
    """Image height of the step's batch (its resolution)."""
    lr: float
    start: float
    data_wait_s: float


class StepWindow:
    """The steps since the last sync point: per-step numbers stacked on the device, host facts beside.

    Step times: on CPU the host's clock (the work is done when the step returns); on CUDA an event
    recorded at the end of each step, read at the sync point, so the host never waits inside the window.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stats: list[torch.Tensor] = []
        self.steps: list[_Step] = []
        self.ends: list[float | torch.cuda.Event] = []
        self.last_end: float | torch.cuda.Event | None = None

    def __len__(self) -> int:
        return len(self.steps)

    def add(self, stats: torch.Tensor, step: _Step) -> None:
        self.stats.append(stats)
        self.steps.append(step)
        if self.device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.ends.append(event)
        else:
            self.ends.append(time.perf_counter())

    def reduce(self, stop_requested: bool, device: torch.device,
               world_size: int) -> tuple[list[tuple[list[float], _Step, float]], float]:
        """One all-reduce: per step (global [loss sum, correct, count, grad norm], host facts, step
        seconds), and the number of ranks that asked to stop. Empties the window."""
        vote = torch.tensor([float(stop_requested), 0.0, 0.0, 0.0], dtype=torch.float64, device=device)
        table = distributed.all_reduce_sum(torch.stack([*self.stats, vote])).tolist()  # the one host sync
        rows = []
        for i, (values, step, end) in enumerate(zip(table, self.steps, self.ends)):
            values[3] /= world_size  # every rank holds the same gradient norm
            rows.append((values, step, self._seconds(step, i, end)))
        self.last_end = self.ends[-1]
        self.stats, self.steps, self.ends = [], [], []
        return rows, table[-1][0]

    def _seconds(self, step: _Step, i: int, end) -> float:
        if isinstance(end, float):
            return end - step.start
        previous = self.ends[i - 1] if i else self.last_end
        if previous is None:  # the run's first step: no earlier event to measure from
            return time.perf_counter() - step.start
        return previous.elapsed_time(end) / 1000.0  # includes the GPU's idle wait for data, if any
