"""CIFAR-10 / CIFAR-100 sources: the official python-version or binary-version archives.

The input is the ``.tar.gz`` as downloaded or its extracted folder (the folder itself, e.g.
``cifar-10-batches-py/``, or the one containing it); which version it is gets detected. The
python version's pickles are read with a restricted unpickler that only resolves the few numpy
names an ndarray pickle needs, so a malicious pickle cannot run code. The test batch is the
``val`` split.
"""

from __future__ import annotations

import importlib
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from preprocess.errors import InputError
from preprocess.sources.archive import read_folder_files, read_tar_files
from preprocess.sources.base import Source, array_split

LABEL_SETS = ("fine", "coarse")
"""CIFAR-100's label sets (``label``): the 100 fine classes or the 20 coarse superclasses."""
_PIXELS = 32 * 32 * 3


@dataclass(frozen=True)
class Layout:
    """One official archive layout: its folder, files per split, label-name files, record format."""

    version: str  # "python" | "binary"
    folder: str
    train: tuple[str, ...]
    val: tuple[str, ...]
    meta: tuple[str, ...]
    label_bytes: int = 0  # binary only: label bytes before each record's pixels


_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
LAYOUTS = {
    "cifar10": (
        Layout("python", "cifar-10-batches-py", _BATCHES, ("test_batch",), ("batches.meta",)),
        Layout("binary", "cifar-10-batches-bin", tuple(b + ".bin" for b in _BATCHES), ("test_batch.bin",),
               ("batches.meta.txt",), label_bytes=1),
    ),
    "cifar100": (
        Layout("python", "cifar-100-python", ("train",), ("test",), ("meta",)),
        Layout("binary", "cifar-100-binary", ("train.bin",), ("test.bin",),
               ("coarse_label_names.txt", "fine_label_names.txt"), label_bytes=2),
    ),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals an ndarray pickle needs; anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
                   ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                   ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        if module.startswith("numpy") and module.endswith("multiarray"):
            try:  # numpy >= 2 moved numpy.core to numpy._core
                return getattr(importlib.import_module("numpy._core.multiarray"), name)
            except ImportError:
                return getattr(importlib.import_module("numpy.core.multiarray"), name)
        return getattr(importlib.import_module(module), name)


def load_pickle(data: bytes, where: str) -> dict[str, Any]:
    """Unpickle a CIFAR python-version batch (restricted); keys are returned as str."""
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as exc:  # any unpickling failure means: not a CIFAR batch
        raise InputError(f"{where}: not a CIFAR python batch ({exc})") from exc
    if not isinstance(obj, dict):
        raise InputError(f"{where}: not a CIFAR python batch (expected a dict, got {type(obj).__name__})")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _field(batch: dict[str, Any], key: str, where: str) -> Any:
    if key not in batch:
        raise InputError(f"{where}: not a CIFAR python batch (no {key!r} entry)")
    return batch[key]


def _python_batch(data: bytes, where: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    batch = load_pickle(data, where)
    pixels = np.asarray(_field(batch, "data", where))
    labels = np.asarray(_field(batch, label_key, where), dtype=np.int64)
    if pixels.dtype != np.uint8 or pixels.ndim != 2 or pixels.shape[1] != _PIXELS:
        raise InputError(f"{where}: 'data' is {pixels.dtype} {pixels.shape}, expected uint8 (N, {_PIXELS})")
    if len(labels) != len(pixels):
        raise InputError(f"{where}: {len(labels)} labels for {len(pixels)} images")
    return pixels, labels


def _binary_batch(data: bytes, where: str, label_bytes: int, label_pos: int) -> tuple[np.ndarray, np.ndarray]:
    record = label_bytes + _PIXELS
    if not data or len(data) % record:
        raise InputError(f"{where}: {len(data)} bytes is not a whole number of {record}-byte CIFAR records "
                         "(truncated or not a CIFAR binary batch)")
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    return rows[:, label_bytes:], rows[:, label_pos].astype(np.int64)


def _class_names(layout: Layout, files: dict[str, bytes], label: str, where: str) -> list[str]:
    if layout.version == "python":
        meta = load_pickle(files[layout.meta[0]], where)
        key = "label_names" if "label_names" in meta else f"{label}_label_names"  # CIFAR-10 | CIFAR-100
        return [str(n) for n in _field(meta, key, where)]
    name = layout.meta[0] if len(layout.meta) == 1 else f"{label}_label_names.txt"
    return [line.strip() for line in files[name].decode().splitlines() if line.strip()]


def _find_layout(source: str, path: Path) -> tuple[Layout, dict[str, bytes]]:
    """The layout present at ``path`` and its files keyed by bare file name."""
    for layout in LAYOUTS[source]:
        wanted = {f"{layout.folder}/{n}" for n in (*layout.train, *layout.val, *layout.meta)}
        files = read_tar_files(path, wanted) if path.is_file() else read_folder_files(path, wanted)
        by_name = {name.rsplit("/", 1)[-1]: data for name, data in files.items()}
        if len(by_name) == len(wanted):
            return layout, by_name
    expected = " or ".join(f"{lay.folder}/ ({lay.version} version)" for lay in LAYOUTS[source])
    raise InputError(f"{path}: not a complete {_pretty(source)} archive, expected {expected} with all its batches")


def _pretty(source: str) -> str:
    return {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}[source]


def _download(source: str, root: Path) -> None:
    """Fetch the python-version archive with torchvision (users with internet; tests never call this)."""
    from torchvision import datasets

    cls = datasets.CIFAR10 if source == "cifar10" else datasets.CIFAR100
    for train in (True, False):
        cls(root=str(root), train=train, download=True)


def open_cifar10(path: Path, *, download: bool) -> Source:
    """CIFAR-10 at ``path`` (``download``: fetch it there with torchvision first)."""
    return _open_cifar("cifar10", path, "fine", download)


def open_cifar100(path: Path, *, label: str, download: bool) -> Source:
    """CIFAR-100 at ``path`` with the ``label`` set (fine | coarse); ``download`` as for CIFAR-10."""
    if label not in LABEL_SETS:
        raise InputError(f"--label: expected one of {', '.join(LABEL_SETS)}, got {label!r}")
    return _open_cifar("cifar100", path, label, download)


def _open_cifar(source: str, path: Path, label: str, download: bool) -> Source:
    if download:
        _download(source, path)
    if not path.exists():
        raise InputError(f"{path}: not found, expected the {_pretty(source)} .tar.gz or its extracted folder")
    layout, files = _find_layout(source, path)
    classes = _class_names(layout, files, label, f"{path}:{layout.folder}/{layout.meta[0]}")
    label_key = "labels" if source == "cifar10" else f"{label}_labels"
    label_pos = 1 if (layout.label_bytes == 2 and label == "fine") else 0
    splits = {}
    for split, names in (("train", layout.train), ("val", layout.val)):
        parts = []
        for name in names:
            where = f"{path}:{layout.folder}/{name}"
            if layout.version == "python":
                parts.append(_python_batch(files[name], where, label_key))
            else:
                parts.append(_binary_batch(files[name], where, layout.label_bytes, label_pos))
            bad = parts[-1][1][(parts[-1][1] < 0) | (parts[-1][1] >= len(classes))]
            if len(bad):
                raise InputError(f"{where}: label {int(bad[0])} out of range, expected 0..{len(classes) - 1}")
        pixels = np.concatenate([p for p, _ in parts])
        images = np.ascontiguousarray(pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        splits[split] = array_split(images, np.concatenate([lab for _, lab in parts]))
    return Source(name=source, classes=tuple(classes), shape=(32, 32, 3), splits=splits)
