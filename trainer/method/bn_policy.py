"""BatchNorm behaviour in low mode: the ``shared`` / ``separate`` / ``frozen`` / ``private`` policies.

Low-mode activations have other statistics than full-mode ones (pooled kernels, downsampled
images), so mixing both into one set of running averages breaks full-mode evaluation (DESIGN.md,
"Facts measured"). In training mode every policy normalises a batch with its own batch statistics;
the policies differ only in which running statistics a low step updates:

- ``shared``   (the paper's plain reading): low steps update the one set of running statistics.
               Converted BN layers are left untouched.
- ``frozen``   (default): low steps leave running statistics (and ``num_batches_tracked``) alone.
- ``separate``: low steps update a second set of statistics, used only when the model is
               *evaluated in low mode* (a diagnostic; evaluation proper is always full mode).
               The affine parameters (gamma, beta) are shared: low steps move them too.
- ``private``  (RS-Nets: private BN per resolution): low mode has its own affine parameters
               (``weight_low``, ``bias_low``, copies of ``weight`` / ``bias`` at conversion, only for
               affine layers) *and* its own running statistics (as ``separate``). Low steps never
               move ``weight`` / ``bias`` and full steps never move ``weight_low`` / ``bias_low``, so
               each step leaves parameters without a gradient: under DDP use
               ``find_unused_parameters=True`` when :func:`has_mode_specific_parameters` says so.

BatchNorm subclasses with a forward of their own (timm's ``BatchNormAct2d``: BN, then dropout and an
activation) run that forward in low mode too, on the statistics and affine parameters the policy picks
(:class:`_SubclassDualModeBatchNormMixin`); plain BN classes and ``SyncBatchNorm`` use
:class:`DualModeBatchNormMixin`'s own low-mode computation, as before.

State-dict keys stay the original's for every policy except ``private`` (pretrained weights and
checkpoints load either way with ``strict=True``): the low-mode statistics of ``separate`` and
``private`` (``running_mean_low``, ``running_var_low``, ``num_batches_tracked_low``) are registered
non-persistent. Use :func:`low_bn_state_dict` / :func:`load_low_bn_state_dict` to save and restore
them beside a checkpoint when low-mode evaluation after a resume matters; training itself never reads
them. ``private``'s ``weight_low`` / ``bias_low`` are trained parameters, so they ARE persistent: its
state dict has the original keys plus ``<bn>.weight_low`` / ``<bn>.bias_low`` (a checkpoint of a
``private`` run loads only into a ``private`` model with ``strict=True``). Re-converting a layer to
another policy removes them again.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from trainer.method.class_swap import mixin_subclass

BN_POLICIES = ("shared", "separate", "frozen", "private")
LOW_BUFFERS = ("running_mean_low", "running_var_low", "num_batches_tracked_low")
LOW_PARAMETERS = ("weight_low", "bias_low")
"""``private``'s low-mode affine parameters (persistent: in ``state_dict``)."""
_LOW_STATS_POLICIES = ("separate", "private")


class DualModeBatchNormMixin:
    """Mixed into a BatchNorm class by :func:`dual_mode_bn_class`; reads ``low_mode``."""

    low_mode: bool = False
    bn_policy: str = "frozen"

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - torch's name
        if not self.low_mode or self.bn_policy == "shared":
            return super().forward(input)
        self._check_input_dim(input)
        weight, bias = self._low_affine()
        if self.bn_policy in _LOW_STATS_POLICIES and self.track_running_stats:
            return self._low_forward_separate(input, weight, bias)
        if self.training or not self.track_running_stats:
            # frozen (or private without running statistics): batch statistics, nothing updated.
            return F.batch_norm(input, None, None, weight, bias, True, 0.0, self.eps)
        return super().forward(input)  # frozen, eval in low mode: the full-mode statistics

    def _low_affine(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The affine parameters low mode uses: ``private``'s own, else the shared ones."""
        if self.bn_policy == "private" and self.affine:
            return self.weight_low, self.bias_low
        return self.weight, self.bias

    def _low_forward_separate(self, input: torch.Tensor, weight, bias) -> torch.Tensor:  # noqa: A002
        """nn.BatchNorm's forward with the ``*_low`` buffers in place of the running ones."""
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training:
            self.num_batches_tracked_low.add_(1)
            if self.momentum is None:  # cumulative moving average, as nn.BatchNorm does
                momentum = 1.0 / float(self.num_batches_tracked_low)
        return F.batch_norm(
            input,
            self.running_mean_low,
            self.running_var_low,
            weight,
            bias,
            self.training,
            momentum,
            self.eps,
        )


class _SubclassDualModeBatchNormMixin(DualModeBatchNormMixin):
    """For BatchNorm subclasses with a forward of their own (timm's ``BatchNormAct2d``: batch norm, then
    dropout and an activation): low mode runs *their* forward, on the tensors the policy picks.

    The policy is applied by what that forward reads, as ``nn.BatchNorm``'s own does: for the call, the
    running-statistics buffers are swapped for the ``*_low`` ones (separate, private), ``track_running_stats``
    is cleared in training mode (frozen: batch statistics, nothing updated), and ``weight`` / ``bias`` are
    swapped for ``weight_low`` / ``bias_low`` (private). Everything is restored afterwards, also on an
    error. The numbers equal :class:`DualModeBatchNormMixin`'s for a forward that reads these attributes as
    ``nn.BatchNorm`` does (tests/trainer/method/test_bn_subclass.py checks ``BatchNormAct2d``); not for
    ``torch.compile`` (the swaps are attribute writes inside forward).
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - torch's name
        own_forward = super(DualModeBatchNormMixin, self).forward
        if not self.low_mode or self.bn_policy == "shared":
            return own_forward(input)
        swaps: dict[tuple[str, str], tuple[str, str]] = {}
        if self.bn_policy == "private" and self.affine:
            swaps.update({("_parameters", "weight"): ("_parameters", "weight_low"),
                          ("_parameters", "bias"): ("_parameters", "bias_low")})
        low_stats = self.bn_policy in _LOW_STATS_POLICIES and self.track_running_stats
        if low_stats:
            swaps.update({("_buffers", name): ("_buffers", f"{name}_low")
                          for name in ("running_mean", "running_var", "num_batches_tracked")})
        saved = {key: getattr(self, key[0])[key[1]] for key in swaps}
        tracked = self.track_running_stats
        try:
            for (table, name), (low_table, low_name) in swaps.items():
                getattr(self, table)[name] = getattr(self, low_table)[low_name]
            if not low_stats and self.training:
                self.track_running_stats = False  # frozen: batch statistics, nothing updated
            return own_forward(input)
        finally:
            self.track_running_stats = tracked
            for (table, name), tensor in saved.items():
                getattr(self, table)[name] = tensor


def has_own_forward(cls: type) -> bool:
    """True for a BatchNorm class whose forward is not torch's (SyncBatchNorm's counts as torch's)."""
    return cls.forward is not _BatchNorm.forward and not issubclass(cls, nn.SyncBatchNorm)


def dual_mode_bn_class(cls: type) -> type:
    """The dual-mode subclass of a BatchNorm class (cached; registered here so it pickles).

    Classes with a forward of their own (:func:`has_own_forward`, e.g. timm's ``BatchNormAct2d``) get
    :class:`_SubclassDualModeBatchNormMixin`, which runs that forward in low mode too.
    """
    mixin = _SubclassDualModeBatchNormMixin if has_own_forward(cls) else DualModeBatchNormMixin
    return mixin_subclass(mixin, cls, "DualMode", __name__)


def convert_batchnorm(module: _BatchNorm, policy: str) -> bool:
    """Give one BN layer the low-mode ``policy`` in place; False if nothing needed changing."""
    if policy not in BN_POLICIES:
        raise ValueError(f"bn_policy must be one of {BN_POLICIES}, got {policy!r}")
    if policy == "shared" and not isinstance(module, DualModeBatchNormMixin):
        return False  # a plain BN layer already behaves as "shared"
    if not isinstance(module, DualModeBatchNormMixin):
        module.__class__ = dual_mode_bn_class(type(module))
    module.bn_policy = policy
    module.low_mode = False
    if policy in _LOW_STATS_POLICIES and module.track_running_stats and not hasattr(
        module, "running_mean_low"
    ):
        _add_low_buffers(module)
    if policy == "private" and module.affine:
        if not hasattr(module, "weight_low"):
            _add_low_parameters(module)
    else:
        for name in LOW_PARAMETERS:  # back to the original state_dict keys
            if name in module._parameters:
                del module._parameters[name]
    return True


def _add_low_parameters(module: _BatchNorm) -> None:
    """``private``'s low-mode affine parameters: copies of the layer's current ones."""
    for name, source in zip(LOW_PARAMETERS, (module.weight, module.bias)):
        param = nn.Parameter(source.detach().clone(), requires_grad=source.requires_grad)
        module.register_parameter(name, param)


def has_mode_specific_parameters(model: nn.Module) -> bool:
    """True when some parameter gets a gradient in one mode only (``private`` BN layers).

    Then every step leaves parameters unused, and DDP needs ``find_unused_parameters=True``.
    """
    return any(
        isinstance(module, DualModeBatchNormMixin)
        and module.bn_policy == "private"
        and "weight_low" in module._parameters
        for module in model.modules()
    )


def full_steps_to_refresh(model: nn.Module, tolerance: float = 0.05) -> float:
    """Full steps after which the running statistics hold less than ``tolerance`` of their older
    values: ceil(ln(tolerance) / ln(1 - momentum)) for the slowest BN layer (29 at torch's 0.1);
    inf when a layer keeps a cumulative average (momentum None), 0 when no layer tracks statistics.

    Under every policy but ``shared`` only full steps move the running statistics, so fewer full
    steps than this since the model last changed by low steps leave them stale for evaluation."""
    momenta = [m.momentum for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not momenta:
        return 0
    if any(m is None for m in momenta):
        return math.inf
    slowest = min(momenta)
    if slowest >= 1:
        return 1
    return math.ceil(math.log(tolerance) / math.log1p(-slowest))


def _add_low_buffers(module: _BatchNorm) -> None:
    """Fresh low-mode statistics (mean 0, var 1, count 0), as a new BN layer starts."""
    ref = module.running_mean
    module.register_buffer("running_mean_low", torch.zeros_like(ref), persistent=False)
    module.register_buffer("running_var_low", torch.ones_like(module.running_var), persistent=False)
    module.register_buffer(
        "num_batches_tracked_low",
        torch.zeros((), dtype=torch.long, device=ref.device),
        persistent=False,
    )


def low_bn_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The ``separate`` policy's low-mode statistics, keyed ``<module>.<buffer>`` (copies)."""
    state = {}
    for name, module in model.named_modules():
        if isinstance(module, DualModeBatchNormMixin) and hasattr(module, "running_mean_low"):
            for buf in LOW_BUFFERS:
                state[f"{name}.{buf}"] = getattr(module, buf).detach().clone()
    return state


def load_low_bn_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Restore what :func:`low_bn_state_dict` saved; a missing or extra key raises KeyError."""
    expected = set(low_bn_state_dict(model))
    if expected != set(state):
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise KeyError(f"low-mode BN state mismatch: missing {missing[:3]}, unexpected {extra[:3]}")
    for name, module in model.named_modules():
        if isinstance(module, DualModeBatchNormMixin) and hasattr(module, "running_mean_low"):
            for buf in LOW_BUFFERS:
                getattr(module, buf).copy_(state[f"{name}.{buf}"])
