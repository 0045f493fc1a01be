"""torchrun for Slurm batch jobs: the agent ignores SIGUSR1, and "every worker exited 75" becomes exit 75.

    python slurm/launch.py <torchrun arguments>     # e.g. --nnodes 2 --nproc-per-node 4 ... -m trainer ...

slurm/train.sbatch runs this once per node instead of ``torchrun``; the arguments are torchrun's, unchanged.
Two things differ, both for the checkpoint-and-requeue cycle:

- Slurm's ``--signal=USR1@90`` reaches every process of the job step: this agent and its workers. torchrun
  installs no SIGUSR1 handler, so the default action would kill the agent, the step would end, and Slurm would
  kill the workers while they checkpoint. Here the agent ignores SIGUSR1; the trainer workers install their
  own handler (a process's handler replaces an inherited "ignore"), finish the step, checkpoint, exit 75.
- torchrun reports any worker failure as exit code 1. The batch script must tell "checkpointed, requeue me"
  (exit 75, EX_TEMPFAIL) from a real failure, so that case exits 75 here. A worker exits 75 only after the
  checkpoint's barrier, which every rank has passed; the agent then SIGTERMs the ranks still tearing down,
  so those show up as killed by a signal (negative codes). Any positive code other than 75 is a real error.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterable, Sequence

REQUEUE_EXIT_CODE = 75  # trainer.signals.EXIT_REQUEUE; duplicated so this file imports nothing from lowmode


def requeue_requested(exit_codes: Iterable[int]) -> bool:
    """True when some worker exited 75 and every other failure is 75 or a kill by signal (negative code).

    ``exit_codes`` are the failed workers' codes as torchrun reports them (-N: killed by signal N).
    """
    codes = list(exit_codes)
    return REQUEUE_EXIT_CODE in codes and all(code == REQUEUE_EXIT_CODE or code < 0 for code in codes)


def main(argv: Sequence[str] | None = None) -> int:
    """Run torchrun's main with ``argv`` (default: sys.argv[1:]); return this launcher's exit code."""
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # before torchrun starts workers: see the module docstring
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun_main

    try:
        torchrun_main(list(argv) if argv is not None else None)
    except ChildFailedError as err:
        codes = [failure.exitcode for failure in err.failures.values()]
        if requeue_requested(codes):
            print(f"launch: workers exited {codes}: checkpointed, asking for a requeue (exit 75)",
                  file=sys.stderr, flush=True)
            return REQUEUE_EXIT_CODE
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
