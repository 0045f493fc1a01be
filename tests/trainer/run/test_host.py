"""Host memory settings: glibc keeps freed memory, so repeated varying-size allocations stop page-faulting."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHILD = """
import resource, sys
import numpy as np
from trainer.run.host import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
for step in range(50):  # a "step" allocates 6 activations of 4 or 8 MB (alternating), then frees them
    size = (1 + step % 2) * 4_000_000 // 8
    activations = [np.ones(size) for _ in range(6)]
    del activations
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_keep_freed_memory_removes_the_page_faults_of_alternating_sizes():
    faults = {mode: int(subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True,
                                       check=True).stdout) for mode in ("default", "keep")}
    # default glibc trims the freed top of the heap after every step, so the next one faults its
    # 24-48 MB in again (~50 x 9,000 pages); kept, the heap is reused after the first steps.
    assert faults["default"] - faults["keep"] > 100_000, faults
