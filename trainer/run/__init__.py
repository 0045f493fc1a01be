"""One training job: config, build, the step loop, checkpoints, torch.distributed, signals, evaluation.

``run_training`` (:mod:`~trainer.run.train`) is what ``lowmode-train`` / torchrun call.
"""
