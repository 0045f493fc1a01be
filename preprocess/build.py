"""Build a dataset directory: shuffle, shard, downsample, write, record (resumably).

Every shard is written at every resolution of the config (``resolution_shapes``: full, "low", and the
further ``low<H>`` of ``--low-sizes``), the same keys in the same order in each resolution's folder.

Order of work: check the ``--out`` path, open and validate the source (nothing is written before
that), lock the output directory (``state.OutDirLock``: one plain build, or distinct ``--part``
builds side by side), check it (refuse a different config unless ``overwrite``), keep every shard
(all its resolutions) whose sidecar and sha256s verify, build the rest (in a process pool when
``workers > 1``; the workers die with the build, even on ``kill -9``), then write the manifest last.
Every step is a pure function of the config, so an interrupted build that is rerun ends byte-identical
to an uninterrupted one, for any number of workers. A write error (disk full) removes the temp files it leaves and
names the file; the shards finished before it are kept by the rerun.

    from preprocess.build import BuildConfig, build_dataset
    manifest = build_dataset(BuildConfig(source="synthetic", out="DATA"))
"""

from __future__ import annotations

import ctypes
import math
import multiprocessing
import os
import shutil
import signal
import time
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from preprocess import state
from preprocess.config import BuildConfig
from preprocess.dataset_format import FULL, LOW, SPLITS, DatasetFormatError, Manifest, ShardEntry, ShardFiles, \
    SplitEntry, extra_resolution_name, sample_key
from preprocess.downsample import method_sigma, resize_many
from preprocess.errors import InputError
from preprocess.shards import channel_sums, write_shard
from preprocess.sources import FROM_INPUT, open_source
from preprocess.sources.base import Source

__all__ = ["BuildConfig", "BuildResult", "ShardTask", "build_dataset", "plan_shards", "resolution_shapes",
           "run_build"]


@dataclass(frozen=True)
class ShardTask:
    """Shard ``shard`` of ``split``: the source indices it holds, in write order."""

    split: str
    shard: int
    indices: np.ndarray

    def expected(self) -> tuple[str, str, int]:
        return sample_key(int(self.indices[0])), sample_key(int(self.indices[-1])), len(self.indices)


@dataclass
class BuildResult:
    """What a build did: the manifest (None for --part), shards built/kept, bytes, seconds."""

    manifest: Manifest | None
    resolutions: tuple[str, ...] = (FULL, LOW)
    """The resolutions every shard was written at (keys of each record's files)."""
    built: int = 0
    kept: int = 0
    samples_written: int = 0
    seconds: float = 0.0
    records: list[dict[str, Any]] = field(default_factory=list)


def plan_shards(source: Source, config: BuildConfig) -> list[ShardTask]:
    """All shards of all splits: a seeded permutation of each split cut into samples_per_shard chunks."""
    tasks = []
    for split_id, split in enumerate(SPLITS):
        n = source.splits[split].num_samples
        order = np.random.default_rng([config.seed, split_id]).permutation(n)
        for shard in range(math.ceil(n / config.samples_per_shard)):
            chunk = order[shard * config.samples_per_shard:(shard + 1) * config.samples_per_shard]
            tasks.append(ShardTask(split, shard, chunk))
    return tasks


def resolution_shapes(config: BuildConfig, shape: tuple[int, int, int],
                      name: str = "the source") -> dict[str, tuple[int, int, int]]:
    """{resolution: (H, W, C)} of a build of ``config`` from images of ``shape``, in manifest order: "full",
    "low" (``ratio``, or the first of ``low_sizes``), then each further size as ``low<H>`` by increasing H.

    A low size must lie below the full height and give an integral width (W * size / H): else InputError
    naming the option (``name``: the source, for the message).
    """
    h, w, c = shape
    if config.low_sizes is None:
        if h % config.ratio or w % config.ratio:
            raise InputError(f"--ratio: image sides {h}x{w} of {name} are not divisible by {config.ratio}")
        return {FULL: shape, LOW: (h // config.ratio, w // config.ratio, c)}
    for size in config.low_sizes:
        if size >= h:
            raise InputError(f"--low-sizes: expected sizes below the full image height {h} of {name}, got {size}")
        if (w * size) % h:
            raise InputError(f"--low-sizes: size {size} gives {name}'s {h}x{w} images a width of "
                             f"{w * size / h:g} pixels; expected sizes whose width {w} * size / {h} is an integer")
    first, *extra = config.low_sizes
    shapes = {FULL: shape, LOW: (first, w * first // h, c)}
    shapes.update({extra_resolution_name(s): (s, w * s // h, c) for s in sorted(extra)})
    return shapes


# Set in the parent before the pool forks, so workers inherit the (possibly large) source arrays.
_WORKER_STATE: tuple[Source, BuildConfig, Path, str, dict[str, tuple[int, int, int]]] | None = None


def _build_shard(task: ShardTask) -> dict[str, Any]:
    """Build one shard (every resolution) and its sidecar; runs in a worker process or inline."""
    source, config, out_dir, digest, shapes = _WORKER_STATE
    split = source.splits[task.split]
    full = split.load(task.indices)
    if full.shape[1:] != source.shape:
        raise InputError(f"{_input_name(config)}: image batch has shape {full.shape[1:]}, expected {source.shape}")
    lows = [r for r in shapes if r != FULL]
    images = {FULL: full, **dict(zip(lows, resize_many(full, [shapes[r][:2] for r in lows], config.method)))}
    labels = split.labels[task.indices]
    state.remove_stale_temps(out_dir, task.split, task.shard)
    files = write_shard(out_dir, task.split, task.shard, task.indices, labels, images,
                        config.encoding, config.jpeg_quality, config.tar_writer)
    first, last, count = task.expected()
    record = {"config_sha256": digest, "split": task.split, "shard": task.shard, "num_samples": count,
              "first_key": first, "last_key": last, **{r: f.to_dict() for r, f in files.items()},
              # the manifest's statistics are those of full and low; a low<H> would only cost time here
              "sums": {r: channel_sums(images[r]) for r in (FULL, LOW)}}
    state.write_sidecar(out_dir, record)
    return record


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(parent: int) -> None:
    """Pool initializer: have the kernel SIGKILL this worker when the build process dies.

    Without it a ``kill -9`` of the build leaves its workers blocked forever on the task pipe, still
    holding the output directory's lock (they inherit its descriptor). The "parent" is the thread
    that forked the worker: the one running the pool, alive until the pool is shut down.
    Linux only; elsewhere a no-op.
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the build died before prctl: no signal will come
        os._exit(1)


def _run_tasks(tasks: list[ShardTask], workers: int, on_done: Callable[[dict], None]) -> None:
    """Run shard tasks inline or in a forked process pool; re-raise the first failure."""
    if workers == 1 or len(tasks) <= 1:
        for task in tasks:
            on_done(_build_shard(task))
        return
    context = multiprocessing.get_context("fork")  # workers share the source arrays copy-on-write
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context,
                             initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
        pending = {pool.submit(_build_shard, task) for task in tasks}
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                if future.exception() is not None:
                    for other in pending:
                        other.cancel()
                    raise future.exception()
                on_done(future.result())


def _mean_std(sums: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """Per-channel mean and std on the 0..1 scale from exact integer pixel sums."""
    count = sum(s["count"] for s in sums)
    total = [sum(col) for col in zip(*(s["sum"] for s in sums))]
    total_sq = [sum(col) for col in zip(*(s["sumsq"] for s in sums))]
    mean = [t / count / 255 for t in total]
    var = [(count * sq - t * t) / (count * count) for t, sq in zip(total, total_sq)]  # exact integers
    return mean, [math.sqrt(v) / 255 for v in var]


def _manifest(source: Source, config: BuildConfig, shapes: dict[str, tuple[int, int, int]],
              records: list[dict[str, Any]]) -> Manifest:
    """The manifest (see dataset_format.Manifest) from all shard sidecars."""
    records = sorted(records, key=lambda r: (SPLITS.index(r["split"]), r["shard"]))
    train = [r for r in records if r["split"] == "train"]
    mean, std = _mean_std([r["sums"][FULL] for r in train])
    low_mean, low_std = _mean_std([r["sums"][LOW] for r in train])
    flat = [k for k, s in enumerate(std) if s <= 0]
    if flat:  # an InputError, so a build that created --out removes it (the loaders divide by std)
        raise InputError(f"{_input_name(config)}: every training pixel has the same value in channel "
                         f"{flat[0]} (std 0 over {sum(r['num_samples'] for r in train)} images); "
                         "the loaders normalise by the training std, so a dataset needs some variation")

    def shard(r: dict[str, Any]) -> ShardEntry:
        files = {res: ShardFiles(**r[res]) for res in shapes}
        return ShardEntry(num_samples=r["num_samples"], first_key=r["first_key"], last_key=r["last_key"],
                          full=files.pop(FULL), low=files.pop(LOW), extra=files)

    exact = shapes[FULL][0] / shapes[LOW][0]
    ratio = int(exact) if exact.is_integer() else exact
    return Manifest(
        dataset=source.name, classes=tuple(source.classes), ratio=ratio, method=config.method,
        sigma=method_sigma(config.method, ratio), encoding=config.encoding, shapes=shapes,
        mean=tuple(mean), std=tuple(std), low_mean=tuple(low_mean), low_std=tuple(low_std), seed=config.seed,
        config=config.output_config(),
        splits={split: SplitEntry(num_samples=source.splits[split].num_samples,
                                  shards=tuple(shard(r) for r in records if r["split"] == split))
                for split in SPLITS},
    )


def _input_name(config: BuildConfig) -> str:
    """The input path for error messages (the source name for a source that reads none)."""
    path = config.input_path()
    return config.source if path is None else str(path)


def _check_source(source: Source, config: BuildConfig) -> dict[str, tuple[int, int, int]]:
    """The build's resolution shapes (InputError for sizes the source's images do not allow, or no train data)."""
    shapes = resolution_shapes(config, source.shape, source.name)
    if source.splits["train"].num_samples == 0:
        raise InputError(f"{_input_name(config)}: the train split is empty")
    return shapes


def _shard_digest(output_config: dict[str, Any], config: BuildConfig, source: Source) -> str:
    """The digest each shard's sidecar must carry to be kept. When the source decided an option from its
    input (``FROM_INPUT``: imagefolder's size/channels left unset, recorded as None), the decided shape
    joins it: if the images change between an interrupted build and its rerun, the old-shape shards are
    rebuilt instead of being kept beside a manifest that states the new shape."""
    h, _, c = source.shape
    decided = {k: {"size": h, "channels": c}[k] for k in FROM_INPUT.get(config.source, ())
               if getattr(config, k) is None}
    return state.config_digest({**output_config, "decided_from_input": decided} if decided else output_config)


def run_build(config: BuildConfig, *, progress: bool = False) -> BuildResult:
    """Build (or resume) the dataset directory of ``config``; see the module docstring."""
    start = time.perf_counter()
    out_dir = Path(config.out)
    state.check_out_path(out_dir, config.input_path(), config.source)
    source = open_source(config.source, config.input_path(), **config.source_options())
    shapes = _check_source(source, config)
    tasks = plan_shards(source, config)
    output_config = config.output_config()
    created = not out_dir.exists()
    lock = state.OutDirLock(out_dir, config.part)
    lock.acquire()  # before anything is written to out_dir
    try:
        state.prepare_out_dir(out_dir, output_config, config.overwrite, tuple(shapes))
        if config.part is None:
            state.remove_stale_files(out_dir)  # ours alone: whatever a killed build left is stale
        else:
            lock.acquire_part()
        mine = [t for t in tasks if config.part is None or t.shard % config.part[1] == config.part[0]]
        result = _build_shards(source, config, shapes, mine, _shard_digest(output_config, config, source),
                               progress)
        if config.part is None:
            result.manifest = _manifest(source, config, shapes, result.records)
            _save_manifest(result.manifest, out_dir)
    except InputError:
        if created and lock.try_exclusive():  # bad input found mid-build: leave nothing behind
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    finally:
        lock.release()
    result.seconds = time.perf_counter() - start
    return result


def _build_shards(source: Source, config: BuildConfig, shapes: dict[str, tuple[int, int, int]],
                  tasks: list[ShardTask], digest: str, progress: bool) -> BuildResult:
    """Keep the verified shards of ``tasks``, build the others; the result has no manifest yet."""
    global _WORKER_STATE
    out_dir = Path(config.out)
    result = BuildResult(manifest=None, resolutions=tuple(shapes))
    todo = []
    for task in tasks:
        record = state.load_verified_sidecar(out_dir, task.split, task.shard, digest, task.expected(),
                                             tuple(shapes))
        if record is None:
            todo.append(task)
        else:
            result.records.append(record)
    result.kept = len(result.records)
    if todo:  # the manifest vouches for all shards: written last
        (out_dir / Manifest.NAME).unlink(missing_ok=True)
    bar = _progress_bar(sum(len(t.indices) for t in todo), progress)

    def on_done(record: dict[str, Any]) -> None:
        result.records.append(record)
        result.built += 1
        result.samples_written += record["num_samples"]
        bar.update(record["num_samples"])

    _WORKER_STATE = (source, config, out_dir, digest, shapes)
    try:
        _run_tasks(todo, config.workers, on_done)
    finally:
        _WORKER_STATE = None
        bar.close()
    return result


def _save_manifest(manifest: Manifest, out_dir: Path) -> None:
    """Write the manifest unless an equal one is there: rerunning a complete build writes nothing
    (so it also succeeds on a full disk). A version-1 manifest (written before several low resolutions
    existed) that states the same dataset is kept as it is, so its bytes do not change."""
    try:
        existing = Manifest.load(out_dir)
    except DatasetFormatError:
        existing = None
    if existing is not None and existing.to_dict() == replace(manifest, version=existing.version).to_dict():
        return
    manifest.save(out_dir)


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", disable=not enabled, dynamic_ncols=True, leave=False)


def build_dataset(config: BuildConfig, *, progress: bool = False) -> Manifest | dict[str, Any]:
    """Build the dataset directory of ``config`` and return its ``Manifest``.

    With ``config.part`` set no manifest is written; the return value is then
    ``{"part": [I, N], "built": n, "kept": m}``.
    """
    result = run_build(config, progress=progress)
    if result.manifest is None:
        return {"part": list(config.part), "built": result.built, "kept": result.kept}
    return result.manifest
