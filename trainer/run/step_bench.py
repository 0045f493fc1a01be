"""Per-step cost of full vs low mode: forward + backward + SGD step, timed and FLOP-counted.

    python -m trainer.bench --model resnet18 --batch-size 125 --device cpu --json
    python -m trainer.bench --model resnet50 --device cuda --bf16 --channels-last --compile --json

Inputs are random: 32×32 in full mode and 32/r × 32/r in low mode (r = --ratio, default 2), with
the model's ``in_channels``. Two low steps are measured: the paper's (``low_kernels="pool"``: pooled
kernels, stem max-pool skipped; keys ``low_*``, ``ratio``, ``flops_ratio``, ``cpu_ratio``) and
progressive resizing's (``low_kernels="keep"``: the same 3×3 kernels, max-pool kept, on the same
32/r inputs; keys ``keep_*``), each a model of its own (same initial weights, its own optimizer).
The steps alternate full → low → keep low → baseline full, as in training (and so that load from other processes on
a shared machine hits all alike): ``--warmup`` untimed rounds, then ``--iters`` timed ones; each
step's time is its median (ms), CUDA synchronised around every step. The full step is the "pool"
model's (both models' full modes are the unconverted network). Models are converted with their
default preset and the ``frozen`` BN policy; SGD has momentum 0.9 and weight decay 5e-4.
``--compile`` compiles the models (not the optimizer step) with ``dynamic=False``.

``--stem`` / ``--width`` choose the registry model's stem and first-stage width (photographs:
``--stem imagenet --size 128 --width 32``); ``--profile`` adds ``conv_share_full`` (see :func:`conv_share`).

Result keys (one flat JSON object): ``full_ms``, ``low_ms``, ``keep_low_ms``; ``ratio`` =
low/full and ``keep_ratio`` = keep low/full (wall-clock); ``flops_ratio``, ``keep_flops_ratio``;
``full_gflops``, ``low_gflops``, ``keep_low_gflops``; ``peak_mem_full_mb``, ``peak_mem_low_mb``,
``peak_mem_keep_low_mb``; ``full_cpu_ms``, ``low_cpu_ms``, ``keep_low_cpu_ms``, ``cpu_ratio``,
``keep_cpu_ratio``; ``baseline_full_ms`` / ``baseline_full_cpu_ms``: the unconverted network's full step,
timed in the same rounds, and ``full_vs_baseline`` / ``full_vs_baseline_cpu`` = full / baseline full (the
conversion's own cost, paired so that a shared machine's drift hits both alike); and the configuration (``keep_freed_memory``: whether glibc keeps freed memory, as a
training run does by default — off, the CPU steps pay page faults a run does not; ``--no-keep-freed-memory``).

``peak_mem_*_mb`` is the peak memory of all live tensors during one eager step (parameters,
gradients, optimizer state, activations, temporaries), MiB: on CUDA ``max_memory_allocated``; on CPU
torch's ``MemTracker`` (``torch.distributed._tools``; null if unavailable), which counts tensor
storage, not allocator caching or process RSS.

``*_cpu_ms`` / ``cpu_ratio`` use the process's CPU time (all threads) instead of wall-clock: with
``--threads 1`` on a CPU shared with other jobs it measures the work of a step, which the wall-clock
cannot (time slices of other processes inflate it, unevenly); with more threads it includes
OpenMP spin-waits.

The same steps inside the real training loop (loader, sync points, records):
``python -m trainer.bench --loop`` (trainer/run/loop_bench.py), which prints these keys plus ``loop_*``.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` over one forward + backward (convs and
matmuls; elementwise ops such as BN and ReLU are not counted, which is why the measured time ratio
exceeds ``flops_ratio``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from trainer.method.dualmode import set_mode
from trainer.method.models import MODEL_NAMES, STEMS, build_dual_mode_model, build_model, default_width
from trainer.run.host import keep_freed_memory

# The timed steps, in the order each round runs them: name -> (model kind, mode).
STEPS = {"full": ("pool", "full"), "low": ("pool", "low"), "keep_low": ("keep", "low"),
         "baseline_full": ("baseline", "full")}
"""name -> (model kind, mode). "baseline" is the unconverted network: its full step against the converted
model's, interleaved in the same rounds, is the conversion's own cost (``full_vs_baseline``)."""


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run."""

    model: str = "resnet18"
    batch_size: int = 125
    """images per step"""
    device: str = "cpu"
    channels_last: bool = False
    bf16: bool = False
    """autocast to bfloat16 (forward and backward)"""
    compile: bool = False
    """torch.compile(dynamic=False): one static graph per mode"""
    warmup: int = 3
    iters: int = 10
    ratio: int = 2
    """low-mode input downsampling ratio r"""
    low_sizes: tuple[int, ...] = ()
    """further low image sides (a resolution ladder's rungs, any size below full_size): the kept-kernel low
    step is also timed at each, in the same rounds (``keep_ratio_by_size``)"""
    full_size: int = 32
    """full-mode image side (pixels)"""
    in_channels: int = 3
    """input channels (1 for Fashion-MNIST)"""
    stem: str = "cifar_maxpool"
    """the model's stem (trainer.method.models.STEMS; "imagenet" for photographs)"""
    width: int = 0
    """the first stage's channels (0: the model's own, 64 for ResNet-18/50)"""
    profile: bool = False
    """also profile one full step (torch.profiler): ``conv_share_full``, the convolutions' share of its
    operator time (forward + backward), which tells whether a configuration is compute-bound"""
    threads: int = 0
    """CPU threads for torch (0: leave torch's default)"""
    keep_freed_memory: bool = True
    """the host allocator setting a training run uses by default (``train.keep_freed_memory``): without it
    glibc returns freed activations to the kernel and every step page-faults them in again, which a
    training run does not pay (a process-wide setting: once on, it stays on)"""

    def __post_init__(self) -> None:
        if self.model not in MODEL_NAMES:
            raise ValueError(f"model must be one of {list(MODEL_NAMES)}, got {self.model!r}")
        if self.stem not in STEMS:
            raise ValueError(f"stem must be one of {list(STEMS)}, got {self.stem!r}")
        if self.width < 0:
            raise ValueError(f"width must be >= 0 (0: the model's own), got {self.width}")
        for name in ("batch_size", "iters", "ratio", "full_size", "in_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0 or self.threads < 0:
            raise ValueError("warmup and threads must be >= 0")
        if self.compile and self.warmup < 1:
            raise ValueError("warmup must be >= 1 with compile (the first steps compile)")
        if self.full_size % self.ratio:
            raise ValueError(f"full_size {self.full_size} is not divisible by ratio {self.ratio}")
        object.__setattr__(self, "low_sizes", tuple(self.low_sizes))
        bad = [h for h in self.low_sizes if not 0 < h < self.full_size]
        if bad or len(set(self.low_sizes)) != len(self.low_sizes):
            raise ValueError(f"low_sizes must be distinct sides in [1, full_size = {self.full_size}), "
                             f"got {list(self.low_sizes)}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(cfg: BenchConfig, device: torch.device):
    if not cfg.bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _peak_memory_mb(step, model, opt, images, labels, device: torch.device) -> float | None:
    """Peak memory of all live tensors during one step, MiB (see module docstring)."""
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        step(images, labels)
        _sync(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:  # private torch API: degrade to null rather than fail the benchmark
        from torch.distributed._tools.mem_tracker import MemTracker
    except ImportError:
        return None
    tracker = MemTracker()
    tracker.track_external(model, opt)
    with tracker:
        step(images, labels)
    peaks = tracker.get_tracker_snapshot("peak")
    return sum(per_type["Total"] for per_type in peaks.values()) / 2**20


def _make_step(model: nn.Module, opt: torch.optim.Optimizer, cfg: BenchConfig, device):
    def step(images: torch.Tensor, labels: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        with _autocast(cfg, device):
            loss = F.cross_entropy(model(images), labels)
        loss.backward()
        opt.step()

    return step


def _inputs(cfg: BenchConfig, in_channels: int, size: int, device: torch.device):
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(cfg.batch_size, in_channels, size, size, generator=gen).to(device)
    if cfg.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (cfg.batch_size,), generator=gen).to(device)
    return images, labels


def _flops(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg, device) -> int:
    """FLOPs of one forward + backward (counted on the eager model)."""
    counter = FlopCounterMode(display=False)
    with counter, _autocast(cfg, device):
        F.cross_entropy(model(images), labels).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def _time_steps(entries: dict, cfg: BenchConfig, device) -> dict:
    """Median wall and process-CPU step time (ms) per entry: {name: (wall_ms, cpu_ms)}.

    entries: {name: (step, model, mode, (images, labels))}. The entries alternate step by step, as
    the modes do in training, so that load from other processes on a shared machine hits all alike.
    """
    wall: dict[str, list[float]] = {name: [] for name in entries}
    cpu: dict[str, list[float]] = {name: [] for name in entries}
    for i in range(cfg.warmup + cfg.iters):
        for name, (step, model, mode, (images, labels)) in entries.items():
            set_mode(model, mode)
            _sync(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            step(images, labels)
            _sync(device)
            if i >= cfg.warmup:
                wall[name].append((time.perf_counter() - start) * 1e3)
                cpu[name].append((time.process_time() - start_cpu) * 1e3)
    return {n: (statistics.median(wall[n]), statistics.median(cpu[n])) for n in entries}


def _setup(cfg: BenchConfig, device: torch.device, kind: str) -> dict:
    """One model with its optimizer and (compiled, eager) steps; seed 0 weights. ``kind``: "baseline"
    (unconverted) or the conversion's ``low_kernels`` ("pool", "keep")."""
    torch.manual_seed(0)
    shape = dict(in_channels=cfg.in_channels, stem=cfg.stem, width=cfg.width or None)
    if kind == "baseline":
        model = build_model(cfg.model, **shape)
    else:
        model, _ = build_dual_mode_model(cfg.model, ratio=cfg.ratio, low_kernels=kind, **shape)
    model = model.to(device).train()
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    run = torch.compile(model, dynamic=False) if cfg.compile else model
    return {"model": model, "opt": opt, "step": _make_step(run, opt, cfg, device),
            "eager_step": _make_step(model, opt, cfg, device)}


def run_benchmark(cfg: BenchConfig) -> dict:
    """Measure both modes; returns the JSON-ready result dict."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    kept = keep_freed_memory() if cfg.keep_freed_memory else False
    device = torch.device(cfg.device)
    setups = {kind: _setup(cfg, device, kind) for kind in ("pool", "keep", "baseline")}
    result = {"model": cfg.model, "stem": cfg.stem, "width": cfg.width or default_width(cfg.model),
              "device": cfg.device, "batch_size": cfg.batch_size, "full_size": cfg.full_size,
              "in_channels": cfg.in_channels}
    low_size = cfg.full_size // cfg.ratio
    sizes = {"full": cfg.full_size, "low": low_size}
    inputs = {mode: _inputs(cfg, cfg.in_channels, size, device) for mode, size in sizes.items()}
    entries = {name: (setups[kind]["step"], setups[kind]["model"], mode, inputs[mode])
               for name, (kind, mode) in STEPS.items()}
    ladder = [h for h in cfg.low_sizes if h != low_size]
    for h in ladder:  # the kept-kernel low step at each further rung, interleaved in the same rounds
        entries[f"keep_low_{h}"] = (setups["keep"]["step"], setups["keep"]["model"], "low",
                                    _inputs(cfg, cfg.in_channels, h, device))
    times = _time_steps(entries, cfg, device)
    flops, peaks = {}, {}
    for name, (kind, mode) in STEPS.items():
        if kind == "baseline":
            continue  # timed only: its ops are the "full" step's (tests/trainer/method/test_dualmode_convert.py)
        setup, (images, labels) = setups[kind], inputs[mode]
        set_mode(setup["model"], mode)
        flops[name] = _flops(setup["model"], images, labels, cfg, device)
        peaks[name] = _peak_memory_mb(setup["eager_step"], setup["model"], setup["opt"], images, labels, device)
    (full_ms, full_cpu_ms), (low_ms, low_cpu_ms) = times["full"], times["low"]
    keep_ms, keep_cpu_ms = times["keep_low"]
    base_ms, base_cpu_ms = times["baseline_full"]

    def mem(name: str) -> float | None:
        return None if peaks[name] is None else round(peaks[name], 1)

    result.update(
        full_ms=round(full_ms, 2),
        low_ms=round(low_ms, 2),
        ratio=round(low_ms / full_ms, 4),
        flops_ratio=round(flops["low"] / flops["full"], 4),
        peak_mem_full_mb=mem("full"),
        peak_mem_low_mb=mem("low"),
        full_cpu_ms=round(full_cpu_ms, 2),
        low_cpu_ms=round(low_cpu_ms, 2),
        cpu_ratio=round(low_cpu_ms / full_cpu_ms, 4),
        full_gflops=round(flops["full"] / 1e9, 3),
        low_gflops=round(flops["low"] / 1e9, 3),
        keep_low_ms=round(keep_ms, 2),
        keep_ratio=round(keep_ms / full_ms, 4),
        keep_flops_ratio=round(flops["keep_low"] / flops["full"], 4),
        peak_mem_keep_low_mb=mem("keep_low"),
        keep_low_cpu_ms=round(keep_cpu_ms, 2),
        keep_cpu_ratio=round(keep_cpu_ms / full_cpu_ms, 4),
        keep_low_gflops=round(flops["keep_low"] / 1e9, 3),
        baseline_full_ms=round(base_ms, 2),
        baseline_full_cpu_ms=round(base_cpu_ms, 2),
        full_vs_baseline=round(full_ms / base_ms, 4),
        full_vs_baseline_cpu=round(full_cpu_ms / base_cpu_ms, 4),
        channels_last=cfg.channels_last, bf16=cfg.bf16, compile=cfg.compile,
        threads=torch.get_num_threads(), iters=cfg.iters, warmup=cfg.warmup, keep_freed_memory=kept,
    )
    if cfg.low_sizes:
        result["low_size"] = low_size
        result["keep_ratio_by_size"] = {str(low_size): result["keep_ratio"], **{
            str(h): round(times[f"keep_low_{h}"][0] / full_ms, 4) for h in ladder}}
    if cfg.profile:
        set_mode(setups["pool"]["model"], "full")
        result["conv_share_full"] = round(conv_share(setups["pool"]["eager_step"], *inputs["full"]), 4)
    return result


CONV_OPS = ("conv", "mkldnn_convolution", "cudnn_convolution")
"""Operator names (substrings) counted as convolution work: forward and backward kernels of every backend."""


def conv_share(step, images: torch.Tensor, labels: torch.Tensor) -> float:
    """The convolutions' share of one step's operator self time (CPU: all of it; CUDA: device time).

    Leaf operators only (self time), so nothing is counted twice; the rest is BN, ReLU, pooling, the
    loss, the optimiser and copies — the work a lower resolution does not shrink in proportion."""
    from torch.profiler import ProfilerActivity, profile

    cuda = images.is_cuda
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    step(images, labels)  # warm: allocator and kernels chosen outside the profile
    with profile(activities=activities) as prof:
        step(images, labels)
        if cuda:
            torch.cuda.synchronize()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if not e.key.startswith("ProfilerStep")]
    total = sum(getattr(e, key) for e in events)
    conv = sum(getattr(e, key) for e in events if any(op in e.key for op in CONV_OPS))
    return conv / total if total else 0.0


def _sides(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def parse_args(argv: list[str] | None = None) -> tuple[BenchConfig, bool]:
    """(config, print-as-JSON) from the command line."""
    parser = argparse.ArgumentParser(prog="python -m trainer.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet18", choices=MODEL_NAMES)
    parser.add_argument("--batch-size", type=int, default=125)
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--ratio", type=int, default=2)
    parser.add_argument("--low-sizes", type=_sides, default=(), help="comma-separated further low sides (a ladder's rungs): "
                        "the kept-kernel low step timed at each too (keep_ratio_by_size)")
    parser.add_argument("--size", type=int, default=32, help="full-mode image side in pixels (28 for Fashion-MNIST)")
    parser.add_argument("--in-channels", type=int, default=3, help="input channels (1 for Fashion-MNIST)")
    parser.add_argument("--stem", default="cifar_maxpool", choices=STEMS, help="imagenet for photographs")
    parser.add_argument("--width", type=int, default=0, help="first stage's channels (0: the model's own)")
    parser.add_argument("--profile", action="store_true", help="also profile a full step: conv_share_full")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--no-keep-freed-memory", dest="keep_freed_memory", action="store_false",
                        help="leave glibc's allocator defaults (a run's train.keep_freed_memory = false)")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    args = parser.parse_args(argv)
    return BenchConfig(
        model=args.model, batch_size=args.batch_size, device=args.device,
        channels_last=args.channels_last, bf16=args.bf16, compile=args.compile,
        warmup=args.warmup, iters=args.iters, ratio=args.ratio, threads=args.threads,
        full_size=args.size, in_channels=args.in_channels, keep_freed_memory=args.keep_freed_memory,
        stem=args.stem, width=args.width, profile=args.profile,
        low_sizes=args.low_sizes,
    ), args.json


def main(argv: list[str] | None = None) -> int:
    """CLI entry: run the benchmark, print JSON (--json) or one key per line."""
    cfg, as_json = parse_args(argv)
    print_result(run_benchmark(cfg), as_json)
    return 0


def print_result(result: dict, as_json: bool) -> None:
    """One JSON object (``--json``), else one aligned ``key: value`` line per key."""
    if as_json:
        print(json.dumps(result))
        return
    width = max(map(len, result), default=0)
    for key, value in result.items():
        print(f"{key:>{width}}: {value}")


if __name__ == "__main__":
    raise SystemExit(main())
