"""The data commands behind `svqcast data list | synth | check`."""

from __future__ import annotations

import numpy as np
import pytest

from svqcast.commands import data as commands
from svqcast.data import DATASETS
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


def test_check_arrays_reads_the_file_with_the_options(tmp_path):
    import layouts as L

    L.to_nc(L.unsorted(L.base_field()), tmp_path / "u.nc")
    problems = commands.check("arrays", tmp_path, {"path": "u.nc", "in_len": "2"})
    assert len(problems) == 1 and "times not sorted: time[11]" in problems[0]
    with pytest.raises(ConfigError, match="needs option path"):
        commands.check("arrays", tmp_path)
    with pytest.raises(ConfigError, match="made by svqcast"):
        commands.check("synthetic_weather", tmp_path, {"seed": "1"})


def test_check_loads_other_datasets_and_counts_non_finite(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from svqcast.data import datamodule
    from svqcast.data.base import Splits
    from svqcast.data.climatology import Climatology
    from svqcast.data.spec import Channel, DataSpec, Normalizer
    from svqcast.data.windows import ArrayWindows

    series = np.zeros((10, 1, 2, 2), np.float32)
    series[7, 0, 1, 0] = np.nan
    series[8, 0, 0, 0] = np.inf

    def load(name, root, **options):
        spec = DataSpec("fake", 2, 2, (Channel("x"),), 2, 2, "video", Normalizer.identity(1))
        train = ArrayWindows(series[:5], 2, 2)
        test = ArrayWindows(series[5:], 2, 2)
        clim = Climatology(np.zeros((1, 1, 2, 2), np.float32))
        return Splits(train=train, val=test, test=test, spec=spec, climatology=clim)

    fake = SimpleNamespace(check=lambda name, root: [], load=load)
    monkeypatch.setattr(commands, "dataset_module", lambda name: fake)
    monkeypatch.setattr(datamodule, "dataset_module", lambda name: fake)
    assert commands.check("fake", tmp_path) == [
        "fake val split: 2 non-finite values",
        "fake test split: 2 non-finite values",
    ]


def test_cli_data_check_weather_with_year_options(tmp_path, capsys):
    import xarray as xr
    from weather_files import write_var

    from svqcast.cli import main

    write_var(tmp_path, "2m_temperature", "t2m", range(2010, 2014), 30)
    years = ["--option", "train_years=[2010, 2011]", "--option", "val_years=2012"]
    years += ["--option", "test_years=2013"]
    check = ["data", "check", "weather_t2m", "--root", str(tmp_path), *years]
    assert main(check) == 0 and capsys.readouterr().out.strip() == "weather_t2m: ok"
    path = tmp_path / "weather_5_625deg/2m_temperature/2m_temperature_2012_5.625deg.nc"
    ds = xr.load_dataset(path)
    ds["t2m"][4, 0, 0] = np.nan
    ds.to_netcdf(path)
    assert main(check) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and "2012_5.625deg.nc: 1 non-finite values" in out[0]
    assert main(["data", "check", "weather_t2m", "--root", str(tmp_path)]) == 1  # 2014.. missing
