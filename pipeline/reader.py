"""Read sample bytes straight from the shards at the offsets of the index.

Two read paths over the same ``SplitIndex``:

- ``gather`` (used by the DALI loader): memory-maps each tar on first use and copies a whole batch
  out with numpy. Raw shards written by preprocess have a constant byte stride between samples,
  so each shard is viewed as an (n, image_bytes) array and a batch is one fancy-index per shard.
- ``pread_sample`` (used by the torch reference loader): one ``os.pread`` per image and label.

Tars are opened lazily, per resolution, so a loader that only runs low steps never opens (or reads
a byte of) a ``full/`` tar; ``bytes_read`` and ``opened`` record what was touched, per resolution.
"""

from __future__ import annotations

import mmap
import os
from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.index import ResolutionIndex, SplitIndex
from preprocess.dataset_format import LABEL_BYTES, LABEL_DTYPE


class ShardReader:
    """Lazily opened shards of one split; safe to pickle (open files are not carried over)."""

    def __init__(self, index: SplitIndex) -> None:
        self.index = index
        self.bytes_read: Counter[str] = Counter()
        """Bytes of image + label data read per resolution ("full", "low", "low<H>"), in this process."""
        self.opened: set[Path] = set()
        """Tars opened in this process."""
        self._maps: dict[Path, np.ndarray] = {}
        self._fds: dict[Path, int] = {}
        self._views: dict[tuple[str, int], tuple[np.ndarray, np.ndarray] | None] = {}
        self._shard_start = {res: _shard_starts(index.at(res)) for res in index.resolutions}

    def __getstate__(self) -> dict:
        return {"index": self.index}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["index"])

    def close(self) -> None:
        """Drop memory maps and close file descriptors (a later read reopens them)."""
        self._maps.clear()
        self._views.clear()
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    # ------------------------------------------------------------------ batch path (mmap)

    def gather(self, resolution: str, positions: np.ndarray) -> tuple[np.ndarray | list[np.ndarray], np.ndarray]:
        """Image bytes and labels of ``positions`` at ``resolution``.

        Returns (images, labels): images is a uint8 (N, H, W, C) array for raw shards, else a list
        of N 1-D uint8 arrays of encoded bytes; labels is int64 (N,).
        """
        res = self.index.at(resolution)
        positions = np.asarray(positions, dtype=np.int64)
        shards = res.shard[positions]
        if self.index.encoding == "raw":
            images: np.ndarray | list[np.ndarray] = np.empty((len(positions), *res.shape), np.uint8)
            flat = images.reshape(len(positions), -1)
        else:
            images = [None] * len(positions)  # type: ignore[list-item]
        labels = np.empty((len(positions), LABEL_BYTES), np.uint8)
        for shard in np.unique(shards):
            sel = np.flatnonzero(shards == shard)
            views = self._strided_views(res, int(shard))
            if views is not None and self.index.encoding == "raw":
                local = positions[sel] - self._shard_start[resolution][shard]
                flat[sel] = views[0][local]
                labels[sel] = views[1][local]
            else:
                self._gather_one_by_one(res, int(shard), positions, sel, images, labels)
        self.bytes_read[resolution] += int(res.image_size[positions].sum()) + LABEL_BYTES * len(positions)
        return images, labels.view(LABEL_DTYPE).reshape(-1)

    def _gather_one_by_one(self, res: ResolutionIndex, shard: int, positions, sel, images, labels) -> None:
        data = self._map(res.tar_paths[shard])
        for i in sel:
            p = positions[i]
            off, size, lab = res.image_offset[p], res.image_size[p], res.label_offset[p]
            if isinstance(images, np.ndarray):
                images[i] = data[off : off + size].reshape(res.shape)
            else:
                images[i] = data[off : off + size].copy()
            labels[i] = data[lab : lab + LABEL_BYTES]

    def _strided_views(self, res: ResolutionIndex, shard: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(images (n, size), labels (n, 8)) uint8 views of a shard whose samples are equally spaced, else None."""
        key = (res.resolution, shard)
        if key not in self._views:
            self._views[key] = self._make_views(res, shard)
        return self._views[key]

    def _make_views(self, res: ResolutionIndex, shard: int) -> tuple[np.ndarray, np.ndarray] | None:
        start = self._shard_start[res.resolution][shard]
        stop = self._shard_start[res.resolution][shard + 1]
        img, lab, size = res.image_offset[start:stop], res.label_offset[start:stop], res.image_size[start:stop]
        if stop - start < 1 or (size != size[0]).any():
            return None
        stride = int(img[1] - img[0]) if stop - start > 1 else 0
        equally_spaced = (np.diff(img) == stride).all() and (np.diff(lab) == stride).all()
        if not equally_spaced or (stop - start > 1 and stride < size[0]):
            return None
        data = self._map(res.tar_paths[shard])
        n = stop - start
        images = np.ndarray((n, int(size[0])), np.uint8, buffer=data, offset=int(img[0]), strides=(stride, 1))
        labels = np.ndarray((n, LABEL_BYTES), np.uint8, buffer=data, offset=int(lab[0]), strides=(stride, 1))
        return images, labels

    def _map(self, path: Path) -> np.ndarray:
        if path not in self._maps:
            with open(path, "rb") as f:
                self._maps[path] = np.frombuffer(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), np.uint8)
            self.opened.add(path)
        return self._maps[path]

    # ------------------------------------------------------------------ per-sample path (pread)

    def pread_sample(self, resolution: str, position: int) -> tuple[bytes, int]:
        """(image bytes, label) of one sample, read with ``os.pread`` (the reference path)."""
        res = self.index.at(resolution)
        path = res.tar_paths[res.shard[position]]
        if path not in self._fds:
            self._fds[path] = os.open(path, os.O_RDONLY)
            self.opened.add(path)
        fd = self._fds[path]
        size = int(res.image_size[position])
        image = os.pread(fd, size, int(res.image_offset[position]))
        label = os.pread(fd, LABEL_BYTES, int(res.label_offset[position]))
        if len(image) != size or len(label) != LABEL_BYTES:
            raise OSError(f"{self.index.describe(resolution, position)}: short read (tar changed since open?)")
        self.bytes_read[resolution] += size + LABEL_BYTES
        return image, int(np.frombuffer(label, LABEL_DTYPE)[0])


def _shard_starts(res: ResolutionIndex) -> np.ndarray:
    """First position of each shard, plus the total, (num_shards + 1,) int64 (positions are shard-sorted)."""
    counts = np.bincount(res.shard, minlength=len(res.tar_paths))
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
