"""Datasets: one file each, one registry.

A dataset module may serve several names (``weather`` serves ``weather_t2m``, ``weather_r``
...), so each of its functions takes the dataset ``name`` first:

- ``describe(name) -> str``: one line for ``svqcast data list``;
- ``layout(name) -> str``: the expected files under a data root (OpenSTL's layout);
- ``is_present(name, root) -> bool``;
- ``check(name, root) -> list[str]``: problems found, empty when the files are fine;
- ``load(name, root, **options) -> Splits``: train/val/test datasets, spec, climatology.

Embedded datasets also define ``synth(name, root, seed=0, **options)``, which writes files
in a real on-disk format (then read by the real loader).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from svqcast.errors import choices_error

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


__all__ = ["DATASETS", "dataset_module"]
