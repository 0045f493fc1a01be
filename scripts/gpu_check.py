#!/usr/bin/env python3
"""``make gpu-check``: every GPU path of lowmode, checked in one call on a machine with one NVIDIA GPU.

    make gpu-check                      # OUT=gpu-check (or $OUT)
    python3 scripts/gpu_check.py --out DIR [--only NAME,...] [--skip NAME,...] [--budget-s 450] [--list]

For a machine with one NVIDIA GPU and torch preinstalled, no package registry (nothing is installed;
NVIDIA DALI may be missing, then its checks are skipped). Each check runs as a subprocess of its own
(own process group, own timeout) and writes ``OUT/<check>.json``: ``name``, ``status`` (ok | skipped |
failed), ``reason`` (why skipped / failed), ``command``, ``seconds``, ``returncode``, ``timeout_s``,
``result`` (the parsed numbers) and, on failure, the output's tail. ``OUT/summary.json`` holds every
check's record (one file is enough to bring back), the counts, the device, and ``skipped`` {check:
reason}. The checks run in priority order inside a time budget (``--budget-s``, default 450 s, so the
whole call stays under 8 minutes); a check that does not fit in what is left is skipped ("time
budget"), and a check's timeout is cut to what is left. Working data (shards, run directories) go to a
temporary directory (``--work``), never under OUT.

Checks (``--list`` prints them with their needs):
  selfcheck              python / torch / CUDA device / DALI / needed modules (always runs)
  pytest_gpu             python -m pytest -m gpu
  bench_<m>_<p>[_compile] python -m trainer.bench, m = resnet18 | resnet50, p = fp32 | bf16_cl (bf16 autocast
                         + channels_last), with and without --compile (the compiled ones last: inductor is slow)
  loop_bench             python -m trainer.bench --loop: the real Trainer, resnet18 bf16 + channels_last on the
                         GPU with the DALI loader (torch loader without DALI); without CUDA a small CPU run
  shards                 synthetic CIFAR-sized raw and jpg shards (preprocess, 10000 + 1000 samples each)
  dali_cpu_bench_{raw,jpg}  python -m pipeline bench on those shards (DALI's CPU pipeline; CPU-capable)
  dali_gpu_bench_{raw,jpg}  the DALI loader on the GPU, full and low mode images/s ("mixed" decode for jpg),
                         measured as ``python -m pipeline bench --device cuda`` does (pipeline.cli's
                         measure_throughput), both modes in one JSON
  dali_gpu_epochs_jpg    >= 20 short epochs of jpg shards on the GPU (a new DALI pipeline each epoch, as the
                         loader does): device memory in use after each epoch (DALI issue #4076)
  nccl_smoke             torchrun --nproc-per-node 1: an nccl process group, all_reduce, barrier
  torchrun_2epochs       torchrun --nproc-per-node 1 -m trainer --check-sync 10: 2 epochs of resnet18 (bf16,
                         channels_last) on a synthetic CIFAR-sized dataset (50000 + 10000 images of 32x32x3)

Without CUDA the CPU-capable checks run (selfcheck, loop_bench's CPU run, and with DALI the shards and
dali_cpu_bench_*), every GPU check is skipped with its reason, and the exit status is 0.
Exit status: 0 when no check failed, 1 when one did, 2 for bad options or an unwritable OUT (one
``gpu-check: error: ...`` line on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = "gpu-check"
DEFAULT_BUDGET_S = 450.0
MIN_START_S = 20.0
"""A check is not started with less than this (or its own ``min_s``) left of the budget."""
TAIL_CHARS = 3000
DALI_EPOCHS = 24
SHARD_TRAIN, SHARD_VAL = 10000, 1000


# ---------------------------------------------------------------------------------------------- checks


@dataclass
class Context:
    out: Path
    work: Path
    python: str
    facts: dict[str, Any]
    """selfcheck's result: cuda, dali, modules."""

    @property
    def cuda(self) -> bool:
        return bool(self.facts.get("cuda"))


@dataclass(frozen=True)
class Check:
    name: str
    command: Callable[[Context], list[str]]
    timeout_s: float
    needs: tuple[str, ...] = ()
    """cuda | dali | trainer (the project's runtime modules) | pytest | shards (the shards check passed)."""
    min_s: float = MIN_START_S
    parse: str = "json"
    """json: the last stdout line that parses as a JSON object; pytest: the summary line's counts."""


def _script(ctx: Context, helper: str, *args: str) -> list[str]:
    return [ctx.python, str(Path(__file__).resolve()), "--helper", helper, *args]


def _torchrun(ctx: Context, *args: str) -> list[str]:
    return [ctx.python, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1", *args]


def _bench(model: str, precision: str, compile_: bool) -> Check:
    extra = ["--bf16", "--channels-last"] if precision == "bf16_cl" else []
    if compile_:
        extra.append("--compile")
    name = f"bench_{model}_{precision}" + ("_compile" if compile_ else "")
    timeout = (240.0 if model == "resnet50" else 180.0) if compile_ else (120.0 if model == "resnet50" else 90.0)
    return Check(name, lambda ctx: [ctx.python, "-m", "trainer.bench", "--model", model, "--device", "cuda",
                                    "--batch-size", "125", "--warmup", "3", "--iters", "10", *extra, "--json"],
                 timeout, needs=("cuda", "trainer"), min_s=60.0 if compile_ else MIN_START_S)


def _loop_bench(ctx: Context) -> list[str]:
    if ctx.cuda:
        loader = "dali" if ctx.facts.get("dali") else "torch"
        args = ["--model", "resnet18", "--device", "cuda", "--bf16", "--channels-last", "--batch-size", "125",
                "--steps", "60", "--warmup", "10", "--loader", loader, "--num-workers", "4"]
    else:  # the CPU path: a small run that exercises the same code
        args = ["--model", "resnet8", "--size", "16", "--threads", "1", "--batch-size", "32", "--steps", "10",
                "--warmup", "2", "--num-workers", "1", "--bench-iters", "3"]
    return [ctx.python, "-m", "trainer.bench", "--loop", *args, "--json"]


def _dali_cpu_bench(encoding: str) -> Check:
    return Check(f"dali_cpu_bench_{encoding}",
                 lambda ctx: [ctx.python, "-m", "pipeline", "bench", str(ctx.work / f"shards-{encoding}"),
                              "--loader", "dali", "--mode", "full", "--batch-size", "125", "--workers", "4",
                              "--seconds", "3", "--json"], 60.0, needs=("dali", "shards"))


def _dali_gpu_bench(encoding: str) -> Check:
    return Check(f"dali_gpu_bench_{encoding}",
                 lambda ctx: _script(ctx, "dali-bench", str(ctx.work / f"shards-{encoding}"), "--seconds", "4"),
                 90.0, needs=("cuda", "dali", "shards"))


CHECKS: tuple[Check, ...] = (
    Check("selfcheck", lambda ctx: _script(ctx, "selfcheck"), 180.0),  # ~3 s; generous for a starved CPU
    Check("pytest_gpu", lambda ctx: [ctx.python, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                                     str(ROOT / "tests")], 150.0, needs=("cuda", "pytest", "trainer"), parse="pytest"),
    *(_bench(m, p, False) for m in ("resnet18", "resnet50") for p in ("fp32", "bf16_cl")),
    Check("loop_bench", _loop_bench, 150.0, needs=("trainer",)),
    Check("shards", lambda ctx: _script(ctx, "shards", str(ctx.work)), 90.0, needs=("dali",)),
    *(_dali_cpu_bench(e) for e in ("raw", "jpg")),
    *(_dali_gpu_bench(e) for e in ("raw", "jpg")),
    Check("dali_gpu_epochs_jpg", lambda ctx: _script(ctx, "dali-epochs", str(ctx.work / "shards-jpg"),
                                                     "--epochs", str(DALI_EPOCHS)),
          120.0, needs=("cuda", "dali", "shards")),
    Check("nccl_smoke", lambda ctx: _torchrun(ctx, str(Path(__file__).resolve()), "--helper", "nccl-smoke"),
          90.0, needs=("cuda",)),
    Check("torchrun_2epochs", lambda ctx: _script(ctx, "cifar-run", str(ctx.work)), 240.0,
          needs=("cuda", "trainer"), min_s=60.0),
    *(_bench(m, p, True) for m in ("resnet18", "resnet50") for p in ("bf16_cl", "fp32")),
)
NAMES = tuple(c.name for c in CHECKS)
TRAINER_MODULES = ("numpy", "PIL", "tomli_w", "tqdm")


def _missing_need(check: Check, ctx: Context) -> str | None:
    """Why ``check`` cannot run here (None: it can)."""
    facts = ctx.facts
    for need in check.needs:
        if need == "cuda" and not facts.get("cuda"):
            return f"needs CUDA: {facts.get('cuda_reason', 'torch.cuda.is_available() is False')}"
        if need == "dali" and not facts.get("dali"):
            return f"needs NVIDIA DALI: {facts.get('dali_reason', 'not importable')}"
        if need == "trainer":
            missing = [m for m in TRAINER_MODULES if not facts.get("modules", {}).get(m)]
            if missing:
                return f"needs Python module(s) {', '.join(missing)} (carry the wheels)"
        if need == "pytest" and not facts.get("modules", {}).get("pytest"):
            return "needs pytest"
    return None


def _missing_input(check: Check, results: dict[str, dict]) -> str | None:
    """Why ``check`` has nothing to work on (an earlier check it reads from did not pass)."""
    if "shards" in check.needs and results.get("shards", {}).get("status") != "ok":
        return f"needs the shards check, which was {results.get('shards', {}).get('status', 'not run')}"
    return None


def _parse(kind: str, stdout: str) -> dict[str, Any] | None:
    if kind == "pytest":
        import re

        counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|deselected|errors?)", stdout)}
        return counts or None
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return None


def _child_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=str(ROOT) + (os.pathsep + path if path else ""), PYTHONUNBUFFERED="1",
                WANDB_MODE="disabled", WANDB_SILENT="true")


def run_check(check: Check, ctx: Context, results: dict[str, dict], deadline: float,
              selected: Callable[[str], str | None]) -> dict[str, Any]:
    record: dict[str, Any] = {"name": check.name, "status": "skipped", "reason": None, "command": None,
                              "seconds": 0.0, "returncode": None, "timeout_s": check.timeout_s, "result": None}
    reason = None if check.name == "selfcheck" else \
        _missing_need(check, ctx) or selected(check.name) or _missing_input(check, results)
    left = deadline - time.monotonic()
    if reason is None and left < max(check.min_s, MIN_START_S):
        reason = f"time budget: {left:.0f} s left, the check needs at least {max(check.min_s, MIN_START_S):.0f} s"
    if reason:
        record["reason"] = reason
        return record
    command = check.command(ctx)
    timeout = min(check.timeout_s, left)
    record.update(command=shlex.join(command), timeout_s=round(timeout, 1))
    start = time.monotonic()
    proc = subprocess.Popen(command, cwd=ROOT, env=_child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        stdout, stderr = proc.communicate()
        timed_out = True
    record["seconds"] = round(time.monotonic() - start, 2)
    record["returncode"] = proc.returncode
    record["result"] = _parse(check.parse, stdout)
    if timed_out:
        record.update(status="failed", reason=f"timed out after {timeout:.0f} s")
    elif proc.returncode != 0:
        last = (stderr.strip().splitlines() or stdout.strip().splitlines() or ["no output"])[-1]
        record.update(status="failed", reason=f"exit {proc.returncode}: {last[:300]}")
    elif record["result"] is None:
        record.update(status="failed", reason="no result in the output")
    else:
        record["status"] = "ok"
    if record["status"] == "failed":
        record["stdout_tail"], record["stderr_tail"] = stdout[-TAIL_CHARS:], stderr[-TAIL_CHARS:]
    return record


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the check's own session: its children (torchrun workers) too
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _summary_line(record: dict) -> str:
    text = f"[{record['status']:>7}] {record['name']:<32} {record['seconds']:7.1f} s"
    if record["reason"]:
        text += f"  {record['reason']}"
    result = record["result"]
    if record["status"] == "ok" and isinstance(result, dict):
        shown = {k: result[k] for k in ("ratio", "full_ms", "loop_ratio", "data_wait_share", "full_images_per_s",
                                        "images_per_s", "growth_mb", "final_val_acc", "passed", "failed",
                                        "device_name") if k in result}
        text += "  " + " ".join(f"{k}={v}" for k, v in shown.items())
    return text


def _prepare_out(out: Path) -> str | None:
    """Create OUT and prove it writable; the error text otherwise."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".gpu-check-write-test"
        probe.write_text("ok\n")
        probe.unlink()
    except OSError as exc:
        return f"cannot write to OUT {str(out)!r}: {exc.strerror or exc}"
    return None


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/gpu_check.py", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or DEFAULT_OUT,
                        help=f"result directory (default: $OUT or {DEFAULT_OUT})")
    parser.add_argument("--only", default=os.environ.get("GPU_CHECK_ONLY", ""),
                        help="comma-separated checks to run (default: all; env GPU_CHECK_ONLY); selfcheck always runs")
    parser.add_argument("--skip", default=os.environ.get("GPU_CHECK_SKIP", ""),
                        help="comma-separated checks not to run (env GPU_CHECK_SKIP)")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S,
                        help=f"time budget for all checks, seconds (default: {DEFAULT_BUDGET_S:.0f})")
    parser.add_argument("--work", default=None, help="working directory for shards and runs (default: a temp dir)")
    parser.add_argument("--list", action="store_true", help="print the checks and exit")
    return parser.parse_args(argv)


def _names(text: str, option: str) -> set[str]:
    names = {n.strip() for n in text.split(",") if n.strip()}
    unknown = names - set(NAMES)
    if unknown:
        raise ValueError(f"{option}: unknown check(s) {', '.join(sorted(unknown))} (known: {', '.join(NAMES)})")
    return names


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--helper"]:
        return HELPERS[argv[1]](argv[2:])
    args = parse_args(argv)
    if args.list:
        for c in CHECKS:
            print(f"{c.name:<32} timeout {c.timeout_s:5.0f} s  needs: {', '.join(c.needs) or '-'}")
        return 0
    try:
        only, skip = _names(args.only, "--only"), _names(args.skip, "--skip")
        if args.budget_s <= 0:
            raise ValueError(f"--budget-s must be > 0, got {args.budget_s}")
    except ValueError as exc:
        print(f"gpu-check: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    error = _prepare_out(out)
    if error:
        print(f"gpu-check: error: {error}", file=sys.stderr)
        return 2

    def selected(name: str) -> str | None:
        if name in skip:
            return "not selected (--skip)"
        if only and name not in only and name != "selfcheck":
            return f"not selected (--only {','.join(sorted(only))})"
        return None

    started, wall = time.strftime("%Y-%m-%dT%H:%M:%S%z"), time.monotonic()
    deadline = wall + args.budget_s
    with tempfile.TemporaryDirectory(prefix="lowmode-gpu-check-") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        ctx = Context(out=out, work=work, python=sys.executable, facts={})
        results: dict[str, dict] = {}
        for check in CHECKS:
            record = run_check(check, ctx, results, deadline, selected)
            if check.name == "selfcheck":
                ctx.facts = record["result"] or {"cuda": False, "cuda_reason": "selfcheck failed",
                                                 "dali": False, "dali_reason": "selfcheck failed"}
            results[check.name] = record
            _write_json(out / f"{check.name}.json", record)
            print(_summary_line(record), flush=True)
    records = list(results.values())
    counts = {s: sum(r["status"] == s for r in records) for s in ("ok", "skipped", "failed")}
    summary = {
        "ok": counts["failed"] == 0, "counts": counts, "started": started,
        "seconds": round(time.monotonic() - wall, 1), "budget_s": args.budget_s,
        "cuda": ctx.cuda, "device_name": ctx.facts.get("device_name"), "dali": bool(ctx.facts.get("dali")),
        "skipped": {r["name"]: r["reason"] for r in records if r["status"] == "skipped"},
        "failed": {r["name"]: r["reason"] for r in records if r["status"] == "failed"},
        "checks": records,
    }
    _write_json(out / "summary.json", summary)
    where = "" if ctx.cuda else " (no CUDA: the GPU checks were skipped)"
    print(f"gpu-check: {counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed in "
          f"{summary['seconds']} s{where}; results in {out}/summary.json")
    return 1 if counts["failed"] else 0


# ---------------------------------------------------------------------------------------------- helpers
# Each runs in a subprocess of its own (python scripts/gpu_check.py --helper NAME ...) and prints one
# JSON object as its last stdout line.


def _helper_selfcheck(argv: list[str]) -> int:
    import importlib.util
    import platform

    facts: dict[str, Any] = {"python": platform.python_version(), "executable": sys.executable}
    # found, not imported (quick): the project's runtime modules and the test runner
    facts["modules"] = {name: importlib.util.find_spec(name) is not None
                        for name in ("numpy", "PIL", "tomli_w", "tqdm", "webdataset", "pytest", "wandb")}
    import torch

    facts["torch"] = torch.__version__
    facts["torch_cuda"] = torch.version.cuda
    facts["cuda"] = torch.cuda.is_available()
    if facts["cuda"]:
        props = torch.cuda.get_device_properties(0)
        facts.update(device_name=props.name, device_count=torch.cuda.device_count(),
                     device_memory_gb=round(props.total_memory / 2**30, 1),
                     capability=f"{props.major}.{props.minor}", bf16=torch.cuda.is_bf16_supported(),
                     nccl=".".join(map(str, torch.cuda.nccl.version())) if hasattr(torch.cuda, "nccl") else None)
    else:
        facts["cuda_reason"] = ("torch.cuda.is_available() is False"
                                + (" (a CPU-only torch build)" if torch.version.cuda is None else ""))
    try:
        import nvidia.dali as dali

        facts.update(dali=True, dali_version=dali.__version__)
    except Exception as exc:  # noqa: BLE001
        facts.update(dali=False, dali_reason=f"import nvidia.dali failed ({type(exc).__name__}: {exc})")
    print(json.dumps(facts))
    return 0


def _helper_shards(argv: list[str]) -> int:
    """Synthetic CIFAR-sized raw and jpg shards under WORK/shards-{raw,jpg}."""
    from preprocess.build import build_dataset
    from preprocess.config import BuildConfig

    work = Path(argv[0])
    result = {}
    for encoding in ("raw", "jpg"):
        start = time.perf_counter()
        build_dataset(BuildConfig(source="synthetic", out=str(work / f"shards-{encoding}"), size=32, channels=3,
                                  num_classes=10, num_train=SHARD_TRAIN, num_val=SHARD_VAL, encoding=encoding,
                                  samples_per_shard=2500, workers=min(8, os.cpu_count() or 1), seed=0))
        result[f"{encoding}_build_s"] = round(time.perf_counter() - start, 2)
    result.update(num_train=SHARD_TRAIN, num_val=SHARD_VAL, size=32, channels=3)
    print(json.dumps(result))
    return 0


def _dali_loader(data: str, p: float, workers: int, batch_size: int = 125):
    from pipeline import make_loader
    from pipeline.schedule import ModeSchedule, ScheduleConfig

    schedule = ModeSchedule(ScheduleConfig(p=p, full_epochs_after_milestone=0), 0)
    return make_loader(data, "train", batch_size_per_rank=batch_size, seed=0, kind="dali", device="cuda",
                       schedule=schedule, num_workers=workers)


def _helper_dali_bench(argv: list[str]) -> int:
    """Images/s of the DALI loader on the GPU, full then low mode, ``--seconds`` each after one batch."""
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)
    from pipeline.cli import measure_throughput
    from preprocess.dataset_format import Manifest

    result: dict[str, Any] = {"encoding": Manifest.load(args.data).encoding, "device": "cuda", "batch_size": 125,
                              "workers": args.workers, "decoder": "mixed"}

    for mode, p in (("full", 0.0), ("low", 1.0)):
        loader = _dali_loader(args.data, p, args.workers)
        try:
            measured = measure_throughput(loader, args.seconds, cuda=True)
        finally:
            loader.close()
        result[f"{mode}_images_per_s"] = measured["images_per_s"]
        result[f"{mode}_ms_per_batch"] = measured["ms_per_batch"]
    print(json.dumps(result))
    return 0


def _helper_dali_epochs(argv: list[str]) -> int:
    """Whole short epochs (p = 0.5: both resolutions) on the GPU; device memory in use after each."""
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--epochs", type=int, default=DALI_EPOCHS)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)
    import gc

    import torch

    loader = _dali_loader(args.data, 0.5, args.workers)
    used, reserved, rates = [], [], []
    try:
        for epoch in range(args.epochs):
            start, images = time.perf_counter(), 0
            for batch in loader.epoch(epoch):  # the loader builds a new pipeline for every epoch
                images += batch.images.shape[0]
            torch.cuda.synchronize()
            rates.append(round(images / (time.perf_counter() - start), 1))
            gc.collect()
            free, total = torch.cuda.mem_get_info()
            used.append(round((total - free) / 2**20, 1))
            reserved.append(round(torch.cuda.memory_reserved() / 2**20, 1))
        steps_per_epoch = loader.steps_in_epoch(0)
    finally:
        loader.close()
    settle = min(2, len(used) - 1)  # the first epochs allocate for good (pools, caches)
    growth = round(used[-1] - used[settle], 1)
    print(json.dumps({"epochs": args.epochs, "steps_per_epoch": steps_per_epoch, "decoder": "mixed",
                      "device_used_mb": used, "torch_reserved_mb": reserved, "images_per_s": rates,
                      "growth_mb": growth, "growth_mb_per_epoch": round(growth / max(len(used) - 1 - settle, 1), 2),
                      "grows": growth > 32.0}))
    return 0


def _helper_nccl_smoke(argv: list[str]) -> int:
    """Under torchrun: an nccl process group on this rank's GPU, all_reduce, barrier."""
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    dist.init_process_group("nccl", timeout=timedelta(seconds=60), device_id=device)
    try:
        value = torch.ones(4, device=device) * (dist.get_rank() + 1)
        dist.all_reduce(value)
        dist.barrier()
        expected = sum(r + 1 for r in range(dist.get_world_size()))
        ok = bool(torch.all(value == expected).item())
        result = {"backend": dist.get_backend(), "world_size": dist.get_world_size(), "all_reduce_ok": ok,
                  "nccl": ".".join(map(str, torch.cuda.nccl.version()))}
    finally:
        dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result))
    return 0 if ok else 1


def _helper_cifar_run(argv: list[str]) -> int:
    """A synthetic CIFAR-sized dataset, then 2 epochs under torchrun --nproc-per-node 1 with --check-sync."""
    from preprocess.build import build_dataset
    from preprocess.config import BuildConfig
    from trainer.run.distributed import DistInfo

    parser = argparse.ArgumentParser()
    parser.add_argument("work")
    parser.add_argument("--num-train", type=int, default=50000)
    parser.add_argument("--num-val", type=int, default=10000)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--device", default="cuda", help="cuda (bf16, channels_last) | cpu (fp32: a dry run)")
    args = parser.parse_args(argv)
    work = Path(args.work)
    data, run = work / "cifar-synthetic", work / "run-torchrun"
    start = time.perf_counter()
    build_dataset(BuildConfig(source="synthetic", out=str(data), size=32, channels=3, num_classes=10,
                              num_train=args.num_train, num_val=args.num_val, workers=min(8, os.cpu_count() or 1),
                              seed=0))
    build_s = time.perf_counter() - start
    try:
        import nvidia.dali  # noqa: F401

        loader = "dali"
    except ImportError:
        loader = "torch"
    settings = {"data.dir": json.dumps(str(data)), "data.loader": json.dumps(loader), "data.num_workers": "4",
                "model.name": json.dumps(args.model), "model.channels_last": json.dumps(args.device == "cuda"),
                "train.epochs": "2", "train.global_batch_size": "125", "train.device": json.dumps(args.device),
                "train.precision": '"bf16"' if args.device == "cuda" else '"fp32"',
                "optim.lr_milestones_epochs": "[]", "schedule.full_epochs_after_milestone": "0",
                "logging.wandb": '"disabled"', "logging.progress": '"lines"'}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1", "-m", "trainer",
               "--run-dir", str(run), "--check-sync", "10"]
    for key, value in settings.items():
        command += ["--set", f"{key}={value}"]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=_child_env(), capture_output=True, text=True)
    run_s = time.perf_counter() - start
    sys.stderr.write(proc.stderr[-TAIL_CHARS:])
    if proc.returncode != 0:
        print(f"torchrun exited {proc.returncode}", file=sys.stderr)
        return 1
    summary = json.loads((run / "summary.json").read_text())
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in steps if r.get("kind") == "step"]
    wait, total = sum(r["data_wait_s"] for r in steps), sum(r["step_s"] for r in steps)
    result = {k: summary.get(k) for k in ("epochs", "steps", "final_val_acc", "train_wall_s", "low_step_fraction",
                                          "median_step_s_full", "median_step_s_low", "median_images_per_s_full",
                                          "median_images_per_s_low", "low_full_step_ratio", "device")}
    result.update(loader=loader, data_wait_share=round(wait / total, 4) if total else None,
                  build_s=round(build_s, 1), run_s=round(run_s, 1), command=shlex.join(command),
                  state=json.loads((run / "status.json").read_text()).get("state"))
    if not DistInfo(world_size=1).is_distributed:
        result["note"] = ("WORLD_SIZE=1: the trainer joins no process group, so nccl, DDP and --check-sync are "
                          "not exercised by this run (nccl_smoke checks nccl)")
    print(json.dumps(result))
    return 0


HELPERS: dict[str, Callable[[list[str]], int]] = {
    "selfcheck": _helper_selfcheck, "shards": _helper_shards, "dali-bench": _helper_dali_bench,
    "dali-epochs": _helper_dali_epochs, "nccl-smoke": _helper_nccl_smoke, "cifar-run": _helper_cifar_run,
}

if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
