"""Downsample a batch of images by an integer ratio r (the "low" resolution of a dataset).

Methods, all applied separably (rows, then columns) to uint8 ``(N, H, W, C)`` batches:

- ``gaussian`` (default, the paper's preference): Gaussian blur with ``sigma = (r - 1) / 2``
  pixels (the anti-aliasing sigma scikit-image uses for a factor-r downscale), kernel truncated
  at ``ceil(4 * sigma)`` pixels and renormalised, borders mirrored half-sample-symmetrically
  (``np.pad(mode="symmetric")``); then every r-th row/column is kept, starting at ``(r - 1) // 2``
  (the exact centre of each r×r block for odd r).
- ``area``: the mean of each r×r block.
- ``bilinear``: bilinear interpolation at the low-res pixel centres with half-pixel alignment
  (``torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=False)``).

The arithmetic is plain elementwise float32 numpy (no BLAS, no threads), so the bytes do not
depend on how many worker processes run. Results are rounded to the nearest integer.
"""

from __future__ import annotations

import math

import numpy as np

METHODS = ("gaussian", "area", "bilinear")
_CHUNK = 128  # images per vectorised step (~1.5 MB of float32 at 32x32x3): ~10x faster than one big step


def gaussian_sigma(ratio: int) -> float:
    """Blur sigma (in full-resolution pixels) used by the ``gaussian`` method for ``ratio``."""
    return (ratio - 1) / 2


def method_sigma(method: str, ratio: int) -> float:
    """The blur sigma recorded in the manifest: gaussian's sigma, 0.0 for the other methods."""
    return gaussian_sigma(ratio) if method == "gaussian" else 0.0


def filter_taps(method: str, ratio: int) -> tuple[int, list[tuple[int, float]]]:
    """(start offset, [(tap offset, weight), ...]) of the 1-D filter that yields low pixel i.

    Low pixel i = sum_w weight * full[start + i * ratio + tap], with out-of-range taps mirrored.
    The one definition of each method's filter: :func:`pipeline.device_downsample.downsample_batch`
    applies the same taps to tensors on the training device.
    """
    if method == "gaussian":
        sigma = gaussian_sigma(ratio)
        radius = math.ceil(4 * sigma)
        weights = [math.exp(-0.5 * (t / sigma) ** 2) for t in range(-radius, radius + 1)]
        total = sum(weights)
        return (ratio - 1) // 2, [(t, w / total) for t, w in zip(range(-radius, radius + 1), weights)]
    if method == "area":
        return 0, [(t, 1.0 / ratio) for t in range(ratio)]
    if method == "bilinear":
        # Low pixel centre i maps to full coordinate x = (i + 0.5) * r - 0.5 = i * r + (r - 1) / 2.
        frac, base = math.modf((ratio - 1) / 2)
        if frac == 0:
            return int(base), [(0, 1.0)]
        return int(base), [(0, 1.0 - frac), (1, frac)]
    raise ValueError(f"--method: expected one of {', '.join(METHODS)}, got {method!r}")


def _filter_axis(images: np.ndarray, axis: int, ratio: int, method: str) -> np.ndarray:
    """Filter and subsample float32 ``images`` along ``axis`` by ``ratio``."""
    start, taps = filter_taps(method, ratio)
    size = images.shape[axis]
    out_size = size // ratio
    pad = max(abs(t) for t, _ in taps) + ratio
    widths = [(0, 0)] * images.ndim
    widths[axis] = (pad, pad)
    padded = np.pad(images, widths, mode="symmetric")
    out = None
    for tap, weight in taps:
        first = pad + start + tap
        index = [slice(None)] * images.ndim
        index[axis] = slice(first, first + out_size * ratio, ratio)
        term = padded[tuple(index)] * np.float32(weight)
        out = term if out is None else out + term
    return out


def downsample(images: np.ndarray, ratio: int, method: str = "gaussian") -> np.ndarray:
    """Downsample uint8 ``images`` (N, H, W, C) by ``ratio`` with ``method``; returns uint8 (N, H/r, W/r, C).

    H and W must be divisible by ``ratio`` (the build checks this and names the option).
    """
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (N, H, W, C) batch, got {images.dtype} {images.shape}")
    _, height, width, _ = images.shape
    if height % ratio or width % ratio:
        raise ValueError(f"--ratio: image sides {height}x{width} are not divisible by {ratio}")
    out = np.empty((len(images), height // ratio, width // ratio, images.shape[3]), dtype=np.uint8)
    for start in range(0, len(images), _CHUNK):  # small chunks keep the float temporaries in cache
        part = _filter_axis(images[start:start + _CHUNK].astype(np.float32), 1, ratio, method)
        part = _filter_axis(part, 2, ratio, method)
        out[start:start + _CHUNK] = np.clip(np.rint(part), 0, 255)
    return out
