"""downsample_batch (on the device) against the preprocess's downsample (offline): the same low image.

Tolerances: uint8 in -> bitwise equal on the CPU (the same float32 operations in the same order);
float in (images normalised as the loaders do) -> within the offline rounding, 0.5 / (255 std) + 1e-5;
on CUDA (marked gpu) within one grey level.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.device_downsample import downsample_batch
from preprocess.downsample import METHODS, downsample


def _images(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _on_device(images: np.ndarray, ratio: int, method: str, device="cpu") -> np.ndarray:
    batch = torch.from_numpy(images).permute(0, 3, 1, 2).to(device)  # NHWC -> NCHW, as a loader delivers
    return downsample_batch(batch, ratio, method).permute(0, 2, 3, 1).cpu().numpy()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("ratio", [2, 3, 4])
def test_uint8_matches_the_preprocess_bitwise(method, ratio):
    # 4 images of 36x24 with 3 channels, and a 12x12 one-channel batch where the Gaussian's
    # mirrored border (radius 6 at r = 4) reaches past the far side of the image
    for shape in ((4, 36, 24, 3), (2, 12, 12, 1)):
        images = _images(shape, seed=ratio)
        offline = downsample(images, ratio, method)
        online = _on_device(images, ratio, method)
        assert online.dtype == np.uint8 and online.shape == offline.shape
        assert np.array_equal(online, offline), (method, ratio, shape)


@pytest.mark.parametrize("method", METHODS)
def test_normalised_floats_match_the_normalised_offline_image(method):
    images = _images((3, 28, 28, 1), seed=7)
    mean, std = 0.286 * 255, 0.353 * 255
    offline = (torch.from_numpy(downsample(images, 2, method)).permute(0, 3, 1, 2).float() - mean) / std
    online = downsample_batch((torch.from_numpy(images).permute(0, 3, 1, 2).float() - mean) / std, 2, method)
    assert online.dtype == torch.float32 and online.shape == offline.shape
    assert (online - offline).abs().max() <= 0.5 / std + 1e-5
    half = downsample_batch(torch.from_numpy(images).permute(0, 3, 1, 2).to(torch.bfloat16), 2, method)
    assert half.dtype == torch.bfloat16


def test_bad_arguments_are_named():
    batch = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    for kwargs, match in (({"ratio": 1}, "ratio"), ({"method": "cubic"}, "method"), ({"ratio": 3}, "divisible")):
        with pytest.raises(ValueError, match=match):
            downsample_batch(batch, **{"ratio": 2, **kwargs})
    with pytest.raises(ValueError, match="N, C, H, W"):
        downsample_batch(batch[0])
    with pytest.raises(ValueError, match="uint8 or floating"):
        downsample_batch(batch.to(torch.int32))


@pytest.mark.gpu
@pytest.mark.parametrize("method", METHODS)
def test_cuda_matches_the_preprocess_within_one_grey_level(method):
    images = _images((8, 32, 32, 3), seed=3)
    offline = downsample(images, 2, method).astype(np.int64)
    online = _on_device(images, 2, method, device="cuda").astype(np.int64)
    assert np.abs(online - offline).max() <= 1 and (online == offline).mean() > 0.99
