#!/usr/bin/env python3
"""docs/RESULTS.md 0.1 (issue 24): validation of a run's epoch-0..2 checkpoints with BN re-estimated from N full
batches (N = 0: the statistics the low steps left). Usage: .venv/bin/python scripts/results/bn_recal_sweep.py RUN_DIR
(writes RUN_DIR/../recal_sweep.json)."""
import json, sys, time
from pathlib import Path
import torch
from trainer.run.config import load_config
from trainer.run.build import build
from trainer.run.distributed import DistInfo
from trainer.run.checkpoint import CheckpointManager, load_checkpoint
from trainer.method.dualmode import recalibrate_bn
from trainer.run.evaluate import evaluate

run = Path(sys.argv[1])
torch.set_num_threads(1)
config = load_config(run / "config.toml")
parts = build(config, DistInfo(rank=0, world_size=1, local_rank=0), torch.device("cpu"))
out = []
for path in CheckpointManager(run / "checkpoints").existing():
    state = load_checkpoint(path)
    epoch = state["progress"]["epoch"] - 1
    if epoch > 2 or state["progress"]["step_in_epoch"] != 0:
        continue
    for n in (0, 1, 2, 4, 8, 16):
        parts.model.load_state_dict(state["model"])
        if n == 0:  # the running statistics the low steps left: the initial ones
            for m in parts.model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.reset_running_stats()
            sec = 0.0
        else:
            t = time.perf_counter()
            recalibrate_bn(parts.model, parts.recal_loader.epoch(epoch), max_batches=n)
            sec = time.perf_counter() - t
        r = evaluate(parts.model, parts.val_loader.epoch(0), parts.device)
        out.append({"epoch": epoch, "batches": n, "seconds": round(sec, 2), **{k: round(v, 4) for k, v in r.items()}})
        print(out[-1], flush=True)
json.dump(out, open(run.parent / "recal_sweep.json", "w"), indent=1)
