"""synthetic_weather: deterministic, physically shaped, written in the WeatherBench format,
read back by the weather_t2m loader, and beatable by a model-free predictor."""

from __future__ import annotations

import numpy as np
import pytest

from svqcast.commands import data as commands
from svqcast.data.climatology import WithClimatology, month_hour_phase
from svqcast.data.datasets import synthetic
from svqcast.errors import ConfigError

SMALL = dict(first_year=2010, last_year=2012, hours_per_year=48)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    splits = synthetic.load("synthetic_weather", root, **SMALL)
    return root, splits


def test_generation_is_deterministic_from_seed():
    cfg = synthetic.SynthConfig(seed=3, first_year=2010, last_year=2011, hours_per_year=24)
    a, b = synthetic.generate(cfg), synthetic.generate(cfg)
    other = synthetic.generate(synthetic.SynthConfig(**{**cfg.__dict__, "seed": 4}))
    for (ya, ta, va), (yb, tb, vb), (_, _, vo) in zip(a, b, other):
        assert ya == yb and np.array_equal(ta, tb) and np.array_equal(va, vb)
        assert not np.allclose(va, vo)
        assert va.shape == (24, 32, 64) and va.dtype == np.float32


def test_grid_matches_weatherbench():
    assert synthetic.LAT[0] == -87.1875 and synthetic.LAT[-1] == 87.1875
    assert synthetic.LON[0] == 0.0 and synthetic.LON[-1] == 354.375
    assert synthetic.LAT.shape == (32,) and synthetic.LON.shape == (64,)


@pytest.mark.parametrize("lon_index, peak_utc", [(0, 14), (16, 8), (48, 20)])
def test_diurnal_peak_follows_the_sun(lon_index, peak_utc):
    hours = np.arange(24)
    field = synthetic.background(hours, np.full(24, 80))  # equinox
    equator = 16  # lat 2.8 deg
    assert int(np.argmax(field[:, equator, lon_index])) == peak_utc  # 14:00 local solar time


def test_seasons_are_hemispheric():
    jan, jul = synthetic.background(np.zeros(2), np.array([10, 190]))
    north, south = slice(20, 32), slice(0, 12)
    assert jul[north].mean() > jan[north].mean() + 5
    assert jan[south].mean() > jul[south].mean() + 5
    assert jan[16].mean() > jan[0].mean() + 30  # warm equator, cold poles


def test_advection_moves_one_cell_exactly():
    field = np.random.default_rng(0).normal(size=(32, 64))
    coslat = np.maximum(np.cos(np.deg2rad(synthetic.LAT)), 0.1)[:, None]
    u = np.deg2rad(5.625) * synthetic.EARTH_RADIUS * coslat / 3600.0 * np.ones((1, 64))
    moved = synthetic.advect(field, u, np.zeros_like(u))
    np.testing.assert_allclose(moved, np.roll(field, 1, axis=1), atol=1e-9)
    still = synthetic.advect(field, np.zeros_like(u), np.zeros_like(u))
    np.testing.assert_allclose(still, field)


def test_diffusion_conserves_zonal_sum_and_smooths():
    field = np.random.default_rng(1).normal(size=(32, 64))
    out = synthetic.diffuse(field)
    np.testing.assert_allclose(out.sum(), field.sum(), rtol=1e-10, atol=1e-8)
    assert np.abs(np.diff(out, axis=1)).mean() < np.abs(np.diff(field, axis=1)).mean()


def test_files_in_weatherbench_format(small):
    import xarray as xr

    root, _ = small
    path = root / "synthetic_weather/weather_5_625deg/2m_temperature"
    files = sorted(p.name for p in path.glob("*.nc"))
    assert files == [f"2m_temperature_{y}_5.625deg.nc" for y in (2010, 2011, 2012)]
    with xr.open_dataset(path / files[0], engine="netcdf4") as ds:
        assert ds["t2m"].dims == ("time", "lat", "lon")
        assert ds["t2m"].attrs["units"] == "K" and ds["t2m"].shape == (48, 32, 64)
        assert str(ds["time"].values[1]).startswith("2010-01-01T01")
        assert 200 < float(ds["t2m"].min()) and float(ds["t2m"].max()) < 330


def test_loads_through_weather_t2m(small):
    _, s = small
    assert s.spec.name == "synthetic_weather" and s.spec.channels[0].units == "K"
    assert s.spec.in_shape == (12, 1, 32, 64)
    assert s.spec.extra["years"] == {
        "train": [2010, 2010],
        "val": [2011, 2011],
        "test": [2012, 2012],
    }
    assert len(s.train) == len(s.val) == len(s.test) == 48 - 24 + 1


def _mae_kelvin(splits, predict) -> float:
    std = splits.spec.normalizer.std[0]
    errors = []
    for i in range(len(splits.test)):
        x, y, clim = WithClimatology(splits.test, splits.climatology)[i]
        errors.append(np.abs(predict(splits, i, x.numpy(), clim.numpy()) - y.numpy()).mean())
    return float(np.mean(errors) * std)


def _persistence(s, i, x, clim):
    return np.repeat(x[-1:], 12, axis=0)


def _anomaly_persistence(s, i, x, clim):
    """Model-free oracle: the last anomaly from climatology persists on top of it."""
    last_phase = month_hour_phase(s.test.times[s.test.frame_indices(i)[11:12]])
    return x[-1:] - s.climatology.mean[last_phase] + clim


def test_persistence_is_beatable_by_a_model_free_predictor(small):
    _, s = small
    persistence = _mae_kelvin(s, _persistence)
    oracle = _mae_kelvin(s, _anomaly_persistence)
    assert persistence > 1.0  # diurnal cycle + advection: 12 h ahead is not the last frame
    assert oracle < 0.6 * persistence


def test_climatology_is_the_train_mean_of_each_phase(small):
    _, s = small
    train = s.train
    series, times = train.data.numpy(), train.times  # normalised train year
    phase = month_hour_phase(times[7:8])[0]
    frames = series[month_hour_phase(times) == phase]
    np.testing.assert_allclose(s.climatology.mean[phase], frames.mean(axis=0), atol=1e-6)


def test_persistence_matches_the_files(small):
    import xarray as xr

    root, s = small
    path = (
        root / "synthetic_weather/weather_5_625deg/2m_temperature/2m_temperature_2012_5.625deg.nc"
    )
    raw = xr.open_dataset(path, engine="netcdf4")["t2m"].values.astype(np.float64)
    x, y = s.test[5]
    phys_x = s.spec.normalizer.denormalize(x.double()).numpy()[:, 0]
    np.testing.assert_allclose(phys_x, raw[5:17], atol=1e-3)
    expected = np.abs(raw[17:29] - raw[16:17]).mean()
    got = np.abs(s.spec.normalizer.denormalize((y - x[-1:]).double()) - s.spec.normalizer.mean[0])
    np.testing.assert_allclose(float(got.mean()), expected, rtol=1e-4)


def test_reuses_files_and_regenerates_on_other_options(small, capsys, tmp_path):
    synthetic.load("synthetic_weather", tmp_path, **SMALL)
    assert "generating" in capsys.readouterr().out
    synthetic.load("synthetic_weather", tmp_path, **SMALL)
    assert capsys.readouterr().out == ""
    s = synthetic.load("synthetic_weather", tmp_path, seed=1, **SMALL)
    assert "seed 1" in capsys.readouterr().out and s.spec.extra["synthetic"]["seed"] == 1
    assert synthetic.is_present("synthetic_weather", tmp_path)
    assert synthetic.check("synthetic_weather", tmp_path) == []


def test_failed_synth_leaves_nothing(tmp_path, monkeypatch):
    def boom(cfg):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic, "generate", boom)
    with pytest.raises(RuntimeError):
        commands.synth("synthetic_weather", tmp_path, **SMALL)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(hours_per_year=3), "hours_per_year"),
        (dict(first_year=2012, last_year=2010), "after"),
        (dict(first_year=2010, last_year=2011, hours_per_year=48), "cannot hold"),
        (dict(colour="red"), "valid: seed"),
    ],
)
def test_bad_synth_options(tmp_path, bad, match):
    with pytest.raises(ConfigError, match=match):
        synthetic.load("synthetic_weather", tmp_path, **bad)
