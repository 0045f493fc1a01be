"""Mixin subclasses for in-place module surgery by ``__class__`` swapping.

Conversions (dual-mode convs, skip-in-low modules, BN policies) give an existing module a subclass of
its own class with a mixin in front, so ``state_dict`` keys and parameters stay the original's. The
subclass is made once per (mixin, class) and registered under its name in the caller's module, so
converted models pickle.
"""

from __future__ import annotations

import sys

_CACHE: dict[tuple[type, type], type] = {}


def mixin_subclass(mixin: type, cls: type, prefix: str, module_name: str) -> type:
    """The class ``<prefix><cls name>(mixin, cls)``, cached and registered in ``module_name``."""
    key = (mixin, cls)
    if key not in _CACHE:
        name = f"{prefix}{cls.__name__}"
        new = type(name, (mixin, cls), {"__module__": module_name})
        new.__qualname__ = name
        setattr(sys.modules[module_name], name, new)
        _CACHE[key] = new
    return _CACHE[key]
