"""What a run records and how it is read back.

- :mod:`~trainer.report.rundir`: the run directory contract (``RunDir`` owns every path in it).
- :mod:`~trainer.report.metrics`: ``metrics.jsonl`` records, per-epoch sums, ``summary.json``.
- :mod:`~trainer.report.wandb_logger`: Weights & Biases logging (offline by default).
- :mod:`~trainer.report.compare`: ``lowmode-compare`` (the paper's Table 1 and plots); imports no torch.

Kept free of module-level torch imports, so reading results stays fast.
"""
