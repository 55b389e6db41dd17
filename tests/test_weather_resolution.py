"""WeatherBench-1 resolutions (5.625 / 2.8125 / 1.40625 deg): names, grids, refusal of a grid
that does not match, and one tiny `svqcast fit` end to end on a generated 1.40625 deg tree."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from weather_files import tiny_fit_args

from svqcast.cli import main
from svqcast.commands import data as commands
from svqcast.data.datasets import synthetic, weather
from svqcast.errors import ConfigError, DataError, one_line

T2M = weather.DATASETS["weather_t2m"].fields[0]
YEARS = {"train_years": (2010, 2010), "val_years": (2011, 2011), "test_years": (2012, 2012)}


@pytest.mark.parametrize(
    "value, key, folder, grid",
    [
        (None, "5.625", "weather_5_625deg", (32, 64)),
        (2.8125, "2.8125", "weather_2_8125deg", (64, 128)),
        ("1_40625", "1.40625", "weather_1_40625deg", (128, 256)),
        ("1.40625", "1.40625", "weather_1_40625deg", (128, 256)),
    ],
)
def test_names_and_grids(tmp_path, value, key, folder, grid):
    assert weather.resolution_of(value) == key and weather.root_dir(value) == folder
    assert weather.RESOLUTIONS[key] == grid
    path = weather.file_path(tmp_path, T2M, 2010, value)
    rel = f"{folder}/2m_temperature/2m_temperature_2010_{key}deg.nc"
    assert path == tmp_path / rel
    assert rel.replace("2010", "<year>") in weather.layout("weather_t2m", value)
    assert "{} x {}".format(*grid) in weather.layout("weather_t2m", value)
    lat, lon = synthetic.grid(value)
    assert (len(lat), len(lon)) == grid
    assert lat[0] == -90 + float(key) / 2 and lat[-1] == -lat[0] and lon[0] == 0.0
    assert np.allclose(np.diff(lat), float(key)) and np.allclose(np.diff(lon), float(key))


def test_default_is_5_625_and_bad_values_refused():
    assert weather.file_path("r", T2M, 2010) == weather.file_path("r", T2M, 2010, 5.625)
    for bad in (1.4, "fine", 0):
        with pytest.raises(ConfigError, match="resolution must be one of 5.625, 2.8125, 1.40625"):
            weather.resolution_of(bad)
    with pytest.raises(ConfigError, match="resolution"):
        weather.load("weather_t2m", "nowhere", resolution=2.5)
    # `data list`: the default layout, then every resolution's folder, names and grid
    table = commands.list_datasets("nowhere")
    for text in ("_5.625deg.nc", "weather_2_8125deg/.._2.8125deg.nc, 64 x 128", "128 x 256"):
        assert text in table


def write_t2m(root, resolution, grid, years=(2010, 2011, 2012), hours=24):
    """Tiny t2m year files named for ``resolution`` holding a ``grid`` (H, W) field."""
    import xarray as xr

    for year in years:
        path = weather.file_path(root, T2M, year, resolution)
        path.parent.mkdir(parents=True, exist_ok=True)
        times = np.datetime64(f"{year}-01-01T00", "ns") + np.arange(hours) * np.timedelta64(1, "h")
        values = 280 + np.random.default_rng(year).standard_normal((hours, *grid))
        coords = {"time": times, "lat": np.linspace(-80, 80, grid[0]), "lon": np.arange(grid[1])}
        ds = xr.Dataset({"t2m": (("time", "lat", "lon"), values.astype(np.float32))}, coords)
        ds.to_netcdf(path, engine="netcdf4")


def test_grid_of_another_resolution_is_refused_in_one_line(tmp_path):
    write_t2m(tmp_path, "1.40625", (64, 128))  # 2.8125 deg fields under 1.40625 deg names
    with pytest.raises(DataError) as info:
        weather.load("weather_t2m", tmp_path, resolution=1.40625, **YEARS)
    text = one_line(info.value)
    assert "\n" not in text and "2m_temperature_2010_1.40625deg.nc" in text
    assert "grid (64, 128)" in text and "resolution 1.40625 deg (128, 256)" in text
    assert "pass resolution=2.8125" in text
    # `data check` with the option and without it (the resolution present is found)
    opts = {"resolution": "1.40625", **{k: f"[{a}, {b}]" for k, (a, b) in YEARS.items()}}
    problems = commands.check("weather_t2m", tmp_path, opts)
    assert len(problems) == 3 and all("grid (64, 128)" in p for p in problems)
    assert weather.is_present("weather_t2m", tmp_path)
    assert weather.resolutions_present("weather_t2m", tmp_path) == ["1.40625"]
    assert any("grid (64, 128)" in p for p in commands.check("weather_t2m", tmp_path))
    # the 5.625 deg files asked for but absent: the expected layout at that resolution
    with pytest.raises(DataError, match="no folder .*weather_5_625deg.*32 x 64"):
        weather.load("weather_t2m", tmp_path, **YEARS)


def test_2_8125_loads_with_its_grid(tmp_path):
    write_t2m(tmp_path, 2.8125, (64, 128), hours=24)
    splits = weather.load(
        "weather_t2m", tmp_path, resolution="2_8125", in_len=2, out_len=2, **YEARS
    )
    assert (splits.spec.height, splits.spec.width) == (64, 128)
    assert splits.spec.extra["resolution"] == 2.8125
    x, y = splits.train[0]
    assert tuple(x.shape) == (2, 1, 64, 128) and tuple(y.shape) == (2, 1, 64, 128)


@pytest.mark.slow
def test_fit_end_to_end_on_a_generated_1_40625_tree(tmp_path):
    """synth writes a 1.40625 deg t2m tree (24 h a year, 2010-2012); `svqcast fit` trains a
    tiny model on it through the weather_t2m loader and tests it."""
    out = commands.synth(
        "synthetic_weather", tmp_path, first_year=2010, last_year=2012, hours_per_year=24,
        resolution=1.40625,
    )  # fmt: skip
    names = sorted(p.name for p in (out / "weather_1_40625deg/2m_temperature").iterdir())
    assert names == [f"2m_temperature_{y}_1.40625deg.nc" for y in (2010, 2011, 2012)]
    assert synthetic.is_present("synthetic_weather", tmp_path)
    assert synthetic.check("synthetic_weather", tmp_path) == []
    opts = {"resolution": "1.40625", **{k: f"[{a}, {b}]" for k, (a, b) in YEARS.items()}}
    assert commands.check("weather_t2m", out, opts) == []
    years = ", ".join(f"{k}: [{a}, {b}]" for k, (a, b) in YEARS.items())
    options = f"{{resolution: 1.40625, {years}, in_len: 2, out_len: 2, stride: 4}}"
    args = tiny_fit_args(
        out, options, tmp_path / "runs", "fine",
        "--model.translator", "convmixer", "--model.quantizer", "svq",
        "--model.quantizer_options", "{codebook_size: 64}",
        "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
        "--trainer.limit_test_batches", "1",
    )  # fmt: skip
    assert main(args) == 0
    run = tmp_path / "runs" / "fine"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["data"]["options"]["resolution"] == 1.40625
    rows = json.loads((run / "test_metrics.json").read_text())["rows"]
    assert {"simvp+svq", "persistence", "climatology"} <= set(rows)
    assert np.isfinite(rows["simvp+svq"]["mse"]) and rows["simvp+svq"]["mse"] > 0
