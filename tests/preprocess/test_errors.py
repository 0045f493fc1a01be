"""Bad input: one line 'error: <file or option>: ...', exit code 2, nothing left behind."""

from __future__ import annotations

import gzip
import pickle
import tarfile

import numpy as np
import pytest

from preprocess.sources.cifar import load_pickle
from preprocess.errors import InputError
from tests.preprocess.fixtures import (cifar_files, idx_bytes, run_cli, synthetic_args, write_cifar, write_idx,
                                       write_imagefolder)


def _fails(capsys, tmp_path, *argv, expect: str) -> str:
    """Run the CLI, assert exit 2 with one 'error:' line containing ``expect`` and no output directory."""
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert expect in err, err
    assert not (tmp_path / "out").exists()
    return err


def _build(source, path, tmp_path, *extra):
    return ["build", "--source", source, "--input", str(path), "--out", str(tmp_path / "out"), "--quiet", *extra]


def test_missing_input(capsys, tmp_path):
    _fails(capsys, tmp_path, *_build("cifar10", tmp_path / "nope.tar.gz", tmp_path), expect="nope.tar.gz: not found")
    _fails(capsys, tmp_path, *_build("mnist", tmp_path / "nope", tmp_path), expect="nope: not a folder")


def test_truncated_cifar_archive(capsys, tmp_path):
    path, _ = write_cifar(tmp_path, "cifar10", "python", packed=True)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _fails(capsys, tmp_path, *_build("cifar10", path, tmp_path), expect=f"{path}: truncated or corrupt archive")


def test_non_cifar_archive(capsys, tmp_path):
    path = tmp_path / "other.tar.gz"
    (tmp_path / "readme.txt").write_text("hello")
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tmp_path / "readme.txt", arcname="stuff/readme.txt")
    _fails(capsys, tmp_path, *_build("cifar10", path, tmp_path), expect="not a complete CIFAR-10 archive")
    _fails(capsys, tmp_path, *_build("cifar100", tmp_path, tmp_path), expect="cifar-100-python/ (python version)")


def test_truncated_binary_batch_and_bad_label(capsys, tmp_path):
    files, _ = cifar_files("cifar10", "binary")
    files["data_batch_2.bin"] = files["data_batch_2.bin"][:-10]
    path, _ = write_cifar(tmp_path / "a", "cifar10", "binary", packed=False, files=files)
    _fails(capsys, tmp_path, *_build("cifar10", path, tmp_path), expect="data_batch_2.bin: 9209 bytes is not a whole")
    files, _ = cifar_files("cifar10", "binary")
    files["test_batch.bin"] = b"\x0c" + files["test_batch.bin"][1:]
    path, _ = write_cifar(tmp_path / "b", "cifar10", "binary", packed=True, files=files)
    _fails(capsys, tmp_path, *_build("cifar10", path, tmp_path), expect="test_batch.bin: label 12 out of range, expected 0..9")


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


def test_malicious_pickle_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files, _ = cifar_files("cifar10", "python")
    files["data_batch_3"] = pickle.dumps({"data": _Evil()}, protocol=2)
    path, _ = write_cifar(tmp_path, "cifar10", "python", packed=True, files=files)
    _fails(capsys, tmp_path, *_build("cifar10", path, tmp_path), expect="data_batch_3: not a CIFAR python batch")
    assert not (tmp_path / "pwned").exists()


def test_python2_era_pickle_names_are_allowed():
    data = pickle.dumps({"data": np.arange(6, dtype=np.uint8).reshape(1, 6), "labels": [1]}, protocol=2)
    old = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    assert old != data
    batch = load_pickle(old, "x")
    assert batch["data"].tolist() == [[0, 1, 2, 3, 4, 5]] and batch["labels"] == [1]
    with pytest.raises(InputError, match="x: not a CIFAR python batch"):
        load_pickle(pickle.dumps([np.float64(1.0), print], protocol=2), "x")


def test_idx_wrong_magic_label_range_truncated(capsys, tmp_path):
    write_idx(tmp_path / "a", train_images_idx3_ubyte=idx_bytes(np.zeros((2, 28, 28)), magic=0x0801))
    _fails(capsys, tmp_path, *_build("fashion-mnist", tmp_path / "a", tmp_path),
           expect="train-images-idx3-ubyte.gz: bad idx magic 0x00000801, expected 0x00000803")
    write_idx(tmp_path / "b", t10k_labels_idx1_ubyte=idx_bytes(np.array([1, 2, 11, 3])))
    _fails(capsys, tmp_path, *_build("fashion-mnist", tmp_path / "b", tmp_path),
           expect="t10k-labels-idx1-ubyte.gz: label 11 out of range, expected 0..9")
    write_idx(tmp_path / "c")
    broken = tmp_path / "c" / "train-labels-idx1-ubyte.gz"
    broken.write_bytes(broken.read_bytes()[:-12])
    _fails(capsys, tmp_path, *_build("mnist", tmp_path / "c", tmp_path), expect=f"{broken}: truncated or corrupt gzip")
    (tmp_path / "c" / "t10k-images-idx3-ubyte.gz").unlink()
    broken.write_bytes(gzip.compress(idx_bytes(np.zeros(6))))
    _fails(capsys, tmp_path, *_build("mnist", tmp_path / "c", tmp_path), expect="t10k-images-idx3-ubyte.gz: missing")


def test_imagefolder_empty_class_and_unreadable_image(capsys, tmp_path):
    write_imagefolder(tmp_path / "a")
    (tmp_path / "a" / "empty").mkdir()
    _fails(capsys, tmp_path, *_build("imagefolder", tmp_path / "a", tmp_path, "--size", "8"),
           expect=f"{tmp_path / 'a' / 'empty'}: empty class folder")
    write_imagefolder(tmp_path / "b")
    bad = tmp_path / "b" / "dog" / "03.png"
    bad.write_bytes(b"\x89PNG not really")
    _fails(capsys, tmp_path, *_build("imagefolder", tmp_path / "b", tmp_path, "--size", "8", "--workers", "2"),
           expect=f"{bad}: unreadable image")


@pytest.mark.parametrize("extra, expect", [
    (["--ratio", "3"], "--ratio: image sides 8x8 of synthetic are not divisible by 3"),
    (["--ratio", "1"], "argument --ratio: expected an integer >= 2, got 1"),
    (["--workers", "0"], "argument --workers: expected an integer >= 1, got 0"),
    (["--part", "2/2"], "argument --part: expected I/N with 0 <= I < N"),
    (["--method", "nearest"], "argument --method: invalid choice: 'nearest'"),
    (["--label", "coarse"], "--label: only used by source cifar100, not synthetic"),
])
def test_bad_options(capsys, tmp_path, extra, expect):
    _fails(capsys, tmp_path, *synthetic_args(tmp_path / "out", *extra), expect=expect)


def test_debug_shows_traceback(capsys, tmp_path):
    with pytest.raises(InputError):
        run_cli(capsys, "--debug", *_build("cifar10", tmp_path / "nope", tmp_path))
