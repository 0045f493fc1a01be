"""examples/own_loop.py runs as a user would run it (a fresh process) and learns its tiny generated task."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from tests.trainer.train_helpers import ROOT, subprocess_env

EXAMPLE = ROOT / "examples" / "own_loop.py"


def _user_lines() -> list[str]:
    text = EXAMPLE.read_text()
    body = text.split("# ----- user code begins -----")[1].split("# ----- user code ends -----")[0]
    return [line for line in body.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_own_loop_example_runs_and_learns():
    assert len(_user_lines()) <= 60  # the budget for the recipe
    start = time.monotonic()
    result = subprocess.run([sys.executable, str(EXAMPLE)], cwd=ROOT, env=subprocess_env(), capture_output=True,
                            text=True, timeout=300)
    wall = time.monotonic() - start
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("dual-mode: 16 convs converted (3x3->1x1), 1 skipped in low mode")
    epochs = [re.match(r"epoch (\d): last loss [\d.]+, low steps (\d+)%, val accuracy ([\d.]+)$", line) for line in lines[1:]]
    assert len(epochs) == 3 and all(epochs), result.stdout
    assert all(0 < int(m.group(2)) < 100 for m in epochs)  # both modes ran
    assert float(epochs[-1].group(3)) >= 0.5, result.stdout  # chance is 0.1
    print(f"examples/own_loop.py: {wall:.1f} s")
