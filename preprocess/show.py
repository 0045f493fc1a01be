"""Look at a dataset directory: ``info`` (a summary) and ``show`` (a PNG of each sample at every resolution).

    lowmode-preprocess info DATA [--json]
    lowmode-preprocess show DATA --split train --count 8 --out pairs.png

``show`` reads the samples as the loaders do (through the index files) and checks what it reads
against the manifest: a missing or unreadable shard, an image of another size than the manifest's
shape (say, low shards built at another ratio), a label out of range or keys that differ between
resolutions raise DatasetFormatError naming the shard (and key), not a traceback. ``verify`` checks everything.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image, ImageDraw

from preprocess.dataset_format import FULL, DatasetFormatError, Manifest, ShardFiles
from preprocess.errors import InputError
from preprocess.index_format import parse_index
from preprocess.reader import iter_shard

_DISPLAY_PX = 128  # each image is scaled up (nearest neighbour) to about this size, to be seen
_LABEL_PX = 14  # height of the caption strip


def dataset_info(data_dir: str | Path) -> dict[str, Any]:
    """Summary of a dataset directory (the manifest minus per-shard details, plus sizes).

    ``shapes`` and ``bytes`` (tar bytes) have every resolution; ``resolutions`` lists them in manifest order
    (full, low, then any low<H> by height), each {"name", "shape", "ratio" (full H / H), "bytes"}.
    """
    manifest = Manifest.load(data_dir)
    keep = ("dataset", "classes", "ratio", "method", "sigma", "encoding", "shapes", "mean", "std",
            "low_mean", "low_std", "seed")
    info = {k: getattr(manifest, k) for k in keep}
    info["shapes"] = dict(manifest.shapes)
    info["path"] = str(data_dir)
    info["splits"] = {split: {"num_samples": s.num_samples, "num_shards": len(s.shards)}
                      for split, s in manifest.splits.items()}
    info["bytes"] = {r: sum(sh.files(r).bytes for s in manifest.splits.values() for sh in s.shards)
                     for r in manifest.resolutions}
    info["version"] = manifest.version
    info["resolutions"] = [{"name": r, "shape": list(manifest.shape(r)), "ratio": _ratio(manifest, r),
                            "bytes": info["bytes"][r]} for r in manifest.resolutions]
    return info


def _ratio(manifest: Manifest, resolution: str) -> int | float:
    """full H / H of ``resolution``: an int when it divides, else a float."""
    ratio = manifest.ratio_of(resolution)
    return int(ratio) if ratio.is_integer() else ratio


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in values) + "]"


def _fmt_ratio(ratio: int | float) -> str:
    return str(ratio) if isinstance(ratio, int) else f"{ratio:.4g}"


def print_info(data_dir: str | Path, as_json: bool = False) -> None:
    """Print the summary as text, or as JSON with ``as_json``."""
    info = dataset_info(data_dir)
    if as_json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return
    full, low = ("x".join(map(str, info["shapes"][r])) for r in ("full", "low"))
    sigma = round(info["sigma"], 4) if isinstance(info["sigma"], float) else info["sigma"]
    print(f"{info['path']}: {info['dataset']}, {len(info['classes'])} classes, full {full} -> low {low} "
          f"(ratio {_fmt_ratio(info['ratio'])}, {info['method']}, sigma {sigma}), encoding {info['encoding']}, "
          f"manifest v{info['version']}")
    for split, s in info["splits"].items():
        print(f"  {split}: {s['num_samples']} samples in {s['num_shards']} shards")
    print(f"  mean {_fmt(info['mean'])} std {_fmt(info['std'])} (full, 0..1 scale)")
    if info["low_mean"] is not None:
        print(f"  mean {_fmt(info['low_mean'])} std {_fmt(info['low_std'])} (low)")
    width = max(len(r["name"]) for r in info["resolutions"])
    for r in info["resolutions"]:
        shape = "x".join(map(str, r["shape"]))
        print(f"  {r['name'] + ':':<{width + 1}} {shape:<11} ratio {_fmt_ratio(r['ratio']):<6} "
              f"{r['bytes'] / 1e6:.1f} MB")


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


def _rows(data_dir: Path, manifest: Manifest, split: str,
          count: int) -> list[tuple[str, int, list[np.ndarray]]]:
    """(key, label, [image at each of ``manifest.resolutions``]) of the first ``count`` samples; every
    resolution must hold the same keys in the same order."""
    rows = []
    streams = [_samples(data_dir, manifest, split, r, count) for r in manifest.resolutions]
    for samples in zip(*streams):
        key, label, _ = samples[0]
        for resolution, (other, _, _) in zip(manifest.resolutions[1:], samples[1:]):
            if other != key:
                raise DatasetFormatError(f"{data_dir}: sample {len(rows)} of split {split} has key {key} at full "
                                         f"resolution but {other} at {resolution}, expected the same keys in the "
                                         "same order")
        rows.append((key, label, [image for _, _, image in samples]))
    return rows


def _caption(manifest: Manifest, resolution: str) -> str:
    h, w, _ = manifest.shape(resolution)
    if resolution == FULL:
        return f"{resolution} {h}x{w}"
    return f"{resolution} 1/{_fmt_ratio(_ratio(manifest, resolution))}"


def write_pairs_png(data_dir: str | Path, split: str, count: int, out: str | Path) -> Path:
    """Write a PNG with one row per sample: the image at each resolution (full, low, then any low<H> by
    height), side by side at the same display size (nearest neighbour)."""
    manifest = Manifest.load(data_dir)
    if split not in manifest.splits:
        raise InputError(f"--split: {data_dir} has no split {split!r}")
    full_h = manifest.shape(FULL)[0]
    side = full_h * max(1, round(_DISPLAY_PX / full_h))
    rows = _rows(Path(data_dir), manifest, split, count)
    if not rows:
        raise InputError(f"--split: split {split!r} of {data_dir} is empty")
    columns = len(manifest.resolutions)
    captions = " | ".join(_caption(manifest, r) for r in manifest.resolutions)
    canvas = Image.new("RGB", (columns * (side + 4) + 4, len(rows) * (side + _LABEL_PX + 6)), "white")
    draw = ImageDraw.Draw(canvas)
    for row, (key, label, images) in enumerate(rows):
        y = row * (side + _LABEL_PX + 6)
        for column, image in enumerate(images):
            canvas.paste(_to_rgb(image, side), (4 + column * (side + 4), y + _LABEL_PX))
        draw.text((4, y + 1), f"{key} {manifest.classes[label]}  ({captions})", fill="black")
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        canvas.save(out)
    except (OSError, ValueError) as exc:  # ValueError: PIL knows no format for the file's extension
        raise InputError(f"--out: cannot write {out}, expected a writable .png path ({exc})") from exc
    return out
