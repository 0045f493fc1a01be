"""Shard index files: DALI's ``wds2idx`` v1.2 text format, written next to every tar.

Line 1 is ``v1.2 <count>``; then one line per sample, in tar order, listing per component
``<ext> <data offset> <size> <member name>``, so DALI and the torch loader can seek straight to
any sample's bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from preprocess.dataset_format import DatasetFormatError

INDEX_VERSION = "v1.2"


@dataclass(frozen=True)
class IndexEntry:
    """One sample of a shard: its key and, per component extension, (data offset, size) in the tar."""

    key: str
    components: dict[str, tuple[int, int]]


def format_index(entries: list[tuple[str, list[tuple[str, int, int]]]]) -> str:
    """Render a wds2idx v1.2 index.

    ``entries``: per sample, its key and its components as (extension, data offset, size), in tar
    order. Each line lists ``<ext> <offset> <size> <member name>`` per component, as DALI's
    ``wds2idx`` writes it.
    """
    lines = [f"{INDEX_VERSION} {len(entries)}"]
    for key, components in entries:
        lines.append(" ".join(f"{ext} {off} {size} {key}.{ext}" for ext, off, size in components))
    return "\n".join(lines) + "\n"


def parse_index(path: str | os.PathLike) -> list[IndexEntry]:
    """Read a wds2idx v1.2 index file; raise DatasetFormatError naming the file on any problem."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DatasetFormatError(f"{path}: cannot read index file ({exc.strerror})") from exc
    if not lines:
        raise DatasetFormatError(f"{path}: empty index file, expected a '{INDEX_VERSION} <count>' header")
    header = lines[0].split()
    if len(header) != 2 or header[0] != INDEX_VERSION or not header[1].isdigit():
        raise DatasetFormatError(f"{path}: bad header {lines[0]!r}, expected '{INDEX_VERSION} <count>'")
    count = int(header[1])
    if len(lines) - 1 != count:
        raise DatasetFormatError(f"{path}: header says {count} samples, file lists {len(lines) - 1}")
    entries = []
    for lineno, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if not fields or len(fields) % 4:
            raise DatasetFormatError(f"{path}:{lineno}: expected groups of '<ext> <offset> <size> <name>'")
        key, components = None, {}
        for i in range(0, len(fields), 4):
            ext, off, size, name = fields[i : i + 4]
            if not (off.isdigit() and size.isdigit()):
                raise DatasetFormatError(f"{path}:{lineno}: offset/size must be integers, got {off!r} {size!r}")
            stem = name.split(".", 1)[0]
            if key is None:
                key = stem
            elif stem != key:
                raise DatasetFormatError(f"{path}:{lineno}: members of one sample have keys {key!r} and {stem!r}")
            components[ext] = (int(off), int(size))
        entries.append(IndexEntry(key=key, components=components))
    return entries
