"""The build's bookkeeping inside a dataset directory, so an interrupted build can resume.

``DATA/.build/config.json`` holds the output-defining config (written before any shard), and
``DATA/.build/<split>-<k>.json`` one sidecar per finished shard pair (sha256s, sizes, pixel sums),
written after the shard's files are renamed into place. On a rerun a shard is kept only if its
sidecar matches the config and its files still hash to the recorded sha256s; everything else is
rebuilt. Temporary files (``.<name>.*.tmp``) left by a killed run are deleted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from preprocess.dataset_format import RESOLUTIONS, DatasetFormatError, Manifest, shard_stem
from preprocess.files import atomic_write_json, json_sha256, sha256_file
from preprocess.errors import InputError

BUILD_DIR = ".build"
CONFIG_NAME = "config.json"


def config_digest(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of an output config (stored in each sidecar)."""
    return json_sha256(config)


def sidecar_path(out_dir: Path, split: str, shard: int) -> Path:
    return out_dir / BUILD_DIR / f"{shard_stem(split, shard)}.json"


def _recorded_config(out_dir: Path) -> dict[str, Any] | None:
    """The config a previous build recorded in ``out_dir`` (sidecar folder, else manifest), or None."""
    try:
        return json.loads((out_dir / BUILD_DIR / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        pass
    try:
        return Manifest.load(out_dir).config
    except DatasetFormatError:
        return None


def remove_build_outputs(out_dir: Path) -> None:
    """Delete what a build writes (manifest, full/, low/, .build/); leave other files alone."""
    (out_dir / Manifest.NAME).unlink(missing_ok=True)
    for name in (*RESOLUTIONS, BUILD_DIR):
        shutil.rmtree(out_dir / name, ignore_errors=True)


def _holds_only_fresh_build_dirs(out_dir: Path) -> bool:
    """True if ``out_dir`` holds nothing but (empty or temp-only) build folders.

    That is the state a concurrent ``--part`` build leaves for a moment between creating the folders
    and recording its config; it must not be mistaken for somebody else's data.
    """
    for entry in out_dir.iterdir():
        if entry.name not in (BUILD_DIR, *RESOLUTIONS) or not entry.is_dir():
            return False
        if any(not (f.name.startswith(".") and f.name.endswith(".tmp")) for f in entry.iterdir()):
            return False
    return True


def prepare_out_dir(out_dir: Path, config: dict[str, Any], overwrite: bool) -> bool:
    """Make ``out_dir`` ready for a build with ``config``; return True if this call created it.

    A non-empty directory is accepted only if it holds a build of the same config (then it is
    resumed) or ``overwrite`` is set (then the old build outputs are deleted first).
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: --out must be a directory, found a file")
    created = not out_dir.exists()
    recorded = None if created else _recorded_config(out_dir)
    if not created and recorded != config and not (recorded is None and _holds_only_fresh_build_dirs(out_dir)):
        if not overwrite:
            raise InputError(f"{out_dir}: not empty and not a build of this config; "
                             "pass --overwrite to replace it (or choose another --out)")
        remove_build_outputs(out_dir)
    for name in (BUILD_DIR, *RESOLUTIONS):
        (out_dir / name).mkdir(parents=True, exist_ok=True)
    if _recorded_config(out_dir) != config or not (out_dir / BUILD_DIR / CONFIG_NAME).exists():
        atomic_write_json(out_dir / BUILD_DIR / CONFIG_NAME, config)
    return created


def remove_stale_temps(out_dir: Path, split: str, shard: int) -> None:
    """Delete temporary files a killed build left for this shard (only this shard: parts run side by side)."""
    stem = shard_stem(split, shard)
    for folder in (*RESOLUTIONS, BUILD_DIR):
        for tmp in (out_dir / folder).glob(f".{stem}.*.tmp"):
            tmp.unlink(missing_ok=True)


def load_verified_sidecar(out_dir: Path, split: str, shard: int, digest: str,
                          keys: tuple[str, str, int]) -> dict[str, Any] | None:
    """The sidecar of a complete, intact shard pair, or None if it must be (re)built.

    ``keys``: the planned (first_key, last_key, num_samples), so a stale sidecar never passes.
    """
    try:
        record = json.loads(sidecar_path(out_dir, split, shard).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("config_sha256") != digest or (record.get("first_key"), record.get("last_key"),
                                                   record.get("num_samples")) != keys:
        return None
    for resolution in RESOLUTIONS:
        files = record.get(resolution, {})
        for rel, size_field, sha_field in (("tar", "bytes", "sha256"), ("idx", None, "idx_sha256")):
            path = out_dir / files.get(rel, "missing")
            if not path.is_file() or (size_field and path.stat().st_size != files[size_field]):
                return None
            if sha256_file(path) != files[sha_field]:
                return None
    return record


def write_sidecar(out_dir: Path, record: dict[str, Any]) -> None:
    atomic_write_json(sidecar_path(out_dir, record["split"], record["shard"]), record)
