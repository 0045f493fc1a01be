"""The mode schedule: which training steps run in low mode.

``ModeSchedule.mode(epoch, step)`` is a pure function of the schedule config, the seed and the two
counters: it hashes ``(seed, epoch, step)`` to a uniform number in [0, 1) and compares it with the
epoch's low-mode probability. No RNG state exists, so every rank, every loader worker and a run
resumed from a checkpoint draw the same modes without communicating. See ../shared/DESIGN.md
("Mode schedule").
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

POLICIES = ("bernoulli", "alternate", "none")
FULL, LOW = "full", "low"
MODES = (FULL, LOW)

# Domain separation: the schedule's hash must not collide with other users of (seed, epoch, step).
_DOMAIN = b"lowmode.schedule.v1"


def counter_uniform(domain: bytes, *counters: int) -> float:
    """A uniform number in [0, 1) that depends only on ``domain`` and the integer ``counters``.

    blake2b of the counters packed as signed 64-bit integers; the top 53 bits make the float, so
    every representable double in [0, 1) with spacing 2**-53 is equally likely.
    """
    digest = hashlib.blake2b(struct.pack(f"<{len(counters)}q", *counters), digest_size=8, key=domain).digest()
    return (int.from_bytes(digest, "little") >> 11) * (1.0 / (1 << 53))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ScheduleConfig:
    """How the low-mode probability is set per epoch and how steps are drawn."""

    policy: str = "bernoulli"
    """"bernoulli": each step is low with probability p (the paper); "alternate": every
    ``alternate_every``-th step is low; "none": every step is full (baseline)."""
    p: float = 0.5
    """Low-mode probability per step in epochs that allow low mode (bernoulli)."""
    alternate_every: int = 2
    """alternate: steps with ``step % alternate_every == alternate_every - 1`` are low (1 = all)."""
    lr_milestones_epochs: tuple[int, ...] = ()
    """Epochs at which the learning rate drops; the following epochs are full-only."""
    full_epochs_after_milestone: int = 4
    """Number of full-only epochs starting at each milestone epoch (the paper uses 4)."""
    warmup_full_epochs: int = 0
    """Number of full-only epochs at the start of training."""
    epoch_probabilities: tuple[float, ...] | None = None
    """Explicit low-mode probability per epoch (bernoulli only); overrides p, milestones and
    warm-up. Epochs past the end of the list use its last value."""

    def __post_init__(self) -> None:
        # TOML gives lists; store tuples so the config stays hashable and immutable.
        object.__setattr__(self, "lr_milestones_epochs", tuple(self.lr_milestones_epochs))
        if self.epoch_probabilities is not None:
            object.__setattr__(self, "epoch_probabilities", tuple(self.epoch_probabilities))
        if self.policy not in POLICIES:
            raise ValueError(f"ScheduleConfig.policy must be one of {POLICIES}, got {self.policy!r}")
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"ScheduleConfig.p must be in [0, 1], got {self.p!r}")
        if not _is_int(self.alternate_every) or self.alternate_every < 1:
            raise ValueError(f"ScheduleConfig.alternate_every must be an integer >= 1, got {self.alternate_every!r}")
        if any(not _is_int(m) or m < 0 for m in self.lr_milestones_epochs):
            raise ValueError(
                f"ScheduleConfig.lr_milestones_epochs must be integers >= 0, got {self.lr_milestones_epochs!r}"
            )
        for name in ("full_epochs_after_milestone", "warmup_full_epochs"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                raise ValueError(f"ScheduleConfig.{name} must be an integer >= 0, got {value!r}")
        if self.epoch_probabilities is not None:
            if self.policy != "bernoulli":
                raise ValueError(f"ScheduleConfig.epoch_probabilities needs policy 'bernoulli', got {self.policy!r}")
            if not self.epoch_probabilities or any(not 0.0 <= q <= 1.0 for q in self.epoch_probabilities):
                raise ValueError(
                    f"ScheduleConfig.epoch_probabilities must be a non-empty list of values in [0, 1], "
                    f"got {self.epoch_probabilities!r}"
                )

    def full_only_epoch(self, epoch: int) -> bool:
        """True when ``epoch`` is a warm-up epoch or one of the N epochs from an LR milestone on."""
        if epoch < self.warmup_full_epochs:
            return True
        return any(m <= epoch < m + self.full_epochs_after_milestone for m in self.lr_milestones_epochs)


class ModeSchedule:
    """Per-step modes for one training run: ``mode(epoch, step)`` is "full" or "low".

    ``seed`` is the run's seed; the same (config, seed) always gives the same modes.
    """

    def __init__(self, config: ScheduleConfig, seed: int) -> None:
        if not _is_int(seed):
            raise ValueError(f"ModeSchedule seed must be an integer, got {seed!r}")
        self.config = config
        self.seed = seed

    def __repr__(self) -> str:
        return f"ModeSchedule({self.config!r}, seed={self.seed})"

    def p_for_epoch(self, epoch: int) -> float:
        """Low-mode probability of a step in ``epoch`` (alternate: the fraction 1/k of low steps)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        cfg = self.config
        if cfg.policy == "none":
            return 0.0
        if cfg.epoch_probabilities is not None:
            return cfg.epoch_probabilities[min(epoch, len(cfg.epoch_probabilities) - 1)]
        if cfg.full_only_epoch(epoch):
            return 0.0
        return cfg.p if cfg.policy == "bernoulli" else 1.0 / cfg.alternate_every

    def mode(self, epoch: int, step: int) -> str:
        """"full" or "low" for ``step`` (0-based, within the epoch) of ``epoch``; pure, no state."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        p = self.p_for_epoch(epoch)
        if p <= 0.0:
            return FULL
        if self.config.policy == "alternate":
            k = self.config.alternate_every
            return LOW if step % k == k - 1 else FULL
        return LOW if counter_uniform(_DOMAIN, self.seed, epoch, step) < p else FULL

    def modes(self, epoch: int, num_steps: int) -> list[str]:
        """Modes of steps 0..num_steps-1 of ``epoch``."""
        return [self.mode(epoch, step) for step in range(num_steps)]

    def expected_low_fraction(self, num_epochs: int, steps_per_epoch: int) -> float:
        """Expected fraction of low steps over epochs 0..num_epochs-1 (exact for alternate/none)."""
        if num_epochs < 1 or steps_per_epoch < 1:
            raise ValueError(f"num_epochs and steps_per_epoch must be >= 1, got {num_epochs}, {steps_per_epoch}")
        if self.config.policy == "alternate":
            k = self.config.alternate_every
            low_per_active_epoch = steps_per_epoch // k
            active = sum(self.p_for_epoch(e) > 0 for e in range(num_epochs))
            return active * low_per_active_epoch / (num_epochs * steps_per_epoch)
        return sum(self.p_for_epoch(e) for e in range(num_epochs)) / num_epochs


def full_schedule(seed: int = 0) -> ModeSchedule:
    """A schedule whose every step is full (the baseline)."""
    return ModeSchedule(ScheduleConfig(policy="none"), seed)
