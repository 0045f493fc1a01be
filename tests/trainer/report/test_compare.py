"""lowmode-compare on run directories with known numbers: known reductions, plots, never-reached."""

from __future__ import annotations

import json

import pytest

from trainer.report.compare import _velocity, compare, load_run, main


def _make_run(path, policy, accs, walls, summary):
    path.mkdir(parents=True)
    (path / "config.toml").write_text(f'[schedule]\npolicy = "{policy}"\n')
    lines = [{"kind": "step", "step": 1, "epoch": 0, "mode": "full", "loss": 1.0, "lr": 0.1, "step_s": 0.1,
              "data_wait_s": 0.0, "images_per_s": 10.0, "train_wall_s": 0.1}]
    lines += [{"kind": "epoch", "epoch": e, "val_acc": a, "val_loss": 1 - a, "train_wall_s": w}
              for e, (a, w) in enumerate(zip(accs, walls))]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (path / "summary.json").write_text(json.dumps(summary))
    return path


@pytest.fixture
def runs(tmp_path):
    base = _make_run(tmp_path / "baseline", "none", [0.5, 0.7, 0.8, 0.9], [10, 20, 30, 40],
                     {"median_step_s_full": 0.100, "median_step_s_low": None, "low_step_fraction": 0.0})
    low = _make_run(tmp_path / "lowmode", "bernoulli", [0.55, 0.75, 0.9, 0.91], [8, 16, 24, 32],
                    {"median_step_s_full": 0.100, "median_step_s_low": 0.037, "low_step_fraction": 0.4})
    slow = _make_run(tmp_path / "never", "bernoulli", [0.3, 0.4, 0.5, 0.6], [5, 10, 15, 20],
                     {"median_step_s_full": 0.100, "median_step_s_low": 0.050, "low_step_fraction": 0.5})
    return [str(low), str(base), str(slow)]  # the baseline is found by its policy, not its position


def test_known_numbers_give_known_reductions(runs, tmp_path):
    result = compare(runs, out=tmp_path / "out")
    assert result["target_acc"] == 0.9 and result["baseline"].endswith("baseline")
    low, base, never = (result["runs"][r] for r in runs)
    assert base["time_to_target_s"] == 40 and base["time_reduction"] is None
    assert low["time_to_target_s"] == 24 and low["time_reduction"] == pytest.approx(0.4)
    assert low["iteration_time_reduction"] == pytest.approx(0.63)
    assert low["final_error"] == pytest.approx(0.09) and base["final_error"] == pytest.approx(0.1)
    assert never["time_to_target_s"] is None and never["time_reduction"] is None
    table = (tmp_path / "out" / "table.md").read_text()
    assert table == result["table"]
    assert "| lowmode | bernoulli | 9.0% | 91.0% | 24.0 | 40.0% | 100.0 | 37.0 | 63.0% | 40.0% | 32.0 |" in table
    assert "**never never reached the target** (best 60.0%)" in table
    assert "Target accuracy: 90.00% (final accuracy of baseline baseline)" in table
    for name in ("accuracy_vs_time.png", "velocity.png", "compare.png"):
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "out" / "compare.json").read_text())["target_acc"] == 0.9


def test_explicit_target_and_baseline(runs):
    result = compare(runs, target_acc=0.75, baseline=runs[2])
    never = result["runs"][runs[2]]
    assert never["time_to_target_s"] is None  # 0.75 is never reached by that baseline
    assert result["runs"][runs[0]]["time_to_target_s"] == 16
    assert result["runs"][runs[0]]["time_reduction"] is None  # no baseline time to compare with


def test_velocity_is_a_three_epoch_moving_average(runs):
    epochs, vel = _velocity(load_run(runs[1]))
    # dA/dtau: 20, 10, 10 points per 10 s = 120, 60, 60 points/min; mean of the window = 80
    assert epochs == [3] and vel == pytest.approx([80.0])


def test_cli_prints_table_and_rejects_bad_input(runs, tmp_path, capsys):
    assert main([*runs, "--out", str(tmp_path / "cli"), "--target-acc", "0.8"]) == 0
    out = capsys.readouterr().out
    assert "Target accuracy: 80.00% (--target-acc)" in out and (tmp_path / "cli" / "table.md").exists()
    assert main([str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err
    assert main([*runs, "--target-acc", "90"]) == 2


def test_compare_imports_without_torch():
    """Reading results must not pay torch's import time (seconds) nor need torch at all."""
    import subprocess
    import sys

    code = ("import sys, trainer.report.compare; "
            "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')); "
            "assert not loaded, loaded[:5]")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-1500:]
