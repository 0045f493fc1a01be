"""Look at a dataset directory: ``info`` (a summary) and ``show`` (a PNG of full/low pairs).

    lowmode-preprocess info DATA [--json]
    lowmode-preprocess show DATA --split train --count 8 --out pairs.png

``show`` reads the samples as the loaders do (through the index files) and checks what it reads
against the manifest: a missing or unreadable shard, an image of another size than the manifest's
shape (say, low shards built at another ratio), a label out of range or full/low keys that differ
raise DatasetFormatError naming the shard (and key), not a traceback. ``verify`` checks everything.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image, ImageDraw

from preprocess.dataset_format import FULL, LOW, RESOLUTIONS, DatasetFormatError, Manifest, ShardFiles
from preprocess.errors import InputError
from preprocess.index_format import parse_index
from preprocess.reader import iter_shard

_DISPLAY_PX = 128  # each image is scaled up (nearest neighbour) to about this size, to be seen
_LABEL_PX = 14  # height of the caption strip


def dataset_info(data_dir: str | Path) -> dict[str, Any]:
    """Summary of a dataset directory (the manifest minus per-shard details, plus sizes)."""
    manifest = Manifest.load(data_dir)
    keep = ("dataset", "classes", "ratio", "method", "sigma", "encoding", "shapes", "mean", "std",
            "low_mean", "low_std", "seed")
    info = {k: getattr(manifest, k) for k in keep}
    info["shapes"] = dict(manifest.shapes)
    info["path"] = str(data_dir)
    info["splits"] = {split: {"num_samples": s.num_samples, "num_shards": len(s.shards)}
                      for split, s in manifest.splits.items()}
    info["bytes"] = {r: sum(sh.files(r).bytes for s in manifest.splits.values() for sh in s.shards)
                     for r in RESOLUTIONS}
    return info


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in values) + "]"


def print_info(data_dir: str | Path, as_json: bool = False) -> None:
    """Print the summary as text, or as JSON with ``as_json``."""
    info = dataset_info(data_dir)
    if as_json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return
    full, low = ("x".join(map(str, info["shapes"][r])) for r in RESOLUTIONS)
    print(f"{info['path']}: {info['dataset']}, {len(info['classes'])} classes, full {full} -> low {low} "
          f"(ratio {info['ratio']}, {info['method']}, sigma {info['sigma']}), encoding {info['encoding']}")
    for split, s in info["splits"].items():
        print(f"  {split}: {s['num_samples']} samples in {s['num_shards']} shards")
    print(f"  mean {_fmt(info['mean'])} std {_fmt(info['std'])} (full, 0..1 scale)")
    print(f"  mean {_fmt(info['low_mean'])} std {_fmt(info['low_std'])} (low)")
    print(f"  size: full {info['bytes']['full'] / 1e6:.1f} MB, low {info['bytes']['low'] / 1e6:.1f} MB")


def _to_rgb(image: np.ndarray, side: int) -> Image.Image:
    pil = Image.fromarray(image[..., 0] if image.shape[2] == 1 else image).convert("RGB")
    return pil.resize((side, side), Image.NEAREST)


_TAR_HEADER = 512  # a tar member's data follows its 512-byte header


def _check_members(data_dir: Path, manifest: Manifest, resolution: str, files: ShardFiles, limit: int) -> None:
    """The first ``limit`` samples of a shard's index point at tar members of their name and size.

    A tar replaced without its index (say, by one holding images of another size) would otherwise
    be read as bytes of the right length from the wrong places, and shown without complaint.
    """
    tar, idx = data_dir / files.tar, data_dir / files.idx
    try:
        with open(tar, "rb") as f:
            for entry in parse_index(idx)[:limit]:
                for ext, (offset, size) in entry.components.items():
                    f.seek(max(0, offset - _TAR_HEADER))
                    try:
                        member = tarfile.TarInfo.frombuf(f.read(_TAR_HEADER), "utf-8", "surrogateescape")
                        found = f"member {member.name} of {member.size} bytes"
                    except tarfile.HeaderError:
                        member, found = None, "no tar member"
                    if member is None or (member.name, member.size) != (f"{entry.key}.{ext}", size):
                        shape = "x".join(map(str, manifest.shape(resolution)))
                        raise DatasetFormatError(
                            f"{tar}: {idx.name} says {entry.key}.{ext} of {size} bytes at offset {offset}, the tar "
                            f"has {found} there; expected the shard the manifest describes ({files.bytes} bytes, "
                            f"{shape} images): run lowmode-preprocess verify {data_dir}")
    except OSError as exc:
        raise DatasetFormatError(f"{tar}: cannot read shard ({exc.strerror or exc})") from exc


def _samples(data_dir: Path, manifest: Manifest, split: str, resolution: str,
             count: int) -> Iterator[tuple[str, int, np.ndarray]]:
    """The first ``count`` (key, label, image) of ``split`` at ``resolution``, checked against the manifest.

    decode_image refuses an image of another size than the manifest's, naming the tar and key; this
    adds what would otherwise be a traceback or garbage: a missing tar, an index that does not match
    its tar, a short label, a label outside the manifest's classes.
    """
    shown = 0
    for shard in manifest.splits[split].shards:
        if shown >= count:
            return
        files = shard.files(resolution)
        _check_members(data_dir, manifest, resolution, files, count - shown)
        samples = iter_shard(data_dir, manifest, resolution, shard)
        while shown < count:
            try:
                key, label, image = next(samples)
            except StopIteration:
                break
            except DatasetFormatError:
                raise
            except (OSError, ValueError, KeyError, IndexError) as exc:  # e.g. a label member of the wrong size
                raise DatasetFormatError(f"{data_dir / files.tar}: cannot read a sample ({exc}); "
                                         f"run lowmode-preprocess verify {data_dir}") from exc
            if not 0 <= label < len(manifest.classes):
                raise DatasetFormatError(f"{data_dir / files.tar} key {key}: label {label}, "
                                         f"expected 0..{len(manifest.classes) - 1}")
            shown += 1
            yield key, label, image


def _pairs(data_dir: Path, manifest: Manifest, split: str,
           count: int) -> list[tuple[str, int, np.ndarray, np.ndarray]]:
    """(key, label, full image, low image) of the first ``count`` samples; full and low keys must agree."""
    pairs = []
    for (key, label, full), (low_key, _, low) in zip(_samples(data_dir, manifest, split, FULL, count),
                                                     _samples(data_dir, manifest, split, LOW, count)):
        if low_key != key:
            raise DatasetFormatError(f"{data_dir}: sample {len(pairs)} of split {split} has key {key} at full "
                                     f"resolution but {low_key} at low, expected the same keys in the same order")
        pairs.append((key, label, full, low))
    return pairs


def write_pairs_png(data_dir: str | Path, split: str, count: int, out: str | Path) -> Path:
    """Write a PNG with one row per sample: full image, then low image, both at the same display size."""
    manifest = Manifest.load(data_dir)
    if split not in manifest.splits:
        raise InputError(f"--split: {data_dir} has no split {split!r}")
    full_h = manifest.shape(FULL)[0]
    side = full_h * max(1, round(_DISPLAY_PX / full_h))
    pairs = _pairs(Path(data_dir), manifest, split, count)
    if not pairs:
        raise InputError(f"--split: split {split!r} of {data_dir} is empty")
    canvas = Image.new("RGB", (2 * side + 12, len(pairs) * (side + _LABEL_PX + 6)), "white")
    draw = ImageDraw.Draw(canvas)
    for row, (key, label, full, low) in enumerate(pairs):
        y = row * (side + _LABEL_PX + 6)
        canvas.paste(_to_rgb(full, side), (4, y + _LABEL_PX))
        canvas.paste(_to_rgb(low, side), (side + 8, y + _LABEL_PX))
        draw.text((4, y + 1), f"{key} {manifest.classes[label]}  (full | low 1/{manifest.ratio})", fill="black")
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        canvas.save(out)
    except (OSError, ValueError) as exc:  # ValueError: PIL knows no format for the file's extension
        raise InputError(f"--out: cannot write {out}, expected a writable .png path ({exc})") from exc
    return out
