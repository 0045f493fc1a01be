"""Generic file helpers: sha256 of files and of canonical JSON, atomic writes, and lock files.

Nothing here knows about the dataset format; the preprocess stage and the trainer (run
directories, checkpoints) share these. Write errors always name the file that was being written
(``OSError.filename``), so the CLIs can print ``error: <path>: <reason>`` instead of a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["Locked", "atomic_write_bytes", "atomic_write_json", "errors_naming", "file_mode", "json_sha256",
           "lock_file", "sha256_file", "unlock_file", "write_temp"]


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def json_sha256(obj: Any) -> str:
    """Hex sha256 of ``obj`` as key-sorted JSON: a stable digest of configs and manifests."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def file_mode() -> int:
    """Permission bits for new files: 0o666 minus the process umask (mkstemp alone gives 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def errors_naming(path: str | os.PathLike) -> Iterator[None]:
    """Re-raise an OSError met while writing ``path`` as one that names ``path``: ``write()`` and
    ``fsync()`` errors (ENOSPC: disk full) carry no file name, and an atomic write's carry its temp
    file's, which would mean nothing to the user. The CLIs print it as ``<path>: <reason>``."""
    try:
        yield
    except OSError as exc:
        if exc.errno is None:
            raise
        # OSError(errno, ...) builds the subclass errno maps to (FileNotFoundError, ...)
        raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc


def write_temp(path: str | os.PathLike, data: bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to a new temporary file next to ``path`` (``.<name>.*.tmp``) and return its path.

    On any error the temporary file is removed and the OSError names ``path`` (:func:`errors_naming`).
    """
    path = Path(path)
    tmp = None
    with errors_naming(path):
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with open(fd, "wb") as f:
                f.write(data)
                if fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.chmod(tmp, file_mode())
        except BaseException:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise
    return Path(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never half of one.

    Any OSError of the write names ``path`` (a folder that cannot be created names that folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = write_temp(path, data, fsync=True)
    try:
        with errors_naming(path):
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented, key-sorted JSON (stable bytes for equal content)."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


class Locked(Exception):
    """``path`` is locked by another process; ``holder`` is the PID written in it ("" if none)."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path}: locked by {holder or 'another process'}")
        self.path, self.holder = path, holder


def lock_file(path: str | os.PathLike, *, shared: bool = False) -> int:
    """Lock ``path`` (created if missing) with ``flock`` without waiting; return the descriptor.

    An exclusive holder writes its PID into the file, so that a refused process can name it
    (:class:`Locked`); a shared holder empties it (an old exclusive holder's PID would name the
    wrong process). The kernel releases the lock when the last process holding the descriptor
    dies (forked children inherit it): there are no stale locks. Other errors: OSError naming ``path``.
    """
    path = Path(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder(fd)
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise Locked(path, holder) from None
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        if _is_linked(fd, path):
            break
        os.close(fd)  # unlink_file() removed it between our open and flock: lock the new one
    _write_pid(fd, "" if shared else f"{os.getpid()}\n")
    return fd


def unlock_file(fd: int, path: str | os.PathLike | None = None) -> None:
    """Release a :func:`lock_file` lock; with ``path``, remove the file first (exclusive holders only)."""
    if path is not None:
        Path(path).unlink(missing_ok=True)
    os.close(fd)  # the last close releases the flock


def _is_linked(fd: int, path: Path) -> bool:
    """True if ``path`` still names the file open at ``fd`` (a holder may unlink its lock file)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _write_pid(fd: int, text: str) -> None:
    """Replace the lock file's text; best effort: a full disk must not stop a run that writes nothing else."""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)
    except OSError:
        pass


def _holder(fd: int) -> str:
    """The PID written in a lock file (its first word: racing writers may leave a longer tail)."""
    try:
        words = os.pread(fd, 64, 0).decode(errors="replace").split()
    except OSError:
        return ""
    return words[0] if words else ""
