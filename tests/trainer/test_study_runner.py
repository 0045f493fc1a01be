"""scripts/study.py: a real two-family study on a tiny dataset — it runs, a rerun resumes (finished runs are
skipped, a half-finished one continues from its checkpoint), and --export copies what the frontier reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.trainer.train_helpers import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import study  # noqa: E402  (scripts/ is not a package)

SPEC = """
[study]
preset = "configs/cifar10_resnet20_cpu_baseline.toml"
data = {data}
seeds = [0]
set = ['model.name="resnet8"', "data.max_train_samples=0", "train.global_batch_size=16",
       "train.deterministic=true", "checkpoint.every_steps=12"]

[study.milestones]
2 = [1]

[[family]]
name = "baseline"
budgets = [2]
set = ['schedule.policy="none"', "model.dual_mode=false"]

[[family]]
name = "paper"
budgets = [2]
set = ['schedule.policy="bernoulli"', "model.dual_mode=true", "schedule.full_epochs_after_milestone=0"]
"""


@pytest.fixture
def spec(tmp_path, data) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(SPEC.format(data=json.dumps(str(data))))
    return path


# this checkout may be mid-edit on a developer's machine (CI's is clean); the refusal is tested below
UNFROZEN = ["--allow-dirty"]


def _records(run: Path) -> list[dict]:
    return json.loads((run / "study.json").read_text())


def test_runs_then_resumes_and_exports(spec, tmp_path, capsys):
    out = tmp_path / "out"
    runs = [out / "baseline" / "e002_s0", out / "paper" / "e002_s0"]
    assert study.main([str(spec), "--out", str(out), "--dry-run"]) == 0
    assert "2 runs, 0 done, 2 to run" in capsys.readouterr().out

    assert study.main([str(spec), "--out", str(out), "--jobs", "1", "--no-compare", *UNFROZEN]) == 0
    for run in runs:
        assert json.loads((run / "status.json").read_text())["state"] == "done"
        (record,) = _records(run)
        assert record["exit_code"] == 0 and record["resumed"] is False and record["cpu_model"]
        assert record["code"] == study.code_version()  # the commit the run's code came from
    done_acc = json.loads((runs[1] / "summary.json").read_text())["final_val_acc"]
    metrics = (runs[1] / "metrics.jsonl").read_text()
    capsys.readouterr()

    # a rerun skips finished runs ...
    assert study.main([str(spec), "--out", str(out), "--jobs", "1", "--no-compare", *UNFROZEN]) == 0
    assert "2 runs, 2 done, 0 to run" in capsys.readouterr().out
    assert [len(_records(r)) for r in runs] == [1, 1]

    # ... and continues a half-finished one from its newest checkpoint instead of starting over
    (runs[1] / "status.json").write_text(json.dumps({"state": "stopped"}))
    assert study.main([str(spec), "--out", str(out), "--jobs", "1", "--no-compare", *UNFROZEN]) == 0
    first, second = _records(runs[1])
    assert second["resumed"] is True and second["exit_code"] == 0
    assert json.loads((runs[1] / "summary.json").read_text())["final_val_acc"] == done_acc
    assert (runs[1] / "metrics.jsonl").read_text() == metrics  # nothing re-trained, nothing duplicated

    export = tmp_path / "export"
    assert study.main([str(spec), "--out", str(out), "--export", str(export)]) == 0
    copied = export / "paper" / "e002_s0"
    assert sorted(p.name for p in copied.iterdir()) == ["config.toml", "metrics.jsonl", "status.json", "study.json",
                                                         "summary.json"]
    kinds = {json.loads(line)["kind"] for line in (copied / "metrics.jsonl").read_text().splitlines()}
    assert kinds == {"epoch"}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                   capture_output=True)


def test_code_version_names_the_commit_and_the_uncommitted_files(tmp_path):
    assert study.code_version(tmp_path) == {"commit": None, "dirty": []}  # not a git checkout
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    _git(tmp_path, "add", "a.py")
    _git(tmp_path, "commit", "-qm", "a")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    (tmp_path / "notes.txt").write_text("untracked files do not matter\n")
    assert study.code_version(tmp_path) == {"commit": head.strip(), "dirty": []}
    (tmp_path / "a.py").write_text("x = 2\n")
    assert study.code_version(tmp_path)["dirty"] == ["a.py"]


def test_a_dirty_checkout_is_refused_before_any_run(spec, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(study, "code_version", lambda root=None: {"commit": "abc", "dirty": ["trainer/run/config.py"]})
    out = tmp_path / "out"
    assert study.main([str(spec), "--out", str(out), "--jobs", "1", "--no-compare"]) == 2
    err = capsys.readouterr().err
    assert "uncommitted changes (trainer/run/config.py)" in err and "git worktree add" in err
    assert not out.exists()  # nothing started
    assert study.main([str(spec), "--out", str(out), "--dry-run"]) == 0  # listing is always allowed


def test_seeds_families_and_budgets_select_runs(spec, tmp_path):
    spec.write_text(spec.read_text().replace("[study.milestones]\n2 = [1]", "[study.milestones]\n2 = [1]\n3 = [2]")
                    .replace("budgets = [2]", "budgets = [2, 3]"))
    names = lambda runs: sorted(str(r.run_dir.relative_to(tmp_path)) for r in runs)  # noqa: E731
    _, runs = study.load_spec(spec, tmp_path, [0, 1], {"paper"}, {3})
    assert names(runs) == ["paper/e003_s0", "paper/e003_s1"]
    _, runs = study.load_spec(spec, tmp_path, None, None, None)
    assert names(runs) == ["baseline/e002_s0", "baseline/e003_s0", "paper/e002_s0", "paper/e003_s0"]


def test_a_budget_without_milestones_is_named(spec, tmp_path):
    spec.write_text(spec.read_text().replace("budgets = [2]", "budgets = [3]", 1))
    with pytest.raises(SystemExit, match="family 'baseline' budget 3 has no \\[study.milestones\\] entry"):
        study.main([str(spec), "--out", str(tmp_path / "out"), "--dry-run"])


@pytest.mark.parametrize("frontier_from, message", [
    ("scripts/studies/nope.toml", "frontier_from 'scripts/studies/nope.toml' is not a file"),
    ("scripts/studies/imagenette_ladder.toml", "has preset 'configs/imagenette_baseline.toml'"),
    ("scripts/studies/cifar10_ladder.toml", "has data '/work/data/cifar10_ladder'"),
])
def test_a_frontier_from_another_study_must_share_its_preset_and_data(spec, tmp_path, frontier_from, message):
    spec.write_text(spec.read_text().replace("[study.milestones]", f'frontier_from = "{frontier_from}"\n\n[study.milestones]', 1))
    with pytest.raises(SystemExit, match=message):
        study.load_spec(spec, tmp_path, None, None)


@pytest.mark.parametrize("spec_path", sorted((ROOT / "scripts" / "studies").glob("*.toml")), ids=lambda p: p.stem)
def test_every_committed_study_spec_defines_valid_runs(spec_path, tmp_path):
    # a typo in a spec would otherwise surface hours into a study, when its first run of that family starts
    from trainer.run.config import load_config

    settings, runs = study.load_spec(spec_path, tmp_path, None, None)
    # a frontier: its own baseline family, or (load_spec checked it) another spec's on the same preset and data
    assert runs and ({r.family for r in runs} >= {"baseline"} or "frontier_from" in settings)
    for run in runs:
        config = load_config(ROOT / settings["preset"], run.overrides)
        assert config.train.epochs == run.epochs and config.train.seed == run.seed
        assert (config.schedule.policy == "none") == (run.family == "baseline")
