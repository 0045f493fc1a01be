"""Image-folder source: ``root/<class>/<image>`` (PNG/JPEG), resized and centre-cropped to --size.

If ``root/train`` and ``root/val`` exist they are the splits (classes from ``train``); otherwise
each class's files (sorted by name) are split by ``--val-fraction`` with a fixed-seed draw, so the
split does not change with the shuffle ``--seed``. Images are decoded lazily per shard (in the
workers); an unreadable one stops the build with an error naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from preprocess.errors import InputError
from preprocess.sources.base import Source, SplitData

EXTENSIONS = (".png", ".jpg", ".jpeg")
_SPLIT_SEED = 20240101  # fixed: the val draw must not depend on the shuffle seed


def _class_dirs(root: Path) -> list[Path]:
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise InputError(f"{root}: no class folders, expected {root}/<class>/<image>.png|jpg")
    return dirs


def _images(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)
    if not files:
        raise InputError(f"{folder}: empty class folder, expected PNG or JPEG images")
    return files


def load_image(path: Path, size: int, channels: int) -> np.ndarray:
    """uint8 (size, size, channels): shorter side resized to ``size`` (bicubic), then centre-cropped."""
    try:
        with Image.open(path) as pil:
            pil = pil.convert("L" if channels == 1 else "RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"{path}: unreadable image, expected a valid PNG or JPEG ({exc})") from exc
    width, height = pil.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    pil = pil.resize((new_w, new_h), Image.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    array = np.asarray(pil.crop((left, top, left + size, top + size)), dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def _split_data(files: list[Path], labels: list[int], size: int, channels: int) -> SplitData:
    def load(indices: np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), size, size, channels), dtype=np.uint8)
        for row, i in enumerate(indices):
            out[row] = load_image(files[int(i)], size, channels)
        return out

    return SplitData(labels=np.asarray(labels, dtype=np.int64), load=load)


def _listing(root: Path, classes: list[str]) -> tuple[list[Path], list[int]]:
    files, labels = [], []
    for label, name in enumerate(classes):
        if (root / name).is_dir():
            found = _images(root / name)
            files += found
            labels += [label] * len(found)
    return files, labels


def open_imagefolder(root: Path, *, size: int, channels: int, val_fraction: float) -> Source:
    """The image folder ``root``, images resized and centre-cropped to ``size`` with ``channels``."""
    if not root.is_dir():
        raise InputError(f"{root}: not a folder, expected {root}/<class>/<image> (or train/ and val/ inside)")
    if (root / "train").is_dir() and (root / "val").is_dir():
        classes = [d.name for d in _class_dirs(root / "train")]
        unknown = [d.name for d in _class_dirs(root / "val") if d.name not in classes]
        if unknown:
            raise InputError(f"{root / 'val' / unknown[0]}: class not in {root / 'train'}, expected one of {classes}")
        lists = {split: _listing(root / split, classes) for split in ("train", "val")}
    else:
        classes = [d.name for d in _class_dirs(root)]
        lists = {"train": ([], []), "val": ([], [])}
        for label, name in enumerate(classes):
            found = _images(root / name)
            n_val = int(round(val_fraction * len(found))) if len(found) > 1 else 0
            is_val = np.zeros(len(found), dtype=bool)
            is_val[np.random.default_rng([_SPLIT_SEED, label]).permutation(len(found))[:n_val]] = True
            for path, val in zip(found, is_val):
                lists["val" if val else "train"][0].append(path)
                lists["val" if val else "train"][1].append(label)
    splits = {split: _split_data(files, labels, size, channels) for split, (files, labels) in lists.items()}
    return Source(name="imagefolder", classes=tuple(classes), shape=(size, size, channels), splits=splits)
