"""Downsample a batch on the training device with the filter the preprocess writes (a low step without shards).

``downsample_batch(images, ratio, method)`` applies :func:`preprocess.downsample.filter_taps`, the taps
:func:`preprocess.downsample.downsample` uses offline, to an ``(N, C, H, W)`` tensor where it lies (CPU or
GPU): separably, rows then columns, half-sample-symmetric borders, each tap one float32 multiply and one
float32 add in the same order as the numpy code. So on a uint8 batch the result is the offline low image:
bitwise on the CPU (tested), within one grey level elsewhere (a device may fuse the multiply-add). On
floats (e.g. images already normalised by ``(x - mean) / std``) it filters the values as they are: every
method's taps sum to 1, so normalising and filtering commute and the result differs from the normalised
offline low image only by the offline rounding to integers (at most 0.5 / (255 std) per pixel, tested).
"""

from __future__ import annotations

import torch

from preprocess.downsample import METHODS, filter_taps


def downsample_batch(images: torch.Tensor, ratio: int = 2, method: str = "gaussian") -> torch.Tensor:
    """``images`` (N, C, H, W; uint8 or floating point) downsampled by ``ratio`` to (N, C, H/r, W/r).

    uint8 in: uint8 out, rounded half to even and clipped to 0..255 as the preprocess does. Floating
    point in: the same dtype out, computed in float32 (float64 stays float64), not rounded. H and W must
    be divisible by ``ratio``; ``method`` is one of :data:`preprocess.downsample.METHODS`.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"downsample_batch: expected an (N, C, H, W) tensor, got "
                         f"{getattr(images, 'shape', type(images).__name__)}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise ValueError(f"downsample_batch: expected uint8 or floating-point images, got {images.dtype}")
    if not isinstance(ratio, int) or isinstance(ratio, bool) or ratio < 2:
        raise ValueError(f"downsample_batch: ratio must be an integer >= 2, got {ratio!r}")
    if method not in METHODS:
        raise ValueError(f"downsample_batch: method must be one of {METHODS}, got {method!r}")
    height, width = images.shape[2:]
    if height % ratio or width % ratio:
        raise ValueError(f"downsample_batch: image sides {height}x{width} are not divisible by ratio {ratio}")
    work = torch.float64 if images.dtype == torch.float64 else torch.float32
    x = images.to(work)
    x = _filter_dim(x, 2, ratio, method)  # rows first, then columns: the numpy code's order
    x = _filter_dim(x, 3, ratio, method)
    if images.dtype == torch.uint8:
        return x.round().clamp_(0, 255).to(torch.uint8)
    return x.to(images.dtype)


def _symmetric(index: torch.Tensor, size: int) -> torch.Tensor:
    """``np.pad(mode="symmetric")``'s source index for any (also far out-of-range) position."""
    period = index.remainder(2 * size)
    return torch.where(period < size, period, 2 * size - 1 - period)


def _filter_dim(x: torch.Tensor, dim: int, ratio: int, method: str) -> torch.Tensor:
    start, taps = filter_taps(method, ratio)
    size = x.shape[dim]
    base = torch.arange(size // ratio, device=x.device) * ratio + start
    out = None
    for tap, weight in taps:
        term = x.index_select(dim, _symmetric(base + tap, size)) * torch.tensor(weight, dtype=x.dtype,
                                                                                device=x.device)
        out = term if out is None else out + term
    return out
