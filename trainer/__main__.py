"""Train a model: ``lowmode-train`` / ``python -m trainer`` / ``torchrun --nproc-per-node N -m trainer``.

    lowmode-train --config configs/fmnist_small_lowmode.toml --run-dir runs/lowmode
    lowmode-train --config configs/X.toml --run-dir RUN --set train.epochs=3 --set data.loader=dali
    torchrun --nproc-per-node 2 -m trainer --config configs/X.toml --run-dir RUN --check-sync 50

Exit codes: 0 done; 2 bad config / dataset / checkpoint; 3 non-finite loss; 75 stopped by
SIGUSR1/SIGTERM after checkpointing (EX_TEMPFAIL: requeue the job, it resumes with --resume auto).
torchrun forwards SIGTERM to its workers but itself exits 1 when they exit 75: scripts should
check RUN/status.json ("state": "stopped") to decide on a requeue.
"""

from __future__ import annotations

import argparse
import sys

EXIT_USAGE = 2
EXIT_NONFINITE = 3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lowmode-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="TOML preset (configs/*.toml); omitted = defaults + --set")
    parser.add_argument("--run-dir", required=True, help="output directory (config, metrics, checkpoints)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value (TOML literal, else a string); repeatable")
    parser.add_argument("--resume", default="auto",
                        help="auto (newest valid checkpoint in RUN/checkpoints, else fresh), never, or a checkpoint path")
    parser.add_argument("--check-sync", type=int, default=None, metavar="N",
                        help="every N steps verify that all ranks agree on (mode, step, parameter sum); fail loudly if not")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse, build, run; returns the exit code (see module docstring)."""
    args = parse_args(argv)
    from pipeline import DatasetFormatError
    from trainer.report.rundir import RunDirError
    from trainer.run.checkpoint import CheckpointError
    from trainer.run.config import ConfigError, load_config
    from trainer.run.loop import NonFiniteLossError, TrainingStopped
    from trainer.run.signals import EXIT_REQUEUE
    from trainer.run.train import run_training

    overrides = list(args.overrides)
    if args.check_sync is not None:
        overrides.append(f"train.check_sync_every_steps={args.check_sync}")
    try:
        config = load_config(args.config, overrides)
        run_training(config, args.run_dir, resume=args.resume)
    except (ConfigError, CheckpointError, DatasetFormatError, RunDirError) as exc:
        print(f"lowmode-train: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NonFiniteLossError as exc:
        print(f"lowmode-train: {exc}", file=sys.stderr)
        return EXIT_NONFINITE
    except TrainingStopped as exc:
        print(f"lowmode-train: {exc}; exit {EXIT_REQUEUE} (requeue to resume)", file=sys.stderr)
        return EXIT_REQUEUE
    return 0


if __name__ == "__main__":
    sys.exit(main())
