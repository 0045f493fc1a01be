"""Train a model: ``lowmode-train`` / ``python -m trainer`` / ``torchrun --nproc-per-node N -m trainer``.

    lowmode-train --config configs/fmnist_small_lowmode.toml --run-dir runs/lowmode
    lowmode-train --config configs/X.toml --run-dir RUN --set train.epochs=3 --set data.loader=dali
    lowmode-train --config configs/X.toml --run-dir RUN --fresh      # discard RUN's history, start over
    torchrun --nproc-per-node 2 -m trainer --config configs/X.toml --run-dir RUN --check-sync 50

A rerun in the same run directory resumes (--resume auto); starting from step 0 over a run's history
(metrics records or checkpoints) needs --fresh, which deletes it.

Exit codes: 0 done; 1 a bug (traceback); 2 bad config / dataset / checkpoint / run directory, or an
OS error on a named file such as a full disk (one "lowmode-train: error:" line); 3 non-finite loss;
75 stopped by SIGUSR1/SIGTERM after checkpointing (EX_TEMPFAIL: requeue the job, it resumes with
--resume auto).
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
    parser.add_argument("--resume", default=None,
                        help="auto (default: the newest valid checkpoint in RUN/checkpoints, else step 0 in a new "
                             "run directory), never (step 0; refused over a run's history), or a checkpoint path")
    parser.add_argument("--fresh", action="store_true",
                        help="start from step 0, deleting RUN's checkpoints and metrics first (implies --resume never)")
    parser.add_argument("--check-sync", type=int, default=None, metavar="N",
                        help="every N steps verify that all ranks agree on (mode, step, parameter sum); fail loudly if not")
    args = parser.parse_args(argv)
    if args.fresh and args.resume not in (None, "never"):
        parser.error(f"--fresh starts from step 0 and cannot be combined with --resume {args.resume}")
    args.resume = "never" if args.fresh else (args.resume or "auto")
    return args


def error_line(exc: BaseException) -> str:
    """The one line printed for an exit-2 error: the message (or for an OSError the file and strerror),
    with any line breaks folded, so scripts can rely on exactly one line."""
    message = f"{exc.filename}: {exc.strerror}" if isinstance(exc, OSError) else str(exc)
    return "lowmode-train: error: " + " ".join(line.strip() for line in message.splitlines())


def is_file_error(exc: BaseException) -> bool:
    """An OSError that names its file (a full disk, a permission, a missing shard): the user's to fix,
    so one line and exit 2; one without a file name is unexpected and stays a traceback."""
    return isinstance(exc, OSError) and exc.filename is not None and exc.strerror is not None


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
        run_training(config, args.run_dir, resume=args.resume, fresh=args.fresh)
    except (ConfigError, CheckpointError, DatasetFormatError, RunDirError) as exc:
        print(error_line(exc), file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        if not is_file_error(exc):
            raise
        print(error_line(exc), file=sys.stderr)
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
