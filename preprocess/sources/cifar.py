"""CIFAR-10 / CIFAR-100 sources: the official python-version or binary-version archives.

The input is the ``.tar.gz`` as downloaded or its extracted folder (the folder itself, e.g.
``cifar-10-batches-py/``, or the one containing it); which version it is gets detected (the python
version when both are there). The test batch is the ``val`` split.

Hostile input is refused in bounded memory: each file is checked against the size its official
record count implies before it is read (``file_limits``), a file found twice is refused (see
``preprocess.sources.archive``), and the python version's pickles are read with a restricted
unpickler that runs no code and builds no object numpy or a later conversion could blow up: a
pass over the opcodes bounds their count and memo indices first, numpy globals resolve to
checking stand-ins (integer dtypes only; an array's bytes must match its shape), and the batch's
structure is validated before anything is converted.
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from preprocess.errors import InputError
from preprocess.sources.archive import one_line, read_folder_files, read_tar_files
from preprocess.sources.base import Source, array_split

LABEL_SETS = ("fine", "coarse")
"""CIFAR-100's label sets (``label``): the 100 fine classes or the 20 coarse superclasses."""
_PIXELS = 32 * 32 * 3
PICKLE_BYTES_PER_RECORD = 4096
"""Size cap of a python-version batch per official record: 3072 pixel bytes plus room for the
labels, file name and pickle framing (the official files use ~3104; a full CIFAR-10 batch: 40 MB)."""
META_LIMIT = 1 << 20
"""Size cap of a label-name file (the official ones hold under 2 KB)."""
MAX_CLASS_NAMES = 1000
"""Most class names a label-name file may list (CIFAR-100: 100), each of at most MAX_NAME_CHARS."""
MAX_NAME_CHARS = 256
_OPCODES_PER_RECORD = 16  # official pickles use ~3-4 per record: its label(s), file name, memo puts


@dataclass(frozen=True)
class Layout:
    """One official archive layout: its folder, files per split, label-name files, record format.

    ``train_records`` / ``val_records``: the official number of images in each train / val file.
    """

    version: str  # "python" | "binary"
    folder: str
    train: tuple[str, ...]
    val: tuple[str, ...]
    meta: tuple[str, ...]
    train_records: int
    val_records: int
    label_bytes: int = 0  # binary only: label bytes before each record's pixels

    def records(self, name: str) -> int:
        """The official number of images in the batch file ``name``."""
        return self.train_records if name in self.train else self.val_records


_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
LAYOUTS = {
    "cifar10": (
        Layout("python", "cifar-10-batches-py", _BATCHES, ("test_batch",), ("batches.meta",), 10000, 10000),
        Layout("binary", "cifar-10-batches-bin", tuple(b + ".bin" for b in _BATCHES), ("test_batch.bin",),
               ("batches.meta.txt",), 10000, 10000, label_bytes=1),
    ),
    "cifar100": (
        Layout("python", "cifar-100-python", ("train",), ("test",), ("meta",), 50000, 10000),
        Layout("binary", "cifar-100-binary", ("train.bin",), ("test.bin",),
               ("coarse_label_names.txt", "fine_label_names.txt"), 50000, 10000, label_bytes=2),
    ),
}


def file_limits(layout: Layout) -> dict[str, int]:
    """The most bytes each file of ``layout`` may hold, checked before it is read.

    A binary batch: its official size (records of label_bytes + 3072 bytes; smaller batches are
    accepted, a whole number of records is checked after reading). A python batch:
    PICKLE_BYTES_PER_RECORD per official record. A label-name file: META_LIMIT.
    """
    limits = {name: META_LIMIT for name in layout.meta}
    per_record = layout.label_bytes + _PIXELS if layout.version == "binary" else PICKLE_BYTES_PER_RECORD
    for name in (*layout.train, *layout.val):
        limits[name] = layout.records(name) * per_record
    return limits


# ----------------------------------------------------------------------------- restricted unpickling


class _NdarrayName:
    """Stands for numpy.ndarray in a pickle: only _reconstruct may name it; it builds nothing itself."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # numpy.ndarray(shape, object) would fill shape x 8 bytes
        raise pickle.UnpicklingError("numpy.ndarray may only be rebuilt from its pickled state")


_DTYPES = ("u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8")
"""The dtypes a CIFAR pickle may hold: uint8 pixels, integer labels; never object or structured dtypes."""


class _Dtype:
    """A pickled numpy.dtype: a plain integer dtype, its state checked to add no fields or subarray."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype

    def __setstate__(self, state: Any) -> None:
        # numpy's dtype state: (version, byte order, subarray, names, fields, elsize, alignment, flags[, metadata])
        if not (isinstance(state, tuple) and len(state) in (8, 9) and state[0] in (3, 4)
                and state[1] in ("<", ">", "|", "=") and all(s is None for s in state[2:5] + state[8:])):
            raise pickle.UnpicklingError("a structured, subarray or unknown numpy dtype state")
        if state[1] in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(state[1])


def _dtype(spec: Any, align: Any = False, copy: Any = False) -> _Dtype:
    if not (isinstance(spec, str) and spec in _DTYPES):
        shown = repr(spec) if isinstance(spec, str) and len(spec) <= 16 else type(spec).__name__
        raise pickle.UnpicklingError(f"numpy dtype {shown}, expected one of {', '.join(_DTYPES)}")
    return _Dtype(np.dtype(spec))


def _raw_bytes(data: Any) -> bytes:
    """An array's or scalar's pickled bytes: bytes, or latin-1 text in Python 2 era pickles."""
    if isinstance(data, str):
        return data.encode("latin1")
    if isinstance(data, bytes):
        return data
    raise pickle.UnpicklingError(f"array data of type {type(data).__name__}, expected bytes")


class _Array:
    """A pickled ndarray: ``array`` is built only once its state's shape, dtype and byte count check out."""

    array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        # ndarray state: ([version,] shape, dtype, is_fortran, raw bytes)
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]
        if not (isinstance(state, tuple) and len(state) == 4):
            raise pickle.UnpicklingError("an unknown numpy array state")
        shape, dtype, fortran, raw = state
        if not (isinstance(shape, tuple) and len(shape) <= 4 and all(type(d) is int and d >= 0 for d in shape)):
            raise pickle.UnpicklingError("a numpy array shape that is not up to 4 sizes >= 0")
        if not isinstance(dtype, _Dtype):
            raise pickle.UnpicklingError("a numpy array without a pickled dtype")
        raw, count = _raw_bytes(raw), math.prod(shape)  # Python ints: no overflow
        if len(raw) != count * dtype.dtype.itemsize:
            raise pickle.UnpicklingError(f"a numpy array of {len(raw)} bytes for shape {shape} of {dtype.dtype}")
        flat = np.frombuffer(raw, dtype=dtype.dtype, count=count)
        self.array = flat.reshape(shape, order="F" if fortran else "C")


def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> _Array:
    if subtype is not _NdarrayName:
        raise pickle.UnpicklingError("_reconstruct of something other than numpy.ndarray")
    return _Array()


def _scalar(dtype: Any, data: Any) -> np.generic:
    if not isinstance(dtype, _Dtype):
        raise pickle.UnpicklingError("a numpy scalar without a pickled dtype")
    raw = _raw_bytes(data)
    if len(raw) != dtype.dtype.itemsize:
        raise pickle.UnpicklingError(f"a numpy scalar of {len(raw)} bytes for {dtype.dtype}")
    return np.frombuffer(raw, dtype=dtype.dtype)[0]


def _latin1_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    # protocol 2 pickles bytes as _codecs.encode(<latin-1 text>, "latin1"); other codecs are not needed
    if not (isinstance(text, str) and encoding in ("latin1", "latin-1")):
        raise pickle.UnpicklingError("_codecs.encode other than of text to latin1")
    return text.encode("latin1")


_MULTIARRAY = ("numpy.core.multiarray", "numpy._core.multiarray")  # numpy >= 2 moved numpy.core to numpy._core
_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _NdarrayName, ("numpy", "dtype"): _dtype, ("_codecs", "encode"): _latin1_encode,
    **{(module, "_reconstruct"): _reconstruct for module in _MULTIARRAY},
    **{(module, "scalar"): _scalar for module in _MULTIARRAY},
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose globals are the checking stand-ins above; any other global is refused.

    Arrays come out as ``_Array`` holders (``load_pickle`` unwraps a dict's values): numpy's own
    ``__setstate__`` is never called, since for an object dtype it allocates and fills the whole
    shape before reading the (short) list of items, and then crashes.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch") from None


def _check_opcodes(data: bytes, records: int) -> None:
    """Refuse a pickle with more opcodes, or a higher memo index, than ``records`` records need.

    A pass over the opcodes (pickletools builds no objects) before unpickling: a one-byte opcode can
    make an object ~50x its size (EMPTY_DICT), and the C unpickler sizes its memo table by the
    largest index it is given (a 9-byte pickle with LONG_BINPUT 2**31 fills 16 GiB).
    """
    limit = _OPCODES_PER_RECORD * records + 4096
    for count, (opcode, arg, _) in enumerate(pickletools.genops(data), 1):
        if count > limit:
            raise pickle.UnpicklingError(f"more than {limit} pickle opcodes, expected at most {records} records")
        if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and arg >= limit:
            raise pickle.UnpicklingError(f"pickle memo index {arg}, expected below {limit}")


def load_pickle(data: bytes, where: str, records: int = 50000) -> dict[str, Any]:
    """Unpickle a CIFAR python-version file of at most ``records`` records (restricted); keys become str.

    Arrays among the dict's values are numpy arrays of an integer dtype (nested ones stay _Array
    holders, which no later check accepts); everything else is a plain container, number, string or
    numpy integer scalar: the unpickler builds nothing more.
    """
    try:
        _check_opcodes(data, records)
        obj = RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as exc:  # any unpickling failure means: not a CIFAR batch
        raise InputError(f"{where}: not a CIFAR python batch ({one_line(exc)})") from exc
    if not isinstance(obj, dict):
        raise InputError(f"{where}: not a CIFAR python batch (expected a dict, got {type(obj).__name__})")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v.array if isinstance(v, _Array) else v
            for k, v in obj.items()}


# ----------------------------------------------------------------------------- batches and class names


def _field(batch: dict[str, Any], key: str, where: str) -> Any:
    if key not in batch:
        raise InputError(f"{where}: not a CIFAR python batch (no {key!r} entry)")
    return batch[key]


def _describe(value: Any) -> str:
    return f"{value.dtype} {value.shape}" if isinstance(value, np.ndarray) else f"a {type(value).__name__}"


def _labels(value: Any, count: int, where: str, key: str) -> np.ndarray:
    """A batch's labels as int64 (count,): a 1-D integer array or a flat list of ints, checked first."""
    if not isinstance(value, (np.ndarray, list, tuple)) or (isinstance(value, np.ndarray) and value.ndim != 1):
        raise InputError(f"{where}: {key!r} is {_describe(value)}, expected a list of {count} integer labels")
    if len(value) != count:
        raise InputError(f"{where}: {len(value)} labels for {count} images")
    if isinstance(value, np.ndarray):  # an integer dtype: the unpickler allows no other
        return value.astype(np.int64)
    if not all(type(v) is int or isinstance(v, np.integer) for v in value):
        raise InputError(f"{where}: {key!r} holds something other than integers, expected {count} integer labels")
    try:
        return np.array(value, dtype=np.int64)
    except OverflowError:
        raise InputError(f"{where}: {key!r} holds a label beyond 64 bits, expected small integer labels") from None


def _python_batch(data: bytes, where: str, label_key: str, records: int) -> tuple[np.ndarray, np.ndarray]:
    batch = load_pickle(data, where, records)
    pixels = _field(batch, "data", where)
    if not (isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8 and pixels.ndim == 2
            and pixels.shape[1] == _PIXELS):
        raise InputError(f"{where}: 'data' is {_describe(pixels)}, expected uint8 (N, {_PIXELS})")
    if not 1 <= len(pixels) <= records:
        raise InputError(f"{where}: {len(pixels)} images, expected 1 to {records}")
    return pixels, _labels(_field(batch, label_key, where), len(pixels), where, label_key)


def _binary_batch(data: bytes, where: str, label_bytes: int, label_pos: int) -> tuple[np.ndarray, np.ndarray]:
    record = label_bytes + _PIXELS
    if not data or len(data) % record:
        raise InputError(f"{where}: {len(data)} bytes is not a whole number of {record}-byte CIFAR records "
                         "(truncated or not a CIFAR binary batch)")
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    return rows[:, label_bytes:], rows[:, label_pos].astype(np.int64)


def _check_names(names: Any, where: str, what: str) -> list[str]:
    """``names`` as a list of str, refused unless 1..MAX_CLASS_NAMES names of 1..MAX_NAME_CHARS characters."""
    if not (isinstance(names, (list, tuple)) and 1 <= len(names) <= MAX_CLASS_NAMES
            and all(isinstance(n, (str, bytes)) and 1 <= len(n) <= MAX_NAME_CHARS for n in names)):
        raise InputError(f"{where}: {what} is not a list of 1 to {MAX_CLASS_NAMES} class names of 1 to "
                         f"{MAX_NAME_CHARS} characters")
    return [n.decode("latin1") if isinstance(n, bytes) else n for n in names]


def _class_names(path: Path, layout: Layout, files: dict[str, bytes], label: str) -> list[str]:
    if layout.version == "python":
        where = f"{path}:{layout.folder}/{layout.meta[0]}"
        meta = load_pickle(files[layout.meta[0]], where, MAX_CLASS_NAMES)
        key = "label_names" if "label_names" in meta else f"{label}_label_names"  # CIFAR-10 | CIFAR-100
        return _check_names(_field(meta, key, where), where, repr(key))
    name = layout.meta[0] if len(layout.meta) == 1 else f"{label}_label_names.txt"
    where = f"{path}:{layout.folder}/{name}"
    try:
        text = files[name].decode()
    except UnicodeDecodeError:
        raise InputError(f"{where}: not UTF-8 text, expected one class name per line") from None
    return _check_names([line.strip() for line in text.splitlines() if line.strip()], where, "the file")


def _find_layout(source: str, path: Path) -> tuple[Layout, dict[str, bytes]]:
    """The layout present at ``path`` and its files keyed by bare file name.

    One pass reads the files of every layout (a .tar.gz cannot be re-read cheaply), each within
    its ``file_limits``; the first complete layout wins.
    """
    limits = {f"{layout.folder}/{name}": limit for layout in LAYOUTS[source]
              for name, limit in file_limits(layout).items()}
    files = read_tar_files(path, limits) if path.is_file() else read_folder_files(path, limits)
    for layout in LAYOUTS[source]:
        names = (*layout.train, *layout.val, *layout.meta)
        if all(f"{layout.folder}/{name}" in files for name in names):
            return layout, {name: files[f"{layout.folder}/{name}"] for name in names}
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
    classes = _class_names(path, layout, files, label)
    label_key = "labels" if source == "cifar10" else f"{label}_labels"
    label_pos = 1 if (layout.label_bytes == 2 and label == "fine") else 0
    splits = {}
    for split, names in (("train", layout.train), ("val", layout.val)):
        parts = []
        for name in names:
            where = f"{path}:{layout.folder}/{name}"
            if layout.version == "python":
                parts.append(_python_batch(files[name], where, label_key, layout.records(name)))
            else:
                parts.append(_binary_batch(files[name], where, layout.label_bytes, label_pos))
            bad = parts[-1][1][(parts[-1][1] < 0) | (parts[-1][1] >= len(classes))]
            if len(bad):
                raise InputError(f"{where}: label {int(bad[0])} out of range, expected 0..{len(classes) - 1}")
        pixels = np.concatenate([p for p, _ in parts])
        images = np.ascontiguousarray(pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        splits[split] = array_split(images, np.concatenate([lab for _, lab in parts]))
    return Source(name=source, classes=tuple(classes), shape=(32, 32, 3), splits=splits)
