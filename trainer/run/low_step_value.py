"""What a low step buys compared with a full step, measured on one probe batch (gradient alignment).

On the same parameters, split a batch into disjoint halves A and B and take three gradients: the full
step's on A and on B, and the low step's on A (A downsampled with the preprocess's filter, the model in
low mode). Then

    rho = <g_low(A), g_full(B)> / <g_full(A), g_full(B)>

is the first-order loss decrease of a low step relative to a full one at the same learning rate, as seen
by the independent half B (which removes the noise term <g(A), g(A)> that would flatter both): rho = 1 when
a low step moves the loss as much as a full one, 0 when it is orthogonal to the full-resolution descent
direction. Low steps pay, to first order, while rho > c, the low/full step cost ratio. Summing numerators
and denominators over several probe batches before dividing keeps the estimate stable.

Nothing of the model changes: parameters, BN running statistics, gradients, the mode and the RNG state
are restored (BN normalises with batch statistics, as a training step does). The candidate signal of the
adaptive-schedule issue and the gradient-alignment part of a frontier study's diagnosis.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.device_downsample import downsample_batch
from pipeline.schedule import FULL, LOW
from trainer.method.dualmode import get_mode, is_dual_mode, set_mode, unwrap

PARTS = ("low_full_dot", "full_full_dot", "low_low_norm2", "full_a_norm2", "low_full_a_dot", "loss_full",
         "loss_low")
"""The per-batch numbers :func:`probe` returns (sums of these over batches give :func:`summarise`'s ratios)."""


def _gradient(model: nn.Module, params: list[nn.Parameter], images: torch.Tensor, labels: torch.Tensor,
              mode: str) -> tuple[torch.Tensor, float]:
    set_mode(model, mode)
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    flat = [p.grad.reshape(-1).double() if p.grad is not None else p.new_zeros(p.numel(), dtype=torch.float64)
            for p in params]
    return torch.cat(flat), float(loss.detach())


def downsample_to(images: torch.Tensor, height: int, method: str = "gaussian") -> torch.Tensor:
    """``images`` (N, C, H, W, normalised floats) at ``height`` pixels: the preprocess's filter
    (``downsample_batch``) when H is a multiple of ``height``; otherwise antialiased bilinear resampling to
    (height, round(W x height / H)), an approximation of the stored rung (a ladder's 80 / 96 / 112 px of 128),
    close enough for a probe's gradient direction. Keeps channels_last when the batch has it."""
    full = images.shape[-2]
    if not 1 <= height < full:
        raise ValueError(f"downsample_to: height must be in [1, {full}), got {height}")
    if full % height == 0:
        low = downsample_batch(images, full // height, method)
    else:
        width = max(1, round(images.shape[-1] * height / full))
        low = F.interpolate(images, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    if images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous():
        low = low.contiguous(memory_format=torch.channels_last)
    return low


@contextmanager
def left_as_it_was(root: nn.Module, device: torch.device) -> Iterator[None]:
    """Measure on ``root`` as a training step sees it (train mode: BN on batch statistics) and leave it as it
    was: every buffer (BN running statistics, non-persistent ones such as separate/private BN's low-mode
    statistics included), the mode, train/eval and the RNG state are restored on exit. Parameters and
    gradients are the caller's (no optimizer step is taken here)."""
    saved = [(buf, buf.detach().clone()) for buf in root.buffers()]
    mode, training = get_mode(root), root.training
    try:
        root.train()
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            yield
    finally:
        with torch.no_grad():
            for buf, value in saved:  # the running statistics the forwards moved
                buf.copy_(value)
        set_mode(root, mode)
        root.train(training)


def probe(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, ratio: int,
          method: str = "gaussian") -> dict[str, float]:
    """The :data:`PARTS` of one probe batch at one low resolution, ``ratio`` times smaller (see
    :func:`probe_sizes`)."""
    if not isinstance(ratio, int) or isinstance(ratio, bool) or ratio < 2:
        raise ValueError(f"probe: ratio must be an integer >= 2, got {ratio!r}")
    height = images.shape[-2]
    if height % ratio:
        raise ValueError(f"probe: image height {height} is not divisible by ratio {ratio}")
    return probe_sizes(model, images, labels, heights=(height // ratio,), method=method)[height // ratio]


def probe_sizes(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, heights,
                method: str = "gaussian") -> dict[int, dict[str, float]]:
    """The :data:`PARTS` of one probe batch for each low height in ``heights`` (full-resolution
    ``images``, normalised as the loader does; halves A = first, B = second): the two full gradients are
    taken once and shared, so k sizes cost 2 + k half-batch gradients. ``model`` must be dual-mode
    converted (it has a low mode)."""
    root = unwrap(model)
    if not is_dual_mode(root):
        raise TypeError("probe: the model has no low mode; call convert_to_dual_mode first")
    half = len(images) // 2
    if half < 1:
        raise ValueError(f"probe: a batch of {len(images)} cannot be split into two halves")
    heights = tuple(int(h) for h in heights)
    if not heights:
        raise ValueError("probe: no low heights to probe")
    params = [p for p in root.parameters() if p.requires_grad]
    saved_grads = [None if p.grad is None else p.grad.detach().clone() for p in params]
    a, b = images[:half], images[half:2 * half]
    ya, yb = labels[:half], labels[half:2 * half]
    out: dict[int, dict[str, float]] = {}
    try:
        with left_as_it_was(root, images.device):
            g_b, loss_full = _gradient(root, params, b, yb, FULL)
            g_a, _ = _gradient(root, params, a, ya, FULL)
            full_full, full_a2 = float(g_a @ g_b), float(g_a @ g_a)
            for height in heights:
                g_low, loss_low = _gradient(root, params, downsample_to(a, height, method), ya, LOW)
                out[height] = {"low_full_dot": float(g_low @ g_b), "full_full_dot": full_full,
                               "low_low_norm2": float(g_low @ g_low), "full_a_norm2": full_a2,
                               "low_full_a_dot": float(g_low @ g_a), "loss_full": loss_full, "loss_low": loss_low}
    finally:
        for p, grad in zip(params, saved_grads):
            p.grad = grad
    return out


def summarise(parts: list[dict[str, float]]) -> dict[str, float]:
    """rho (ratio of summed dot products), the low/full gradient cosine and norm ratio on the same half
    (means of the per-batch values), the mean losses, and the number of probe batches."""
    if not parts:
        raise ValueError("summarise: no probe batches")
    total = {k: sum(p[k] for p in parts) for k in PARTS}
    n = len(parts)
    cos = [p["low_full_a_dot"] / max((p["low_low_norm2"] * p["full_a_norm2"]) ** 0.5, 1e-300) for p in parts]
    norm = [(p["low_low_norm2"] / max(p["full_a_norm2"], 1e-300)) ** 0.5 for p in parts]
    return {"rho": total["low_full_dot"] / total["full_full_dot"] if total["full_full_dot"] else float("nan"),
            "cos_low_full": sum(cos) / n, "grad_norm_ratio": sum(norm) / n,
            "loss_full": total["loss_full"] / n, "loss_low": total["loss_low"] / n, "batches": n}
