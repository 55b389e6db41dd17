"""Datasets: one file each, one registry.

A dataset module may serve several names (``weather`` serves ``weather_t2m``, ``weather_r``
...), so each of its functions takes the dataset ``name`` first:

- ``describe(name) -> str``: one line for ``svqcast data list``;
- ``layout(name) -> str``: the expected files under a data root (OpenSTL's layout);
- ``is_present(name, root) -> bool``;
- ``check(name, root) -> list[str]``: problems found, empty when the files are fine;
- ``load(name, root, **options) -> Splits``: train/val/test datasets, spec, climatology.

Embedded datasets also define ``synth(name, root, seed=0, **options) -> Path``, which writes
files in a real on-disk format (then read by the real loader). :class:`DatasetModule` and
:class:`EmbeddedDatasetModule` state these contracts as ``typing.Protocol`` classes (a module
is checked with ``isinstance``; the tests also compare the signatures). Optional extras:
``check_values(name, root, **options) -> list[str]`` (``svqcast data check`` with options)
and ``PROTOCOLS``, the validation protocols the module accepts.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from svqcast.errors import choices_error

if TYPE_CHECKING:
    from svqcast.data.base import Splits


@runtime_checkable
class DatasetModule(Protocol):
    """What every module under :mod:`svqcast.data.datasets` defines; ``name`` comes first.

    Further parameters after these have defaults (``weather``'s ``layout`` and ``check`` take
    an optional ``resolution``); ``load``'s options are keywords with defaults.
    """

    def describe(self, name: str) -> str: ...

    def layout(self, name: str) -> str: ...

    def is_present(self, name: str, root: str | Path) -> bool: ...

    def check(self, name: str, root: str | Path) -> list[str]: ...

    def load(self, name: str, root: str | Path, **options: Any) -> Splits: ...


@runtime_checkable
class EmbeddedDatasetModule(DatasetModule, Protocol):
    """A dataset module that can also write its own files (``svqcast data synth``)."""

    def synth(self, name: str, root: str | Path, seed: int = 0, **options: Any) -> Path: ...


# name -> module under svqcast.data.datasets
_REGISTRY: dict[str, str] = {
    "weather_t2m": "weather",
    "weather_r": "weather",
    "weather_uv10": "weather",
    "weather_tcc": "weather",
    "weather_mv": "weather",
    "weather_hmv": "weather",
    "taxibj": "taxibj",
    "mmnist": "mmnist",
    "kth": "kth",
    "kitticaltech": "kitticaltech",
    "human": "human",
    "arrays": "arrays",
    "weatherbench2": "weatherbench2",
    "synthetic_weather": "synthetic",
    "moving_digits": "moving_digits",
}

DATASETS: tuple[str, ...] = tuple(_REGISTRY)


def dataset_module(name: str) -> ModuleType:
    if name not in _REGISTRY:
        raise choices_error("dataset", name, DATASETS)
    return importlib.import_module(f"{__name__}.datasets.{_REGISTRY[name]}")


__all__ = ["DATASETS", "DatasetModule", "EmbeddedDatasetModule", "dataset_module"]
