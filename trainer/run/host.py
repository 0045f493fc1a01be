"""Host-side settings of a training process that change its speed, never its results.

glibc's malloc returns freed memory above a (dynamic) threshold to the kernel and serves large
requests with fresh ``mmap``s; a training step allocates and frees tens of MB of activations, and when
the sizes vary from step to step (low and full steps alternate) the freed memory keeps going back to
the kernel and every new step page-faults it in again (measured in docs/RESULTS.md). ``keep_freed_memory``
tells glibc to serve every allocation from its heap and never trim it, so a step reuses the memory of
the previous ones: the process keeps its peak footprint instead of paying page faults on every step.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger("lowmode.train")

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse (no per-allocation mmap, no trimming); False when not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    if not ok:
        log.warning("mallopt refused the settings; glibc's defaults stay")
    return ok
