"""Every registered dataset module keeps the contract of svqcast.data: the functions of
DatasetModule (and EmbeddedDatasetModule for the datasets svqcast writes itself), with the
dataset name first."""

from __future__ import annotations

import inspect

import pytest

from svqcast.data import DATASETS, DatasetModule, EmbeddedDatasetModule, dataset_module

EMBEDDED_DATASETS = {"synthetic_weather", "moving_digits"}


@pytest.mark.parametrize("name", DATASETS)
def test_dataset_module_satisfies_its_protocol(name):
    module = dataset_module(name)
    assert isinstance(module, DatasetModule)
    assert isinstance(module, EmbeddedDatasetModule) == (name in EMBEDDED_DATASETS)
    protocol = EmbeddedDatasetModule if name in EMBEDDED_DATASETS else DatasetModule
    members = [m for m in dir(protocol) if not m.startswith("_")]
    assert set(members) >= {"describe", "layout", "is_present", "check", "load"}
    for member in members:
        spec = inspect.signature(getattr(protocol, member))
        want = list(spec.parameters.values())[1:]  # without self
        got = inspect.signature(getattr(module, member))
        params = list(got.parameters.values())
        where = f"{module.__name__}.{member}{got}"
        assert params[0].name == "name", where  # the dataset name comes first
        assert got.return_annotation == spec.return_annotation, where
        fixed = [p for p in want if p.kind is p.POSITIONAL_OR_KEYWORD]
        for w, g in zip(fixed, params):  # the same leading parameters, same annotations
            assert (g.name, g.kind, g.default) == (w.name, w.kind, w.default), where
            assert g.annotation == w.annotation, where
        for extra in params[len(fixed) :]:  # anything more is optional
            optional = extra.default is not extra.empty
            assert optional or extra.kind in (extra.VAR_POSITIONAL, extra.VAR_KEYWORD), where
