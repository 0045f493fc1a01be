"""Downsample a batch of images to a lower resolution: by an integer ratio r, or to any smaller size.

Methods, all applied separably (rows, then columns) to uint8 ``(N, H, W, C)`` batches. Along each axis,
output pixel i is a weighted sum of input pixels (its taps); the definitions below give the weights.

An axis that shrinks by an integer ratio r (``downsample(images, r)``; in ``resize`` whenever an axis's
ratio is an integer): the dataset's "low" resolution since the first release; these bytes never change.

- ``gaussian`` (default, the paper's preference): Gaussian blur with ``sigma = (r - 1) / 2``
  pixels (the anti-aliasing sigma scikit-image uses for a factor-r downscale), kernel truncated
  at ``ceil(4 * sigma)`` pixels and renormalised, borders mirrored half-sample-symmetrically
  (``np.pad(mode="symmetric")``); then every r-th row/column is kept, starting at ``(r - 1) // 2``
  (the exact centre of each r×r block for odd r; for even r half an input pixel before it).
- ``area``: the mean of each r×r block.
- ``bilinear``: bilinear interpolation at the low-res pixel centres with half-pixel alignment
  (``torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=False)``).

An axis that shrinks by a fractional scale ``s = in / out`` (``resize(images, height, width)``, e.g. 128 ->
96, the rungs of a resolution ladder): the same method family generalised (``_pixel_taps``). Output pixel
i sits at the input coordinate ``x_i = (i + 0.5) * s - 0.5`` (pixel centres aligned, as for odd r above).

- ``gaussian``: ``sigma = (s - 1) / 2`` input pixels; weights ``exp(-(j - x_i)^2 / (2 sigma^2))`` for the
  input pixels j with ``|j - x_i| <= ceil(4 sigma)``, renormalised to sum 1; borders mirrored like
  ``np.pad(mode="symmetric")``. Why this one: a Gaussian whose width follows the scale anti-aliases every
  rung alike (each rung's blur is set by its own sampling step, none as s -> 1 where nothing is lost:
  scikit-image's rule at every s), so the rungs of a ladder differ only in scale, not in how they were
  filtered; a fixed-width filter would over-blur the large rungs or alias the small ones, and a plain
  resampler aliases. (At an integer s the weights are the integer filter's; only the integer path's
  historical sampling phase for even r differs, by half an input pixel.)
- ``area``: each output pixel is the mean of the input interval ``[i * s, (i + 1) * s)`` it covers, partly
  covered input pixels weighted by their exact (rational) overlap.
- ``bilinear``: linear interpolation at ``x_i`` between its two neighbours (no antialiasing), like
  ``torch.nn.functional.interpolate(size=..., mode="bilinear", align_corners=False)``.

The arithmetic is plain elementwise float32 numpy in a fixed order (no BLAS, no threads): per pass, each
output element is one float32 multiply and one float32 add per tap, taps in increasing input order, and
each image is computed on its own, so the bytes depend neither on how many worker processes run nor on
how a batch is cut into chunks. Weights are computed in float64 (from exact rationals where the geometry
is rational) and rounded to float32 once. Results are rounded to the nearest integer (half to even) and
clipped to 0..255.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

METHODS = ("gaussian", "area", "bilinear")
_CHUNK = 128  # images per vectorised step (~1.5 MB of float32 at 32x32x3): ~10x faster than one big step


def gaussian_sigma(ratio: float) -> float:
    """Blur sigma (in full-resolution pixels) used by the ``gaussian`` method for ``ratio`` (any scale > 1)."""
    return (ratio - 1) / 2


def method_sigma(method: str, ratio: float) -> float:
    """The blur sigma recorded in the manifest: gaussian's sigma, 0.0 for the other methods."""
    return gaussian_sigma(ratio) if method == "gaussian" else 0.0


def filter_taps(method: str, ratio: int) -> tuple[int, list[tuple[int, float]]]:
    """(start offset, [(tap offset, weight), ...]) of the 1-D filter that yields low pixel i (integer ratio).

    Low pixel i = sum_w weight * full[start + i * ratio + tap], with out-of-range taps mirrored.
    The one definition of each method's integer-ratio filter: :func:`pipeline.device_downsample.downsample_batch`
    applies the same taps to tensors on the training device. Other sizes: ``axis_taps``.
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


def integer_ratio(in_size: int, out_size: int) -> int | None:
    """``in_size / out_size`` when it is an integer >= 2, else None."""
    return in_size // out_size if out_size >= 1 and in_size % out_size == 0 and in_size >= 2 * out_size else None


def mirror_index(index: np.ndarray, size: int) -> np.ndarray:
    """``np.pad(mode="symmetric")``'s source index for any (also far out-of-range) position."""
    period = np.remainder(index, 2 * size)
    return np.where(period < size, period, 2 * size - 1 - period)


def _pixel_taps(method: str, n: int, m: int, i: int) -> list[tuple[int, float]]:
    """[(input index, weight), ...] of output pixel i of an axis resized from n to m pixels (index unmirrored)."""
    centre = Fraction((2 * i + 1) * n - m, 2 * m)  # (i + 0.5) * s - 0.5, exactly
    if method == "gaussian":
        sigma = Fraction(n - m, 2 * m)  # (s - 1) / 2
        radius = math.ceil(4 * sigma)
        js = range(math.ceil(centre - radius), math.floor(centre + radius) + 1)
        exps = [float((j - centre) ** 2 / (2 * sigma ** 2)) for j in js]
        low = min(exps)  # relative to the nearest tap: a tiny sigma cannot underflow every weight to 0
        weights = [math.exp(low - e) for e in exps]
        total = math.fsum(weights)
        return [(j, w / total) for j, w in zip(js, weights)]
    if method == "area":
        lo, hi = Fraction(i * n, m), Fraction((i + 1) * n, m)
        scale = Fraction(n, m)
        return [(j, float((min(hi, j + 1) - max(lo, j)) / scale)) for j in range(math.floor(lo), math.ceil(hi))]
    if method == "bilinear":
        x = max(centre, Fraction(0))
        j0 = math.floor(x)
        frac = x - j0
        if frac == 0 or j0 + 1 >= n:
            return [(min(j0, n - 1), 1.0)]
        return [(j0, float(1 - frac)), (j0 + 1, float(frac))]
    raise ValueError(f"--method: expected one of {', '.join(METHODS)}, got {method!r}")


def axis_taps(method: str, in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(index, weight), both (out_size, T): the filter ``resize`` applies to an axis of ``in_size`` pixels
    shrunk to ``out_size``: output pixel i = ``sum_t weight[i, t] * input[index[i, t]]``, accumulated in
    t order (one float32 multiply and add each). Indices are mirrored into ``0..in_size-1``; pixels with
    fewer taps than T have weight 0 (index 0) at the end. The integer filter when the ratio is an integer.
    """
    if method not in METHODS:
        raise ValueError(f"--method: expected one of {', '.join(METHODS)}, got {method!r}")
    if not 1 <= out_size < in_size:
        raise ValueError(f"axis_taps: expected 1 <= out_size < in_size, got {out_size} and {in_size}")
    taps = _AxisPlan(method, in_size, out_size).gather(1)
    return np.stack([i for i, _ in taps], axis=1), np.stack([w for _, w in taps], axis=1)


class _AxisPlan:
    """How one axis of ``in_size`` pixels becomes ``out_size`` (the module docstring's definitions).

    Output pixels repeat their taps every ``period`` pixels, shifted by ``step`` input pixels (an integer
    ratio r: period 1, step r; a scale n/m: period m/g, step n/g with g = gcd(n, m)). ``phases[p]`` holds the
    taps ``[(input index, float32 weight), ...]`` of output pixel p (< period), in increasing input order;
    indices may lie outside the axis, where the input is mirrored (``pad``: how far on either side).
    Two equivalent ways to apply it: ``apply`` (strided slices of a mirrored buffer) and ``gather``.
    """

    def __init__(self, method: str, in_size: int, out_size: int) -> None:
        self.in_size, self.out_size = in_size, out_size
        ratio = integer_ratio(in_size, out_size)
        if ratio is not None:
            start, taps = filter_taps(method, ratio)
            self.period, self.step = 1, ratio
            phases = [[(start + t, w) for t, w in taps]]
        else:
            g = math.gcd(in_size, out_size)
            self.period, self.step = out_size // g, in_size // g
            phases = [_pixel_taps(method, in_size, out_size, p) for p in range(self.period)]
        self.phases = [[(j, np.float32(w)) for j, w in taps] for taps in phases]
        first = min(j for taps in self.phases for j, _ in taps)
        last = max(j + (self._count(p) - 1) * self.step for p, taps in enumerate(self.phases) for j, _ in taps)
        self.pad = (max(0, -first), max(0, last - (in_size - 1)))

    def _count(self, phase: int) -> int:
        """How many output pixels phase ``phase`` has."""
        return len(range(phase, self.out_size, self.period))

    def gather(self, channels: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per tap t: (index, weight) over a flattened (size * channels) axis, ``out_size * channels`` long:
        output element (i, c) adds ``weight * input[index]`` with the input pixel of output pixel i's tap t
        (mirrored), channel c. Phases with fewer taps than the most get weight 0 there (input 0 + 0 = 0)."""
        width = max(len(taps) for taps in self.phases)
        index = np.zeros((width, self.out_size, channels), dtype=np.intp)
        weight = np.zeros((width, self.out_size, channels), dtype=np.float32)
        for i in range(self.out_size):
            for t, (j, w) in enumerate(self.phases[i % self.period]):
                index[t, i] = int(mirror_index(np.array(j + (i // self.period) * self.step), self.in_size)) \
                    * channels + np.arange(channels)
                weight[t, i] = w
        return [(index[t].reshape(-1), weight[t].reshape(-1)) for t in range(width)]

    def apply(self, buf: np.ndarray, lo: int) -> np.ndarray:
        """Filter axis 1 of ``buf`` (``_padded``: the input from index ``lo`` on, mirrored at least ``pad``
        pixels beyond both ends): float32 (n, out_size, inner)."""
        out = np.empty((buf.shape[0], self.out_size, buf.shape[2]), dtype=np.float32)
        for phase, taps in enumerate(self.phases):
            count = self._count(phase)
            target = out[:, phase::self.period]
            tmp = None
            for k, (j, weight) in enumerate(taps):
                first = lo + j
                view = buf[:, first:first + (count - 1) * self.step + 1:self.step]
                if k == 0:
                    np.multiply(view, weight, out=target)
                else:
                    tmp = np.multiply(view, weight, out=tmp)
                    np.add(target, tmp, out=target)
        return out


def _padded(n: int, size: int, inner: int, pad: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(buffer (n, pad[0] + size + pad[1], inner) float32, its middle): fill the middle, then ``_mirror``."""
    buf = np.empty((n, pad[0] + size + pad[1], inner), dtype=np.float32)
    return buf, buf[:, pad[0]:pad[0] + size]


def _mirror(buf: np.ndarray, size: int, pad: tuple[int, int]) -> None:
    """Fill ``buf``'s borders (axis 1) as ``np.pad(middle, pad, mode="symmetric")`` would."""
    lo, hi = pad
    if lo or hi:
        border = np.r_[0:lo, lo + size:lo + size + hi]
        buf[:, border] = buf[:, lo + mirror_index(border - lo, size)]


def _check_batch(images: np.ndarray) -> None:
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (N, H, W, C) batch, got {images.dtype} {images.shape}")


def downsample(images: np.ndarray, ratio: int, method: str = "gaussian") -> np.ndarray:
    """Downsample uint8 ``images`` (N, H, W, C) by ``ratio`` with ``method``; returns uint8 (N, H/r, W/r, C).

    H and W must be divisible by ``ratio`` (the build checks this and names the option).
    """
    _check_batch(images)
    _, height, width, _ = images.shape
    if height % ratio or width % ratio:
        raise ValueError(f"--ratio: image sides {height}x{width} are not divisible by {ratio}")
    return resize_many(images, [(height // ratio, width // ratio)], method)[0]


def resize(images: np.ndarray, height: int, width: int, method: str = "gaussian") -> np.ndarray:
    """uint8 ``images`` (N, H, W, C) resized down to (N, height, width, C) with ``method`` (see the module
    docstring): per axis, the integer-ratio filter when the ratio is an integer, else the fractional one."""
    return resize_many(images, [(height, width)], method)[0]


def _gather_taps(x: np.ndarray, axis: int, taps: list[tuple[np.ndarray, np.ndarray]], lo: int) -> np.ndarray:
    """``sum_t x.take(lo + index_t, axis) * weight_t`` (``_AxisPlan.gather``'s taps), accumulated in tap order."""
    # mode="wrap": the indices are in range already, and numpy's bounds-checking mode is ~2x slower
    index, weight = taps[0]
    out = np.take(x, index + lo if lo else index, axis=axis, mode="wrap")
    out *= weight
    tmp = np.empty_like(out)
    for index, weight in taps[1:]:
        np.take(x, index + lo if lo else index, axis=axis, out=tmp, mode="wrap")
        tmp *= weight
        out += tmp
    return out


class _Plan:
    """One output size: the row filter, then the column filter."""

    def __init__(self, method: str, in_hw: tuple[int, int], out_hw: tuple[int, int], channels: int) -> None:
        (h, w), (oh, ow) = in_hw, out_hw
        if not (1 <= oh < h and 1 <= ow < w):
            raise ValueError(f"resize: expected a size below {h}x{w}, got {oh}x{ow}")
        if method not in METHODS:
            raise ValueError(f"--method: expected one of {', '.join(METHODS)}, got {method!r}")
        self.out_hw = out_hw
        self.rows = _AxisPlan(method, h, oh)
        # one period (an integer ratio): strided slices of whole rows; several: one gather per tap is faster
        self.row_taps = None if self.rows.period == 1 else [(i, wt[:, None]) for i, wt in self.rows.gather(1)]
        self.col_taps = _AxisPlan(method, w, ow).gather(channels)

    def apply(self, rows_in: np.ndarray, lo: int) -> np.ndarray:
        """Rows of ``rows_in`` (the mirrored row buffer (n, pad + H + pad, W * C), input from row ``lo``), then
        columns: float32 (n * out_h, out_w * C). Every output element is, per pass, one float32 multiply
        and one add per tap, taps in increasing input order, however the passes are laid out."""
        if self.row_taps is None:
            part = self.rows.apply(rows_in, lo)  # (n, oh, w * C)
        else:
            part = _gather_taps(rows_in, 1, self.row_taps, lo)
        return _gather_taps(part.reshape(-1, part.shape[2]), 1, self.col_taps, 0)


def resize_many(images: np.ndarray, sizes: list[tuple[int, int]], method: str = "gaussian") -> list[np.ndarray]:
    """``[resize(images, h, w, method) for h, w in sizes]``, converting each chunk of images to float once."""
    _check_batch(images)
    n_all, height, width, channels = images.shape
    plans = [_Plan(method, (height, width), tuple(size), channels) for size in sizes]
    outs = [np.empty((n_all, *plan.out_hw, channels), dtype=np.uint8) for plan in plans]
    pad = (max((p.rows.pad[0] for p in plans), default=0), max((p.rows.pad[1] for p in plans), default=0))
    for start in range(0, n_all, _CHUNK):  # small chunks keep the float temporaries in cache
        chunk = images[start:start + _CHUNK]
        buf, middle = _padded(len(chunk), height, width * channels, pad)  # one float copy for every size
        middle[...] = chunk.reshape(len(chunk), height, width * channels)
        _mirror(buf, height, pad)
        for plan, out in zip(plans, outs):
            result = plan.apply(buf, pad[0])
            np.rint(result, out=result)
            np.clip(result, 0, 255, out=result)
            out[start:start + len(chunk)] = result.reshape(-1, *plan.out_hw, channels)
    return outs
