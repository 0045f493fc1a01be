"""lowmode's trainer, in three subpackages (imports point down: run -> report -> method):

- :mod:`trainer.method`: the paper's method — the kernel transform T, the dual-mode model conversion,
  the BatchNorm policies of low steps, and the model registry;
- :mod:`trainer.report`: what a run records and how it is read back — the run directory, metrics
  records, W&B logging, ``lowmode-compare``;
- :mod:`trainer.run`: one training job — config, build, the step loop, checkpoints, torch.distributed,
  signals, evaluation — and the two benchmarks of its cost (per step: ``step_bench``; in the loop:
  ``loop_bench``), which apply the same host settings as a run.

``python -m trainer`` / ``lowmode-train`` is :mod:`trainer.__main__`; ``python -m trainer.bench`` runs
:mod:`trainer.run.step_bench`. See docs/ARCHITECTURE.md.
"""
