"""Training augmentation parameters: per-sample crop offsets and flip flags.

Random crop with zero padding and horizontal flip, as in the usual CIFAR recipe: pad the image by
``pad`` pixels of value 0 on every side, take an H×W window at offset (dy, dx) in [0, 2*pad] of the
padded image, then mirror it left-right if ``flip``. ``pad`` is 4 px at full resolution and scales with
the image height (round(4 / ratio) at a low resolution whose ratio is full H / H, at least 1 px when the
full pad is > 0). Every low resolution draws from the low stream.

The parameters are a pure function of (seed, epoch, step, rank) — one draw per batch, indexed by the
sample's position in it — so the torch and DALI loaders apply the same crops and flips (identical
pixels even with augmentation on) and a resumed epoch repeats them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.schedule import FULL, LOW

# Separate streams per mode, so a low step is not a down-scaled copy of what a full step would draw.
_AUGMENT_DOMAIN = {FULL: 0x61756766, LOW: 0x6175676C}  # "augf", "augl"


@dataclass(frozen=True)
class AugmentParams:
    """Augmentation of one batch: ``offsets`` (N, 2) int32 (dy, dx) in the padded image, ``flips`` (N,) int32 (0|1)."""

    pad: int
    offsets: np.ndarray
    flips: np.ndarray

    def starts(self) -> np.ndarray:
        """Crop window starts (y, x) in original image coordinates, (N, 2) int32; may be negative."""
        return (self.offsets - self.pad).astype(np.int32)


def pad_for(full_pad: int, ratio: float, mode: str) -> int:
    """Padding in pixels for ``mode``: ``full_pad`` at full resolution, ``round(full_pad / ratio)`` (at least 1)
    at a low resolution ``ratio`` times smaller than the full one (not necessarily an integer)."""
    if mode == FULL or full_pad == 0:
        return full_pad
    return max(1, round(full_pad / ratio))


def batch_params(
    seed: int, epoch: int, step: int, rank: int, mode: str, batch_size: int, pad: int, enabled: bool = True
) -> AugmentParams:
    """Crop offsets and flips for the ``batch_size`` samples of one step on one rank.

    ``enabled=False`` gives the identity: offset (pad, pad), i.e. the unpadded image, and no flip.
    """
    if not enabled:
        return AugmentParams(
            pad=pad, offsets=np.full((batch_size, 2), pad, np.int32), flips=np.zeros(batch_size, np.int32)
        )
    entropy = [_AUGMENT_DOMAIN[mode], seed, epoch, step, rank]
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))
    offsets = rng.integers(0, 2 * pad + 1, size=(batch_size, 2), dtype=np.int32)
    flips = rng.integers(0, 2, size=batch_size, dtype=np.int32)
    return AugmentParams(pad=pad, offsets=offsets, flips=flips)


def apply_numpy(images: np.ndarray, params: AugmentParams) -> np.ndarray:
    """Reference augmentation of a uint8 batch (N, H, W, C): zero-pad, crop, flip. Returns (N, H, W, C).

    Used by the torch loader; the DALI pipeline does the same with fn.slice + fn.crop_mirror_normalize.
    """
    n, h, w, _ = images.shape
    pad = params.pad
    if pad == 0 and not params.flips.any():
        return images
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.empty_like(images)
    for i in range(n):
        dy, dx = params.offsets[i]
        window = padded[i, dy : dy + h, dx : dx + w]
        out[i] = window[:, ::-1] if params.flips[i] else window
    return out
