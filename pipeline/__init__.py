"""lowmode pipeline: the mode schedule and loaders that turn dataset shards into per-step batches.

Public API::

    from pipeline import make_loader, Batch, Loader, Manifest, ModeSchedule, ScheduleConfig, DatasetFormatError
    from pipeline import downsample_batch   # a low batch on the device, with the preprocess's filter

See pipeline/loader_base.py for the loader contract and docs/ARCHITECTURE.md ("Mode schedule",
"Loader batch"). Importing this package is cheap: the names are resolved on first use (PEP 562), so
``import pipeline.schedule`` does not import torch (lowmode-compare reads mode names without it), and
DALI is imported only when a DALI loader is made.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "make_loader": "pipeline.loader", "Batch": "pipeline.loader_base", "Loader": "pipeline.loader_base",
    "ModeSchedule": "pipeline.schedule", "ScheduleConfig": "pipeline.schedule",
    "DatasetFormatError": "preprocess.dataset_format", "Manifest": "preprocess.dataset_format",
    "downsample_batch": "pipeline.device_downsample",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return __all__
