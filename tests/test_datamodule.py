"""ForecastDataModule: lazy spec, seeded shuffling, the four loaders, protocols, errors."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from svqcast.data import datamodule as dm_module
from svqcast.data.base import ForecastDataset, Splits
from svqcast.data.climatology import Climatology
from svqcast.data.datamodule import ForecastDataModule, load_splits
from svqcast.data.spec import Channel, DataSpec, Normalizer
from svqcast.errors import ConfigError

SMALL = dict(first_year=2010, last_year=2012, hours_per_year=40, in_len=4, out_len=4)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("dm"))


def make(root, **kw) -> ForecastDataModule:
    kw.setdefault("options", SMALL)
    return ForecastDataModule(dataset="synthetic_weather", root=root, batch_size=8, **kw)


def test_spec_loads_lazily_and_hparams_saved(root):
    dm = make(root)
    assert dm._splits is None
    assert dm.spec.in_shape == (4, 1, 32, 64) and dm._splits is not None
    assert dm.hparams["dataset"] == "synthetic_weather" and dm.hparams["options"] == SMALL
    assert dm.hparams["batch_size"] == 8 and dm.hparams["protocol"] == "standard"
    assert dm.climatology.mean.shape == (288, 1, 32, 64)


def _first_batch_x(dm):
    dm.setup("fit")
    return next(iter(dm.train_dataloader()))[0]


def test_train_shuffle_is_seeded(root):
    a = _first_batch_x(make(root, seed=1))
    b = _first_batch_x(make(root, seed=1))
    c = _first_batch_x(make(root, seed=2))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)


def test_loaders_shapes_and_no_dropped_samples(root):
    dm = make(root)
    dm.setup("fit")
    n = sum(len(x) for x, _ in dm.train_dataloader())
    assert n == len(dm.splits.train) == 40 - 8 + 1
    x, y, clim = next(iter(dm.test_dataloader()))
    assert x.shape == (8, 4, 1, 32, 64) and y.shape == clim.shape == (8, 4, 1, 32, 64)
    batch = next(iter(dm.predict_dataloader()))
    assert len(batch) == 2 and torch.equal(batch[1], y)
    val_x = next(iter(dm.val_dataloader()))[0]
    assert not torch.equal(val_x, x)  # val year, not the test year


def test_openstl_protocol_validates_on_test(root):
    dm = make(root, protocol="openstl")
    assert dm.splits.val is dm.splits.test


def test_state_dict_round_trip(root):
    dm = make(root)
    assert dm.state_dict() == {}  # nothing loaded yet: nothing to record
    _ = dm.spec
    state = dm.state_dict()
    fresh = make(root)
    fresh.load_state_dict(state)
    assert fresh._splits is None
    assert fresh.saved_spec.to_dict() == dm.spec.to_dict()


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(dataset="weather_x"), "unknown dataset"),
        (dict(protocol="best"), "unknown protocol"),
        (dict(batch_size=0), "batch_size"),
        (dict(num_workers=-1), "num_workers"),
        (dict(options=[1, 2]), "mapping"),
    ],
)
def test_bad_arguments(root, kw, match):
    args = {"dataset": "synthetic_weather", "root": root, **kw}
    with pytest.raises(ConfigError, match=match):
        ForecastDataModule(**args)


def test_bad_option_names_valid_ones(root):
    dm = make(root, options={**SMALL, "in_lenght": 3})
    with pytest.raises(ConfigError, match="in_lenght.*valid: seed.*in_len"):
        _ = dm.spec


# --------------------------------------------------- loaders without **options (other files)


class _Tiny(ForecastDataset):
    def __len__(self) -> int:
        return 3

    def __getitem__(self, i):
        return torch.full((2, 1, 4, 4), float(i)), torch.zeros(1, 1, 4, 4)


def _fake_module(protocols=None):
    calls = {}

    def load(name, root, *, in_len: int = 2, protocol: str = "holdout"):
        calls.update(in_len=in_len, protocol=protocol)
        spec = DataSpec(name, 2, 1, (Channel("x"),), 4, 4, "video", Normalizer.identity(1))
        train, test = _Tiny(), _Tiny()
        val = test if protocol == "openstl" else _Tiny()
        return Splits(train, val, test, spec, Climatology(np.zeros((1, 1, 4, 4))))

    def load_without_protocol(name, root, *, in_len: int = 2):
        return load(name, root, in_len=in_len, protocol="holdout")

    mod = types.SimpleNamespace(load=load, PROTOCOLS=protocols or ("holdout", "openstl"))
    bare = types.SimpleNamespace(load=load_without_protocol)
    return mod, bare, calls


def test_load_splits_with_named_options(monkeypatch):
    mod, bare, calls = _fake_module()
    monkeypatch.setattr(dm_module, "dataset_module", lambda name: mod)
    load_splits("taxibj", "r", "standard", {"in_len": 3})
    assert calls == {"in_len": 3, "protocol": "holdout"}  # the module's own word
    s = load_splits("taxibj", "r", "openstl", None)
    assert calls["protocol"] == "openstl" and s.val is s.test
    with pytest.raises(ConfigError, match="out_len.*valid: in_len"):
        load_splits("taxibj", "r", "standard", {"out_len": 3})
    monkeypatch.setattr(dm_module, "dataset_module", lambda name: bare)
    s = load_splits("taxibj", "r", "openstl", None)
    assert s.val is s.test  # applied by the data module for loaders without protocol
    assert load_splits("taxibj", "r", "holdout", None).val is not s.test
    with pytest.raises(ConfigError, match="inside options"):
        load_splits("taxibj", "r", "standard", {"protocol": "openstl"})


def test_options_given_as_command_line_text_become_numbers(monkeypatch):
    mod, _, calls = _fake_module()
    monkeypatch.setattr(dm_module, "dataset_module", lambda name: mod)
    load_splits("taxibj", "r", "standard", {"in_len": "3"})
    assert calls["in_len"] == 3
    assert dm_module._from_text("[2010, 2015]") == [2010, 2015]
    assert dm_module._from_text("0.5") == 0.5
    for text in ("data/x.nc", "t2m", "yes", "null", "a: b"):
        assert dm_module._from_text(text) == text  # names and paths stay text
