"""The output side of a build: an unusable --out, a full disk, two builds on one directory.

Each refusal is one line ``error: <path>: <what was expected>`` with exit 2, and nothing is lost: a
complete dataset stays byte-identical (sha256 of every file) and a half-built one still resumes to
the bytes of an uninterrupted build.
"""

from __future__ import annotations

import builtins
import errno
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from preprocess import files, state
from preprocess.cli import main
from preprocess.verify import verify_dataset
from tests.preprocess.fixtures import run_cli, synthetic_args, tree_hashes, write_imagefolder

REPO = Path(__file__).resolve().parents[2]


def _refused(capsys, *argv, expect: str) -> str:
    """Run the CLI; assert exit 2 and exactly the one line ``error: <expect>``."""
    code, out, err = run_cli(capsys, *argv)
    assert (code, out, err) == (2, "", f"error: {expect}\n")
    return err


def _tmp_files(root: Path) -> list[Path]:
    return list(root.rglob("*.tmp"))  # pathlib matches hidden names too


@pytest.fixture(scope="module")
def complete(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A complete small dataset (5 shard pairs) and its sha256s; tests copy it, never change it."""
    out = tmp_path_factory.mktemp("complete") / "data"
    assert main(synthetic_args(out)) == 0
    return out, tree_hashes(out)


def _copy(complete, tmp_path: Path) -> Path:
    source, hashes = complete
    target = tmp_path / "data"
    for rel in hashes:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).write_bytes((source / rel).read_bytes())
    assert tree_hashes(target) == hashes
    return target


# ----------------------------------------------------------------------------- unusable --out


def test_out_under_a_regular_file(capsys, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    _refused(capsys, *synthetic_args(notes / "data"),
             expect=f"{notes / 'data'}: --out must be a directory, but {notes} is a file")
    _refused(capsys, *synthetic_args(notes / "a" / "b"),
             expect=f"{notes / 'a' / 'b'}: --out must be a directory, but {notes} is a file")
    _refused(capsys, *synthetic_args(notes), expect=f"{notes}: --out must be a directory, found a file")
    assert notes.read_text() == "mine" and sorted(tmp_path.iterdir()) == [notes]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits; see the injected test below")
def test_out_in_a_read_only_directory(capsys, tmp_path, complete):
    data = _copy(complete, tmp_path)
    parent = tmp_path / "ro"
    parent.mkdir()
    for folder in (data, parent):
        folder.chmod(0o555)
    try:
        for out in (data, parent / "data"):
            _refused(capsys, *synthetic_args(out), expect=f"{out}: cannot write to --out (Permission denied); "
                                                          "expected a directory this user can write")
    finally:
        for folder in (data, parent):
            folder.chmod(0o755)
    assert tree_hashes(data) == complete[1] and list(parent.iterdir()) == []


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS, errno.ENOLCK])
def test_out_not_writable_or_lockable_injected(capsys, tmp_path, complete, monkeypatch, code):
    """The kernel's answer for a read-only directory or file system (root is never refused) and for a
    file system without flock, injected."""
    data = _copy(complete, tmp_path)

    def refuse(path, **_):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(state, "lock_file", refuse)
    if code == errno.ENOLCK:
        expect = (f"{data / '.lock'}: cannot lock (No locks available); "
                  "expected --out on a file system with flock support")
    else:
        expect = f"{data}: cannot write to --out ({os.strerror(code)}); expected a directory this user can write"
    _refused(capsys, *synthetic_args(data), expect=expect)
    assert tree_hashes(data) == complete[1]


def test_out_empty_is_input_or_inside_imagefolder_input(capsys, tmp_path):
    _refused(capsys, *synthetic_args(""), expect="--out: expected a directory path, got ''")
    images = tmp_path / "images"
    write_imagefolder(images)
    before = tree_hashes(images)
    args = ["build", "--source", "imagefolder", "--input", str(images), "--size", "8", "--quiet", "--out"]
    _refused(capsys, *args, f"{images}/", expect=f"{images}: --out is the --input; expected a separate "
                                                 "directory for the dataset")
    _refused(capsys, *args, str(images / "built"), expect=f"{images / 'built'}: --out is inside the --input "
                                                          f"folder {images}; expected a directory outside it")
    assert tree_hashes(images) == before and sorted(p.name for p in images.iterdir()) == ["cat", "dog"]


# ----------------------------------------------------------------------------- full disk


class DiskFull:
    """Fault injection: the disk has ``free`` bytes left. A write past them writes what fits, then fails
    with ENOSPC, as the kernel does. Installed as the ``open`` of preprocess.files, which writes every
    build output (forked workers inherit it, each with its own ``free``)."""

    def __init__(self, free: int) -> None:
        self.free = free

    def open(self, file, mode: str = "r", *args, **kwargs):
        f = builtins.open(file, mode, *args, **kwargs)
        return _Metered(f, self) if "w" in mode else f


class _Metered:
    def __init__(self, f, disk: DiskFull) -> None:
        self._f, self._disk = f, disk

    def write(self, data) -> int:
        fits = min(len(data), self._disk.free)
        self._f.write(data[:fits])
        self._disk.free -= fits
        if fits < len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return fits

    def __getattr__(self, name: str):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()


_NO_SPACE = ": disk full (No space left on device); free space and rerun the same command " \
            "(a build resumes where it stopped)\n"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_disk_full_mid_build_then_resume(capsys, tmp_path, complete, monkeypatch, workers):
    out = tmp_path / "data"
    total = sum((complete[0] / rel).stat().st_size for rel in complete[1])
    monkeypatch.setattr(files, "open", DiskFull(total // 4).open, raising=False)
    code, stdout, err = run_cli(capsys, *synthetic_args(out, "--workers", workers))
    monkeypatch.undo()  # space freed
    assert code == 2 and stdout == "" and err.endswith(_NO_SPACE) and err.count("\n") == 1, err
    named = err[len("error: "):-len(_NO_SPACE)]
    assert re.fullmatch(rf"{re.escape(str(out))}/(full/\S+\.(tar|idx)|low/\S+\.(tar|idx)|\.build/\S+\.json)", named)
    assert _tmp_files(out) == [] and not (out / "manifest.json").exists()
    kept = len(list((out / ".build").glob("*-*.json")))
    assert 0 < kept < 5 if workers == "1" else kept < 5  # workers=2: each worker has its own quarter
    code, stdout, _ = run_cli(capsys, *[a for a in synthetic_args(out, "--workers", workers) if a != "--quiet"])
    assert code == 0 and f"({5 - kept} built, {kept} kept)" in stdout
    assert tree_hashes(out) == complete[1]


def test_disk_full_leaves_a_complete_dataset_as_it_is(capsys, tmp_path, complete, monkeypatch):
    data = _copy(complete, tmp_path)
    monkeypatch.setattr(files, "open", DiskFull(0).open, raising=False)
    code, stdout, err = run_cli(capsys, *[a for a in synthetic_args(data) if a != "--quiet"])
    assert code == 0 and "(0 built, 5 kept)" in stdout, err  # nothing to write, so nothing fails
    assert tree_hashes(data) == complete[1]


# ----------------------------------------------------------------------------- builds racing


def _many_shards(out: Path, *extra: str) -> list[str]:
    # ~200 tiny shards: the build runs long enough to be caught after its first shard
    return ["build", "--source", "synthetic", "--out", str(out), "--num-train", "600", "--num-val", "30",
            "--size", "4", "--samples-per-shard", "3", "--quiet", *extra]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("reference") / "data"
    assert main(_many_shards(out)) == 0
    return tree_hashes(out)


def _start_and_pause(out: Path, *extra: str) -> subprocess.Popen:
    """Start a build in another process and SIGSTOP it once it has finished a shard (so it holds its locks)."""
    proc = subprocess.Popen([sys.executable, "-m", "preprocess", *_many_shards(out, *extra)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if list(out.glob(".build/*-*.json")):
            proc.send_signal(signal.SIGSTOP)
            break
        time.sleep(0.002)
    assert proc.poll() is None, f"the build ended before it could be paused: {proc.stderr.read()}"
    return proc


def _finish(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGCONT)
    try:
        return proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_identical_builds_on_one_out(capsys, tmp_path, reference):
    out = tmp_path / "data"
    proc = _start_and_pause(out)
    try:
        before = tree_hashes(out)
        _refused(capsys, *_many_shards(out), expect=f"{out}: in use by another lowmode-preprocess build "
                                                    f"(PID {proc.pid}); wait for it to finish or choose another --out")
        assert tree_hashes(out) == before  # the refused build wrote nothing
    finally:
        assert _finish(proc) == 0, proc.stderr.read()
    assert tree_hashes(out) == reference and not (out / state.LOCK_NAME).exists()


def test_parts_run_side_by_side(capsys, tmp_path, reference):
    out = tmp_path / "data"
    proc = _start_and_pause(out, "--part", "0/2")
    try:
        code, _, err = run_cli(capsys, *_many_shards(out, "--part", "1/2"))
        assert code == 0, err  # another part runs beside it
        _refused(capsys, *_many_shards(out, "--part", "0/2"),
                 expect=f"{out}: part 0/2 is being built by another lowmode-preprocess (PID {proc.pid}); "
                        "wait for it to finish")
        _refused(capsys, *_many_shards(out), expect=f"{out}: in use by --part builds (PID {proc.pid}); "
                                                    "run the plain build (it writes the manifest) after they finish")
    finally:
        assert _finish(proc) == 0, proc.stderr.read()
    code, stdout, err = run_cli(capsys, *_many_shards(out))
    assert code == 0, err
    assert tree_hashes(out) == reference and verify_dataset(out) == []


def test_plain_build_refuses_parts_while_it_runs(capsys, tmp_path, monkeypatch):
    """In-process stand-in for a running plain build: its exclusive lock with its PID in the file."""
    out = tmp_path / "data"
    out.mkdir()
    fd = files.lock_file(out / state.LOCK_NAME)
    try:
        _refused(capsys, *synthetic_args(out, "--part", "0/2"),
                 expect=f"{out}: in use by another lowmode-preprocess build (PID {os.getpid()}); "
                        "wait for it to finish or choose another --out")
    finally:
        files.unlock_file(fd, out / state.LOCK_NAME)
    assert list(out.iterdir()) == []


# ----------------------------------------------------------------------------- the general rule


def test_os_errors_name_their_file_and_others_are_bugs(capsys, monkeypatch, tmp_path):
    import preprocess.build

    def fail(exc: BaseException):
        def run_build(*_, **__):
            raise exc
        monkeypatch.setattr(preprocess.build, "run_build", run_build)

    fail(OSError(errno.EIO, os.strerror(errno.EIO), "/dev/sdz/x"))
    _refused(capsys, *synthetic_args(tmp_path / "d"), expect="/dev/sdz/x: Input/output error")
    with pytest.raises(OSError):
        main(["--debug", *synthetic_args(tmp_path / "d")])
    fail(OSError(errno.EIO, os.strerror(errno.EIO)))  # no file to name: a bug, a traceback (exit 1)
    with pytest.raises(OSError):
        main(synthetic_args(tmp_path / "d"))
    fail(RuntimeError("bug"))
    with pytest.raises(RuntimeError):
        main(synthetic_args(tmp_path / "d"))
