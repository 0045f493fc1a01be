"""Each downsampling method against an independent torch reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from preprocess.downsample import downsample, gaussian_sigma


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
