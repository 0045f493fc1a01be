"""Fashion-MNIST / MNIST source: the four idx files (gzipped, as distributed) in one folder.

``train-*`` is the train split, ``t10k-*`` the val split. idx format: 2 zero bytes, a type byte
(0x08 = uint8), a dimension count, then big-endian uint32 sizes and the data.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from preprocess.errors import InputError
from preprocess.sources.base import Source, array_split

FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "val": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
CLASSES = {
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
    "mnist": tuple(str(d) for d in range(10)),
}
_NAMES = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST"}


def _read(folder: Path, stem: str, source: str) -> tuple[Path, bytes]:
    """Bytes of ``stem.gz`` (or an uncompressed ``stem``) in ``folder``."""
    for path, opener in ((folder / f"{stem}.gz", gzip.open), (folder / stem, open)):
        if path.is_file():
            try:
                with opener(path, "rb") as f:
                    return path, f.read()
            except (OSError, EOFError, zlib.error) as exc:
                raise InputError(f"{path}: truncated or corrupt gzip file ({exc})") from exc
    raise InputError(f"{folder / (stem + '.gz')}: missing, expected the four {_NAMES[source]} idx .gz files "
                     f"in {folder}")


def parse_idx(path: Path, data: bytes, ndim: int) -> np.ndarray:
    """The uint8 array of an idx file with ``ndim`` dimensions; bad magic or size is an InputError."""
    expected_magic = 0x0800 | ndim
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if magic != expected_magic:
        got = "too short" if magic is None else f"0x{magic:08x}"
        raise InputError(f"{path}: bad idx magic {got}, expected 0x{expected_magic:08x} (uint8, {ndim} dims)")
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape))
    if len(data) != header + size:
        raise InputError(f"{path}: {len(data) - header} data bytes, expected {size} for shape {shape} (truncated?)")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def open_fashion_mnist(path: Path) -> Source:
    """Fashion-MNIST from the folder ``path``."""
    return _open_idx("fashion-mnist", path)


def open_mnist(path: Path) -> Source:
    """MNIST from the folder ``path``."""
    return _open_idx("mnist", path)


def _open_idx(source: str, folder: Path) -> Source:
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder, expected the four {_NAMES[source]} idx .gz files")
    classes = CLASSES[source]
    splits = {}
    for split, (image_stem, label_stem) in FILES.items():
        image_path, image_data = _read(folder, image_stem, source)
        label_path, label_data = _read(folder, label_stem, source)
        images = parse_idx(image_path, image_data, 3)
        labels = parse_idx(label_path, label_data, 1).astype(np.int64)
        if len(labels) != len(images):
            raise InputError(f"{label_path}: {len(labels)} labels for {len(images)} images in {image_path}")
        bad = labels[labels >= len(classes)]
        if len(bad):
            raise InputError(f"{label_path}: label {int(bad[0])} out of range, expected 0..{len(classes) - 1}")
        splits[split] = array_split(images[..., None], labels)
    height, width = splits["train"].load(np.arange(1)).shape[1:3]
    return Source(name=source, classes=classes, shape=(height, width, 1), splits=splits)
