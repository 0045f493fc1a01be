"""Validation: always full mode, full resolution, every validation sample exactly once over ranks.

The val loader gives rank r the samples r::world_size (last partial batch kept); each rank sums
its loss and correct count and one all-reduce makes the totals global. Runs on the model without
the DDP wrapper (no collectives per batch, ranks may have different batch counts).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from pipeline.schedule import FULL
from trainer.method.dualmode import set_mode
from trainer.run import distributed
from trainer.run.precision import autocast_context


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: Iterable, device: torch.device, *,
             precision: str = "fp32") -> dict[str, float]:
    """Mean cross-entropy and accuracy (fraction) over all ranks' validation batches.

    Leaves the model in train mode and full mode (the loop sets each step's mode anyway).
    """
    model.eval()
    set_mode(model, FULL)
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
    try:
        for batch in batches:
            with autocast_context(device, precision):
                logits = model(batch.images)
            loss = F.cross_entropy(logits.float(), batch.labels, reduction="sum")
            sums[0] += loss.double()
            sums[1] += (logits.argmax(dim=1) == batch.labels).sum()
            sums[2] += batch.labels.numel()
    finally:
        model.train()
    distributed.all_reduce_sum(sums)
    loss_sum, correct, count = sums.tolist()
    if count == 0:
        raise ValueError("evaluation saw no validation samples (empty 'val' split?)")
    return {"val_loss": loss_sum / count, "val_acc": correct / count}
