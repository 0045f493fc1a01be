"""Prepare the next batches on a handover thread, so the training thread only takes a finished one.

Even with DALI's or the DataLoader's workers doing the per-pixel work, each batch still costs the thread
that asks for it: DALI's ``pipe.run()`` (its serial external-source callback gathers the step's shard
bytes), copying the outputs into torch tensors, the label check, the move to the device. Measured on a
2-core CPU (docs/RESULTS.md, issue 11): 1.1–1.8 ms per Fashion-MNIST batch, 3.8–6.5% of a ResNet-8
step, all of it on the model's thread. ``ahead`` runs the loader's own generator on a daemon thread
``depth`` batches ahead; the training thread's ``next()`` becomes a queue ``get``.

Contract kept: the same batches in the same order (the thread runs the very same generator; nothing in
a loader draws from a global RNG), an exception raised while preparing a batch is raised by the
``next()`` that would have returned it, and closing the consumer early (resume, ``break``) stops the
thread and closes the inner generator *on that thread* (a DALI pipeline is destroyed where it ran)
before ``close()`` returns.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()
_POLL_S = 0.05
"""How often a blocked producer re-checks whether the consumer went away."""


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def ahead(make: Callable[[], Iterator[T]], depth: int, name: str = "lowmode-handover") -> Iterator[T]:
    """The items of ``make()``, produced on a thread up to ``depth`` items ahead (``depth`` 0: inline)."""
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    if depth == 0:
        yield from make()
        return
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        """Hand ``item`` over unless the consumer stopped first; True if handed over."""
        while not stop.is_set():
            try:
                ready.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        items = None
        try:
            items = make()
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the consumer's thread
            put(_Failure(exc))
        finally:
            if items is not None and hasattr(items, "close"):
                items.close()  # a generator's cleanup (DALI pipeline, DataLoader workers) runs here

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()
