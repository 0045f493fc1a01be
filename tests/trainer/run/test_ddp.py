"""Two gloo processes: lockstep (same modes, identical parameters), exact resume after SIGKILL of
the whole torchrun job, loud failure on disagreement, and no hang when a rank dies."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import time

import pytest

from pipeline.schedule import ModeSchedule, ScheduleConfig
from tests.integrations import need
from tests.trainer.train_helpers import (assert_same_weights, comparable_metrics, final_weights,
                                         run_train, start_and_signal, step_lines, tiny_overrides)


def test_two_ranks_lockstep_then_exact_resume_after_sigkill(data, tmp_path):
    need("ddp")
    overrides = tiny_overrides(data, checkpoint__every_steps="5")
    reference = tmp_path / "reference"
    # --check-sync 1: after every step all ranks compare (mode, step, parameter sum) and fail on any difference
    done = run_train(reference, overrides, nproc=2, extra=["--check-sync", "1"])
    assert done.returncode == 0, done.stderr[-3000:]
    steps = [json.loads(x) for x in (reference / "metrics.jsonl").read_text().splitlines() if '"step"' in x[:20]]
    schedule = ModeSchedule(ScheduleConfig(p=0.5, full_epochs_after_milestone=0), seed=0, lr_milestones_epochs=(2,))
    assert [s["mode"] for s in steps] == [schedule.mode(e, k) for e in range(3) for k in range(12)]
    assert json.loads((reference / "env.json").read_text())["world_size"] == 2
    assert json.loads((reference / "summary.json").read_text())["world_size"] == 2

    killed = tmp_path / "killed"
    code, _ = start_and_signal(killed, overrides, after_steps=17, sig=signal.SIGKILL, nproc=2)
    assert code == -signal.SIGKILL and 17 <= step_lines(killed) < 36
    resumed = run_train(killed, overrides, nproc=2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert comparable_metrics(killed) == comparable_metrics(reference)
    assert_same_weights(final_weights(killed), final_weights(reference))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, results) -> None:
    """Rank 1 draws the other mode (check_sync must fail on both), then dies; rank 0 must not hang."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2")
    import torch

    from trainer.run import distributed

    info = distributed.dist_info_from_env()
    distributed.init_distributed(torch.device("cpu"), info, timeout_s=5)
    model = torch.nn.Linear(2, 2)
    torch.nn.init.constant_(model.weight, 1.0)
    try:
        distributed.check_sync("full" if rank == 0 else "low", 7, model, torch.device("cpu"))
        results.put((rank, "sync", "no error"))
    except distributed.SyncError as exc:
        results.put((rank, "sync", str(exc)))
    if rank == 1:
        _exit(results)  # dies without leaving the group
    start = time.monotonic()
    try:
        distributed.barrier()
        results.put((rank, "dead", "barrier returned"))
    except Exception as exc:  # noqa: BLE001 - whichever error gloo raises, it must raise
        results.put((rank, "dead", f"{type(exc).__name__} after {time.monotonic() - start:.1f}s"))
    _exit(results)


def _exit(results) -> None:
    results.close()
    results.join_thread()  # flush the queue before the hard exit
    os._exit(0)


def test_disagreeing_ranks_fail_loudly_and_dead_rank_does_not_hang():
    need("ddp")
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, results)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.kill()
    assert not alive, "a rank hung"
    got = {}
    while not results.empty():
        rank, what, text = results.get()
        got[(rank, what)] = text
    for rank in (0, 1):
        assert "ranks out of sync" in got[(rank, "sync")] and "mode codes 0..1" in got[(rank, "sync")]
    assert "barrier returned" not in got[(0, "dead")]


def test_two_ranks_stay_in_lockstep_with_a_larger_low_batch(data, tmp_path):
    """low_batch_scale = 2: epochs have a variable number of steps, equal on both ranks (checked every step)."""
    need("ddp")
    from pipeline.order import train_layout

    overrides = tiny_overrides(data, schedule__low_batch_scale="2", logging__grad_norm="true")
    run = tmp_path / "k2"
    done = run_train(run, overrides, nproc=2, extra=["--check-sync", "1"])
    assert done.returncode == 0, done.stderr[-3000:]
    steps = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"step"' in x[:20]]
    schedule = ModeSchedule(ScheduleConfig(p=0.5, full_epochs_after_milestone=0, low_batch_scale=2), seed=0,
                            lr_milestones_epochs=(2,), total_epochs=3)
    expected = []
    for epoch in range(3):
        layout = train_layout(192, 8, 2, lambda step, e=epoch: schedule.mode(e, step) == "low", low_batch_scale=2)
        expected += [(epoch, "low" if low else "full") for low in layout.low]
    assert [(s["epoch"], s["mode"]) for s in steps] == expected
    assert any(m == "low" for _, m in expected) and len(expected) < 36  # low steps consumed 2 batches each
    low_lr = {s["lr"] for s in steps if s["mode"] == "low" and s["epoch"] < 2}
    assert sorted(low_lr) == pytest.approx([0.2])  # linear scaling: 2 x the base LR 0.1
    assert all(s["grad_norm"] > 0 for s in steps)


def test_two_ranks_take_the_adaptive_controllers_decisions_together(data, tmp_path):
    """The controller's measurement is all-reduced, so both ranks climb at the same step: --check-sync 1
    compares every step's mode and parameters across ranks and fails on any difference."""
    need("ddp")
    overrides = tiny_overrides(data, schedule__policy='"adaptive"', model__low_kernels='"keep"',
                               schedule__adapt_every_steps="3", schedule__adapt_margin="0.05")
    run = tmp_path / "adaptive"
    done = run_train(run, overrides, nproc=2, extra=["--check-sync", "1"])
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    climbs = [r["step"] for r in records if r["kind"] == "adapt" and r["decision"] == "climb"]
    modes = [r["mode"] for r in records if r["kind"] == "step"]
    assert len(climbs) == 1 and modes == ["low"] * climbs[0] + ["full"] * (len(modes) - climbs[0])
