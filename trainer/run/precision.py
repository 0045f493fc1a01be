"""Numeric precision of training and evaluation steps (``train.precision``)."""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16")


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on GPU for ``precision == "bf16"``; a no-op context otherwise (fp32, or CPU)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
