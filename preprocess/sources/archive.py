"""Read named files from a folder or a (gzipped) tar archive without extracting anything, in bounded memory.

Tar members are read into memory (regular files only, looked up by their path inside the
archive), so a hostile archive cannot write outside any folder: nothing is written at all.

Every wanted file comes with a size limit that is checked before any of its bytes are read: on
the tar header's size (so a gzip bomb is refused without being inflated) or on the folder file's
``stat()``. A wanted file found twice (two member paths, the same path twice, or a folder and its
nested copy) is refused: there is no right copy to pick. tarfile's own memory is bounded too: it
reads a member's extended header (pax, GNU long name) whole and keeps every member's header, so
extended headers over EXTENDED_HEADER_LIMIT, sparse members and archives of more than
MAX_MEMBERS members are refused.
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path

from preprocess.errors import InputError

MAX_MEMBERS = 1000
"""Most members a source archive may hold (the official CIFAR archives hold under 10)."""
EXTENDED_HEADER_LIMIT = 64 * 1024
"""Most bytes of one pax / GNU long-name header (real ones hold a path: at most a few KB)."""
_EXTENDED_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
                   tarfile.SOLARIS_XHDTYPE)


class _Refused(Exception):
    """Raised from inside tarfile (which re-raises unknown exceptions as they are); becomes an InputError."""


class _BoundedTarInfo(tarfile.TarInfo):
    """TarInfo that refuses, before tarfile reads them, the header data tarfile would hold in memory whole."""

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:  # tarfile's per-header hook
        if self.type in _EXTENDED_TYPES and self.size > EXTENDED_HEADER_LIMIT:
            raise _Refused(f"an extended tar header of {self.size} bytes, expected at most {EXTENDED_HEADER_LIMIT}")
        if self.type == tarfile.GNUTYPE_SPARSE:  # its sparse map is an unbounded chain of header blocks
            raise _Refused("a sparse tar member, expected regular files")
        return super()._proc_member(tar)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (tarfile's can span several), at most 200 characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _shown(name: str) -> str:
    """A member name as printed in a message: escaped when it holds newlines or other control characters."""
    return name if name.isprintable() else ascii(name)


def _wanted_name(name: str, limits: dict[str, int]) -> str | None:
    """The wanted "<folder>/<file>" name that the member path ``name`` ends with, if any."""
    for wanted in limits:
        if name == wanted or name.endswith("/" + wanted):
            return wanted
    return None


def read_tar_files(path: Path, limits: dict[str, int]) -> dict[str, bytes]:
    """{wanted name: bytes} for the regular-file members of ``path`` whose path ends with a wanted name.

    ``limits`` maps each wanted "<folder>/<file>" name to the most bytes it may hold; a leading "./"
    in member names is ignored. An empty, non-tar, truncated or hostile file, a member over its
    limit and a wanted name found twice are InputErrors naming ``path``.
    """
    found: dict[str, bytes] = {}
    member_of: dict[str, str] = {}  # wanted name -> the member path it was found at
    try:
        if path.stat().st_size == 0:
            raise InputError(f"{path}: empty file, expected a complete .tar.gz archive")
        tar = tarfile.open(path, "r:*", tarinfo=_BoundedTarInfo)  # reads the first member's header
    except tarfile.ReadError as exc:  # its message lists every decompressor tried, on several lines
        raise InputError(f"{path}: not a tar archive (tried gzip, bz2, xz and plain tar), expected a complete "
                         ".tar.gz") from exc
    except OSError as exc:
        raise InputError(f"{path}: unreadable ({exc.strerror or one_line(exc)})") from exc
    except (_Refused, RecursionError) as exc:
        raise _corrupt(path, exc) from None
    try:
        with tar:
            for count, member in enumerate(tar, 1):  # one sequential pass: gzip streams are slow to seek back
                if count > MAX_MEMBERS:
                    raise InputError(f"{path}: more than {MAX_MEMBERS} archive members, expected the dataset's "
                                     "official archive")
                name = member.name.removeprefix("./")
                wanted = _wanted_name(name, limits)
                if wanted is None or not member.isfile():
                    continue
                if wanted in member_of:
                    raise InputError(f"{path}: {wanted} found twice, as {_shown(member_of[wanted])} and "
                                     f"{_shown(name)}, expected exactly one copy")
                member_of[wanted] = name
                if member.size > limits[wanted]:  # the header's size: nothing inflated yet
                    raise InputError(f"{path}:{_shown(name)}: {member.size} bytes, expected at most "
                                     f"{limits[wanted]} for this file")
                found[wanted] = tar.extractfile(member).read()
    except (_Refused, tarfile.TarError, EOFError, zlib.error, OSError, RecursionError) as exc:
        raise _corrupt(path, exc) from exc
    return found


def _corrupt(path: Path, exc: BaseException) -> InputError:
    """The InputError for a failure while reading the archive ``path``."""
    if isinstance(exc, _Refused):
        return InputError(f"{path}: {exc}")
    if isinstance(exc, RecursionError):  # tarfile recurses once per chained extended header
        return InputError(f"{path}: corrupt archive (chained extended headers), expected a complete .tar.gz")
    return InputError(f"{path}: truncated or corrupt archive, expected a complete .tar.gz ({one_line(exc)})")


def read_folder_files(root: Path, limits: dict[str, int]) -> dict[str, bytes]:
    """{wanted name: bytes} of the wanted "<folder>/<file>" paths under ``root`` (or ``root`` is that folder).

    ``limits`` as for read_tar_files. A file over its limit, or present both as root/<folder>/<file>
    and root/<file> when ``root`` is named <folder>, is an InputError.
    """
    found = {}
    for wanted, limit in limits.items():
        folder, name = wanted.split("/", 1)
        candidates = [root / wanted] + ([root / name] if root.name == folder else [])
        present = [c for c in candidates if c.is_file()]
        if len(present) > 1:
            raise InputError(f"{root}: {wanted} found twice, as {present[1]} and {present[0]}, expected exactly "
                             "one copy")
        if present:
            found[wanted] = read_bounded(present[0], limit)
    return found


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of the file ``path``, refused (InputError) when it holds more than ``limit`` bytes."""
    try:
        size = path.stat().st_size
        if size <= limit:
            with path.open("rb") as f:
                data = f.read(limit + 1)  # the file may have grown since stat()
            size = max(size, len(data))
    except OSError as exc:
        raise InputError(f"{path}: unreadable ({exc.strerror or one_line(exc)})") from exc
    if size > limit:
        raise InputError(f"{path}: {size} bytes, expected at most {limit} for this file")
    return data
