"""The kernel transform T: differentiable average pooling of a kernel's spatial dimensions.

Low mode replaces a K×K kernel by T(W), a smaller kernel of odd size K', so that a conv on an
input downsampled by r sees roughly the same receptive field (paper, Sec. 2.2.2). T is linear,
so autograd carries ∂L/∂Ŵ · ∂Ŵ/∂W back to the full kernel (Eq. 4) with no extra parameters.

Size rule, per spatial dimension, for kernel size k and ratio r (c = ceil(k / r)):

- c odd  → K' = c: an r-wide average window with stride r over the kernel, zero-padded at the
  end (TF-"SAME" style: the extra tap goes after), padding excluded from the mean.
  5×5, r=2 → 3×3 with 2×2 windows (taps {0,1}, {2,3}, {4}) — the paper's "2×2 pooling,
  stride 2, asymmetric padding".
- c even → K' = c − 1 (the largest odd size below c): adaptive average pooling to K' windows
  (torch's adaptive rule: window i covers [floor(i·k/K'), ceil((i+1)·k/K'))).
  3×3, r=2 → 1×1 by the plain 3×3 mean (the paper's choice); 7×7, r=2 → 3×3 with
  overlapping 3-wide windows {0,1,2}, {2,3,4}, {4,5,6}.

Every output tap is the mean of its window, so a constant kernel stays constant.
"""

from __future__ import annotations

import math

import torch


def pooled_size(kernel_size: int, ratio: int) -> int:
    """Odd low-mode kernel size K' for a kernel of ``kernel_size`` taps and downsampling ``ratio``."""
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
    if ratio < 1:
        raise ValueError(f"ratio must be >= 1, got {ratio}")
    c = math.ceil(kernel_size / ratio)
    return c if c % 2 == 1 else c - 1


def pool_windows(kernel_size: int, ratio: int) -> list[range]:
    """The taps each output tap of T averages over, for one spatial dimension (see module doc)."""
    out = pooled_size(kernel_size, ratio)
    if out == math.ceil(kernel_size / ratio):
        return [range(i * ratio, min((i + 1) * ratio, kernel_size)) for i in range(out)]
    return [
        range((i * kernel_size) // out, -((-(i + 1) * kernel_size) // out)) for i in range(out)
    ]


def pool_matrix(kernel_size: int, ratio: int, dtype=torch.float32) -> torch.Tensor:
    """(K' × k) matrix P with P[i, j] = 1/|window i| for taps j in window i, else 0."""
    windows = pool_windows(kernel_size, ratio)
    matrix = torch.zeros(len(windows), kernel_size, dtype=dtype)
    for i, window in enumerate(windows):
        matrix[i, window.start : window.stop] = 1.0 / len(window)
    return matrix


def pool_kernel(
    weight: torch.Tensor,
    pool_h: torch.Tensor | None = None,
    pool_w: torch.Tensor | None = None,
) -> torch.Tensor:
    """Apply T to a conv weight (out, in/groups, kh, kw).

    ``pool_h``/``pool_w`` are the per-dimension matrices from :func:`pool_matrix`; ``None`` for
    both means the target is 1×1: the plain mean over all taps.
    Separable: Ŵ = P_h · W · P_wᵀ, which equals averaging over each rectangular window.
    """
    if pool_h is None and pool_w is None:
        # A matrix-vector product with a constant 1/k² vector rather than .mean(dim=(2, 3)):
        # on these CPUs (torch 2.14, ResNet-18's 16 kernels, one thread) forward + backward took
        # 19 ms against 41 ms for sum / k² and ~250 ms for mean, whose small-trailing-dims
        # reduction is slow.
        out_ch, in_ch, kh, kw = weight.shape
        taps = weight.new_full((kh * kw,), 1.0 / (kh * kw))
        return torch.mv(weight.reshape(out_ch * in_ch, kh * kw), taps).view(out_ch, in_ch, 1, 1)
    if pool_h is None or pool_w is None:
        raise ValueError("pool_kernel needs both pool_h and pool_w, or neither (1×1 target)")
    return torch.matmul(torch.matmul(pool_h, weight), pool_w.transpose(0, 1))
