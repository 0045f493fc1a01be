"""lowmode pipeline: the mode schedule and loaders that turn dataset shards into per-step batches.

Public API::

    from pipeline import make_loader, Batch, Loader, ModeSchedule, ScheduleConfig, DatasetFormatError

See pipeline/loader.py for the loader contract and ../shared/DESIGN.md ("Mode schedule", "Loader").
Importing this package is cheap: DALI is imported only when a DALI loader is made.
"""

from __future__ import annotations

from preprocess.dataset_format import DatasetFormatError
from pipeline.loader import Batch, Loader, make_loader
from pipeline.schedule import ModeSchedule, ScheduleConfig

__all__ = ["Batch", "DatasetFormatError", "Loader", "ModeSchedule", "ScheduleConfig", "make_loader"]
