"""The mode schedule: which training steps run in low mode, and at which of the dataset's resolutions.

``ModeSchedule.resolution(epoch, step)`` is a pure function of the schedule config, the seed, the
dataset's resolutions (``Ladder``) and the two counters; ``mode(epoch, step)`` is derived from it ("full"
for the full resolution, "low" for every other). For the two-level policies it hashes ``(seed, epoch,
step)`` to a uniform number in [0, 1) and compares it with the epoch's low-mode probability; a low step
reads the ladder's ``low`` resolution. No RNG state exists, so every rank, every loader worker and a run
resumed from a checkpoint draw the same resolutions without communicating. See ../shared/DESIGN.md
("Mode schedule").

Policies: "bernoulli" (the paper: p in every epoch that allows low mode), "ramp" (low first: p falls
from ``p`` at the start of training to 0 at ``ramp_end`` of it, then full only; needs the run's
``total_epochs``), "alternate" (every k-th step low), "none" (baseline), "progressive" (a resolution ladder: the image height
grows with training progress through the dataset's low resolutions to the full one, epoch by epoch;
``Ladder``), "adaptive" (a ladder whose climbs a controller decides during training,
trainer/run/adaptive.py: the schedule holds the climbs decided so far, ``ModeSchedule.with_climbs``, so a
step's resolution stays a pure function of recorded state). The paper's two-level low mode is the ladder of one rung. ``low_batch_scale`` (Mix&Match
"B+") is read by the pipeline's planner: a low step takes k times the per-rank batch, so an epoch's
number of steps depends on its drawn modes (``pipeline.plan.Planner.steps_in_epoch``).
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass
from typing import Any

from preprocess.dataset_format import FULL, LOW, RESOLUTIONS

POLICIES = ("bernoulli", "alternate", "none", "ramp", "progressive", "adaptive")
RAMP_SHAPES = ("linear", "cosine", "step")
MODES = RESOLUTIONS  # a step's mode is the resolution it reads: FULL or LOW

# Domain separation: the schedule's hash must not collide with other users of (seed, epoch, step).
_DOMAIN = b"lowmode.schedule.v1"


def mode_of(resolution: str) -> str:
    """The model's mode for a step at ``resolution``: "full" at the full resolution, "low" at every other."""
    return FULL if resolution == FULL else LOW


def counter_uniform(domain: bytes, *counters: int) -> float:
    """A uniform number in [0, 1) that depends only on ``domain`` and the integer ``counters``.

    blake2b of the counters packed as signed 64-bit integers; the top 53 bits make the float, so
    every representable double in [0, 1) with spacing 2**-53 is equally likely.
    """
    digest = hashlib.blake2b(struct.pack(f"<{len(counters)}q", *counters), digest_size=8, key=domain).digest()
    return (int.from_bytes(digest, "little") >> 11) * (1.0 / (1 << 53))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_probability(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check(ok: bool, field: str, expected: str, got: Any) -> None:
    if not ok:
        raise ValueError(f"schedule.{field}: expected {expected}, got {got!r}")


@dataclass(frozen=True)
class ScheduleConfig:
    """How the low-mode probability is set per epoch and how steps are drawn (the ``[schedule]`` config).

    The epochs after each LR milestone are full-only; the milestones belong to the optimiser and
    are passed to ``ModeSchedule`` separately.
    """

    policy: str = "bernoulli"
    """"bernoulli": each step is low with probability p (the paper); "alternate": every
    ``alternate_every``-th step is low; "none": every step is full (baseline); "ramp": low first,
    the probability falls from p to 0 at ``ramp_end`` of training (``ramp_shape``)."""
    p: float = 0.5
    """Low-mode probability per step in epochs that allow low mode (bernoulli; ramp: at the start)."""
    alternate_every: int = 2
    """alternate: steps with ``step % alternate_every == alternate_every - 1`` are low (1 = all)."""
    full_epochs_after_milestone: int = 4
    """Number of full-only epochs starting at each LR milestone epoch (the paper uses 4)."""
    warmup_full_epochs: int = 0
    """Number of full-only epochs at the start of training."""
    epoch_probabilities: tuple[float, ...] = ()
    """Explicit low-mode probability per epoch (bernoulli only; empty: not used); overrides p,
    milestones and warm-up. Epochs past the end of the list use its last value."""
    ramp_end: float = 0.6
    """ramp: the fraction of training, in (0, 1], at which the low-mode probability reaches 0; progressive:
    at which the image reaches the full height. Epochs starting at or after it are full only (progressive:
    the final full-resolution fraction of training is 1 - ramp_end)."""
    ramp_shape: str = "linear"
    """ramp: how p falls over [0, ramp_end) of training, t = epoch / total_epochs: "linear"
    p * (1 - t / ramp_end), "cosine" p * (1 + cos(pi * t / ramp_end)) / 2, "step" p until ramp_end.
    progressive: how the height grows from its start to the full height over [ramp_start, ramp_end) with
    u = (t - ramp_start) / (ramp_end - ramp_start): "linear" u, "cosine" (1 - cos(pi u)) / 2, "step" 0
    (the start height until ramp_end: two-level low first)."""
    low_batch_scale: int = 1
    """Mix&Match "B+": a low step takes ``low_batch_scale`` times the per-rank batch (1 = the paper).
    An epoch still reads each sample at most once, so it has fewer steps, their number a pure function
    of (seed, epoch, world size, batch, schedule): ``pipeline.plan.Planner.steps_in_epoch``."""

    ramp_start: float = 0.0
    """progressive: the fraction of training, in [0, ramp_end), spent at the start height before the ramp
    begins (Composer's delay_fraction)."""
    low_size: int = 0
    """Height in pixels of the low resolution two-level policies read, and the start of a progressive
    ramp (whose rungs are the dataset's low resolutions at least this high); 0 = the dataset's "low"."""
    constant_pixels: bool = False
    """Scale a low step's per-rank batch with its pixels, round(B x (full H / H)^2), so every step reads
    about the same number of pixels (Multigrid's rule); the LR of the step scales with its batch unless
    optim.low_lr_scale is set. Excludes low_batch_scale > 1."""

    adapt_every_steps: int = 100
    """adaptive: global steps between two measurements of the controller (each a possible climb)."""
    adapt_margin: float = 0.0
    """adaptive: how much better than the climb threshold the current rung must measure to be kept (>= 0; see
    trainer/run/adaptive.py)."""
    adapt_probe_batches: int = 2
    """adaptive: fixed full-resolution training batches the controller's signal is measured on."""
    adapt_full_from: float = 0.8
    """adaptive: the fraction of training, in (0, 1], from which every epoch is full resolution whatever the
    controller measures (the final full phase every ladder of docs/RESULTS.md 0.6 ends with)."""

    def __post_init__(self) -> None:
        # TOML gives lists and None means "not used": store a tuple so the config stays hashable and immutable.
        probabilities = () if self.epoch_probabilities is None else self.epoch_probabilities
        _check(isinstance(probabilities, (list, tuple)), "epoch_probabilities", "a list of numbers in [0, 1]",
               probabilities)
        object.__setattr__(self, "epoch_probabilities", tuple(probabilities))
        _check(self.policy in POLICIES, "policy", f"one of {', '.join(POLICIES)}", self.policy)
        _check(_is_probability(self.p), "p", "a number in [0, 1]", self.p)
        _check(_is_int(self.alternate_every) and self.alternate_every >= 1, "alternate_every", "an integer >= 1",
               self.alternate_every)
        for name in ("full_epochs_after_milestone", "warmup_full_epochs"):
            value = getattr(self, name)
            _check(_is_int(value) and value >= 0, name, "an integer >= 0", value)
        _check(all(_is_probability(q) for q in self.epoch_probabilities), "epoch_probabilities",
               "a list of numbers in [0, 1]", list(self.epoch_probabilities))
        _check(not self.epoch_probabilities or self.policy == "bernoulli", "epoch_probabilities",
               f"an empty list unless policy is 'bernoulli' (policy is {self.policy!r})",
               list(self.epoch_probabilities))
        _check(_is_number(self.ramp_end) and 0.0 < self.ramp_end <= 1.0, "ramp_end", "a number in (0, 1]",
               self.ramp_end)
        _check(self.ramp_shape in RAMP_SHAPES, "ramp_shape", f"one of {', '.join(RAMP_SHAPES)}", self.ramp_shape)
        _check(_is_int(self.low_batch_scale) and self.low_batch_scale >= 1, "low_batch_scale", "an integer >= 1",
               self.low_batch_scale)
        _check(_is_number(self.ramp_start) and 0.0 <= self.ramp_start < self.ramp_end, "ramp_start",
               f"a number in [0, ramp_end = {self.ramp_end})", self.ramp_start)
        _check(_is_int(self.low_size) and self.low_size >= 0, "low_size",
               "an integer >= 0 (a low height in pixels; 0 = the dataset's 'low')", self.low_size)
        _check(isinstance(self.constant_pixels, bool), "constant_pixels", "true or false", self.constant_pixels)
        _check(_is_int(self.adapt_every_steps) and self.adapt_every_steps >= 1, "adapt_every_steps",
               "an integer >= 1 (global steps between two measurements)", self.adapt_every_steps)
        _check(_is_number(self.adapt_margin) and self.adapt_margin >= 0, "adapt_margin", "a number >= 0",
               self.adapt_margin)
        _check(_is_int(self.adapt_probe_batches) and self.adapt_probe_batches >= 1, "adapt_probe_batches",
               "an integer >= 1", self.adapt_probe_batches)
        _check(_is_number(self.adapt_full_from) and 0.0 < self.adapt_full_from <= 1.0, "adapt_full_from",
               "a number in (0, 1]", self.adapt_full_from)
        if self.policy == "adaptive":
            # the controller switches resolution mid-epoch: an epoch's steps and samples must not depend on it
            _check(self.low_batch_scale == 1, "low_batch_scale", "1 when policy is 'adaptive'", self.low_batch_scale)
            _check(not self.constant_pixels, "constant_pixels", "false when policy is 'adaptive'", self.constant_pixels)
        _check(not (self.constant_pixels and self.low_batch_scale > 1), "constant_pixels",
               f"false when low_batch_scale > 1 (both set the low batch; low_batch_scale is {self.low_batch_scale})",
               self.constant_pixels)


@dataclass(frozen=True)
class Ladder:
    """The resolutions a schedule may choose: the full height and the low rungs (name, height), by
    increasing height. ``low`` is the rung two-level policies read ("low" unless ``schedule.low_size``
    names another). Built from a dataset's manifest (``from_manifest``); a schedule without one is the
    two-level case: one rung named "low" whose height is not known (``two_level``)."""

    full_height: int | None
    rungs: tuple[tuple[str, int | None], ...]

    @classmethod
    def two_level(cls) -> Ladder:
        return cls(full_height=None, rungs=((LOW, None),))

    @classmethod
    def from_manifest(cls, manifest) -> Ladder:
        """Every resolution of a ``preprocess.dataset_format.Manifest``."""
        return cls(full_height=manifest.height(FULL),
                   rungs=tuple((name, manifest.height(name)) for name in manifest.low_resolutions))

    @property
    def known(self) -> bool:
        """Whether the heights are known (a dataset's ladder)."""
        return self.full_height is not None

    def height(self, resolution: str) -> int | None:
        if resolution == FULL:
            return self.full_height
        for name, height in self.rungs:
            if name == resolution:
                return height
        raise ValueError(f"resolution must be one of {(FULL, *self.names)}, got {resolution!r}")

    @property
    def names(self) -> tuple[str, ...]:
        """The low rungs' names, by increasing height."""
        return tuple(name for name, _ in self.rungs)

    def rung_of_height(self, height: int, key: str) -> str:
        """The rung ``height`` pixels high; ValueError naming ``schedule.<key>`` and the stored sizes if none."""
        for name, h in self.rungs:
            if h == height:
                return name
        sizes = ", ".join(str(h) for _, h in self.rungs)
        raise ValueError(f"schedule.{key}: {height} is not one of the dataset's low sizes ({sizes}; full "
                         f"{self.full_height}); build them with lowmode-preprocess build --low-sizes")


class ModeSchedule:
    """Per-step resolutions for one training run: ``resolution(epoch, step)`` is a name of ``ladder``
    ("full", "low", "low<H>"), ``mode(epoch, step)`` is "full" or "low".

    ``seed`` is the run's seed, ``lr_milestones_epochs`` the optimiser's LR milestones (each
    starts ``config.full_epochs_after_milestone`` full-only epochs) and ``total_epochs`` the run's
    number of epochs (required by policies "ramp" and "progressive", whose progress is epoch /
    total_epochs; None: unknown); ``ladder`` the dataset's resolutions (None: two-level, the low
    resolution named "low"; the pipeline's planner binds a schedule to its dataset with
    ``with_ladder``). The same arguments always give the same resolutions.
    """

    def __init__(self, config: ScheduleConfig, seed: int, *, lr_milestones_epochs=(),
                 total_epochs: int | None = None, ladder: Ladder | None = None,
                 climbs: tuple[tuple[int, int, str], ...] = ()) -> None:
        if not _is_int(seed):
            raise ValueError(f"ModeSchedule seed must be an integer, got {seed!r}")
        milestones = lr_milestones_epochs
        if not isinstance(milestones, (list, tuple)) or any(not _is_int(m) or m < 0 for m in milestones):
            raise ValueError(f"lr_milestones_epochs: expected a list of integers >= 0, got {milestones!r}")
        if total_epochs is not None and not (_is_int(total_epochs) and total_epochs >= 1):
            raise ValueError(f"total_epochs: expected an integer >= 1 or None, got {total_epochs!r}")
        if config.policy in ("ramp", "progressive", "adaptive") and total_epochs is None:
            raise ValueError(f"total_epochs: schedule.policy {config.policy!r} needs the run's number of epochs "
                             "(an integer >= 1), got None")
        self.config = config
        self.seed = seed
        self.lr_milestones_epochs: tuple[int, ...] = tuple(milestones)
        self.total_epochs: int | None = total_epochs
        self.ladder = ladder if ladder is not None else Ladder.two_level()
        needs_heights = config.policy in ("progressive", "adaptive") or bool(config.low_size) or config.constant_pixels
        self.bound = self.ladder.known or not needs_heights
        """Whether the schedule knows the resolutions it needs; an unbound one (progressive, low_size or
        constant_pixels before a dataset's ladder is given) is bound by the pipeline's planner."""
        self.low: str = LOW
        """The low resolution two-level policies read (``schedule.low_size``; "low" by default)."""
        self.rungs: tuple[str, ...] = (LOW,)
        """The low resolutions this schedule can choose (progressive: every rung from the start height up)."""
        if self.bound:
            if config.low_size:
                self.low = self.ladder.rung_of_height(config.low_size, "low_size")
            if self.low not in self.ladder.names:
                raise ValueError(f"schedule: the dataset has no {self.low!r} resolution (has {self.ladder.names})")
            start = self.ladder.height(self.low)
            if config.policy in ("progressive", "adaptive"):
                self.rungs = tuple(name for name, h in self.ladder.rungs if start is None or h >= start)
            else:
                self.rungs = (self.low,)
        self.climbs: tuple[tuple[int, int, str], ...] = _check_climbs(climbs, self)
        """adaptive: the controller's decisions so far, (epoch, step, resolution): from that step on the run
        reads that resolution (by increasing (epoch, step); the resolution only ever climbs)."""

    @property
    def order(self) -> tuple[str, ...]:
        """The resolutions this schedule can read, from its lowest rung up, full last (the order climbs go)."""
        return (*self.rungs, FULL)

    def _require_bound(self) -> None:
        if not self.bound:
            raise ValueError("schedule: policy 'progressive', low_size and constant_pixels need the dataset's "
                             "resolutions: give the schedule to make_loader / Planner, which bind it, or "
                             "ModeSchedule(..., ladder=Ladder.from_manifest(manifest))")

    def with_ladder(self, ladder: Ladder) -> ModeSchedule:
        """The same schedule on a dataset's resolutions (what the planner reads)."""
        return ModeSchedule(self.config, self.seed, lr_milestones_epochs=self.lr_milestones_epochs,
                            total_epochs=self.total_epochs, ladder=ladder, climbs=self.climbs)

    def with_climbs(self, climbs) -> ModeSchedule:
        """adaptive: the same schedule with the controller's decisions ``climbs`` ((epoch, step, resolution)
        by increasing (epoch, step), each resolution higher than the one before)."""
        return ModeSchedule(self.config, self.seed, lr_milestones_epochs=self.lr_milestones_epochs,
                            total_epochs=self.total_epochs, ladder=self.ladder, climbs=tuple(map(tuple, climbs)))

    def __repr__(self) -> str:
        return (f"ModeSchedule({self.config!r}, seed={self.seed}, lr_milestones_epochs={self.lr_milestones_epochs}, "
                f"total_epochs={self.total_epochs}, ladder={self.ladder!r}, climbs={self.climbs!r})")

    def full_only_epoch(self, epoch: int) -> bool:
        """True when ``epoch`` is a warm-up epoch or one of the N epochs from an LR milestone on."""
        if epoch < self.config.warmup_full_epochs:
            return True
        n = self.config.full_epochs_after_milestone
        return any(m <= epoch < m + n for m in self.lr_milestones_epochs)

    def p_for_epoch(self, epoch: int) -> float:
        """Low-mode probability of a step in ``epoch`` (alternate: the fraction 1/k of low steps).

        ramp: with t = epoch / total_epochs (progress at the epoch's start, so epoch 0 gets p), 0 for
        t >= ramp_end, else linear p * (1 - t / ramp_end), cosine p * (1 + cos(pi * t / ramp_end)) / 2,
        step p. Warm-up epochs and the full-only windows after LR milestones give 0 for every policy
        but "none" (always 0) and explicit ``epoch_probabilities`` (which override them).
        """
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        cfg = self.config
        if cfg.policy == "none":
            return 0.0
        if cfg.epoch_probabilities:
            return cfg.epoch_probabilities[min(epoch, len(cfg.epoch_probabilities) - 1)]
        if self.full_only_epoch(epoch):
            return 0.0
        if cfg.policy == "alternate":
            return 1.0 / cfg.alternate_every
        if cfg.policy == "ramp":
            return self._ramp_p(epoch)
        if cfg.policy == "progressive":
            return 0.0 if self.progressive_resolution(epoch) == FULL else 1.0
        if cfg.policy == "adaptive":  # the share at the epoch's start (a climb to full may come within it)
            return 0.0 if self.adaptive_resolution(epoch, 0) == FULL else 1.0
        return cfg.p

    def _ramp_p(self, epoch: int) -> float:
        cfg = self.config
        t = epoch / self.total_epochs
        if t >= cfg.ramp_end:
            return 0.0
        if cfg.ramp_shape == "linear":
            return cfg.p * (1.0 - t / cfg.ramp_end)
        if cfg.ramp_shape == "cosine":
            return cfg.p * 0.5 * (1.0 + math.cos(math.pi * t / cfg.ramp_end))
        return cfg.p  # step

    def progressive_resolution(self, epoch: int) -> str:
        """progressive: the resolution of every step of ``epoch``. With t = epoch / total_epochs (progress at
        the epoch's start) and h0 the start height: full from ramp_end on; before, the target height
        h0 + (H - h0) * shape(u), u = max(0, t - ramp_start) / (ramp_end - ramp_start), rounded DOWN to the
        highest rung at most that high, so the ladder climbs rung by rung and full resolution comes only at
        ramp_end."""
        self._require_bound()
        cfg = self.config
        t = epoch / self.total_epochs
        if t >= cfg.ramp_end:
            return FULL
        u = max(0.0, t - cfg.ramp_start) / (cfg.ramp_end - cfg.ramp_start)
        grow = {"linear": u, "cosine": 0.5 * (1.0 - math.cos(math.pi * u)), "step": 0.0}[cfg.ramp_shape]
        start = self.ladder.height(self.rungs[0])
        target = start + (self.ladder.full_height - start) * grow
        chosen = self.rungs[0]
        for name in self.rungs:
            if self.ladder.height(name) <= target + 1e-9:
                chosen = name
        return chosen

    def adaptive_resolution(self, epoch: int, step: int) -> str:
        """adaptive: full from ``adapt_full_from`` of training (t = epoch / total_epochs); before, the
        lowest rung until the first climb, then the resolution of the last climb at or before (epoch, step)."""
        self._require_bound()
        if epoch / self.total_epochs >= self.config.adapt_full_from:
            return FULL
        chosen = self.rungs[0]
        for climb_epoch, climb_step, resolution in self.climbs:
            if (climb_epoch, climb_step) <= (epoch, step):
                chosen = resolution
        return chosen

    def resolution(self, epoch: int, step: int) -> str:
        """The resolution ``step`` (0-based, within the epoch) of ``epoch`` reads: "full" or one of the
        ladder's low rungs; pure, no state."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        self._require_bound()
        p = self.p_for_epoch(epoch)
        if p <= 0.0:
            return FULL
        if self.config.policy == "progressive":
            return self.progressive_resolution(epoch)
        if self.config.policy == "adaptive":
            return self.adaptive_resolution(epoch, step)
        if self.config.policy == "alternate":
            k = self.config.alternate_every
            return self.low if step % k == k - 1 else FULL
        return self.low if counter_uniform(_DOMAIN, self.seed, epoch, step) < p else FULL

    def mode(self, epoch: int, step: int) -> str:
        """"full" or "low" for ``step`` (0-based, within the epoch) of ``epoch``: whether its resolution is
        the full one; pure, no state."""
        return mode_of(self.resolution(epoch, step))

    def batch_scale(self, resolution: str) -> float:
        """A step's per-rank batch relative to the configured one: 1 at full resolution; at a low one
        ``low_batch_scale``, or with ``constant_pixels`` (full H / H)^2 (exact; ``step_batch`` rounds)."""
        if resolution == FULL:
            return 1.0
        self._require_bound()
        if self.config.constant_pixels:
            return (self.ladder.full_height / self.ladder.height(resolution)) ** 2
        return float(self.config.low_batch_scale)

    def step_batch(self, resolution: str, batch_size_per_rank: int) -> int:
        """Per-rank batch of a step at ``resolution``: B, k x B (low_batch_scale) or, with constant_pixels,
        round(B x (full H / H)^2) (half to even, at least 1)."""
        if resolution == FULL or (not self.config.constant_pixels and self.config.low_batch_scale == 1):
            return batch_size_per_rank
        return max(1, round(batch_size_per_rank * self.batch_scale(resolution)))

    @property
    def variable_batches(self) -> bool:
        """Whether low steps take a batch other than the configured one."""
        return self.config.policy != "none" and (self.config.low_batch_scale > 1 or self.config.constant_pixels)

    def modes(self, epoch: int, num_steps: int) -> list[str]:
        """Modes of steps 0..num_steps-1 of ``epoch``."""
        return [self.mode(epoch, step) for step in range(num_steps)]

    def expected_low_fraction(self, num_epochs: int, steps_per_epoch: int) -> float:
        """Expected fraction of low steps over epochs 0..num_epochs-1 (exact for alternate/none).

        bernoulli and ramp: the mean of ``p_for_epoch`` over the epochs (each step is low with its
        epoch's p). With ``low_batch_scale`` > 1, epochs do not all have ``steps_per_epoch`` steps;
        the figure is still the expected fraction of low steps per epoch, averaged over epochs.
        """
        if num_epochs < 1 or steps_per_epoch < 1:
            raise ValueError(f"num_epochs and steps_per_epoch must be >= 1, got {num_epochs}, {steps_per_epoch}")
        if self.config.policy == "alternate":
            k = self.config.alternate_every
            low_per_active_epoch = steps_per_epoch // k
            active = sum(self.p_for_epoch(e) > 0 for e in range(num_epochs))
            return active * low_per_active_epoch / (num_epochs * steps_per_epoch)
        return sum(self.p_for_epoch(e) for e in range(num_epochs)) / num_epochs


def _check_climbs(climbs, schedule: ModeSchedule) -> tuple[tuple[int, int, str], ...]:
    """``climbs`` as a tuple of (epoch, step, resolution); ValueError unless they are adaptive's, ordered by
    (epoch, step) and each resolution higher on the schedule's ladder than the one before."""
    climbs = tuple(tuple(c) for c in climbs)
    if not climbs:
        return ()
    if schedule.config.policy != "adaptive":
        raise ValueError(f"schedule: climbs are the adaptive policy's decisions (policy is {schedule.config.policy!r})")
    order = schedule.order
    previous_at, previous_rank = (-1, -1), 0
    for climb in climbs:
        if (len(climb) != 3 or not _is_int(climb[0]) or not _is_int(climb[1]) or climb[0] < 0 or climb[1] < 0
                or climb[2] not in order):
            raise ValueError(f"schedule: a climb must be (epoch >= 0, step >= 0, one of {order}), got {climb!r}")
        rank = order.index(climb[2])
        if (climb[0], climb[1]) <= previous_at or rank <= previous_rank:
            raise ValueError(f"schedule: climbs must go up the ladder {order} at increasing (epoch, step), got {climbs!r}")
        previous_at, previous_rank = (climb[0], climb[1]), rank
    return climbs


def full_schedule(seed: int = 0) -> ModeSchedule:
    """A schedule whose every step is full (the baseline)."""
    return ModeSchedule(ScheduleConfig(policy="none"), seed)
