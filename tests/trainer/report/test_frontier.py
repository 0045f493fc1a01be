"""The accuracy-vs-time frontier on known numbers: interpolation, above/below, single-point baselines, CLI."""

from __future__ import annotations

import json

import pytest

from trainer.report import frontier as fr
from trainer.report.compare import main


def _config(policy="none", epochs=10, seed=0, **extra):
    config = {"schedule.policy": policy, "train.epochs": epochs, "train.seed": seed,
              "optim.lr_milestones_epochs": [epochs // 2], "data.dir": f"/data/{seed}", "model.dual_mode": policy != "none"}
    config.update(extra)
    return config


def _run(path, acc, wall, **config):
    return fr.RunPoint(path, _config(**config), acc, wall)


def _baseline_runs():
    # budgets 10/20/40 epochs, two seeds each: means (100 s, 0.80), (200 s, 0.90), (400 s, 0.94)
    return [_run("b10s0", 0.79, 90, epochs=10), _run("b10s1", 0.81, 110, epochs=10, seed=1),
            _run("b20s0", 0.90, 200, epochs=20), _run("b20s1", 0.90, 200, epochs=20, seed=1),
            _run("b40s0", 0.94, 400, epochs=40)]


def test_interpolated_time_saved_on_known_numbers():
    runs = _baseline_runs() + [_run("l20s0", 0.85, 100, policy="ramp", epochs=20),
                               _run("l20s1", 0.85, 100, policy="ramp", epochs=20, seed=1)]
    result = fr.analyse(runs)
    points = {(p["family"], p["epochs"]): p for p in result["points"]}
    base10 = points["baseline", 10]
    assert base10["acc"] == pytest.approx(0.80) and base10["time_s"] == pytest.approx(100) and base10["seeds"] == [0, 1]
    assert base10["acc_std"] == pytest.approx(0.01414, abs=1e-4)
    low = points["policy=ramp", 20]
    # 0.85 lies halfway between (100 s, 0.80) and (200 s, 0.90): t_baseline = 150 s, saved = 1 - 100/150
    assert low["baseline_time_s"] == pytest.approx(150) and low["time_saved"] == pytest.approx(1 / 3)
    assert low["status"] == fr.ON and result["best_baseline_acc"] == pytest.approx(0.94)
    assert result["frontier"] == [(100, pytest.approx(0.80)), (200, pytest.approx(0.90)), (400, pytest.approx(0.94))]


def test_above_and_below_the_frontier():
    runs = _baseline_runs() + [_run("hi", 0.95, 300, policy="bernoulli"),
                               _run("lo", 0.70, 50, policy="bernoulli", epochs=5)]
    points = {p["epochs"]: p for p in fr.analyse(runs)["points"] if p["family"] != "baseline"}
    assert points[10]["status"] == fr.ABOVE and points[10]["time_saved"] is None
    assert points[5]["status"] == fr.BELOW and points[5]["time_saved"] is None
    assert points[5]["time_saved_bound"] == pytest.approx(0.5)  # 1 - 50 / 100 (the cheapest baseline point)
    table = fr.markdown(fr.analyse(runs))
    assert "above the frontier's best" in table and "below the frontier's cheapest (at most 50.0%)" in table


def test_dominated_baseline_points_leave_the_envelope():
    assert fr.envelope([(100, 0.8), (150, 0.78), (200, 0.9)]) == [(100, 0.8), (200, 0.9)]
    assert fr.baseline_time_at(0.85, [(100, 0.8), (150, 0.78), (200, 0.9)]) == (pytest.approx(150), fr.ON)


def test_single_point_baseline_family():
    runs = [_run("b", 0.9, 100), _run("same", 0.9, 80, policy="bernoulli"),
            _run("better", 0.91, 80, policy="bernoulli", **{"schedule.p": 0.25}),
            _run("worse", 0.8, 80, policy="bernoulli", **{"schedule.p": 0.75})]
    points = {p["family"]: p for p in fr.analyse(runs)["points"]}
    assert points["policy=bernoulli"]["time_saved"] == pytest.approx(0.2)  # equal accuracy at 80 s vs 100 s
    assert points["p=0.25, policy=bernoulli"]["status"] == fr.ABOVE
    assert points["p=0.75, policy=bernoulli"]["status"] == fr.BELOW


def test_families_ignore_budget_seed_and_paths_but_not_method_keys():
    a = _config("bernoulli", epochs=10, seed=0)
    b = _config("bernoulli", epochs=30, seed=2)
    assert fr.family_key(a) == fr.family_key(b)
    assert fr.family_key(a) != fr.family_key(_config("bernoulli", **{"model.low_kernels": "keep"}))
    assert fr.family_label(_config("ramp", **{"model.low_kernels": "keep"}), _config()) == "low_kernels=keep, policy=ramp"


def test_no_baseline_is_an_error():
    with pytest.raises(fr.FrontierError, match="no baseline run"):
        fr.analyse([_run("l", 0.8, 10, policy="bernoulli")])


def _write_run(path, policy, epochs, acc, wall, seed=0):
    path.mkdir(parents=True)
    (path / "config.toml").write_text(f'[schedule]\npolicy = "{policy}"\n[train]\nepochs = {epochs}\nseed = {seed}\n')
    (path / "metrics.jsonl").write_text(json.dumps({"kind": "epoch", "epoch": epochs - 1, "val_acc": acc,
                                                    "val_loss": 1.0, "train_wall_s": wall}) + "\n")
    return str(path)


def test_cli_writes_the_frontier_files(tmp_path, capsys):
    runs = [_write_run(tmp_path / "b5", "none", 5, 0.8, 50.0), _write_run(tmp_path / "b10", "none", 10, 0.9, 100.0),
            _write_run(tmp_path / "l10", "ramp", 10, 0.88, 60.0)]
    out = tmp_path / "out"
    assert main([*runs, "--frontier", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| policy=ramp | 10 | 0 | 88.00% | 60.0 | 90.0 | 33.3% |" in printed
    assert (out / "frontier.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((out / "frontier.json").read_text())
    assert [p["family"] for p in saved["points"]] == ["baseline", "baseline", "policy=ramp"]
    assert (out / "frontier.md").read_text().startswith("| family |")
    assert main([runs[2], "--frontier", "--out", str(tmp_path / "x")]) == 2
    assert "no baseline run" in capsys.readouterr().err


def test_full_step_equivalents_count_each_low_step_at_its_measured_cost():
    costs = {"ratio": 0.2, "keep_ratio": 0.3}
    assert fr.full_step_equivalents({}, 100, 50, 0, costs) == pytest.approx(110)  # pooled kernels: 0.2
    keep = {"model.low_kernels": "keep"}
    assert fr.full_step_equivalents(keep, 100, 50, 8, costs) == pytest.approx(100 + 15 + 8)
    doubled = {"model.low_kernels": "keep", "schedule.low_batch_scale": 2}  # 2x the images per low step
    assert fr.full_step_equivalents(doubled, 100, 50, 0, costs) == pytest.approx(130)


def test_cli_frontier_in_full_step_equivalents(tmp_path, capsys):
    def write(name, policy, epochs, acc, full, low, extra=""):
        path = _write_run(tmp_path / name, policy, epochs, acc, 999.0)
        with open(path + "/config.toml", "a") as f:
            f.write(extra)
        (tmp_path / name / "summary.json").write_text(json.dumps({"steps_full": full, "steps_low": low}))
        return path

    runs = [write("b5", "none", 5, 0.8, 500, 0), write("b10", "none", 10, 0.9, 1000, 0),
            write("k10", "ramp", 10, 0.85, 500, 500, '[model]\nlow_kernels = "keep"\n')]
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"ratio": 0.25, "keep_ratio": 0.4, "full_ms": 1.0}))
    out = tmp_path / "out"
    assert main([*runs, "--frontier", "--step-costs", str(bench), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    # 500 + 500 x 0.4 = 700 full steps; the baseline reaches 0.85 at 750: 6.7% saved (all wall-clocks equal)
    assert "| 85.00% | 700.0 | 750.0 | 6.7% |" in printed
    saved = json.loads((out / "frontier_fse.json").read_text())
    assert saved["cost"] == fr.FULL_STEPS and (out / "frontier_fse.png").is_file()
    assert json.loads((out / "frontier.json").read_text())["cost"] == fr.WALL_CLOCK
    bench.write_text(json.dumps({"ratio": 0.25}))
    assert main([*runs, "--frontier", "--step-costs", str(bench), "--out", str(out)]) == 2
    assert "field 'keep_ratio' must be a positive number" in capsys.readouterr().err
    assert main([*runs, "--step-costs", str(bench), "--out", str(out)]) == 2  # without --frontier


def test_a_schedule_key_added_later_at_its_default_keeps_the_family():
    """Runs written before schedule.low_size / ramp_start / constant_pixels existed lack them and ran with
    their defaults: the same family as newer runs recording the defaults; a non-default value is another."""
    new = dict(**{"schedule.low_size": 0, "schedule.ramp_start": 0.0, "schedule.constant_pixels": False})
    runs = _baseline_runs() + [_run("b20s2", 0.90, 200, epochs=20, seed=2, **new),
                               _run("l20s0", 0.85, 100, policy="ramp", epochs=20, **{"schedule.low_size": 24})]
    points = {(p["family"], p["epochs"]): p for p in fr.analyse(runs)["points"]}
    assert points["baseline", 20]["seeds"] == [0, 1, 2]
    assert ("low_size=24, policy=ramp", 20) in points
