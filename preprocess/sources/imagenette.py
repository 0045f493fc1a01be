"""Imagenette source: fast.ai's 10-class ImageNet subset in its release layout.

Input: a folder holding ``train/`` and ``val/``, each with one folder per ImageNet WordNet id
(``n01440764`` …) of ``*.JPEG`` photos — the official releases ``imagenette2`` (full size),
``imagenette2-320`` and ``imagenette2-160`` (extracted), or a copy of the same layout at another size —
or a folder holding exactly one of those release folders (what ``--download`` leaves: torchvision's
``Imagenette`` extracts ``imagenette2-320/`` into ``--input``).

Classes are the ten Imagenette WordNet ids in sorted order (the label order of torchvision's
``Imagenette`` and of fast.ai's), named by their class names in the manifest (``tench`` …). Every split
must hold exactly those ten folders: a missing, extra or misspelt one is an error naming it (a class in
``val/`` but not in ``train/`` included), because a partial copy would silently change the label space.

Pixels: as imagefolder (``preprocess.sources.imagefolder.load_image``): the EXIF orientation is applied
(camera photos), the centre square is resized to ``--size`` (bicubic); CMYK and greyscale JPEGs become RGB,
a PNG saved under a ``.JPEG`` name is read by its content; an unreadable, truncated or empty file stops the
build with one error naming it. ``--channels`` defaults to 3 (about 2.5% of the photos are grey);
``--size`` defaults to the photos' side only when they all share one square size (the official releases
differ per photo, so give it).
"""

from __future__ import annotations

from pathlib import Path

from preprocess.errors import InputError
from preprocess.sources.base import Source
from preprocess.sources.imagefolder import _images, _resolve_size, _split_data, _survey

CLASSES: dict[str, str] = {
    "n01440764": "tench",
    "n02102040": "English springer",
    "n02979186": "cassette player",
    "n03000684": "chain saw",
    "n03028079": "church",
    "n03394916": "French horn",
    "n03417042": "garbage truck",
    "n03425413": "gas pump",
    "n03445777": "golf ball",
    "n03888257": "parachute",
}
"""WordNet id -> class name, in label order (sorted ids)."""
RELEASES = ("imagenette2", "imagenette2-320", "imagenette2-160")
"""fast.ai's release folder names (full size, 320 px and 160 px shorter side)."""
DOWNLOAD_SIZE = "320px"
"""torchvision's Imagenette size fetched by --download: the 320-px release (what 112–256 px training needs)."""
_SPLITS = ("train", "val")


def _release_root(path: Path) -> Path:
    """The folder holding train/ and val/: ``path`` itself, or the one release folder inside it."""
    if not path.is_dir():
        raise InputError(f"{path}: not a folder, expected an Imagenette release folder with train/ and val/ "
                         f"(e.g. {RELEASES[1]}/) or a folder holding one")
    if all((path / split).is_dir() for split in _SPLITS):
        return path
    found = [path / name for name in RELEASES if all((path / name / split).is_dir() for split in _SPLITS)]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise InputError(f"{path}: holds several Imagenette releases ({', '.join(p.name for p in found)}), "
                         f"expected one: give --input {found[0]}")
    missing = [split for split in _SPLITS if not (path / split).is_dir()]
    raise InputError(f"{path}: no {missing[0]}/ folder, expected Imagenette's layout train/<wnid>/*.JPEG and "
                     f"val/<wnid>/*.JPEG (or a folder holding one of {', '.join(RELEASES)})")


def _check_classes(split_dir: Path, train_dir: Path) -> None:
    """``split_dir`` holds exactly the ten Imagenette class folders; an error names the first that is not."""
    present = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    for name in present:
        if name not in CLASSES:
            where = (f"class not in {train_dir}" if split_dir != train_dir and not (train_dir / name).is_dir()
                     else "not an Imagenette class")
            raise InputError(f"{split_dir / name}: {where}, expected one of the ten WordNet ids "
                             f"{', '.join(CLASSES)}")
    missing = [wnid for wnid in CLASSES if wnid not in present]
    if missing:
        raise InputError(f"{split_dir / missing[0]}: class folder missing ({CLASSES[missing[0]]}), expected all ten "
                         f"Imagenette classes in {split_dir}")


def _download(path: Path) -> None:
    """Fetch and extract the 320-px release with torchvision (users with internet; tests never call this)."""
    from torchvision import datasets

    path.mkdir(parents=True, exist_ok=True)
    if not (path / "imagenette2-320").is_dir():  # torchvision refuses to download over an extracted copy
        datasets.Imagenette(root=str(path), split="train", size=DOWNLOAD_SIZE, download=True)


def open_imagenette(path: Path, *, size: int | None, channels: int, download: bool) -> Source:
    """Imagenette at ``path`` (see the module docstring); reads every photo's header, decodes no pixels."""
    if download:
        _download(path)
    root = _release_root(path)
    lists = {}
    for split in _SPLITS:
        _check_classes(root / split, root / "train")
        files, labels = [], []
        for label, wnid in enumerate(CLASSES):
            found = _images(root / split / wnid)
            files += found
            labels += [label] * len(found)
        lists[split] = (files, labels)
    sizes, _ = _survey([p for files, _ in lists.values() for p in files])
    size = _resolve_size(size, sizes, "imagenette")
    splits = {split: _split_data(files, labels, size, channels) for split, (files, labels) in lists.items()}
    return Source(name="imagenette", classes=tuple(CLASSES.values()), shape=(size, size, channels), splits=splits)
