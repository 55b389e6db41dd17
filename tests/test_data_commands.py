"""The data commands behind `svqcast data list | synth | check`."""

from __future__ import annotations

import numpy as np
import pytest

from svqcast.data import DATASETS, commands
from svqcast.data.datasets import synthetic
from svqcast.errors import ConfigError

SMALL = dict(first_year=2010, last_year=2012, hours_per_year=30)


def test_list_has_every_dataset_and_presence(tmp_path):
    table = commands.list_datasets(tmp_path)
    lines = table.splitlines()
    names = [line.split()[0] for line in lines[2::2]]
    assert names == list(DATASETS)
    row = next(line for line in lines if line.startswith("synthetic_weather "))
    assert row.split()[1] == "no"
    assert "2m_temperature_<year>_5.625deg.nc" in table
    commands.synth("synthetic_weather", tmp_path, **SMALL)
    row = next(
        line
        for line in commands.list_datasets(tmp_path).splitlines()
        if line.startswith("synthetic_weather ")
    )
    assert row.split()[1] == "yes"


def test_synth_replaces_atomically_and_leaves_no_temporaries(tmp_path):
    out = commands.synth("synthetic_weather", tmp_path, seed=0, **SMALL)
    assert out == tmp_path / "synthetic_weather" and out.is_dir()
    first = synthetic.load("synthetic_weather", tmp_path, **SMALL).train.data.clone()
    commands.synth("synthetic_weather", tmp_path, seed=5, **SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic_weather"]
    second = synthetic.load("synthetic_weather", tmp_path, seed=5, **SMALL).train.data
    assert not np.allclose(first.numpy(), second.numpy())


def test_synth_only_for_embedded(tmp_path):
    assert "synthetic_weather" in commands.embedded_datasets()
    with pytest.raises(ConfigError, match="not an embedded dataset.*synthetic_weather"):
        commands.synth("weather_t2m", tmp_path)


def test_check_reports_then_passes(tmp_path):
    problems = commands.check("weather_t2m", tmp_path)
    assert problems and "2m_temperature" in problems[0]
    assert commands.check("synthetic_weather", tmp_path)[0].startswith("no ")
    commands.synth("synthetic_weather", tmp_path, **SMALL)
    assert commands.check("synthetic_weather", tmp_path) == []
