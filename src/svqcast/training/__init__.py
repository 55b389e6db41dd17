"""Training: the Lightning module (:mod:`.module`), checkpoints (:mod:`.checkpoints`),
forecasts from a checkpoint (:mod:`.predict`) and the command's Lightning CLI
(:mod:`.lightning_cli`).

The names below are imported on first use (Lightning is slow to import).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "ForecastModule": "svqcast.training.module",
    "NonFiniteLossError": "svqcast.training.module",
    "cosine_factor": "svqcast.training.module",
    "load_module": "svqcast.training.predict",
    "predict_file": "svqcast.training.predict",
    "run_lightning": "svqcast.training.lightning_cli",
    # the data module with resumable loaders lives with the data; its older name stays here
    "EngineDataModule": "svqcast.data.datamodule",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
