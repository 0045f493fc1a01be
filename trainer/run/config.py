"""Training configuration: one frozen dataclass per section, composed in :class:`TrainConfigRoot`.

Precedence: ``--set section.key=value`` overrides > the TOML preset (``configs/*.toml``) > defaults.
Unknown sections/keys and values of the wrong type are errors naming ``section.key``; range checks
live in each section's ``__post_init__``. The resolved config is saved as ``RUN/config.toml``.

Batch size is GLOBAL (``train.global_batch_size``, summed over ranks; the paper's 125 is one GPU):
each rank gets ``global_batch_size // world_size`` and a size that does not divide is an error, so
the optimisation never changes silently with the number of ranks. The learning rate is not rescaled.

The ``[schedule]`` section is :class:`pipeline.schedule.ScheduleConfig` itself (one definition); the
mode schedule takes its LR milestones from ``optim.lr_milestones_epochs``. Choice lists are the owning
modules' tuples (models, BN policies, loader kinds, devices, precisions, W&B modes, progress modes).
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.loader import KINDS
from pipeline.schedule import ScheduleConfig
from preprocess.files import json_sha256
from trainer.method.bn_policy import BN_POLICIES
from trainer.method.dualmode import LOW_KERNELS, PRESETS
from trainer.method.models import MODEL_NAMES, STEMS
from trainer.report.rundir import tomllib
from trainer.report.wandb_logger import WANDB_MODES
from trainer.run.console import PROGRESS_MODES
from trainer.run.distributed import DEVICES
from trainer.run.lr_schedule import LR_SCHEDULES
from trainer.run.precision import PRECISIONS


class ConfigError(ValueError):
    """A config file, override or value is invalid (the message names the key)."""


def _check(ok: bool, key: str, expected: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{key}: expected {expected}, got {value!r}")


def _one_of(key: str, value: Any, choices: tuple[str, ...]) -> None:
    _check(value in choices, key, f"one of {choices}", value)


def _is_regex(text: str) -> bool:
    try:
        re.compile(text)
    except re.error:
        return False
    return True


def _check_model_name(name: Any) -> None:
    """model.name: a registry name, or a zoo name whose model exists (and, for timm:, whose package is installed)."""
    from trainer.method.zoo import ZooError, check_zoo_name, is_zoo_name

    if not is_zoo_name(name):
        _check(name in MODEL_NAMES, "model.name", f"one of {MODEL_NAMES}, 'torchvision:NAME' or 'timm:NAME'", name)
        return
    try:
        check_zoo_name(name)
    except ZooError as exc:
        raise ConfigError(f"model.name: {exc}") from None


@dataclass(frozen=True)
class ModelConfig:
    """Network and its dual-mode conversion (trainer.method.models / trainer.method.dualmode)."""

    name: str = "resnet18"
    """Architecture (trainer.method.models.MODEL_NAMES): resnet18 | resnet50 | resnet8 | resnet20, or a zoo
    model "torchvision:NAME" | "timm:NAME" (trainer.method.zoo: classes and channels from the dataset,
    model.stem applies; dual_preset "auto" converts it by trainer.method.rule's rule)."""
    stem: str = "cifar_maxpool"
    """Stem variant (trainer.method.models.STEMS; the paper's CIFAR ResNets keep a max-pool after the stem;
    imagenet: torchvision's 7x7 stride-2 conv + max-pool, for photographs)."""
    width: int = 0
    """Channels of the first stage (later stages double them); 0 = the model's own (64 for resnet18/50,
    16 for resnet8/20). FLOPs scale with width squared: size a photo model for the machine with it."""
    num_classes: int = 0
    """Output classes; 0 = number of classes in the dataset manifest."""
    in_channels: int = 0
    """Input channels; 0 = from the dataset manifest's image shape."""
    dual_mode: bool = True
    """Convert the model for low-mode steps; false for baselines (no wrapper cost at all)."""
    dual_preset: str = "auto"
    """trainer.method.dualmode preset (resnet_basic | resnet_bottleneck): "auto" = the model's default
    (trainer.method.models.default_preset), "" = none (name_pattern/kernel_sizes select convs)."""
    name_pattern: str = ""
    """Regular expression selecting convolutions by module name ("" = the preset's rule / all)."""
    kernel_sizes: tuple[int, ...] = (3, 5, 7)
    """Kernel sizes that get a pooled low-mode path (r = 2: 3x3 -> 1x1, 5x5 -> 3x3, 7x7 -> 3x3; see T)."""
    skip_in_low: tuple[str, ...] = ()
    """Regexes of modules bypassed in low mode; empty = the preset's (which drops the stem max-pool)."""
    low_kernels: str = "pool"
    """Low-mode convolutions: pool (the paper: pooled kernels, stem max-pool skipped) | keep (the same
    kernels on the downsampled image, max-pool kept: progressive resizing's low step)."""
    bn_policy: str = "frozen"
    """BatchNorm in low steps (trainer.method.bn_policy.BN_POLICIES): frozen (batch stats, running stats
    untouched) | shared | separate | private (own affine parameters and running stats)."""
    bn_recalibrate_batches: int = 0
    """Before EVERY evaluation re-estimate BN running stats from N full-mode train batches (0 = only when
    they are stale, see bn_stale_batches). The time counts as training wall-clock."""
    bn_stale_batches: int = 4
    """Before an evaluation whose running BN statistics are stale (the epoch before it had low steps and
    fewer full steps than the running averages need to forget older values to 5%: 29 at BN's momentum
    0.1), re-estimate them from this many full-mode train batches, so a low-first schedule's all-low
    epochs report the accuracy of the model a user would keep (frozen, separate, private; ``shared``
    keeps its documented behaviour). 0 = never. The time counts as training wall-clock. 4: on Imagenette
    (ResNet-20, batch 125) 1 batch already came within 0.7 points of 16, 4 within 0.1 (docs/RESULTS.md)."""
    channels_last: bool = False
    """Use channels_last memory format (GPU speed-up; no effect on results)."""
    compile: bool = False
    """Wrap the model in torch.compile (after conversion, before DDP)."""

    def __post_init__(self) -> None:
        _check_model_name(self.name)
        _one_of("model.stem", self.stem, STEMS)
        _one_of("model.dual_preset", self.dual_preset, ("auto", "", *PRESETS))
        _check(_is_regex(self.name_pattern), "model.name_pattern", "a valid regular expression", self.name_pattern)
        _check(all(_is_regex(p) for p in self.skip_in_low), "model.skip_in_low", "valid regular expressions",
               self.skip_in_low)
        _one_of("model.low_kernels", self.low_kernels, LOW_KERNELS)
        _one_of("model.bn_policy", self.bn_policy, BN_POLICIES)
        _check(self.bn_recalibrate_batches >= 0, "model.bn_recalibrate_batches", "an integer >= 0", self.bn_recalibrate_batches)
        _check(self.bn_stale_batches >= 0, "model.bn_stale_batches", "an integer >= 0", self.bn_stale_batches)
        _check(self.width >= 0, "model.width", "an integer >= 0 (0 = the model's own)", self.width)
        _check(self.num_classes >= 0, "model.num_classes", "an integer >= 0", self.num_classes)
        _check(self.in_channels >= 0, "model.in_channels", "an integer >= 0", self.in_channels)
        _check(all(k >= 1 and k % 2 == 1 for k in self.kernel_sizes), "model.kernel_sizes", "odd sizes >= 1", self.kernel_sizes)


@dataclass(frozen=True)
class DataConfig:
    """Dataset directory and loader (pipeline.make_loader)."""

    dir: str = ""
    """Dataset directory written by lowmode-preprocess (holds manifest.json)."""
    loader: str = "torch"
    """"torch" (reference loader) or "dali" (GPU pipelines; CPU-only pipelines without a GPU)."""
    max_train_samples: int = 0
    """Use only the first N training samples (0 = all); for quick CPU runs."""
    num_workers: int = 2
    """Loader worker processes per rank (0 = load in the training process)."""
    augment: bool = True
    """Random crop (zero padding) + horizontal flip on training batches."""
    batches_ahead: int = 1
    """Batches the loader prepares ahead on a handover thread (pipeline.handover), so the training thread
    only takes finished ones; 0 = on the training thread (it then waits for each batch's handover work)."""

    def __post_init__(self) -> None:
        _check(bool(self.dir), "data.dir", "a dataset directory (set it in the preset or with --set data.dir=...)", self.dir)
        _one_of("data.loader", self.loader, KINDS)
        _check(self.max_train_samples >= 0, "data.max_train_samples", "an integer >= 0", self.max_train_samples)
        _check(self.num_workers >= 0, "data.num_workers", "an integer >= 0", self.num_workers)
        _check(self.batches_ahead >= 0, "data.batches_ahead", "an integer >= 0", self.batches_ahead)


@dataclass(frozen=True)
class OptimConfig:
    """SGD and its step learning-rate schedule (per epoch)."""

    lr: float = 0.1
    """Initial learning rate (not rescaled with the number of ranks)."""
    momentum: float = 0.9
    weight_decay: float = 5e-4
    """L2 penalty applied by SGD to every parameter (BN and bias included, as in He et al.)."""
    nesterov: bool = False
    lr_schedule: str = "step"
    """step (the paper: x lr_gamma at each of lr_milestones_epochs, per epoch) | cosine | linear (per step,
    a pure function of progress: warm-up over warmup_epochs, then decay to 0 at the end; milestones must be
    []) — trainer.run.lr_schedule."""
    warmup_epochs: float = 0.0
    """cosine / linear: linear warm-up from 0 to lr over this many epochs (fractions allowed)."""
    label_smoothing: float = 0.0
    """Training loss: cross-entropy with this label smoothing (validation loss is plain cross-entropy)."""
    lr_milestones_epochs: tuple[int, ...] = (80, 120)
    """Epochs at which the LR is multiplied by lr_gamma (also start the full-only epochs)."""
    lr_gamma: float = 0.1
    low_lr_scale: float = 0.0
    """Learning-rate multiplier of low steps; 0 = schedule.low_batch_scale (linear scaling with the low
    step's larger batch, Goyal et al.), so 1 for the paper's equal batches."""

    def __post_init__(self) -> None:
        _check(self.lr > 0, "optim.lr", "a positive number", self.lr)
        _one_of("optim.lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _check(0 <= self.warmup_epochs < float("inf"), "optim.warmup_epochs", "a finite number >= 0", self.warmup_epochs)
        _check(self.warmup_epochs == 0 or self.lr_schedule != "step", "optim.warmup_epochs",
               "0 with optim.lr_schedule = 'step' (warm-up belongs to the cosine / linear schedules)", self.warmup_epochs)
        _check(0 <= self.label_smoothing < 1, "optim.label_smoothing", "a number in [0, 1)", self.label_smoothing)
        _check(0 <= self.low_lr_scale < float("inf"), "optim.low_lr_scale", "a finite number >= 0 (0 = the low batch scale)",
               self.low_lr_scale)
        _check(0 <= self.momentum < 1, "optim.momentum", "a number in [0, 1)", self.momentum)
        _check(self.weight_decay >= 0, "optim.weight_decay", "a number >= 0", self.weight_decay)
        _check(0 < self.lr_gamma <= 1, "optim.lr_gamma", "a number in (0, 1]", self.lr_gamma)
        ms = self.lr_milestones_epochs
        _check(all(m > 0 for m in ms) and list(ms) == sorted(set(ms)), "optim.lr_milestones_epochs",
               "strictly increasing positive epochs", ms)
        _check(not self.nesterov or self.momentum > 0, "optim.nesterov", "false when momentum is 0", self.nesterov)
        _check(self.lr_schedule == "step" or not ms, "optim.lr_milestones_epochs",
               f"[] with optim.lr_schedule = {self.lr_schedule!r} (milestones belong to the step schedule)", ms)


@dataclass(frozen=True)
class TrainSection:
    """The step loop, devices and distributed behaviour."""

    epochs: int = 200
    global_batch_size: int = 125
    """Images per optimiser step summed over all ranks (per rank = global / world size)."""
    seed: int = 0
    """Seeds model init, data order, augmentation and the mode schedule."""
    device: str = "auto"
    """auto (cuda if available) | cpu | cuda."""
    precision: str = "fp32"
    """fp32 | bf16 (bf16 autocast; GPU only)."""
    deterministic: bool = False
    """torch.use_deterministic_algorithms(True): bitwise-reproducible runs and resumes (slower)."""
    num_threads: int = 0
    """CPU intra-op threads per rank (torch.set_num_threads); 0 = torch's default (all cores)."""
    keep_freed_memory: bool = True
    """glibc: serve allocations from the heap and never return freed memory to the kernel, so steps of
    varying sizes reuse memory instead of page-faulting it in again (trainer.run.host); speed only."""
    sync_every_steps: int = 50
    """Steps between sync points: losses, accuracy, the non-finite check and the stop vote stay on the
    device in between, so the host queues steps without waiting (1 = check every step)."""
    check_sync_every_steps: int = 0
    """Every N steps all-reduce (mode, step) and fail if ranks disagree (0 = never; --check-sync N)."""
    dist_timeout_s: float = 300.0
    """Collective timeout: when a rank dies the others fail after at most this long instead of hanging."""
    eval_every_epochs: int = 1
    """Validate every N epochs (and always after the last)."""

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "train.epochs", "an integer >= 1", self.epochs)
        _check(self.global_batch_size >= 1, "train.global_batch_size", "an integer >= 1", self.global_batch_size)
        _check(self.seed >= 0, "train.seed", "an integer >= 0", self.seed)
        _one_of("train.device", self.device, DEVICES)
        _one_of("train.precision", self.precision, PRECISIONS)
        _check(self.num_threads >= 0, "train.num_threads", "an integer >= 0", self.num_threads)
        _check(self.sync_every_steps >= 1, "train.sync_every_steps", "an integer >= 1", self.sync_every_steps)
        _check(self.check_sync_every_steps >= 0, "train.check_sync_every_steps", "an integer >= 0", self.check_sync_every_steps)
        _check(0 < self.dist_timeout_s < float("inf"), "train.dist_timeout_s", "a positive, finite number of seconds",
               self.dist_timeout_s)
        _check(self.eval_every_epochs >= 1, "train.eval_every_epochs", "an integer >= 1", self.eval_every_epochs)


@dataclass(frozen=True)
class CheckpointConfig:
    """When checkpoints are written (always atomically, into RUN/checkpoints/)."""

    every_steps: int = 0
    """Also checkpoint every N global steps (0 = only at epoch ends and at the end)."""
    keep: int = 3
    """Newest checkpoints kept on disk; older ones are deleted after a successful save."""

    def __post_init__(self) -> None:
        _check(self.every_steps >= 0, "checkpoint.every_steps", "an integer >= 0", self.every_steps)
        _check(self.keep >= 1, "checkpoint.keep", "an integer >= 1", self.keep)


@dataclass(frozen=True)
class LoggingConfig:
    """Console and Weights & Biases logging (rank 0 only)."""

    wandb: str = "offline"
    """offline (default, no account) | online | disabled."""
    wandb_project: str = "lowmode"
    experiment: str = ""
    """W&B group: runs to compare side by side (default: the preset's file name minus _baseline/_lowmode/_paper)."""
    job_type: str = ""
    """W&B job_type (default: "baseline" when schedule.policy is none, else "lowmode")."""
    progress: str = "auto"
    """auto (tqdm bar on a terminal, log lines otherwise) | bar | lines."""
    print_every_steps: int = 50
    """Plain log line every N steps (progress = lines)."""
    grad_norm: bool = False
    """Record each step's gradient L2 norm (over all ranks' averaged gradient) as ``grad_norm``."""
    low_step_value_every: int = 0
    """Every N global steps probe what a low step would buy (trainer/run/low_step_value.py: rho's parts, the
    low/full gradient cosine and losses, on one full-resolution training batch split in halves) and record
    it as a "probe" record; nothing of the training changes, its time counts as training. Needs a model with
    a low mode (model.dual_mode = true; a baseline may set it with schedule.policy = "none"). 0 = off."""

    def __post_init__(self) -> None:
        _one_of("logging.wandb", self.wandb, WANDB_MODES)
        _one_of("logging.progress", self.progress, PROGRESS_MODES)
        _check(self.print_every_steps >= 1, "logging.print_every_steps", "an integer >= 1", self.print_every_steps)
        _check(self.low_step_value_every >= 0, "logging.low_step_value_every", "an integer >= 0 (0 = off)",
               self.low_step_value_every)


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "schedule": ScheduleConfig,
    "optim": OptimConfig,
    "train": TrainSection,
    "checkpoint": CheckpointConfig,
    "logging": LoggingConfig,
}

# Keys that may change when a run is resumed (paths, logging, fault handling, speed-only settings, and
# model.bn_stale_batches, which changes what evaluation sees but never the weights): left out of the hash. The speed-only ones (threads, memory layout) can change the last bits of a float
# sum, so a resume that changes them continues validly but not bitwise as the uninterrupted run would.
RESUMABLE_KEYS = (
    "data.dir", "data.num_workers", "data.batches_ahead", "model.channels_last", "logging.*", "checkpoint.*",
    "train.check_sync_every_steps", "train.dist_timeout_s", "train.num_threads", "train.keep_freed_memory",
    "train.sync_every_steps", "model.bn_stale_batches",
)


# Keys added after checkpoint version 1: hashed only when they differ from their default, so the
# checkpoints of runs that predate them (which ran with the default behaviour) stay resumable.
LATER_KEYS = ("model.low_kernels", "optim.low_lr_scale", "schedule.ramp_end", "schedule.ramp_shape",
              "schedule.low_batch_scale", "model.width", "optim.lr_schedule", "optim.warmup_epochs",
              "optim.label_smoothing", "schedule.ramp_start", "schedule.low_size", "schedule.constant_pixels",
              "schedule.adapt_every_steps", "schedule.adapt_margin", "schedule.adapt_probe_batches",
              "schedule.adapt_full_from")


@dataclass(frozen=True)
class TrainConfigRoot:
    """The whole training configuration; each component receives only its section."""

    model: ModelConfig
    data: DataConfig
    schedule: ScheduleConfig
    optim: OptimConfig
    train: TrainSection
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def __post_init__(self) -> None:
        if self.schedule.policy != "none" and not self.model.dual_mode:
            raise ConfigError(f"model.dual_mode: must be true when schedule.policy is {self.schedule.policy!r} "
                              "(low steps need the converted model)")
        if self.logging.low_step_value_every and not self.model.dual_mode:
            raise ConfigError("logging.low_step_value_every: needs model.dual_mode = true (a probe runs the low "
                              "mode; a baseline can keep schedule.policy = \"none\" with a converted model)")
        last = self.optim.lr_milestones_epochs[-1] if self.optim.lr_milestones_epochs else 0
        if self.optim.warmup_epochs >= self.train.epochs:
            raise ConfigError(f"optim.warmup_epochs: {self.optim.warmup_epochs} must be < train.epochs = "
                              f"{self.train.epochs}")
        if last >= self.train.epochs:
            raise ConfigError(f"optim.lr_milestones_epochs: {self.optim.lr_milestones_epochs} must be "
                              f"< train.epochs = {self.train.epochs}")

    def job_type(self) -> str:
        return self.logging.job_type or ("baseline" if self.schedule.policy == "none" else "lowmode")

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict (tuples as lists) for TOML/JSON/W&B."""
        return {name: _plain(dataclasses.asdict(getattr(self, name))) for name in SECTIONS}

    def hash(self) -> str:
        """sha256 of the resolved config minus RESUMABLE_KEYS: checkpoints from another hash are refused."""
        return json_sha256(hashed_view(self.to_dict()))


def hashed_view(config: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Flat {"section.key": value} of the keys that must match for a resume (LATER_KEYS only when
    they differ from their default)."""
    return resume_view({f"{s}.{k}": v for s, keys in config.items() for k, v in keys.items()})


def resume_view(flat: dict[str, Any]) -> dict[str, Any]:
    """``flat`` minus what may change on a resume under *today's* rules. Checkpoints compare views
    re-filtered with this, not hashes: a key that became resumable after a checkpoint was written
    (model.channels_last) would otherwise change every old run's hash and strand it."""
    return {k: v for k, v in flat.items() if not any(_matches(k, pat) for pat in RESUMABLE_KEYS)
            and not (k in LATER_KEYS and v == _default(k))}


def _default(key: str) -> Any:
    section, name = key.split(".")
    return _plain(next(f.default for f in dataclasses.fields(SECTIONS[section]) if f.name == name))


def _matches(key: str, pattern: str) -> bool:
    return key.startswith(pattern[:-1]) if pattern.endswith("*") else key == pattern


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


# ----------------------------------------------------------------------------- loading


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check ``value`` against a field's type and convert lists to tuples; error names ``key``."""
    origin = typing.get_origin(annotation)
    if origin is tuple:
        item_type = typing.get_args(annotation)[0]
        _check(isinstance(value, (list, tuple)), key, f"a list of {item_type.__name__}", value)
        return tuple(_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value))
    if annotation is bool:
        _check(isinstance(value, bool), key, "true or false", value)
    elif annotation is int:
        _check(isinstance(value, int) and not isinstance(value, bool), key, "an integer", value)
    elif annotation is float:
        _check(isinstance(value, (int, float)) and not isinstance(value, bool), key, "a number", value)
        return float(value)
    elif annotation is str:
        _check(isinstance(value, str), key, "a string", value)
    return value


def build_section(name: str, values: dict[str, Any]) -> Any:
    """Construct section ``name`` from a dict, rejecting unknown keys and wrongly typed values."""
    cls = SECTIONS[name]
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{name}.{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
    kwargs = {k: _coerce(v, hints[k], f"{name}.{k}") for k, v in values.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:  # a section owned by another package (schedule) names its key
        message = str(exc)
        raise ConfigError(message if message.startswith(f"{name}.") else f"{name}: {message}") from None


def parse_override(text: str) -> tuple[str, str, Any]:
    """``section.key=value`` -> (section, key, value); value is a TOML literal, else a plain string."""
    lhs, sep, raw = text.partition("=")
    section, dot, key = lhs.strip().partition(".")
    if not sep or not dot or not key:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, key.strip(), value


def config_from_dict(data: dict[str, Any], source: str = "config") -> TrainConfigRoot:
    """Build the root config from ``{section: {key: value}}`` (unknown sections are errors)."""
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{source}: unknown section [{unknown[0]}] (known: {', '.join(SECTIONS)})")
    for name, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: [{name}] must be a table, got {values!r}")
    sections = {name: build_section(name, data.get(name, {})) for name in SECTIONS}
    return TrainConfigRoot(**sections)


def _read_toml(path: Path) -> dict[str, Any]:
    """A preset's tables; ConfigError naming the file when it is missing, not a readable file, not
    UTF-8 (TOML's encoding) or not TOML."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:  # a directory, no permission, an I/O error
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {exc.start}: {exc.reason}); "
                          "a TOML config must be UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfigRoot:
    """Read a TOML preset (or start from defaults when ``path`` is None) and apply ``--set`` overrides."""
    data: dict[str, dict[str, Any]] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        data = _read_toml(Path(path))
    for text in overrides:
        section, key, value = parse_override(text)
        if section not in SECTIONS:
            raise ConfigError(f"--set {text!r}: unknown section {section!r} (known: {', '.join(SECTIONS)})")
        data.setdefault(section, {})[key] = value
    config = config_from_dict(data, source)
    if not config.logging.experiment and path is not None:
        # The group that puts a preset's baseline, lowmode and paper runs side by side in W&B.
        stem = Path(path).stem
        for suffix in ("_baseline", "_lowmode", "_paper"):
            stem = stem.removesuffix(suffix)
        config = dataclasses.replace(config, logging=dataclasses.replace(config.logging, experiment=stem))
    return config


def diff_keys(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Flat keys whose values differ between two hashed views (for refusal messages)."""
    return sorted(k for k in set(a) | set(b) if a.get(k, "<missing>") != b.get(k, "<missing>"))
