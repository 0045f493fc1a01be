"""Tiny source datasets in every supported format, built inside the tests, plus shared helpers."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from preprocess.cli import main
from preprocess.dataset_format import load_manifest
from preprocess.reader import read_split

CIFAR_FOLDERS = {("cifar10", "python"): "cifar-10-batches-py", ("cifar10", "binary"): "cifar-10-batches-bin",
                 ("cifar100", "python"): "cifar-100-python", ("cifar100", "binary"): "cifar-100-binary"}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``lowmode-preprocess argv`` in-process; return (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def synthetic_args(out: Path, *extra: str, train: int = 64, val: int = 16, size: int = 8) -> list[str]:
    return ["build", "--source", "synthetic", "--out", str(out), "--num-train", str(train), "--num-val", str(val),
            "--size", str(size), "--samples-per-shard", "16", "--quiet", *extra]


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative path -> hex), hidden build files included."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def read_all(data: Path, split: str, resolution: str) -> dict[str, tuple[int, np.ndarray]]:
    """{key: (label, image)} of a built split."""
    manifest = load_manifest(data)
    return {key: (label, image) for key, label, image in read_split(data, manifest, split, resolution)}


def stored_keys(data: Path, split: str, resolution: str) -> list[str]:
    manifest = load_manifest(data)
    return [key for key, _, _ in read_split(data, manifest, split, resolution)]


# ----------------------------------------------------------------------------- CIFAR


def cifar_arrays(source: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixels uint8 (n, 3072) in CIFAR's CHW row order, fine labels, coarse labels)."""
    rng = np.random.default_rng(seed)
    fine = rng.integers(0, 10 if source == "cifar10" else 100, n)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), fine, fine // 5


def _pickle(obj) -> bytes:
    return pickle.dumps(obj, protocol=2)


def cifar_files(source: str, version: str, per_batch: int = 3) -> tuple[dict[str, bytes], dict]:
    """({file name: bytes} of a tiny official-layout CIFAR folder, {split: (pixels, fine, coarse)})."""
    files, truth = {}, {}
    if source == "cifar10":
        batches = {"train": [f"data_batch_{i}" for i in range(1, 6)], "val": ["test_batch"]}
    else:
        batches = {"train": ["train"], "val": ["test"]}
    for split, names in batches.items():
        parts = [cifar_arrays(source, per_batch * (2 if source == "cifar100" else 1), seed=zlib.crc32(n.encode()) + i)
                 for i, n in enumerate(names)]
        truth[split] = tuple(np.concatenate([p[j] for p in parts]) for j in range(3))
        for name, (pixels, fine, coarse) in zip(names, parts):
            if version == "python":
                batch = {"data": pixels, "filenames": [f"img{i}.png" for i in range(len(pixels))]}
                batch.update({"labels": list(map(int, fine))} if source == "cifar10" else
                             {"fine_labels": list(map(int, fine)), "coarse_labels": list(map(int, coarse))})
                files[name] = _pickle(batch)
            else:
                labels = fine[:, None] if source == "cifar10" else np.stack([coarse, fine], axis=1)
                files[name + ".bin"] = np.concatenate([labels.astype(np.uint8), pixels], axis=1).tobytes()
    fine_names = [f"fine{i}" for i in range(10 if source == "cifar10" else 100)]
    coarse_names = [f"coarse{i}" for i in range(20)]
    if version == "python":
        meta = ({"label_names": fine_names} if source == "cifar10" else
                {"fine_label_names": fine_names, "coarse_label_names": coarse_names})
        files["batches.meta" if source == "cifar10" else "meta"] = _pickle(meta)
    elif source == "cifar10":
        files["batches.meta.txt"] = ("\n".join(fine_names) + "\n\n").encode()
    else:
        files["fine_label_names.txt"] = "\n".join(fine_names).encode()
        files["coarse_label_names.txt"] = "\n".join(coarse_names).encode()
    return files, truth


def write_cifar(tmp: Path, source: str, version: str, packed: bool, files: dict[str, bytes] | None = None):
    """Write a tiny CIFAR archive (.tar.gz if ``packed``, else the extracted folder); return (path, truth)."""
    truth = None
    if files is None:
        files, truth = cifar_files(source, version)
    folder = CIFAR_FOLDERS[(source, version)]
    tmp.mkdir(parents=True, exist_ok=True)
    if not packed:
        for name, data in files.items():
            (tmp / folder).mkdir(parents=True, exist_ok=True)
            (tmp / folder / name).write_bytes(data)
        return tmp / folder, truth
    path = tmp / f"{folder}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path, truth


# ----------------------------------------------------------------------------- idx and image folders


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    magic = 0x0800 | array.ndim if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(folder: Path, n_train: int = 6, n_val: int = 4, side: int = 28, **override: bytes):
    """The four gzipped idx files of a tiny (Fashion-)MNIST; ``override`` replaces a file's bytes."""
    rng = np.random.default_rng(3)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, side, side)),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_val, side, side)),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_val)}
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        data = override.get(stem.replace("-", "_"), idx_bytes(array))
        (folder / f"{stem}.gz").write_bytes(gzip.compress(data, mtime=0))
    return {k: v.astype(np.uint8) for k, v in arrays.items()}


def write_image(path: Path, width: int, height: int, seed: int) -> np.ndarray:
    array = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return array


def write_imagefolder(root: Path, classes=("cat", "dog"), per_class: int = 5, split_folders: bool = False):
    """root/<class>/<i>.png (or root/{train,val}/<class>/...) with 20x14 random images."""
    for c, name in enumerate(classes):
        for i in range(per_class):
            split = ("val" if i == 0 else "train") if split_folders else ""
            write_image(root / split / name / f"{i:02d}.png", 20, 14, seed=10 * c + i)
