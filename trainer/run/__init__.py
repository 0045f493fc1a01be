"""One training job: config, build, the step loop, checkpoints, torch.distributed, signals, evaluation.

``run_training`` (:mod:`~trainer.run.train`) is what ``lowmode-train`` / torchrun call;
:mod:`~trainer.run.step_bench` and :mod:`~trainer.run.loop_bench` measure a step's cost (``python -m trainer.bench``).
"""
