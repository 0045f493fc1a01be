"""Image-folder source: ``root/<class>/<image>`` (PNG/JPEG), centre-cropped and resized to --size.

If ``root/train`` and ``root/val`` exist they are the splits (classes from ``train``); otherwise
each class's files (sorted by name) are split by ``--val-fraction`` with a fixed-seed draw, so the
split does not change with the shuffle ``--seed``.

Every image's header is read in the main process before anything is written (``Image.open``
parses only the header; about 70 µs an image on a local disk): an unreadable file, an unsupported
mode or more than ``MAX_PIXELS`` pixels stops the build there, with an error naming the file. What
only decoding finds (truncated pixel data, mode I values out of range) stops it from a worker, with
the same kind of error. The header pass also decides the options left unset (they stay None in the
recorded build config, meaning "from the images"; the manifest's shapes say what that was):

- ``channels``: 1 if every image is grey (modes 1, L, LA, I, I;16*, or a palette of grey colours
  only), else 3. ``--channels 3`` repeats a grey image; ``--channels 1`` takes a colour image's
  ITU-R 601 luma (PIL's ``convert("L")``).
- ``size``: the images' side when they all share one square size. Images of differing sizes, or
  all of one non-square size, need ``--size`` (the side of the centre square to keep).

Pixels are decoded lazily per shard (in the workers). A photo's EXIF orientation tag (2..8) is applied
first, so a camera's sideways shot is stored upright (an absent or unreadable tag means upright). The centre square of an image (side = its
shorter side, at the exact centre in source coordinates, so a half-pixel offset when the margin is
odd) is resized straight to size × size (bicubic, PIL's ``resize(box=...)``): no intermediate is larger than the decoded image, whatever the aspect ratio,
so peak memory is bounded by ``MAX_PIXELS`` (about 9 bytes per pixel at worst, for a palette image
with transparency). Modes:

- 1, L, RGB: as decoded; P: through its palette; CMYK, YCbCr, LAB, HSV: PIL's conversion to RGB
  (embedded ICC profiles are ignored). PIL reads 16-bit-per-channel colour PNGs as RGB(A) keeping
  each value's high byte (v >> 8).
- Transparency (LA, RGBA, PA, a palette or colour key with transparency) is composited over
  black: each colour value becomes round(v · alpha / 255), the premultiplied colour, which is also
  what resampling with alpha needs. Black is what the loaders' zero-padded random crop adds. (A
  colour key in a 16-bit grey image is ignored.)
- 16-bit grey (I;16, I;16B, I;16L, I;16N) is resized at 16 bits, then v -> round(v / 257)
  (0 -> 0, 65535 -> 255). Mode I (32-bit integers) is read as 16-bit grey; an image with values
  outside 0..65535 is refused when decoded.
- F (floating point) has no defined 0..255 range and is refused, as is any mode not listed here.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from preprocess.errors import InputError
from preprocess.sources.base import Source, SplitData

EXTENSIONS = (".png", ".jpg", ".jpeg")
MAX_PIXELS = 24_000_000
"""Largest image (width × height) accepted: 6000 × 4000. Checked from the header before decoding. At
about 9 bytes per pixel in the worst mode (palette with transparency: 1 decoded, 4 RGBA, 4 premultiplied)
a build process peaks at about 255 MB on such an image, under the 300 MB we allow a worker."""
_SPLIT_SEED = 20240101  # fixed: the val draw must not depend on the shuffle seed

_GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N")
_PALETTE_MODES = ("P", "PA")
_COLOUR_MODES = ("RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")
_SUPPORTED = _GREY_MODES + _PALETTE_MODES + _COLOUR_MODES
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
_SIXTEEN_BIT = ("I", "I;16")  # working modes whose values are 0..65535
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError)  # what PIL raises on bad bytes


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


# ----------------------------------------------------------------------------- headers


def _unreadable(path: Path, exc: BaseException) -> InputError:
    return InputError(f"{path}: unreadable image, expected a valid PNG or JPEG ({exc})")


def _check_header(path: Path, pil: Image.Image) -> None:
    """Refuse, from the header alone, what could not be decoded correctly or within bounded memory."""
    width, height = pil.size
    if width < 1 or height < 1:
        raise InputError(f"{path}: image of {width}x{height} pixels, expected at least 1x1")
    if width * height > MAX_PIXELS:
        raise InputError(f"{path}: image of {width}x{height} pixels ({width * height:,}), "
                         f"expected at most {MAX_PIXELS:,} pixels")
    if pil.mode == "F":
        raise InputError(f"{path}: mode F (floating-point pixels) has no defined 0..255 range, "
                         "expected 8- or 16-bit pixels")
    if pil.mode not in _SUPPORTED:
        raise InputError(f"{path}: unsupported image mode {pil.mode}, expected one of {', '.join(_SUPPORTED)}")


@contextmanager
def _open(path: Path) -> Iterator[Image.Image]:
    """The image at ``path``, header read and checked (``_check_header``), pixels not yet decoded."""
    try:
        with warnings.catch_warnings():
            # MAX_PIXELS is lower than PIL's warning threshold: its warning would only add a second line
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            pil = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise InputError(f"{path}: image too large, expected at most {MAX_PIXELS:,} pixels ({exc})") from exc
    except _DECODE_ERRORS as exc:  # UnidentifiedImageError is an OSError
        raise _unreadable(path, exc) from exc
    with pil:
        _check_header(path, pil)
        yield pil


def _palette_is_grey(pil: Image.Image) -> bool:
    """True if every colour of the palette has R = G = B (read from the header, nothing decoded)."""
    if pil.palette is None:
        return False
    mode, data = pil.palette.getdata()
    if mode not in ("RGB", "RGBA", "RGBX"):
        return False
    colours = np.frombuffer(data, np.uint8)[: len(data) // len(mode) * len(mode)].reshape(-1, len(mode))
    return bool(np.all(colours[:, 0] == colours[:, 1]) and np.all(colours[:, 1] == colours[:, 2]))


def _is_grey(pil: Image.Image) -> bool:
    return pil.mode in _GREY_MODES or (pil.mode in _PALETTE_MODES and _palette_is_grey(pil))


def _survey(files: list[Path]) -> tuple[dict[tuple[int, int], Path], bool]:
    """From the headers of ``files``: the first two distinct (width, height) with a file each; all grey?"""
    sizes: dict[tuple[int, int], Path] = {}
    grey = True
    for path in files:
        with _open(path) as pil:
            if len(sizes) < 2:
                sizes.setdefault(pil.size, path)
            grey = grey and _is_grey(pil)
    return sizes, grey


def _resolve_size(size: int | None, sizes: dict[tuple[int, int], Path], source: str = "imagefolder") -> int:
    """``size``, or the images' common side when unset (an InputError naming --size if there is none)."""
    if size is not None:
        return size
    (first, path), *others = sizes.items()
    if others:
        other, other_path = others[0]
        raise InputError(f"--size: expected a value for {source}: the images differ in size, e.g. "
                         f"{path} is {first[0]}x{first[1]} and {other_path} is {other[0]}x{other[1]}")
    if first[0] != first[1]:
        raise InputError(f"--size: expected a value for {source}: every image is {first[0]}x{first[1]} "
                         f"(not square, e.g. {path}); --size is the side of the centre square to keep")
    return first[0]


# ----------------------------------------------------------------------------- pixels


def _has_alpha(pil: Image.Image) -> bool:
    return pil.mode in _ALPHA_MODES or "transparency" in pil.info


def _working_image(path: Path, pil: Image.Image) -> Image.Image:
    """``pil`` decoded into a mode PIL resizes correctly: L, RGB, La/RGBa (premultiplied), I;16 or I.

    Premultiplied colour is the composite over black (see the module docstring). Conversions that
    change the values per pixel happen here, at full size, before resampling.
    """
    mode = pil.mode
    if mode in ("LA", "RGBA"):
        return pil.convert(mode[:-1] + "a")
    if mode in ("1", "L", "P", "PA", "RGB") and _has_alpha(pil):  # PIL's PA -> RGBa drops the alpha: via RGBA
        return pil.convert("LA").convert("La") if _is_grey(pil) else pil.convert("RGBA").convert("RGBa")
    if mode in ("L", "RGB", "La", "RGBa", "I;16"):
        return pil
    if mode in ("1", "P"):  # PIL resizes these with nearest neighbour only
        return pil.convert("L" if _is_grey(pil) else "RGB")
    if mode == "I":
        low, high = pil.getextrema()
        if low < 0 or high > 65535:
            raise InputError(f"{path}: mode I image with values {low}..{high}, expected 0..65535 (16-bit)")
        return pil
    if mode.startswith("I;16"):  # PIL resamples only little-endian I;16 correctly
        return Image.fromarray(np.asarray(pil).astype(np.uint16))
    return pil.convert("RGB")  # RGBX, CMYK, YCbCr, LAB, HSV


def _centre_square(width: int, height: int) -> tuple[float, float, float, float]:
    """The centred square of side min(width, height), in source pixel coordinates."""
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    return left, top, left + side, top + side


def _to_uint8(square: Image.Image, channels: int) -> np.ndarray:
    """uint8 (H, W, channels) of a resized working image (see ``_working_image``)."""
    array = np.asarray(square)
    if square.mode in _SIXTEEN_BIT:  # round(v / 257), exactly, in integers
        array = ((np.clip(array, 0, 65535).astype(np.uint32) + 128) // 257).astype(np.uint8)
    if array.ndim == 3:
        array = array[..., :1] if square.mode == "La" else array[..., :3]  # drop the alpha
    if array.ndim == 2 or array.shape[2] == 1:
        grey = array.reshape(array.shape[0], array.shape[1], 1)
        return np.ascontiguousarray(np.repeat(grey, channels, axis=2))
    if channels == 3:
        return np.ascontiguousarray(array)
    return np.asarray(Image.fromarray(np.ascontiguousarray(array)).convert("L"))[..., None]


_ORIENTATION_TAG = 0x0112
_ORIENTATIONS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
                 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                 8: Image.Transpose.ROTATE_90}
"""EXIF orientation -> the transpose that shows the image upright (PIL's ImageOps.exif_transpose table)."""


def _orientation(pil: Image.Image) -> int:
    """The EXIF orientation tag (1 = upright, also when absent or unreadable: camera EXIF is often broken)."""
    try:
        value = pil.getexif().get(_ORIENTATION_TAG, 1)
    except _DECODE_ERRORS:
        return 1
    return value if value in _ORIENTATIONS else 1


def load_image(path: Path, size: int, channels: int) -> np.ndarray:
    """uint8 (size, size, channels): the upright image's centre square resized to ``size`` (see the module
    docstring)."""
    with _open(path) as pil:
        try:
            orientation = _orientation(pil)
            work = _working_image(path, pil)
            if orientation != 1:  # a camera's sideways photo: turn it upright before cropping
                work = work.transpose(_ORIENTATIONS[orientation])
            square = work.resize((size, size), Image.BICUBIC, box=_centre_square(*work.size))
        except InputError:
            raise
        except _DECODE_ERRORS as exc:  # truncated or corrupt pixel data
            raise _unreadable(path, exc) from exc
    return _to_uint8(square, channels)


# ----------------------------------------------------------------------------- source


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


def _lists(root: Path, val_fraction: float) -> tuple[list[str], dict[str, tuple[list[Path], list[int]]]]:
    """(classes, {split: (files, labels)}) of the folder ``root``."""
    if (root / "train").is_dir() and (root / "val").is_dir():
        classes = [d.name for d in _class_dirs(root / "train")]
        unknown = [d.name for d in _class_dirs(root / "val") if d.name not in classes]
        if unknown:
            raise InputError(f"{root / 'val' / unknown[0]}: class not in {root / 'train'}, expected one of {classes}")
        return classes, {split: _listing(root / split, classes) for split in ("train", "val")}
    classes = [d.name for d in _class_dirs(root)]
    lists: dict[str, tuple[list[Path], list[int]]] = {"train": ([], []), "val": ([], [])}
    for label, name in enumerate(classes):
        found = _images(root / name)
        n_val = int(round(val_fraction * len(found))) if len(found) > 1 else 0
        is_val = np.zeros(len(found), dtype=bool)
        is_val[np.random.default_rng([_SPLIT_SEED, label]).permutation(len(found))[:n_val]] = True
        for path, val in zip(found, is_val):
            lists["val" if val else "train"][0].append(path)
            lists["val" if val else "train"][1].append(label)
    return classes, lists


def open_imagefolder(root: Path, *, size: int | None, channels: int | None, val_fraction: float) -> Source:
    """The image folder ``root`` at ``size`` × ``size`` × ``channels`` (None: decided from the images).

    Reads every image's header (see the module docstring); decodes no pixels.
    """
    if not root.is_dir():
        raise InputError(f"{root}: not a folder, expected {root}/<class>/<image> (or train/ and val/ inside)")
    classes, lists = _lists(root, val_fraction)
    sizes, grey = _survey([path for files, _ in lists.values() for path in files])
    size = _resolve_size(size, sizes)
    channels = channels if channels is not None else 1 if grey else 3
    splits = {split: _split_data(files, labels, size, channels) for split, (files, labels) in lists.items()}
    return Source(name="imagefolder", classes=tuple(classes), shape=(size, size, channels), splits=splits)
