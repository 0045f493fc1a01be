"""Fashion-MNIST / MNIST source: the four idx files (gzipped, as distributed) in one folder.

``train-*`` is the train split, ``t10k-*`` the val split. idx format: 2 zero bytes, a type byte
(0x08 = uint8), a dimension count, then big-endian uint32 sizes and the data. The header is
checked first (no empty dimension, at most MAX_IDX_BYTES of data, sizes multiplied as Python
ints), then exactly that many bytes are read, in chunks: a file, or a gzip bomb, with more data
than its header says is refused after reading one byte past it.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import BinaryIO

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
MAX_IDX_BYTES = 1 << 30
"""Most data bytes one idx file may hold: ~20x MNIST's train images (47 MB), room for larger idx
digit sets (EMNIST digits: 188 MB). A split is held in memory whole, so this bounds memory too."""
_READ_CHUNK = 1 << 20


def _read(folder: Path, stem: str, source: str, ndim: int) -> tuple[Path, np.ndarray]:
    """The uint8 array of ``stem.gz`` (or an uncompressed ``stem``) in ``folder``, with ``ndim`` dimensions."""
    for path, opener in ((folder / f"{stem}.gz", gzip.open), (folder / stem, open)):
        if path.is_file():
            try:
                with opener(path, "rb") as f:
                    return path, read_idx(path, f, ndim)
            except (OSError, EOFError, zlib.error) as exc:
                what = "gzip file" if opener is gzip.open else "file"
                raise InputError(f"{path}: truncated or corrupt {what} ({exc})") from exc
    raise InputError(f"{folder / (stem + '.gz')}: missing, expected the four {_NAMES[source]} idx .gz files "
                     f"in {folder}")


def parse_idx_header(path: Path, header: bytes, ndim: int) -> tuple[int, ...]:
    """The shape in an idx header of ``ndim`` dimensions; bad magic, empty or oversized shapes are InputErrors."""
    expected_magic = 0x0800 | ndim
    magic = int.from_bytes(header[:4], "big") if len(header) >= 4 else None
    if magic != expected_magic:
        got = "too short" if magic is None else f"0x{magic:08x}"
        raise InputError(f"{path}: bad idx magic {got}, expected 0x{expected_magic:08x} (uint8, {ndim} dims)")
    if len(header) < 4 + 4 * ndim:
        raise InputError(f"{path}: truncated idx header, expected {ndim} dimension sizes")
    shape = tuple(int.from_bytes(header[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if 0 in shape:
        what = "image of at least 1x1 pixels" if ndim == 3 else "label"
        raise InputError(f"{path}: idx shape {shape} is empty, expected at least one {what}")
    size = math.prod(shape)  # Python ints: 3 x uint32 sizes cannot overflow
    if size > MAX_IDX_BYTES:
        raise InputError(f"{path}: idx shape {shape} holds {size} bytes, expected at most {MAX_IDX_BYTES}")
    return shape


def read_idx(path: Path, f: BinaryIO, ndim: int) -> np.ndarray:
    """The uint8 array of the idx stream ``f``: its header's shape, then exactly that many data bytes."""
    shape = parse_idx_header(path, f.read(4 + 4 * ndim), ndim)
    size = math.prod(shape)
    data = np.empty(size, dtype=np.uint8)  # pages are only touched as bytes arrive
    view, got = memoryview(data), 0
    while got < size:
        n = f.readinto(view[got: got + _READ_CHUNK])
        if not n:
            raise InputError(f"{path}: {got} data bytes, expected {size} for shape {shape} (truncated?)")
        got += n
    if f.read(1):  # one byte past the shape's size, never the rest of a gzip bomb
        raise InputError(f"{path}: more than {size} data bytes, expected exactly {size} for shape {shape}")
    return data.reshape(shape)


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
    splits, sides = {}, {}
    for split, (image_stem, label_stem) in FILES.items():
        image_path, images = _read(folder, image_stem, source, 3)
        label_path, labels = _read(folder, label_stem, source, 1)
        labels = labels.astype(np.int64)
        if len(labels) != len(images):
            raise InputError(f"{label_path}: {len(labels)} labels for {len(images)} images in {image_path}")
        bad = labels[labels >= len(classes)]
        if len(bad):
            raise InputError(f"{label_path}: label {int(bad[0])} out of range, expected 0..{len(classes) - 1}")
        sides[split] = (image_path, images.shape[1:])
        splits[split] = array_split(images[..., None], labels)
    (train_path, (height, width)), (val_path, val_side) = sides["train"], sides["val"]
    if val_side != (height, width):
        raise InputError(f"{val_path}: {val_side[0]}x{val_side[1]} images, expected {height}x{width} as in "
                         f"{train_path}")
    return Source(name=source, classes=classes, shape=(height, width, 1), splits=splits)
