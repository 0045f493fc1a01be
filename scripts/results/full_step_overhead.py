"""Is a dual-mode model's FULL step slower than the plain model's? (In training, lowmode's full steps
took ~54.7 ms vs the baseline's ~49.7 ms, even in full-only epochs.)

    .venv/bin/python scripts/results/full_step_overhead.py

ResNet-8, 28x28x1 inputs, batch 125, 1 thread, forward + backward + SGD (momentum 0.9, wd 5e-4).
Variants, stepped round-robin so machine load hits all alike: plain; dual-mode never put in low mode;
dual-mode after 20 low steps (optimizer state created by low steps); and each of those with
channels_last-strided parameters checked. Prints median ms per variant and parameter stride facts.
"""
from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from trainer.method.dualmode import set_mode
from trainer.method.models import build_dual_mode_model, build_model


def make(dual: bool) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = (build_dual_mode_model("resnet8", in_channels=1)[0] if dual else build_model("resnet8", in_channels=1)).train()
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)


def step(model, opt, x, y) -> None:
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


def main() -> None:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    full = (torch.randn(125, 1, 28, 28, generator=g), torch.randint(0, 10, (125,), generator=g))
    low = (torch.randn(125, 1, 14, 14, generator=g), torch.randint(0, 10, (125,), generator=g))
    variants = {"plain": make(False), "dual, never low": make(True), "dual, after low steps": make(True)}
    m, o = variants["dual, after low steps"]
    set_mode(m, "low")
    for _ in range(20):
        step(m, o, *low)
    set_mode(m, "full")
    times = {k: [] for k in variants}
    for i in range(60):
        for k, (m, o) in variants.items():
            t = time.perf_counter()
            step(m, o, *full)
            if i >= 10:
                times[k].append(1000 * (time.perf_counter() - t))
    for k, v in times.items():
        m, o = variants[k]
        cl = sum(p.dim() == 4 and not p.is_contiguous() for p in m.parameters())
        bufs = sum(s.get("momentum_buffer") is not None and s["momentum_buffer"].dim() == 4
                   and not s["momentum_buffer"].is_contiguous() for s in o.state.values())
        print(f"{k:24s} median {statistics.median(v):6.1f} ms  non-contiguous 4-D params {cl}, momentum buffers {bufs}")


if __name__ == "__main__":
    main()
