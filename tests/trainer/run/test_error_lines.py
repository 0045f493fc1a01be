"""lowmode-train's user errors (issue 13): exactly one ``lowmode-train: error:`` line naming the file,
key or directory at fault, exit 2, and nothing in the run directory written or lost (sha256 of every
file before and after; RUN/.lock is left out: it holds the PID of the directory's last owner by design).

In-process ``main()`` runs on the tiny synthetic dataset (one epoch of 12 steps, well under a second
each); the full disk is a fault injected into ``os.fsync``, the read-only run directory a child process
that drops root (permission bits do not stop root).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from preprocess.index_format import parse_index
from tests.integrations import need
from tests.trainer.train_helpers import assert_same_weights, comparable_metrics, final_weights, tiny_overrides
from trainer.__main__ import main
from trainer.run.checkpoint import CheckpointManager

ONE_EPOCH = {"train__epochs": "1", "optim__lr_milestones_epochs": "[]", "checkpoint__every_steps": "4"}
NOBODY = 65534


def _digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` but RUN/.lock."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


def _error_line(err: str) -> str:
    """The one error line of a run's stderr (log lines may precede it; a traceback may not)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("lowmode-train:")]
    assert len(lines) == 1 and lines[0].startswith("lowmode-train: error: "), err
    return lines[0]


def _train(run: Path, data: Path, *extra: str, **overrides: str) -> int:
    return main(["--run-dir", str(run), *tiny_overrides(data, **{**ONE_EPOCH, **overrides}), *extra])


@pytest.fixture(scope="module")
def history(data, tmp_path_factory) -> Path:
    """A finished one-epoch run: checkpoints at steps 4, 8, 12 and 13 metrics records."""
    run = tmp_path_factory.mktemp("history") / "run"
    assert _train(run, data) == 0
    return run


@pytest.fixture
def run_copy(history, tmp_path) -> Path:
    """A private copy of ``history`` that a test may change."""
    return Path(shutil.copytree(history, tmp_path / "run"))


# ----------------------------------------------------------------------------- 1. --config


@pytest.mark.parametrize("kind", ["directory", "not-utf8", "invalid-toml"])
def test_unusable_config_file_names_it(data, tmp_path, capsys, kind):
    config = tmp_path / "preset.toml"
    if kind == "directory":
        config.mkdir()
    else:
        config.write_bytes(b"\xff\xfe[model]\n" if kind == "not-utf8" else b"[model\nname = ")
    run = tmp_path / "run"
    assert main(["--config", str(config), "--run-dir", str(run), *tiny_overrides(data)]) == 2
    line = _error_line(capsys.readouterr().err)
    assert line.startswith(f"lowmode-train: error: {config}: ")
    assert {"directory": "Is a directory", "not-utf8": "not a UTF-8", "invalid-toml": "invalid TOML"}[kind] in line
    assert not run.exists()


# ----------------------------------------------------------------------------- 2. --run-dir


def test_run_dir_that_is_a_file(data, tmp_path, capsys):
    path = tmp_path / "run"
    path.write_bytes(b"not a run")
    assert _train(path, data) == 2
    line = _error_line(capsys.readouterr().err)
    assert line == f"lowmode-train: error: --run-dir {path}: exists and is not a directory"
    assert path.read_bytes() == b"not a run"


def test_run_dir_under_a_file(data, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    run = blocker / "runs" / "run"
    assert _train(run, data) == 2
    line = _error_line(capsys.readouterr().err)
    assert line == f"lowmode-train: error: --run-dir {run}: cannot create it ({blocker} is not a directory)"
    assert blocker.read_bytes() == b"x"


def _main_unprivileged(argv: list[str]) -> tuple[int, str]:
    """``main(argv)`` in a forked child that, when this is root, runs as nobody: permission bits bind it.
    Returns (exit code, stderr)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.close(read_end)
            sys.stderr = os.fdopen(write_end, "w")
            if os.geteuid() == 0:
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            code = main(argv)
        except BaseException:  # noqa: BLE001 - reported through the pipe
            import traceback

            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        err = f.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err


def test_read_only_run_dir(history, data):
    # Under a world-traversable directory of its own (pytest's base directory is root's, mode 0700).
    base = Path(tempfile.mkdtemp(prefix="lowmode-ro-"))
    try:
        base.chmod(0o755)
        run = Path(shutil.copytree(history, base / "run"))
        if os.geteuid() == 0:  # a run directory of nobody's own, made read-only, as chmod -w would
            for path in [run, *run.rglob("*")]:
                os.chown(path, NOBODY, NOBODY)
        before = _digest(run)
        for directory in (run, run / "checkpoints"):
            directory.chmod(0o555)
        code, err = _main_unprivileged(["--run-dir", str(run), *tiny_overrides(data, **ONE_EPOCH)])
        assert code == 2, err
        assert _error_line(err) == f"lowmode-train: error: --run-dir {run}: not writable: Permission denied"
        assert _digest(run) == before
    finally:
        for directory in (base / "run", base / "run" / "checkpoints"):
            if directory.is_dir():
                directory.chmod(0o755)
        shutil.rmtree(base)


# ----------------------------------------------------------------------------- 3. full disk


def test_disk_full_while_checkpointing(data, tmp_path, monkeypatch, capsys):
    """ENOSPC on the step-8 checkpoint: one line naming it, exit 2, no temp file, the step-4 checkpoint
    intact, status "failed"; a rerun resumes from step 4 and ends as an uninterrupted run."""
    args = dict(train__epochs="2", optim__lr_milestones_epochs="[1]")
    reference = tmp_path / "reference"
    assert _train(reference, data, **args) == 0
    run = tmp_path / "run"
    target = run / "checkpoints" / "step-000000008.pt"
    good: dict[str, str] = {}
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(target.parent / f".{target.name}.")):
            good.update(_digest(target.parent))  # the checkpoints as the failing write found them
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as the kernel reports it: no file name
        real_fsync(fd)

    with monkeypatch.context() as m:
        m.setattr(os, "fsync", fsync)
        assert _train(run, data, **args) == 2
    assert _error_line(capsys.readouterr().err) == f"lowmode-train: error: {target}: No space left on device"
    assert [p.name for p in sorted(target.parent.iterdir())] == ["step-000000004.pt"]  # temp file removed
    assert {k: v for k, v in good.items() if not k.startswith(".")} == _digest(target.parent)
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and str(target) in status["reason"] and "No space left" in status["reason"]

    assert _train(run, data, **args) == 0
    assert f"resuming from {target.parent / 'step-000000004.pt'}" in capsys.readouterr().err
    assert comparable_metrics(run) == comparable_metrics(reference)
    assert_same_weights(final_weights(run), final_weights(reference))


# ----------------------------------------------------------------------------- 4. labels


def _with_labels(data: Path, out: Path, value: int) -> tuple[Path, set[str]]:
    """A copy of ``data`` whose first train shard has label ``value`` for every sample, at both
    resolutions; the tars keep their size, so only reading the labels can notice. Returns (copy, keys)."""
    copy = Path(shutil.copytree(data, out))
    keys = set()
    for resolution in ("full", "low"):
        tar = copy / resolution / "train-000000.tar"
        raw = bytearray(tar.read_bytes())
        for entry in parse_index(tar.with_suffix(".idx")):
            offset, size = entry.components["label"]
            raw[offset:offset + size] = np.array([value], "<i8").tobytes()
            keys.add(entry.key)
        tar.write_bytes(bytes(raw))
    return copy, keys


@pytest.mark.parametrize("loader,label", [("torch", 4), ("torch", -100), ("dali", -1)])
def test_out_of_range_label_names_shard_and_key(data, tmp_path, capsys, loader, label):
    """4 = num_classes; -100 is cross-entropy's ignore_index, silently skipped without the check."""
    if loader == "dali":
        need("dali")
    bad, keys = _with_labels(data, tmp_path / "data", label)
    run = tmp_path / "run"
    assert _train(run, bad, data__loader=json.dumps(loader)) == 2
    line = _error_line(capsys.readouterr().err)
    prefix = f"lowmode-train: error: {bad}/"
    assert line.startswith(prefix) and "/train-000000.tar key " in line, line
    key = line.split(" key ")[1].split(":")[0]
    assert key in keys
    assert line.endswith(f": label {label} is outside [0, 4) (the manifest lists 4 classes)")
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and "DatasetFormatError" in status["reason"] and key in status["reason"]


# ----------------------------------------------------------------------------- 5. starting over a history


def test_resume_never_over_a_history_is_refused(run_copy, data, capsys):
    before = _digest(run_copy)
    assert _train(run_copy, data, "--resume", "never") == 2
    line = _error_line(capsys.readouterr().err)
    assert line.startswith(f"lowmode-train: error: --run-dir {run_copy}: holds a run's history (13 metrics records, "
                           "3 checkpoints)") and "add --fresh to discard" in line
    assert _digest(run_copy) == before


def test_records_of_another_config_without_checkpoint_are_refused(run_copy, data, capsys):
    shutil.rmtree(run_copy / "checkpoints")
    before = _digest(run_copy)
    assert _train(run_copy, data, optim__lr="0.05") == 2
    line = _error_line(capsys.readouterr().err)
    assert f"--run-dir {run_copy}: holds 13 metrics records but no checkpoint" in line
    assert "optim.lr" in line and "add --fresh" in line
    assert _digest(run_copy) == before


def test_records_of_the_same_config_without_checkpoint_restart(run_copy, history, data):
    """A run killed before its first checkpoint: a requeue (--resume auto) redoes it from step 0."""
    shutil.rmtree(run_copy / "checkpoints")
    assert _train(run_copy, data) == 0
    assert comparable_metrics(run_copy) == comparable_metrics(history)


def test_fresh_discards_the_history_and_starts_at_step_0(run_copy, data):
    assert _train(run_copy, data, "--fresh", optim__lr="0.05", checkpoint__every_steps="0") == 0
    records = [json.loads(x) for x in (run_copy / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "step"] == list(range(1, 13))
    assert {r["lr"] for r in records if r["kind"] == "step"} == {0.05}
    assert [p.name for p in CheckpointManager(run_copy / "checkpoints").existing()] == ["step-000000012.pt"]
    assert json.loads((run_copy / "status.json").read_text())["state"] == "done"


def test_fresh_keeps_the_history_when_the_run_cannot_start(run_copy, data, capsys):
    before = _digest(run_copy)
    assert _train(run_copy, data, "--fresh", model__num_classes="2") == 2
    assert "model.num_classes" in _error_line(capsys.readouterr().err)
    assert _digest(run_copy) == before


def test_fresh_with_a_checkpoint_to_resume_is_a_usage_error(tmp_path, data, capsys):
    with pytest.raises(SystemExit) as exit_:
        _train(tmp_path / "run", data, "--fresh", "--resume", "auto")
    assert exit_.value.code == 2
    assert "--fresh starts from step 0 and cannot be combined with --resume auto" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- 6. config and checkpoint keys


@pytest.mark.parametrize("override,key", [
    ('model.name="resnet7"', "model.name"),
    ('model.stem="none"', "model.stem"),
    ('model.dual_preset="vgg"', "model.dual_preset"),
    ('model.name_pattern="layer[1"', "model.name_pattern"),
    ("model.num_classes=2", "model.num_classes"),
    ("model.in_channels=1", "model.in_channels"),
    ('train.device="cuda"', "train.device"),
    ("train.dist_timeout_s=inf", "train.dist_timeout_s"),
])
def test_bad_config_values_name_the_key(data, tmp_path, capsys, override, key):
    if key == "train.device" and torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    run = tmp_path / "run"
    assert _train(run, data, "--set", override) == 2
    assert _error_line(capsys.readouterr().err).startswith(f"lowmode-train: error: {key}: ")
    assert not run.exists() or _digest(run) == {}


def test_checkpoint_missing_keys_is_refused_naming_it(run_copy, data, capsys):
    path = CheckpointManager(run_copy / "checkpoints").existing()[0]
    payload = torch.load(path, weights_only=True)
    del payload["optimizer"], payload["rng"]
    torch.save(payload, path)
    before = _digest(run_copy)
    assert _train(run_copy, data, "--resume", str(path)) == 2
    assert _error_line(capsys.readouterr().err) == f"lowmode-train: error: {path}: checkpoint lacks optimizer, rng"
    assert _digest(run_copy) == before
