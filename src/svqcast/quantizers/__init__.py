"""Quantizers behind one contract (:class:`QuantizerOutput`) and one registry.

``build_quantizer(name, dim, **options)`` builds any of them. Adding a quantizer touches its
own file and one line of ``_REGISTRY`` below.
"""

from __future__ import annotations

import importlib
from typing import Any

from svqcast.errors import ConfigError, choices_error
from svqcast.quantizers.base import Identity, Quantizer, QuantizerOutput

# name -> "module:attribute" (imported on first use, so `import svqcast` stays light)
_REGISTRY: dict[str, str] = {
    "none": "svqcast.quantizers.base:Identity",
    "svq": "svqcast.quantizers.svq:SVQ",
    "svq_raw": "svqcast.quantizers.sparse_regression:SparseRegressionQuantizer",
    "mlp": "svqcast.quantizers.svq:BottleneckMLP",
    "vq": "svqcast.quantizers.library:VQ",
    "rvq": "svqcast.quantizers.library:ResidualVQ",
    "grvq": "svqcast.quantizers.library:GroupedResidualVQ",
    "mhvq": "svqcast.quantizers.library:MultiHeadVQ",
    "fsq": "svqcast.quantizers.library:FSQ",
    "rfsq": "svqcast.quantizers.library:ResidualFSQ",
    "lfq": "svqcast.quantizers.library:LFQ",
    "rlfq": "svqcast.quantizers.library:ResidualLFQ",
}

QUANTIZERS: tuple[str, ...] = tuple(_REGISTRY)


def quantizer_class(name: str) -> type[Quantizer]:
    if name not in _REGISTRY:
        raise choices_error("quantizer", name, QUANTIZERS)
    module, attr = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), attr)


def build_quantizer(name: str, dim: int, **options: Any) -> Quantizer:
    """Build quantizer ``name`` for latent dimension ``dim``; bad options raise ConfigError."""
    cls = quantizer_class(name)
    try:
        return cls(dim, **options)
    except TypeError as exc:  # unexpected keyword: name the valid ones
        import inspect

        params = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "dim")]
        raise ConfigError(
            f"bad option for quantizer {name!r}: {exc}; valid options: {', '.join(params)}"
        ) from None


__all__ = [
    "QUANTIZERS",
    "ConfigError",
    "Identity",
    "Quantizer",
    "QuantizerOutput",
    "build_quantizer",
    "quantizer_class",
]
