"""Hostile input is refused in bounded memory: one 'error: <file or option>: ...' line, exit 2, nothing written.

Each case runs the CLI in a child process and reads its peak RSS from os.wait4 (in a small
wrapper, see _WRAPPER). The hostile files are made here and stay tiny on disk: gzip bombs repeat
one deflate block, oversized folder files are sparse, and pickle bombs are packed in a .tar.gz.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import subprocess
import sys
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from preprocess.errors import InputError
from preprocess.sources import open_source
from preprocess.sources.cifar import LAYOUTS, file_limits
from tests.preprocess.fixtures import cifar_files, idx_bytes, write_cifar, write_idx

REPO = Path(__file__).resolve().parents[2]
MAX_RSS_MB = 300
MiB = 1 << 20


@dataclass
class Refusal:
    """What a CLI child did: exit code, stderr text, peak RSS in MB."""

    code: int
    err: str
    rss_mb: float


# The CLI's peak RSS, measured in a small wrapper process: exec keeps the forking process's RSS
# high-water mark, so a child forked from pytest (hundreds of MB) would report pytest's peak.
# The wrapper forks the CLI with an address-space limit (a regression fails the test with a
# MemoryError instead of taking the machine's memory; one BLAS thread keeps numpy's own address
# space small on many-core machines) and a CPU-time limit, reaps it with os.wait4 and prints its
# ru_maxrss (KiB on Linux) and exit code.
_WRAPPER = """
import os, resource, sys
pid = os.fork()
if pid == 0:
    os.environ.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    resource.setrlimit(resource.RLIMIT_CPU, (60, 60))
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execv(sys.executable, [sys.executable, "-m", "preprocess", *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def _run_cli(*argv: str | Path) -> Refusal:
    """Run ``python -m preprocess argv`` in a child process (through _WRAPPER) and return what it did."""
    with tempfile.TemporaryFile() as err:  # the child's stderr
        wrapper = subprocess.run([sys.executable, "-c", _WRAPPER, *map(str, argv)], cwd=REPO, stdout=subprocess.PIPE,
                                 stderr=err, timeout=120, check=True)
        err.seek(0)
        text = err.read().decode(errors="replace")
    maxrss_kib, code = map(int, wrapper.stdout.split())
    return Refusal(code, text, maxrss_kib / 1024)


def _refused(out: Path, *argv: str | Path, expect: str) -> Refusal:
    """Run ``build --out out argv``; assert exit 2, one error line containing ``expect``, no output, bounded RSS."""
    result = _run_cli("build", "--out", out, "--quiet", *argv)
    assert result.code == 2, result
    assert result.err.startswith("error: ") and result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err and expect in result.err, result.err
    assert not out.exists()
    assert result.rss_mb <= MAX_RSS_MB, f"peak RSS {result.rss_mb:.0f} MB: {result.err}"
    return result


# ----------------------------------------------------------------------------- hostile file makers


def _zero_gzip(path: Path, prefix: bytes, zeros: int, suffix: bytes = b"") -> Path:
    """A valid gzip file of prefix + ``zeros`` zero bytes + suffix: one deflate block of a MiB of zeros,
    compressed once after a full flush (so it stands alone) and repeated: ~1 KB per MiB, no inflating."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(MiB)
    crc = zlib.crc32(prefix)
    with path.open("wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")  # gzip header, mtime 0
        f.write(deflate.compress(prefix) + deflate.flush(zlib.Z_FULL_FLUSH))
        block = deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH)
        for _ in range(zeros // MiB):
            f.write(block)
            crc = zlib.crc32(chunk, crc)
        rest = bytes(zeros % MiB) + suffix
        f.write(deflate.compress(rest) + deflate.flush())
        f.write(struct.pack("<II", zlib.crc32(rest, crc), (len(prefix) + zeros + len(suffix)) & 0xFFFFFFFF))
    return path


def _bomb_tar(path: Path, member: str, inflated: int) -> Path:
    """A .tar.gz of one member of ``inflated`` zero bytes (tar end blocks included)."""
    info = tarfile.TarInfo(member)
    info.size = inflated
    return _zero_gzip(path, info.tobuf(format=tarfile.USTAR_FORMAT), inflated, bytes(1024))


def _tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _sparse(path: Path, size: int) -> None:
    """Make ``path`` a file of ``size`` bytes that takes no disk space."""
    with path.open("wb") as f:
        f.truncate(size)


def _nested_list(depth: int, width: int) -> list:
    """width**depth zeros as nested lists that reuse one list per level (the pickle memo keeps it tiny)."""
    nested: list = [0] * width
    for _ in range(depth - 1):
        nested = [nested] * width
    return nested


try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct


class _ObjectArray:
    """Pickles as a 10**8-item object-dtype ndarray whose item list holds one item."""

    def __reduce__(self):
        return _reconstruct, (np.ndarray, (0,), b"b"), (1, (10**8,), np.dtype("O"), False, [0])


# ----------------------------------------------------------------------------- 1. sizes checked before reading


def test_official_file_limits():
    c10_py, c10_bin = LAYOUTS["cifar10"]
    c100_py, c100_bin = LAYOUTS["cifar100"]
    assert file_limits(c10_bin)["data_batch_1.bin"] == 10000 * 3073
    assert file_limits(c100_bin)["train.bin"] == 50000 * 3074 and file_limits(c100_bin)["test.bin"] == 10000 * 3074
    assert file_limits(c10_py)["data_batch_1"] == 40_960_000 and file_limits(c100_py)["train"] == 204_800_000
    assert file_limits(c10_py)["batches.meta"] == file_limits(c100_bin)["fine_label_names.txt"] == 1 << 20


def _python_bomb(tmp: Path) -> tuple[str, Path, str]:
    path = _bomb_tar(tmp / "cifar-10-python.tar.gz", "cifar-10-batches-py/data_batch_1", 1 << 30)
    return "cifar10", path, f"{path}:cifar-10-batches-py/data_batch_1: 1073741824 bytes, expected at most 40960000"


def _binary_bomb(tmp: Path) -> tuple[str, Path, str]:
    path = _bomb_tar(tmp / "cifar-100-binary.tar.gz", "./cifar-100-binary/train.bin", 1 << 30)
    return "cifar100", path, f"{path}:cifar-100-binary/train.bin: 1073741824 bytes, expected at most 153700000"


def _sparse_batch(tmp: Path) -> tuple[str, Path, str]:
    folder, _ = write_cifar(tmp, "cifar10", "binary", packed=False)
    _sparse(folder / "data_batch_1.bin", 1 << 30)
    return "cifar10", folder, f"{folder / 'data_batch_1.bin'}: 1073741824 bytes, expected at most 30730000"


def _sparse_meta(tmp: Path) -> tuple[str, Path, str]:
    folder, _ = write_cifar(tmp / "downloads", "cifar100", "python", packed=False)
    _sparse(folder / "meta", 2 * MiB)
    return "cifar100", folder.parent, f"{folder / 'meta'}: 2097152 bytes, expected at most 1048576"


@pytest.mark.parametrize("make", [_python_bomb, _binary_bomb, _sparse_batch, _sparse_meta],
                         ids=["targz-python-bomb", "targz-binary-bomb", "folder-batch", "folder-meta"])
def test_oversized_file_is_refused_before_reading(tmp_path, make):
    source, path, expect = make(tmp_path)
    assert path.stat().st_size < 2 * MiB or path.is_dir()
    _refused(tmp_path / "out", "--source", source, "--input", path, expect=expect)


# ----------------------------------------------------------------------------- 2. ambiguity


def _members(rename) -> list[tuple[str, bytes]]:
    files, _ = cifar_files("cifar10", "python")
    return [(name, data) for file, data in files.items() for name in rename(file)]


@pytest.mark.parametrize("layout", ["two-folders", "same-path", "nested-folder"])
def test_file_found_twice_is_refused(tmp_path, layout):
    if layout == "two-folders":
        path = _tar(tmp_path / "c10.tar.gz", _members(lambda f: [f"a/cifar-10-batches-py/{f}",
                                                                 f"b/cifar-10-batches-py/{f}"]))
        expect = (f"{path}: cifar-10-batches-py/data_batch_1 found twice, as a/cifar-10-batches-py/data_batch_1 "
                  "and b/cifar-10-batches-py/data_batch_1, expected exactly one copy")
    elif layout == "same-path":
        path = _tar(tmp_path / "c10.tar.gz", _members(lambda f: [f"cifar-10-batches-py/{f}"] * 2))
        expect = (f"{path}: cifar-10-batches-py/data_batch_1 found twice, as cifar-10-batches-py/data_batch_1 "
                  "and cifar-10-batches-py/data_batch_1")
    else:  # the folder holds the layout and a nested copy of it
        path, _ = write_cifar(tmp_path, "cifar10", "python", packed=False)
        write_cifar(path, "cifar10", "python", packed=False)
        expect = (f"{path}: cifar-10-batches-py/batches.meta found twice, as {path / 'batches.meta'} and "
                  f"{path / 'cifar-10-batches-py' / 'batches.meta'}")
    _refused(tmp_path / "out", "--source", "cifar10", "--input", path, expect=expect)


# ----------------------------------------------------------------------------- 3. pickles


_NESTED = _nested_list(5, 40)  # 40**5 ~ 10**8 items: np.asarray would make an 819 MB array
_PICKLES = {  # name: (file replaced, its bytes, expected message)
    "nested-list-data": ("data_batch_1", pickle.dumps({"data": _NESTED, "labels": [0] * 3}, protocol=2),
                         "data_batch_1: 'data' is a list, expected uint8 (N, 3072)"),
    "nested-list-labels": ("data_batch_1", pickle.dumps({"data": np.zeros((3, 3072), np.uint8),
                                                         "labels": [_NESTED] * 3}, protocol=2),
                           "data_batch_1: 'labels' holds something other than integers"),
    "memo-index": ("data_batch_2", b"\x80\x02}r" + (1 << 26).to_bytes(4, "little") + b".",  # memo table: 1 GiB
                   "data_batch_2: not a CIFAR python batch (pickle memo index 67108864, expected below 164096)"),
    "object-array": ("data_batch_3", pickle.dumps({"data": _ObjectArray(), "labels": [0]}, protocol=2),
                     "data_batch_3: not a CIFAR python batch (numpy dtype 'O8', expected one of u1"),
    "dict-flood": ("test_batch", b"\x80\x02(" + b"}" * 6_000_000 + b"l.",  # 6M dicts: ~450 MB from 6 MB
                   "test_batch: not a CIFAR python batch (more than 164096 pickle opcodes"),
    "meta-names": ("batches.meta", pickle.dumps({"label_names": list(range(10))}, protocol=2),
                   "batches.meta: 'label_names' is not a list of 1 to 1000 class names of 1 to 256 characters"),
}


@pytest.mark.parametrize("case", list(_PICKLES))
def test_hostile_pickle_is_refused_before_conversion(tmp_path, case):
    name, data, expect = _PICKLES[case]
    files, _ = cifar_files("cifar10", "python")
    files[name] = data
    path, _ = write_cifar(tmp_path, "cifar10", "python", packed=True, files=files)
    assert path.stat().st_size < 200_000
    _refused(tmp_path / "out", "--source", "cifar10", "--input", path, expect=f"{path}:cifar-10-batches-py/{expect}")


# ----------------------------------------------------------------------------- 4. empty or non-tar input


@pytest.mark.parametrize("source, content, expect", [
    ("cifar10", b"", "empty file, expected a complete .tar.gz archive"),
    ("cifar100", b"hello, not an archive\n", "not a tar archive (tried gzip, bz2, xz and plain tar)"),
    ("cifar10", gzip.compress(b"hello, not a tar\n" * 100, mtime=0), "not a tar archive"),
], ids=["empty", "text", "gzipped-text"])
def test_empty_or_non_tar_input(tmp_path, source, content, expect):
    path = tmp_path / "input.tar.gz"
    path.write_bytes(content)
    _refused(tmp_path / "out", "--source", source, "--input", path, expect=f"{path}: {expect}")


# ----------------------------------------------------------------------------- 5. idx shapes and gzip bombs


def _idx_header(*dims: int) -> bytes:
    return (0x0800 | len(dims)).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)


@pytest.mark.parametrize("case", ["no-images", "no-pixels", "no-labels", "huge", "wrapping", "gzip-bomb"])
def test_idx_bad_shape_or_size(tmp_path, case):
    folder, stem = tmp_path / "mnist", "train-images-idx3-ubyte"
    if case == "no-images":
        write_idx(folder, n_train=0)
        expect = "idx shape (0, 28, 28) is empty, expected at least one image of at least 1x1 pixels"
    elif case == "no-pixels":
        write_idx(folder, side=0)
        expect = "idx shape (6, 0, 0) is empty"
    elif case == "no-labels":
        write_idx(folder, t10k_labels_idx1_ubyte=idx_bytes(np.zeros(0)))
        stem, expect = "t10k-labels-idx1-ubyte", "idx shape (0,) is empty, expected at least one label"
    elif case == "huge":
        write_idx(folder, train_images_idx3_ubyte=_idx_header(2**32 - 1, 2**32 - 1, 2**32 - 1))
        expect = ("idx shape (4294967295, 4294967295, 4294967295) holds 79228162458924105385300197375 bytes, "
                  "expected at most 1073741824")
    elif case == "wrapping":  # the product is 2**64: 0 in int64 arithmetic
        write_idx(folder, train_images_idx3_ubyte=_idx_header(2**31, 2**31, 4))
        expect = "idx shape (2147483648, 2147483648, 4) holds 18446744073709551616 bytes"
    else:  # a legal header, then 1 GiB of zeros
        write_idx(folder)
        _zero_gzip(folder / f"{stem}.gz", _idx_header(60000, 28, 28), 1 << 30)
        expect = "more than 47040000 data bytes, expected exactly 47040000 for shape (60000, 28, 28)"
    _refused(tmp_path / "out", "--source", "mnist", "--input", folder, expect=f"{folder / stem}.gz: {expect}")


def test_idx_val_images_of_another_size_are_refused(tmp_path):
    write_idx(tmp_path / "fm", t10k_images_idx3_ubyte=idx_bytes(np.zeros((4, 14, 14))))
    with pytest.raises(InputError, match="t10k-images-idx3-ubyte.gz: 14x14 images, expected 28x28 as in"):
        open_source("fashion-mnist", tmp_path / "fm")


# ----------------------------------------------------------------------------- 6. synthetic option bounds


@pytest.mark.parametrize("options, expect", [
    (["--num-classes", "200000000"], "--num-classes: expected an integer in 2..65536, got 200000000"),
    (["--num-classes", "65"], "--num-classes: 65 classes for 64 train samples (--num-train), expected at most one "
                              "class per train sample"),
    (["--num-train", "400000000"], "--num-train: expected an integer in 1..10000000, got 400000000"),
    (["--num-val", str(10**30)], f"--num-val: expected an integer in 0..10000000, got {10**30}"),
    (["--size", "30000"], "--size: expected an integer in 1..1024, got 30000"),
], ids=["classes-huge", "classes-over-train", "train", "val", "size"])
def test_synthetic_options_are_bounded_before_allocating(tmp_path, options, expect):
    values = {"--num-train": "64", "--num-val": "16", "--size": "8", **dict(zip(options[::2], options[1::2]))}
    argv = [text for option, value in values.items() for text in (option, value)]
    _refused(tmp_path / "out", "--source", "synthetic", *argv, expect=f"error: {expect}")
