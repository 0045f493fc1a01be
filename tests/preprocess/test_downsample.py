"""Each downsampling method against an independent reference: torch for integer ratios and bilinear, the
module docstring's formulas written out in float64 for fractional sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import preprocess.downsample as downsample_module
from preprocess.downsample import axis_taps, downsample, gaussian_sigma, mirror_index, resize, resize_many


def _reference(images: np.ndarray, ratio: int, method: str) -> np.ndarray:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).double()
    if method == "area":
        y = F.avg_pool2d(x, ratio)
    elif method == "bilinear":
        y = F.interpolate(x, scale_factor=1 / ratio, mode="bilinear", align_corners=False, antialias=False)
    else:  # full 2-D Gaussian convolution of the mirrored image, then every r-th pixel from the block centre
        sigma = gaussian_sigma(ratio)
        radius = math.ceil(4 * sigma)
        g = torch.exp(-0.5 * (torch.arange(-radius, radius + 1).double() / sigma) ** 2)
        kernel = torch.outer(g, g) / torch.outer(g, g).sum()
        padded = np.pad(images, ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode="symmetric")
        xp = torch.from_numpy(padded).permute(0, 3, 1, 2).double()
        c = xp.shape[1]
        blurred = F.conv2d(xp, kernel.expand(c, 1, -1, -1), groups=c)
        start = (ratio - 1) // 2
        y = blurred[:, :, start::ratio, start::ratio]
    return y.round().clamp(0, 255).permute(0, 2, 3, 1).numpy().astype(np.int64)


@pytest.mark.parametrize("method", ["gaussian", "area", "bilinear"])
@pytest.mark.parametrize("ratio", [2, 3])
def test_matches_reference(method, ratio):
    images = np.random.default_rng(ratio).integers(0, 256, (5, 12, 18, 3), dtype=np.uint8)
    low = downsample(images, ratio, method).astype(np.int64)
    ref = _reference(images, ratio, method)
    assert low.shape == (5, 12 // ratio, 18 // ratio, 3)
    assert np.abs(low - ref).max() <= 1  # float32 vs float64 rounding at .5 boundaries
    assert (low == ref).mean() > 0.99


def test_gaussian_sigma_and_constant_image():
    assert gaussian_sigma(2) == 0.5 and gaussian_sigma(4) == 1.5
    flat = np.full((2, 8, 8, 1), 77, dtype=np.uint8)
    for method in ("gaussian", "area", "bilinear"):
        assert (downsample(flat, 2, method) == 77).all()


def test_side_not_divisible():
    with pytest.raises(ValueError, match="--ratio"):
        downsample(np.zeros((1, 9, 8, 1), dtype=np.uint8), 2)


# ----------------------------------------------------------------------------- any smaller size (a resolution ladder)


def _smooth(n: int, side: int, channels: int, seed: int = 0) -> np.ndarray:
    """uint8 images of low-frequency waves (nothing a downscale should alias)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    images = []
    for _ in range(n):
        fx, fy, phase = rng.uniform(0.2, 1.0, 3)
        planes = [127 + 100 * np.sin(2 * np.pi * (fx * x + fy * y) + phase + c) for c in range(channels)]
        images.append(np.stack(planes, axis=-1))
    return np.rint(np.stack(images)).astype(np.uint8)


def _definition(images: np.ndarray, height: int, width: int, method: str) -> np.ndarray:
    """The module docstring's fractional definitions, written out directly in float64 (2-D weights as the
    outer product of each axis's weights, straight from the formulas; borders mirrored with np.pad);
    not rounded."""
    def weights(n: int, m: int) -> np.ndarray:  # (m, n) matrix over the mirrored input
        s = n / m
        w = np.zeros((m, n))
        for i in range(m):
            x = (i + 0.5) * s - 0.5
            if method == "gaussian":
                sigma = (s - 1) / 2
                radius = math.ceil(4 * sigma)
                for j in range(math.ceil(x - radius), math.floor(x + radius) + 1):
                    w[i, int(np.pad(np.arange(n), 4 * n, mode="symmetric")[j + 4 * n])] += \
                        math.exp(-(j - x) ** 2 / (2 * sigma ** 2))
            elif method == "area":
                for j in range(n):
                    w[i, j] = max(0.0, min((i + 1) * s, j + 1) - max(i * s, j))
            else:
                j0 = math.floor(x)
                w[i, j0] += 1 - (x - j0)
                w[i, min(j0 + 1, n - 1)] += x - j0
            w[i] /= w[i].sum()
        return w

    rows, cols = weights(images.shape[1], height), weights(images.shape[2], width)
    return np.einsum("ia,nabc,jb->nijc", rows, images.astype(np.float64), cols)


@pytest.mark.parametrize("method", ["gaussian", "area", "bilinear"])
@pytest.mark.parametrize("size", [(24, 36), (20, 30), (7, 21), (31, 45)])  # no axis shrinks by an integer
def test_fractional_sizes_follow_the_definition(method, size):
    images = np.random.default_rng(7).integers(0, 256, (4, 32, 48, 3), dtype=np.uint8)
    low = resize(images, *size, method).astype(np.int64)
    assert low.shape == (4, *size, 3)
    exact = _definition(images, *size, method)
    ref = np.clip(np.rint(exact), 0, 255)
    near_tie = np.abs(exact - np.floor(exact) - 0.5) < 1e-3  # float32 may round these either way
    assert np.abs(low - ref).max() <= 1 and np.array_equal(low[~near_tie], ref[~near_tie])
    assert (low == ref).mean() > 0.9  # area at 4/3 is exactly .5 often; the float64 reference wobbles there


def test_bilinear_fractional_matches_torch():
    images = np.random.default_rng(8).integers(0, 256, (4, 20, 30, 3), dtype=np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).double()
    for size in [(15, 22), (13, 11), (7, 21)]:
        ref = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
        ref = ref.round().clamp(0, 255).permute(0, 2, 3, 1).numpy()
        low = resize(images, *size, "bilinear")
        assert np.abs(low - ref).max() <= 1 and (low == ref).mean() > 0.97


@pytest.mark.parametrize("method", ["gaussian", "area", "bilinear"])
def test_constant_image_stays_constant_at_every_size(method):
    flat = np.full((2, 16, 24, 3), 201, dtype=np.uint8)
    for height in range(1, 16):
        width = 24 * height // 16
        if width:
            assert (resize(flat, height, width, method) == 201).all(), height


@pytest.mark.parametrize("method", ["gaussian", "area", "bilinear"])
def test_integer_ratios_take_the_integer_path(method):
    images = np.random.default_rng(9).integers(0, 256, (6, 24, 36, 3), dtype=np.uint8)
    for ratio in (2, 3, 4, 6):
        assert np.array_equal(resize(images, 24 // ratio, 36 // ratio, method), downsample(images, ratio, method))
    sizes = [(12, 18), (18, 27), (8, 12)]  # 2, 4/3, 3 at once: each as on its own
    for got, size in zip(resize_many(images, sizes, method), sizes):
        assert np.array_equal(got, resize(images, *size, method))


def test_gaussian_fractional_is_close_to_pil_antialiased_resize():
    """A smooth image: the scale-following Gaussian and PIL's antialiased (triangle-filter) resize agree
    closely; they are different filters, so only loosely."""
    images = _smooth(4, 64, 3)
    for side in (48, 40, 37, 24):
        low = resize(images, side, side, "gaussian").astype(np.int64)
        pil = np.stack([np.asarray(Image.fromarray(img).resize((side, side), Image.BILINEAR)) for img in images])
        diff = np.abs(low - pil.astype(np.int64))
        assert diff.mean() < 1.0 and diff.max() <= 6, (side, diff.mean(), diff.max())


def test_fractional_bytes_do_not_depend_on_the_chunking(monkeypatch):
    images = np.random.default_rng(10).integers(0, 256, (150, 16, 16, 3), dtype=np.uint8)
    sizes = [(12, 12), (10, 10), (5, 5), (8, 8)]
    for method in ("gaussian", "area", "bilinear"):
        whole = resize_many(images, sizes, method)
        monkeypatch.setattr(downsample_module, "_CHUNK", 7)
        chunked = resize_many(images, sizes, method)
        monkeypatch.undo()
        one_by_one = [np.concatenate([resize(images[i:i + 1], *s, method) for i in range(150)]) for s in sizes]
        for a, b, c in zip(whole, chunked, one_by_one):
            assert np.array_equal(a, b) and np.array_equal(a, c)


def test_tiny_scale_steps_and_tiny_images():
    images = np.random.default_rng(11).integers(0, 256, (2, 64, 64, 1), dtype=np.uint8)
    near = resize(images, 63, 63)  # sigma 1/126: one tap dominates, no 0/0 from underflowing weights
    assert near.shape == (2, 63, 63, 1) and np.abs(near.astype(int) - images[:, :63, :63].astype(int)).max() < 256
    index, weight = axis_taps("gaussian", 64, 63)
    assert np.isfinite(weight).all() and np.allclose(weight.sum(axis=1), 1, atol=1e-6)
    tiny = np.arange(2 * 3 * 3 * 1, dtype=np.uint8).reshape(2, 3, 3, 1) * 10
    for method in ("gaussian", "area", "bilinear"):
        assert resize(tiny, 2, 2, method).shape == (2, 2, 2, 1)
        assert resize(tiny, 1, 1, method).shape == (2, 1, 1, 1)


def test_axis_taps_mirror_like_np_pad_and_sum_to_one():
    for n in (1, 2, 5):
        assert np.array_equal(np.pad(np.arange(n), 13, mode="symmetric"), mirror_index(np.arange(-13, n + 13), n))
    for method in ("gaussian", "area", "bilinear"):
        for n, m in ((32, 24), (32, 20), (128, 112), (12, 4), (10, 3)):
            index, weight = axis_taps(method, n, m)
            assert index.shape == weight.shape and index.shape[0] == m and weight.dtype == np.float32
            assert ((0 <= index) & (index < n)).all() and np.allclose(weight.sum(axis=1), 1, atol=1e-6)
    index, weight = axis_taps("area", 32, 24)  # s = 4/3: [1, 1/3], [2/3, 2/3], [1/3, 1] (over s)
    assert np.allclose(weight[:3] * 4 / 3, [[1, 1 / 3], [2 / 3, 2 / 3], [1 / 3, 1]])
    assert index[:3].tolist() == [[0, 1], [1, 2], [2, 3]]


def test_resize_refuses_sizes_not_below_the_input():
    images = np.zeros((1, 8, 8, 1), dtype=np.uint8)
    for size in ((8, 4), (4, 9), (0, 4)):
        with pytest.raises(ValueError, match="resize: expected a size below 8x8"):
            resize(images, *size)
