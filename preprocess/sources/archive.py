"""Read named files from a folder or a (gzipped) tar archive without extracting anything.

Tar members are read into memory (regular files only, looked up by their path inside the
archive), so a hostile archive cannot write outside any folder: nothing is written at all.
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path

from preprocess.errors import InputError


def read_tar_files(path: Path, wanted: set[str]) -> dict[str, bytes]:
    """{member path: bytes} for the regular-file members of ``path`` whose path ends with a ``wanted`` name.

    ``wanted`` holds "<folder>/<file>" suffixes; a leading "./" in member names is ignored. A
    truncated or non-tar file is an InputError naming ``path``.
    """
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:  # one sequential pass: gzip streams are slow to seek backwards
                name = member.name.removeprefix("./")
                if member.isfile() and any(name == w or name.endswith("/" + w) for w in wanted):
                    found[name] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise InputError(f"{path}: truncated or corrupt archive, expected a complete .tar.gz ({exc})") from exc
    return found


def read_folder_files(root: Path, wanted: set[str]) -> dict[str, bytes]:
    """{relative path: bytes} of the ``wanted`` "<folder>/<file>" paths under ``root`` or its parent layout."""
    found = {}
    for rel in wanted:
        folder, name = rel.split("/", 1)
        for candidate in (root / rel, root / name if root.name == folder else None):
            if candidate is not None and candidate.is_file():
                found[rel] = candidate.read_bytes()
                break
    return found
