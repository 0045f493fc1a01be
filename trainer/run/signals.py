"""Graceful stop on SIGUSR1 / SIGTERM: finish the current step, checkpoint, exit 75.

Exit code 75 is EX_TEMPFAIL ("try again later"): a Slurm script requeues the job when it sees it
(RUN/status.json then says "stopped"). The handler only sets a flag; the training loop reads it
after each step and all ranks agree on the stop through the per-step all-reduce, so every rank
checkpoints after the same step.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

EXIT_REQUEUE = 75
STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)


class StopRequest:
    """Installs the handlers on :meth:`install` and restores the previous ones on :meth:`restore`."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_name is None:
            self.signal_name = signal.Signals(signum).name
            print(f"received {self.signal_name}: stopping after the current step", file=sys.stderr, flush=True)

    def install(self) -> "StopRequest":
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
