"""The build's bookkeeping inside a dataset directory, so an interrupted build can resume.

``DATA/.build/config.json`` holds the output-defining config (written before any shard), and
``DATA/.build/<split>-<k>.json`` one sidecar per finished shard (sha256s and sizes of each of its
resolutions' files, pixel sums of full and low), written after all the shard's files are renamed into
place. On a rerun a shard is kept only if its sidecar matches the config and its files still hash to
the recorded sha256s; everything else is rebuilt. Temporary files (``.<name>.*.tmp``) left by a killed
run are deleted.

One build owns the directory at a time (``OutDirLock``): a plain build holds an exclusive ``flock``
on ``DATA/.lock`` (its PID inside; the file is removed when it ends), ``--part`` builds share it and
each holds ``DATA/.build/part-<I>-of-<N>.lock`` alone, so the parts of a job array run side by side
but never twice, and never beside the plain build that writes the manifest. The kernel drops the
locks of a killed build: a rerun resumes at once.
"""

from __future__ import annotations

import errno
import fcntl
import json
import shutil
from pathlib import Path
from typing import Any

from preprocess.dataset_format import RESOLUTIONS, DatasetFormatError, Manifest, is_resolution_name, shard_stem
from preprocess.files import Locked, atomic_write_json, json_sha256, lock_file, sha256_file, unlock_file
from preprocess.errors import InputError

BUILD_DIR = ".build"
CONFIG_NAME = "config.json"
LOCK_NAME = ".lock"
_NO_FLOCK = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP)  # what flock says where it is not supported


def config_digest(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of an output config (stored in each sidecar)."""
    return json_sha256(config)


def sidecar_path(out_dir: Path, split: str, shard: int) -> Path:
    return out_dir / BUILD_DIR / f"{shard_stem(split, shard)}.json"


def _recorded_config(out_dir: Path) -> dict[str, Any] | None:
    """The config a previous build recorded in ``out_dir`` (sidecar folder, else manifest), or None."""
    try:
        return json.loads((out_dir / BUILD_DIR / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        pass
    try:
        return Manifest.load(out_dir).config
    except DatasetFormatError:
        return None


def resolution_dirs(out_dir: Path) -> list[Path]:
    """The resolution folders in ``out_dir``: full/, low/ and any low<H>/ (``is_resolution_name``)."""
    try:
        return sorted(p for p in out_dir.iterdir() if is_resolution_name(p.name) and p.is_dir())
    except FileNotFoundError:
        return []


def remove_build_outputs(out_dir: Path) -> None:
    """Delete what a build writes (manifest, full/, low/, low<H>/, .build/); leave other files alone."""
    (out_dir / Manifest.NAME).unlink(missing_ok=True)
    for path in (*resolution_dirs(out_dir), out_dir / BUILD_DIR):
        shutil.rmtree(path, ignore_errors=True)


def _is_leftover(name: str) -> bool:
    """A temp file of an interrupted write or a part's lock file: left by a build, never the user's data."""
    return (name.startswith(".") and name.endswith(".tmp")) or (name.startswith("part-") and name.endswith(".lock"))


def _holds_only_fresh_build_dirs(out_dir: Path) -> bool:
    """True if ``out_dir`` holds nothing but its lock file and (empty or leftover-only) build folders.

    That is the state a concurrent ``--part`` build leaves for a moment between creating the folders
    and recording its config, or a build killed just after it locked the directory; it must not be
    mistaken for somebody else's data.
    """
    for entry in out_dir.iterdir():
        if entry.name == LOCK_NAME and entry.is_file():
            continue
        if not (entry.name == BUILD_DIR or is_resolution_name(entry.name)) or not entry.is_dir():
            return False
        if not all(_is_leftover(f.name) for f in entry.iterdir()):
            return False
    return True


def check_out_path(out_dir: Path, input_path: Path | None, source: str) -> None:
    """Refuse an ``--out`` that cannot or must not hold the dataset; reads the file system only.

    Runs before the source is opened, so that nothing is read or written for a hopeless build.
    """
    if input_path is not None:
        out, inp = out_dir.resolve(), input_path.resolve()
        if out == inp:
            raise InputError(f"{out_dir}: --out is the --input; expected a separate directory for the dataset")
        if source == "imagefolder" and inp in out.parents:  # a rerun would list the dataset as a class
            raise InputError(f"{out_dir}: --out is inside the --input folder {input_path}; "
                             "expected a directory outside it")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: --out must be a directory, found a file")
    for parent in out_dir.parents:  # the nearest existing ancestor must be a folder: --out notes.txt/data
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{out_dir}: --out must be a directory, but {parent} is a file")
            return


class OutDirLock:
    """This build's ownership of a dataset directory (see the module docstring).

    ``acquire`` before writing anything (it creates the directory), ``acquire_part`` once
    ``prepare_out_dir`` made ``.build``, ``release`` at the end. Forked workers inherit the
    descriptors, so the directory stays owned while any of them still runs.
    """

    def __init__(self, out_dir: Path, part: tuple[int, int] | None) -> None:
        self.out_dir, self.part = out_dir, part
        self.exclusive = part is None
        self._fd: int | None = None
        self._part_fd: int | None = None

    @property
    def path(self) -> Path:
        return self.out_dir / LOCK_NAME

    @property
    def part_path(self) -> Path:
        return self.out_dir / BUILD_DIR / f"part-{self.part[0]}-of-{self.part[1]}.lock"

    def acquire(self) -> None:
        """Create ``out_dir`` and lock it: exclusive for a plain build, shared for a part."""
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._fd = lock_file(self.path, shared=not self.exclusive)
        except Locked as exc:
            raise InputError(self._in_use(exc.holder)) from None
        except OSError as exc:
            if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
                raise InputError(f"{self.out_dir}: cannot write to --out ({exc.strerror}); "
                                 "expected a directory this user can write") from None
            if exc.errno in _NO_FLOCK:  # e.g. Lustre mounted without -o flock; the trainer needs flock too
                raise InputError(f"{self.path}: cannot lock ({exc.strerror}); "
                                 "expected --out on a file system with flock support") from None
            raise

    def acquire_part(self) -> None:
        """Take this part's own lock: the same part never runs twice at once (their temp files would collide)."""
        try:
            self._part_fd = lock_file(self.part_path)
        except Locked as exc:
            raise InputError(f"{self.out_dir}: part {self.part[0]}/{self.part[1]} is being built by another "
                             f"lowmode-preprocess (PID {exc.holder or 'unknown'}); wait for it to finish") from None

    def try_exclusive(self) -> bool:
        """Upgrade a part's shared lock if no other build holds the directory (then it may be removed).

        A failed upgrade loses the shared lock too (flock converts by unlocking first): call it only
        on the way out.
        """
        if not self.exclusive and self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False
            self.exclusive = True
        return self._fd is not None

    def release(self) -> None:
        """Unlock; the exclusive holder also removes ``.lock``, so a finished build leaves only the dataset."""
        if self._part_fd is not None:
            unlock_file(self._part_fd, self.part_path)
            self._part_fd = None
        if self._fd is not None:
            unlock_file(self._fd, self.path if self.exclusive else None)
            self._fd = None

    def _in_use(self, holder: str) -> str:
        """The refusal message: a plain build's PID is in ``.lock``; parts (shared) are found by their own locks."""
        if holder:
            return (f"{self.out_dir}: in use by another lowmode-preprocess build (PID {holder}); "
                    "wait for it to finish or choose another --out")
        pids = sorted(_first_word(p) for p in (self.out_dir / BUILD_DIR).glob("part-*.lock")) or ["unknown"]
        return (f"{self.out_dir}: in use by --part builds (PID {', '.join(pids)}); "
                "run the plain build (it writes the manifest) after they finish")


def _first_word(path: Path) -> str:
    try:
        words = path.read_text(errors="replace").split()
    except OSError:
        words = []
    return words[0] if words else "unknown"


def prepare_out_dir(out_dir: Path, config: dict[str, Any], overwrite: bool,
                    resolutions: tuple[str, ...] = RESOLUTIONS) -> None:
    """Make ``out_dir`` (existing, locked by this build: ``OutDirLock``) ready for a build with ``config``
    writing ``resolutions`` (one folder each).

    A non-empty directory is accepted only if it holds a build of the same config (then it is
    resumed) or ``overwrite`` is set (then the old build outputs are deleted first).
    """
    recorded = _recorded_config(out_dir)
    if recorded != config and not (recorded is None and _holds_only_fresh_build_dirs(out_dir)):
        if not overwrite:
            raise InputError(f"{out_dir}: not empty and not a build of this config; "
                             "pass --overwrite to replace it (or choose another --out)")
        remove_build_outputs(out_dir)
    for name in (BUILD_DIR, *resolutions):
        (out_dir / name).mkdir(parents=True, exist_ok=True)
    if _recorded_config(out_dir) != config or not (out_dir / BUILD_DIR / CONFIG_NAME).exists():
        atomic_write_json(out_dir / BUILD_DIR / CONFIG_NAME, config)


def remove_stale_files(out_dir: Path) -> None:
    """Delete what killed builds left: temp files of interrupted writes and the parts' lock files.

    Only under the exclusive lock (a plain build): then no other build is writing here.
    """
    stale = [*out_dir.glob(f".{Manifest.NAME}.*.tmp"), *(out_dir / BUILD_DIR).glob("part-*.lock")]
    for folder in (*resolution_dirs(out_dir), out_dir / BUILD_DIR):
        stale += folder.glob(".*.tmp")
    for path in stale:
        path.unlink(missing_ok=True)


def remove_stale_temps(out_dir: Path, split: str, shard: int) -> None:
    """Delete temporary files a killed build left for this shard (only this shard: parts run side by side)."""
    stem = shard_stem(split, shard)
    for folder in (*resolution_dirs(out_dir), out_dir / BUILD_DIR):
        for tmp in folder.glob(f".{stem}.*.tmp"):
            tmp.unlink(missing_ok=True)


def load_verified_sidecar(out_dir: Path, split: str, shard: int, digest: str, keys: tuple[str, str, int],
                          resolutions: tuple[str, ...] = RESOLUTIONS) -> dict[str, Any] | None:
    """The sidecar of a complete, intact shard (every one of ``resolutions``), or None if it must be (re)built.

    ``keys``: the planned (first_key, last_key, num_samples), so a stale sidecar never passes.
    """
    try:
        record = json.loads(sidecar_path(out_dir, split, shard).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("config_sha256") != digest or (record.get("first_key"), record.get("last_key"),
                                                   record.get("num_samples")) != keys:
        return None
    sums = record.get("sums")
    if not isinstance(sums, dict) or not all(r in sums for r in RESOLUTIONS):  # full and low: the statistics
        return None
    for resolution in resolutions:
        files = record.get(resolution, {})
        if not isinstance(files, dict):
            return None
        for rel, size_field, sha_field in (("tar", "bytes", "sha256"), ("idx", None, "idx_sha256")):
            path = out_dir / files.get(rel, "missing")
            if not path.is_file() or (size_field and path.stat().st_size != files[size_field]):
                return None
            if sha256_file(path) != files[sha_field]:
                return None
    return record


def write_sidecar(out_dir: Path, record: dict[str, Any]) -> None:
    atomic_write_json(sidecar_path(out_dir, record["split"], record["shard"]), record)
