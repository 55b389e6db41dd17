"""Quantizers behind one contract (:class:`QuantizerOutput`) and one registry.

``build_quantizer(name, dim, **options)`` builds any of them; every class is also importable
from here (``from svqcast.quantizers import SVQ, VQ``), loaded on first use through the
module's ``__getattr__`` so that importing the package imports neither the quantizers' modules
nor ``vector-quantize-pytorch``. Adding a quantizer touches its own file and one line of
``_REGISTRY`` below.

Every quantizer is a drop-in layer: tokens ``(..., C)`` or maps ``(N, C, *spatial)``, see
:mod:`svqcast.quantizers.base`.
"""

from __future__ import annotations

import importlib
from typing import Any

from svqcast.errors import ConfigError, choices_error
from svqcast.quantizers.base import (
    ParamGroup,
    Quantizer,
    QuantizerOutput,
    apply_group_warmup,
    optimizer_param_groups,
)

# name -> "module:attribute" (imported on first use, so `import svqcast` stays light)
_REGISTRY: dict[str, str] = {
    "none": "svqcast.quantizers.base:Identity",
    "svq": "svqcast.quantizers.svq:SVQ",
    "svq_raw": "svqcast.quantizers.sparse_regression:SparseRegressionQuantizer",
    "mlp": "svqcast.quantizers.svq:BottleneckMLP",
    "vq": "svqcast.quantizers.library_codebook:VQ",
    "rvq": "svqcast.quantizers.library_codebook:ResidualVQ",
    "grvq": "svqcast.quantizers.library_codebook:GroupedResidualVQ",
    "mhvq": "svqcast.quantizers.library_codebook:MultiHeadVQ",
    "fsq": "svqcast.quantizers.library_scalar:FSQ",
    "rfsq": "svqcast.quantizers.library_scalar:ResidualFSQ",
    "lfq": "svqcast.quantizers.library_scalar:LFQ",
    "rlfq": "svqcast.quantizers.library_scalar:ResidualLFQ",
}

QUANTIZERS: tuple[str, ...] = tuple(_REGISTRY)

# class name -> "module:attribute", for the lazy attributes below
_LAZY: dict[str, str] = {target.split(":")[1]: target for target in _REGISTRY.values()}


def _load(target: str) -> type[Quantizer]:
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def __getattr__(name: str) -> Any:
    """``svqcast.quantizers.SVQ`` and the like: import the class's module on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = _load(_LAZY[name])
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def quantizer_class(name: str) -> type[Quantizer]:
    if name not in _REGISTRY:
        raise choices_error("quantizer", name, QUANTIZERS)
    return _load(_REGISTRY[name])


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
    "ParamGroup",
    "Quantizer",
    "QuantizerOutput",
    "apply_group_warmup",
    "optimizer_param_groups",
    "build_quantizer",
    "quantizer_class",
    *_LAZY,  # the classes of the registry (Identity, SVQ, ..., ResidualLFQ)
]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
