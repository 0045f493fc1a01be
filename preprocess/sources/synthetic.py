"""Synthetic source: deterministic labelled images a small CNN can learn, even at 1/2 resolution.

Class c of K gets a sinusoidal grating at angle ``pi * c / K`` (period ~size/4 pixels, so it
survives 2x downsampling) tinted with a class colour; each sample adds its own phase, contrast,
brightness and per-pixel noise (a window of a fixed noise sequence at a per-sample offset). Sample i
of a split has label ``i % K``. Everything is a pure function of (split, index) through a
counter-based hash, so any shard can be generated independently, in any process, with identical
bytes (also for any chunking: the images are generated in chunks of bounded size).

The options are bounded (MAX_SIZE, MAX_SAMPLES, MAX_CLASSES, and --num-classes <= --num-train) and
checked before anything is allocated: opening allocates 8 bytes per sample (the labels) and the
build a shuffle order of 8 more; images are only made per shard.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from preprocess.errors import InputError
from preprocess.sources.base import Source, SplitData

MAX_SIZE = 1024
"""Largest image side: the gratings are for small CNNs; 1024 covers ImageNet-style resolutions (one
RGB image is 3 MB; a shard holds --samples-per-shard of them in memory while it is written)."""
MAX_SAMPLES = 10_000_000
"""Most samples per split: the labels and the build's shuffle order take 16 bytes per sample in the
main process (160 MB here) before any image is made; ~8x ImageNet-1k's train split."""
MAX_CLASSES = 65_536
"""Most classes: each needs its own grating angle (pi / K apart) to stay learnable, and the manifest
and the trainer's classifier hold one entry per class (ImageNet-21k has 21841)."""

_SPLIT_SALT = {"train": 0x7A41, "val": 0x51E7}
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (wrapping arithmetic): a cheap counter-based RNG."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _uniform(split: str, index: np.ndarray, stream: int, count: int) -> np.ndarray:
    """Uniform [0, 1) float32 numbers, shape (len(index), count), a pure function of their arguments."""
    base = (np.uint64(_SPLIT_SALT[split]) << np.uint64(48)) | (np.uint64(stream) << np.uint64(40))
    with np.errstate(over="ignore"):
        seeds = _splitmix64(index.astype(np.uint64) ^ base)
        counters = seeds[:, None] * np.uint64(0x100000001B3) + np.arange(count, dtype=np.uint64)[None, :]
    return ((_splitmix64(counters) >> np.uint64(40)).astype(np.float32)) / np.float32(1 << 24)


def _class_colours(num_classes: int, channels: int) -> np.ndarray:
    """(K, C) per-class tint in [0.4, 1.0] (all ones for grayscale)."""
    if channels == 1:
        return np.ones((num_classes, 1), dtype=np.float32)
    u = _uniform("train", np.arange(num_classes), stream=255, count=channels)
    return np.float32(0.4) + np.float32(0.6) * u


_NOISE_BANK = 1 << 16
_CHUNK = 256  # images generated per vectorised step, at most _CHUNK_VALUES values (32x32 RGB: 256 images)
_CHUNK_VALUES = 256 * 32 * 32 * 3  # bounds the float32 temporaries (~4 of this many) for large images


@functools.lru_cache(maxsize=4)
def _noise_bank(split: str, length: int) -> np.ndarray:
    """A fixed float32 noise sequence in [-19, 19) grey levels; samples read windows of it (cheap)."""
    u = _uniform(split, np.arange(1), stream=2, count=_NOISE_BANK + length)[0]
    return np.float32(0.15 * 255) * (u - np.float32(0.5))


def _noise(split: str, index: np.ndarray, length: int) -> np.ndarray:
    """(len(index), length) per-sample noise: the bank window at a hashed offset of each sample."""
    bank = _noise_bank(split, length)
    offsets = (_uniform(split, index, stream=3, count=1)[:, 0] * _NOISE_BANK).astype(np.int64)
    return np.lib.stride_tricks.sliding_window_view(bank, length)[offsets]


def synthetic_images(split: str, index: np.ndarray, labels: np.ndarray, size: int, channels: int,
                     num_classes: int) -> np.ndarray:
    """uint8 (len(index), size, size, channels) images of the given samples (see module docstring)."""
    out = np.empty((len(index), size, size, channels), dtype=np.uint8)
    chunk = max(1, min(_CHUNK, _CHUNK_VALUES // (size * size * channels)))
    for start in range(0, len(index), chunk):  # small chunks keep the float temporaries in cache
        part = slice(start, start + chunk)
        out[part] = _images_chunk(split, index[part], labels[part], size, channels, num_classes)
    return out


def _images_chunk(split: str, index: np.ndarray, labels: np.ndarray, size: int, channels: int,
                  num_classes: int) -> np.ndarray:
    n = len(index)
    params = _uniform(split, index, stream=1, count=4)  # phase, contrast, brightness, frequency jitter
    angle = np.float32(np.pi / num_classes) * labels.astype(np.float32)
    freq = np.float32(2 * np.pi / (size / 4)) * (np.float32(0.85) + np.float32(0.3) * params[:, 3])
    phase = np.float32(2 * np.pi) * params[:, 0]
    contrast = np.float32(255) * (np.float32(0.25) + np.float32(0.2) * params[:, 1])
    brightness = np.float32(255) * (np.float32(0.35) + np.float32(0.3) * params[:, 2])
    coords = np.arange(size, dtype=np.float32)
    # sin(fx*x + fy*y + phase) = sin(fx*x + phase) cos(fy*y) + cos(fx*x + phase) sin(fy*y): outer
    # products of per-row/per-column vectors instead of size*size sines per image.
    arg_x = (freq * np.cos(angle))[:, None] * coords[None, :] + phase[:, None]
    arg_y = (freq * np.sin(angle))[:, None] * coords[None, :]
    sx, cx = contrast[:, None] * np.sin(arg_x), contrast[:, None] * np.cos(arg_x)
    gray = sx[:, None, :] * np.cos(arg_y)[:, :, None] + cx[:, None, :] * np.sin(arg_y)[:, :, None]
    gray += brightness[:, None, None]
    tint = _class_colours(num_classes, channels)[labels]  # (n, C)
    pixels = gray[..., None] * tint[:, None, None, :]
    pixels += _noise(split, index, size * size * channels).reshape(n, size, size, channels)
    pixels += np.float32(0.5)  # round half up by truncation below, after clipping to [0, 255.5]
    np.clip(pixels, 0, 255.5, out=pixels)
    return pixels.astype(np.uint8)


def _split(name: str, num: int, size: int, channels: int, num_classes: int) -> SplitData:
    labels = np.arange(num, dtype=np.int64) % num_classes
    return SplitData(labels=labels,
                     load=lambda idx: synthetic_images(name, np.asarray(idx), labels[idx], size, channels, num_classes))


def _check_range(option: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise InputError(f"--{option}: expected an integer in {low}..{high}, got {value}")


def _check_options(size: int, num_classes: int, num_train: int, num_val: int) -> None:
    """Refuse options beyond the source's bounds (see MAX_*), before anything is allocated."""
    _check_range("size", size, 1, MAX_SIZE)
    _check_range("num-train", num_train, 1, MAX_SAMPLES)
    _check_range("num-val", num_val, 0, MAX_SAMPLES)
    _check_range("num-classes", num_classes, 2, MAX_CLASSES)
    if num_classes > num_train:  # sample i has label i % K: the classes past num_train would have no sample
        raise InputError(f"--num-classes: {num_classes} classes for {num_train} train samples (--num-train), "
                         "expected at most one class per train sample")


def open_synthetic(path: Path | None, *, size: int, channels: int, num_classes: int, num_train: int,
                   num_val: int) -> Source:
    """The synthetic source: ``num_train`` + ``num_val`` images of side ``size``; ``path`` is unused."""
    _check_options(size, num_classes, num_train, num_val)
    return Source(
        name="synthetic",
        classes=tuple(f"class{c}" for c in range(num_classes)),
        shape=(size, size, channels),
        splits={"train": _split("train", num_train, size, channels, num_classes),
                "val": _split("val", num_val, size, channels, num_classes)},
    )
