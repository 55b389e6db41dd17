"""svqcast: spatio-temporal forecasting with differentiable sparse soft vector quantization.

The main classes are importable from here; each is imported on first use, so that
``import svqcast`` stays fast (Lightning, xarray and matplotlib load only when needed).
"""

from __future__ import annotations

import importlib
from typing import Any

from svqcast.errors import CheckpointError, ConfigError, DataError, SvqcastError
from svqcast.version import __version__

_LAZY: dict[str, str] = {
    "SVQ": "svqcast.quantizers",
    "build_quantizer": "svqcast.quantizers",
    "SimVP": "svqcast.models",
    "ForecastDataModule": "svqcast.data.datamodule",
    "ForecastModule": "svqcast.training.module",
    "load_module": "svqcast.inference.forecast",
    "forecast": "svqcast.inference.forecast",
}

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "SvqcastError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
