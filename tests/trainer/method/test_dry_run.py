"""check_low_mode_input / check_full_mode_input name the module a low (or full) input cannot pass: one whose
feature map vanishes, and a layer the path cannot run (any error it raises, not only torch's RuntimeError)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainer.method.dualmode import check_full_mode_input, check_low_mode_input, convert_to_dual_mode, get_mode


class _SizeCheck(nn.Module):
    """A patch embedding in the style of ViTs: refuses any image size but its own (AssertionError)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-1] == self.size, f"Input width ({x.shape[-1]}) doesn't match model ({self.size})"
        return x


def _fixed_head_net() -> nn.Module:
    """A CNN whose head flattens a fixed 8x8 map into a Linear: fine in full mode at 16 px, not in low mode."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))


def test_a_layer_the_low_path_cannot_run_is_named_with_its_type():
    model = _fixed_head_net()
    check_full_mode_input(model, 1, 16, 16)  # an unconverted model: full mode only
    convert_to_dual_mode(model, name_pattern=r"^4$", low_kernels="pool")
    check_full_mode_input(model, 1, 16, 16)
    with pytest.raises(ValueError, match=r"low-mode input 8x8: module '6' \(Linear\) fails on its 2x64 input: "
                                         r"mat1 and mat2 shapes cannot be multiplied"):
        check_low_mode_input(model, 1, 8, 8)
    assert get_mode(model) == "full"


def test_an_assertion_inside_a_layer_is_named_too():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), _SizeCheck(32))
    convert_to_dual_mode(model, low_kernels="keep")
    check_full_mode_input(model, 3, 32, 32)
    with pytest.raises(ValueError, match=r"module '1' \(_SizeCheck\) fails on its 16x16 input: Input width \(16\)"):
        check_low_mode_input(model, 3, 16, 16)
    with pytest.raises(ValueError, match=r"full-mode input 8x8: module '1' \(_SizeCheck\)"):
        check_full_mode_input(model, 3, 8, 8)


def test_full_mode_check_names_a_vanishing_map_and_bad_arguments():
    model = nn.Sequential(nn.Conv2d(1, 2, 5), nn.AdaptiveAvgPool2d(1))
    with pytest.raises(ValueError, match=r"full-mode input 4x4: module '0' \(Conv2d\) fails on its 4x4 input"):
        check_full_mode_input(model, 1, 4, 4)
    with pytest.raises(ValueError, match="full_height"):
        check_full_mode_input(model, 1, 0, 4)
