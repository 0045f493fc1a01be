"""Look at a dataset directory: ``info`` (a summary) and ``show`` (a PNG of full/low pairs).

    lowmode-preprocess info DATA [--json]
    lowmode-preprocess show DATA --split train --count 8 --out pairs.png
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from preprocess.dataset_format import FULL, LOW, RESOLUTIONS, Manifest
from preprocess.errors import InputError
from preprocess.reader import read_split

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


def write_pairs_png(data_dir: str | Path, split: str, count: int, out: str | Path) -> Path:
    """Write a PNG with one row per sample: full image, then low image, both at the same display size."""
    manifest = Manifest.load(data_dir)
    if split not in manifest.splits:
        raise InputError(f"--split: {data_dir} has no split {split!r}")
    full_h = manifest.shape(FULL)[0]
    side = full_h * max(1, round(_DISPLAY_PX / full_h))
    pairs = list(zip(read_split(data_dir, manifest, split, FULL, count),
                     read_split(data_dir, manifest, split, LOW, count)))
    if not pairs:
        raise InputError(f"--split: split {split!r} of {data_dir} is empty")
    canvas = Image.new("RGB", (2 * side + 12, len(pairs) * (side + _LABEL_PX + 6)), "white")
    draw = ImageDraw.Draw(canvas)
    for row, ((key, label, full), (_, _, low)) in enumerate(pairs):
        y = row * (side + _LABEL_PX + 6)
        canvas.paste(_to_rgb(full, side), (4, y + _LABEL_PX))
        canvas.paste(_to_rgb(low, side), (side + 8, y + _LABEL_PX))
        draw.text((4, y + 1), f"{key} {manifest.classes[label]}  (full | low 1/{manifest.ratio})", fill="black")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
