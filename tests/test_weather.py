"""WeatherBench loaders on small files written in the exact on-disk format."""

from __future__ import annotations

import numpy as np
import pytest
from weather_files import LAT, LON, write_var

from svqcast.data.climatology import WithClimatology, month_hour_phase
from svqcast.data.datasets import weather
from svqcast.errors import ConfigError, DataError, DataNotFoundError

HOURS = 48
YEARS = dict(train_years=(2010, 2011), val_years=(2012, 2012), test_years=(2013, 2013))


@pytest.fixture(scope="module")
def t2m_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("wb")
    write_var(root, "2m_temperature", "t2m", range(2010, 2014), HOURS)
    return root


@pytest.fixture(scope="module")
def t2m(t2m_root):
    return weather.load("weather_t2m", t2m_root, **YEARS)


def _hours(times: np.ndarray) -> np.ndarray:
    return (times - np.datetime64("2000-01-01T00", "h")).astype(np.float64)


def _physical(splits, tensor) -> np.ndarray:
    return splits.spec.normalizer.denormalize(tensor.double()).numpy()


def test_t2m_spec_from_files(t2m):
    spec = t2m.spec
    assert spec.in_shape == (12, 1, 32, 64) and spec.out_len == 12
    assert spec.channels[0].name == "t2m" and spec.channels[0].units == "K"
    assert spec.convention == "weather" and spec.time_step == "h"
    np.testing.assert_allclose(spec.lat, LAT)
    np.testing.assert_allclose(spec.lon, LON)


def test_t2m_window_counts_never_cross_years(t2m):
    per_year = HOURS - 24 + 1  # windows of 24 hourly frames inside one 48-hour year
    assert len(t2m.train) == 2 * per_year
    assert len(t2m.val) == per_year and len(t2m.test) == per_year
    for i in range(len(t2m.train)):
        years = t2m.train.times[t2m.train.frame_indices(i)].astype("datetime64[Y]")
        assert len(np.unique(years)) == 1


@pytest.mark.parametrize("index", [0, 7, 30])
def test_t2m_target_follows_input_hourly(t2m, index):
    x, y = t2m.train[index]
    frames = np.concatenate([_physical(t2m, x), _physical(t2m, y)])[:, 0, 0, 0]
    np.testing.assert_allclose(np.diff(frames), 1.0, atol=1e-2)  # one hour per frame
    expected = _hours(t2m.train.times[t2m.train.frame_indices(index)])
    np.testing.assert_allclose(frames, expected, atol=1e-2)


def test_t2m_normalizer_uses_train_years_only(t2m):
    train_hours = np.concatenate(
        [_hours(np.datetime64(f"{y}-01-01T00", "h") + np.arange(HOURS)) for y in (2010, 2011)]
    )
    pattern = 0.01 * np.arange(32)[:, None] + 0.001 * np.arange(64)[None, :]
    full = train_hours[:, None, None] + pattern
    np.testing.assert_allclose(t2m.spec.normalizer.mean, [full.mean()], rtol=1e-6)
    np.testing.assert_allclose(t2m.spec.normalizer.std, [full.std()], rtol=1e-4)


def test_changing_test_files_leaves_normaliser_alone(tmp_path):
    write_var(tmp_path, "2m_temperature", "t2m", range(2010, 2014), HOURS)
    a = weather.load("weather_t2m", tmp_path, **YEARS)
    write_var(tmp_path, "2m_temperature", "t2m", [2013], HOURS, offset=500.0)
    b = weather.load("weather_t2m", tmp_path, **YEARS)
    np.testing.assert_array_equal(a.spec.normalizer.mean, b.spec.normalizer.mean)
    np.testing.assert_array_equal(a.spec.normalizer.std, b.spec.normalizer.std)
    np.testing.assert_array_equal(a.climatology.mean, b.climatology.mean)
    np.testing.assert_allclose(_physical(b, b.test[0][0]) - _physical(a, a.test[0][0]), 500, 1e-2)


def test_val_disjoint_from_train_and_test(t2m):
    def frame_times(ds):
        return {t for i in range(len(ds)) for t in ds.times[ds.frame_indices(i)].tolist()}

    train, val, test = frame_times(t2m.train), frame_times(t2m.val), frame_times(t2m.test)
    assert val and not (val & train) and not (val & test) and not (train & test)


def test_openstl_protocol_validates_on_test(t2m_root):
    s = weather.load("weather_t2m", t2m_root, protocol="openstl", **YEARS)
    assert s.val is s.test


@pytest.mark.parametrize("stride", [1, 5])
@pytest.mark.parametrize("lengths", [(12, 12), (6, 3)])
def test_stride_and_lengths(t2m_root, stride, lengths):
    in_len, out_len = lengths
    s = weather.load(
        "weather_t2m", t2m_root, in_len=in_len, out_len=out_len, stride=stride, **YEARS
    )
    per_year = len(range(0, HOURS - (in_len + out_len) + 1, stride))
    assert len(s.test) == per_year and len(s.train) == 2 * per_year
    x, y = s.test[len(s.test) - 1]
    assert x.shape == (in_len, 1, 32, 64) and y.shape == (out_len, 1, 32, 64)
    if len(s.test) > 1:
        assert s.test.starts[1] - s.test.starts[0] == stride


def test_climatology_is_train_mean_per_month_hour(t2m):
    clim = t2m.climatology.mean  # (288, 1, 32, 64), normalised
    assert clim.shape == (288, 1, 32, 64)
    phase = 24 * 0 + 5  # January, 05 UTC: hours 5 and 29 of 2010 and 2011
    hours = [
        _hours(np.datetime64(f"{y}-01-01T00", "h") + np.timedelta64(h, "h"))
        for y in (2010, 2011)
        for h in (5, 29)
    ]
    expected = (np.mean(hours) - t2m.spec.normalizer.mean[0]) / t2m.spec.normalizer.std[0]
    np.testing.assert_allclose(clim[phase, 0, 0, 0], expected, rtol=1e-4, atol=1e-5)


def test_target_phases_and_climatology_lookup(t2m):
    ds = WithClimatology(t2m.test, t2m.climatology)
    x, y, c = ds[3]
    times = t2m.test.target_times(3)
    phases = t2m.test.target_phases(3)
    np.testing.assert_array_equal(phases, month_hour_phase(times))
    np.testing.assert_allclose(c.numpy(), t2m.climatology.mean[phases], atol=0)
    assert c.shape == y.shape


def test_uv10_two_channels_with_units(tmp_path):
    years = range(2010, 2013)
    write_var(tmp_path, "10m_u_component_of_wind", "u10", years, 30, units="m s**-1")
    write_var(tmp_path, "10m_v_component_of_wind", "v10", years, 30, units="m s**-1", offset=7)
    opts = dict(train_years=2010, val_years=2011, test_years=2012, in_len=4, out_len=4)
    s = weather.load("weather_uv10", tmp_path, **opts)
    assert s.spec.channel_names == ["u10", "v10"] and s.spec.channels[1].units == "m s**-1"
    x, _ = s.train[0]
    phys = _physical(s, x)
    np.testing.assert_allclose(phys[:, 1] - phys[:, 0], 7.0, atol=1e-2)


@pytest.mark.parametrize("levels, added", [(None, 1000), (500, 500), ([850], 850)])
def test_relative_humidity_level(tmp_path, levels, added):
    write_var(tmp_path, "relative_humidity", "r", range(2010, 2013), 30, [500, 850, 1000], "%")
    opts = dict(train_years=2010, val_years=2011, test_years=2012, in_len=2, out_len=2)
    s = weather.load("weather_r", tmp_path, levels=levels, **opts)
    assert s.spec.channel_names == ["r"] and s.spec.channels[0].units == "%"
    phys = _physical(s, s.train[0][0])[0, 0, 0, 0]
    hours = _hours(s.train.times[:1])[0]
    assert phys == pytest.approx(hours + added, abs=1e-2)


@pytest.fixture(scope="module")
def mv_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mv")
    for i, (d, v) in enumerate(
        [
            ("relative_humidity", "r"),
            ("temperature", "t"),
            ("u_component_of_wind", "u"),
            ("v_component_of_wind", "v"),
        ]
    ):
        write_var(root, d, v, range(2000, 2003), 96, [50, 150, 500, 850], offset=1e4 * i)
    return root


MV_YEARS = dict(train_years=2000, val_years=2001, test_years=2002)


def test_mv_channels_and_six_hour_steps(mv_root):
    s = weather.load("weather_mv", mv_root, **MV_YEARS)
    names = [f"{v}{lv}" for v in "rtuv" for lv in (150, 500, 850)]
    assert s.spec.channel_names == names and s.spec.time_step == "6h"
    assert s.spec.in_shape == (4, 12, 32, 64) and s.spec.out_len == 4
    assert len(s.train) == 96 // 6 - 8 + 1  # 16 six-hourly frames, windows of 8
    x, y = s.train[2]
    frames = np.concatenate([_physical(s, x), _physical(s, y)])
    np.testing.assert_allclose(np.diff(frames[:, 0, 0, 0]), 6.0, atol=1e-2)  # 6 h per frame
    # channel k = variable k // 3 at level (150, 500, 850)[k % 3]
    lv = np.array([150, 500, 850] * 4) + 1e4 * np.repeat(np.arange(4), 3)
    np.testing.assert_allclose(frames[0, :, 0, 0] - frames[0, 0, 0, 0], lv - lv[0], atol=0.1)
    hours = (s.train.times.astype("datetime64[h]").astype(np.int64)) % 24
    assert set(hours.tolist()) == {0, 6, 12, 18}


def test_openstl_mv_offsets_as_documented():
    # OpenSTL 4 -> 4: idx_in [-17, -11, -5, 0], idx_out [1, 7, 13, 19] in 6-hourly frames
    np.testing.assert_array_equal(weather.openstl_mv_offsets(4, 4), [0, 6, 12, 17, 18, 24, 30, 36])


def test_openstl_mv_indexing_differs(mv_root):
    opts = dict(in_len=2, out_len=2, **MV_YEARS)
    ours = weather.load("weather_mv", mv_root, **opts)
    theirs = weather.load("weather_mv", mv_root, openstl_mv_indexing=True, **opts)

    # OpenSTL 2 -> 2: inputs [-5, 0], targets [1, 7] -> hours 0, 30, 36, 72 after a start
    def gaps(s):
        x, y = s.train[0]
        return np.diff(np.concatenate([_physical(s, x), _physical(s, y)])[:, 0, 0, 0])

    np.testing.assert_allclose(gaps(ours), [6, 6, 6], atol=1e-2)
    np.testing.assert_allclose(gaps(theirs), [30, 6, 36], atol=1e-2)
    assert len(theirs.train) < len(ours.train)


def test_openstl_mv_indexing_only_for_mv(t2m_root):
    with pytest.raises(ConfigError, match="weather_mv and weather_hmv only"):
        weather.load("weather_t2m", t2m_root, openstl_mv_indexing=True, **YEARS)


# weather_hmv: the paper code's "hmv" (8 pressure-level variables x 13 levels + 6 single-level)
HMV_PRESSURE = [
    ("geopotential", "z"), ("potential_vorticity", "pv"), ("relative_humidity", "r"),
    ("specific_humidity", "q"), ("temperature", "t"), ("u_component_of_wind", "u"),
    ("v_component_of_wind", "v"), ("vorticity", "vo"),
]  # fmt: skip
HMV_SINGLE = [
    ("10m_u_component_of_wind", "u10"), ("10m_v_component_of_wind", "v10"),
    ("2m_temperature", "t2m"), ("toa_incident_solar_radiation", "tisr"),
    ("total_cloud_cover", "tcc"), ("total_precipitation", "tp"),
]  # fmt: skip


def test_hmv_constants_are_the_papers():
    ws = weather.DATASETS["weather_hmv"]
    assert [(f.directory, f.var) for f in ws.fields] == HMV_PRESSURE + HMV_SINGLE
    assert ws.levels == (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)
    n_channels = sum(len(ws.levels) if f.has_level else 1 for f in ws.fields)
    assert n_channels == 8 * 13 + 6 == 110
    assert (ws.in_len, ws.out_len, ws.step_hours) == (4, 4, 6)
    assert (ws.train_years, ws.val_years, ws.test_years) == (
        (1980, 2015),
        (2016, 2016),
        (2017, 2018),
    )


def test_hmv_channels_order_and_six_hour_steps(tmp_path):
    # 24 h a year (4 six-hourly frames), 2 of the 13 levels: the files stay small
    for i, (d, v) in enumerate(HMV_PRESSURE):
        write_var(tmp_path, d, v, range(2000, 2003), 24, [500, 1000], offset=1e4 * i)
    for i, (d, v) in enumerate(HMV_SINGLE):
        write_var(tmp_path, d, v, range(2000, 2003), 24, offset=1e4 * (8 + i))
    opts = dict(train_years=2000, val_years=2001, test_years=2002, in_len=2, out_len=2)
    s = weather.load("weather_hmv", tmp_path, levels=(500, 1000), **opts)
    pressure = [f"{v}{lv}" for _, v in HMV_PRESSURE for lv in (500, 1000)]
    assert s.spec.channel_names == pressure + [v for _, v in HMV_SINGLE]
    assert s.spec.in_shape == (2, 22, 32, 64) and s.spec.time_step == "6h"
    assert len(s.train) == 1  # 4 six-hourly frames, one window of 2 -> 2
    x, y = s.train[0]
    frames = np.concatenate([_physical(s, x), _physical(s, y)])
    np.testing.assert_allclose(np.diff(frames[:, 0, 0, 0]), 6.0, atol=1e-2)
    offsets = [1e4 * i + lv for i in range(8) for lv in (500, 1000)] + [
        1e4 * i for i in range(8, 14)
    ]
    np.testing.assert_allclose(
        frames[0, :, 0, 0] - frames[0, 0, 0, 0], np.subtract(offsets, 500), atol=0.5
    )
    with pytest.raises(DataError, match="weather_hmv"):  # accepted, but needs 13 frames
        weather.load("weather_hmv", tmp_path, levels=(500, 1000), openstl_mv_indexing=True, **opts)


# ----------------------------------------------------------------------------- errors


def test_missing_root_names_layout(tmp_path):
    with pytest.raises(DataNotFoundError, match="2m_temperature_<year>_5.625deg.nc"):
        weather.load("weather_t2m", tmp_path / "nowhere")


def test_missing_year_names_the_file(t2m_root):
    with pytest.raises(DataNotFoundError, match="2m_temperature_2009_5.625deg.nc"):
        weather.load(
            "weather_t2m", t2m_root, train_years=(2009, 2011), val_years=2012, test_years=2013
        )


def test_wrong_dims(tmp_path):
    write_var(tmp_path, "2m_temperature", "t2m", range(2010, 2013), 30, dims=("time", "y", "x"))
    with pytest.raises(DataError, match="dims"):
        weather.load("weather_t2m", tmp_path, train_years=2010, val_years=2011, test_years=2012)


def test_missing_level(tmp_path):
    write_var(tmp_path, "relative_humidity", "r", range(2010, 2013), 30, [500, 850])
    with pytest.raises(DataError, match=r"levels \[1000\]"):
        weather.load("weather_r", tmp_path, train_years=2010, val_years=2011, test_years=2012)


def test_nan_reports_count_and_first_location(tmp_path):
    import xarray as xr

    write_var(tmp_path, "2m_temperature", "t2m", range(2010, 2013), 30)
    path = tmp_path / "weather_5_625deg/2m_temperature/2m_temperature_2010_5.625deg.nc"
    ds = xr.load_dataset(path)
    ds["t2m"][3, 4, 5] = np.nan
    ds["t2m"][7, 0, 0] = np.nan
    ds.to_netcdf(path)
    with pytest.raises(
        DataError, match=r"2010_5.625deg.nc: 2 non-finite.*\(3, 0, 4, 5\).*2010-01-01T03"
    ):
        weather.load("weather_t2m", tmp_path, train_years=2010, val_years=2011, test_years=2012)


def test_too_short_series(t2m_root):
    with pytest.raises(
        DataError, match="needs 72 consecutive frames but the longest run .* has 48"
    ):
        weather.load("weather_t2m", t2m_root, in_len=36, out_len=36, **YEARS)


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(bogus=1), "valid: in_len"),
        (dict(protocol="best"), "protocol"),
        (dict(train_years=(2010, 2012)), "overlap"),
        (dict(levels=500), "no pressure levels"),
        (dict(in_len=0), ">= 1"),
    ],
)
def test_bad_options(t2m_root, bad, match):
    opts = {**YEARS, **bad}
    with pytest.raises(ConfigError, match=match):
        weather.load("weather_t2m", t2m_root, **opts)


def test_check_and_presence(t2m_root, tmp_path):
    assert weather.is_present("weather_t2m", t2m_root)
    assert not weather.is_present("weather_uv10", t2m_root)
    problems = weather.check("weather_t2m", t2m_root)
    assert len(problems) == 1 and "2014-2018 missing" in problems[0]
    assert "no files" in weather.check("weather_tcc", tmp_path)[0]


@pytest.mark.parametrize("name", list(weather.DATASETS))
def test_describe_and_layout(name):
    assert weather.describe(name)
    for f in weather.DATASETS[name].fields:
        assert f"{f.directory}/{f.directory}_<year>_5.625deg.nc" in weather.layout(name)


def test_fields_with_different_times(tmp_path):
    write_var(tmp_path, "10m_u_component_of_wind", "u10", range(2010, 2013), 30)
    write_var(tmp_path, "10m_v_component_of_wind", "v10", range(2010, 2013), 24)
    with pytest.raises(DataError, match="different times"):
        weather.load("weather_uv10", tmp_path, train_years=2010, val_years=2011, test_years=2012)


def test_wrong_grid(tmp_path):
    import xarray as xr

    folder = tmp_path / "weather_5_625deg/total_cloud_cover"
    folder.mkdir(parents=True)
    for year in (2010, 2011, 2012):
        times = np.datetime64(f"{year}-01-01T00", "ns") + np.arange(30) * np.timedelta64(1, "h")
        ds = xr.Dataset(
            {"tcc": (("time", "lat", "lon"), np.zeros((30, 16, 32), np.float32))},
            coords={"time": times, "lat": np.arange(16.0), "lon": np.arange(32.0)},
        )
        ds.to_netcdf(folder / f"total_cloud_cover_{year}_5.625deg.nc", engine="netcdf4")
    with pytest.raises(DataError, match=r"grid \(16, 32\)"):
        weather.load("weather_tcc", tmp_path, train_years=2010, val_years=2011, test_years=2012)


def test_identity_of_the_spec(t2m, tmp_path):
    spec = t2m.spec
    assert (spec.time_step, spec.calendar) == ("h", "standard")
    assert spec.dims == {"time": "time", "lat": "lat", "lon": "lon"}
    assert spec.channels[0].variable == "t2m" and spec.channels[0].level is None
    assert spec.attrs["variables"]["t2m"] == {"units": "K", "long_name": "t2m"}
    assert spec.extra["climatology"] == "by (month, hour of day) over the train years"
    write_var(tmp_path, "relative_humidity", "r", range(2010, 2013), 30, [850, 1000])
    r = weather.load("weather_r", tmp_path, train_years=2010, val_years=2011, test_years=2012)
    assert r.spec.channels[0].name == "r" and r.spec.channels[0].level == 1000
    assert r.spec.dims["level"] == "level"


def _rewrite_times(path, shift_index: int, minutes: int) -> None:
    import xarray as xr

    ds = xr.load_dataset(path)
    times = ds["time"].values.copy()
    times[shift_index] += np.timedelta64(minutes, "m")
    ds.assign_coords(time=times).to_netcdf(path)


def test_off_step_times_name_the_file(tmp_path):
    write_var(tmp_path, "2m_temperature", "t2m", range(2010, 2013), 30)
    path = tmp_path / "weather_5_625deg/2m_temperature/2m_temperature_2011_5.625deg.nc"
    _rewrite_times(path, 7, 20)
    opts = dict(train_years=2010, val_years=2011, test_years=2012)
    with pytest.raises(DataError, match=r"2011_5.625deg.nc: time\[7\] = 2011-01-01T07:20:00"):
        weather.load("weather_t2m", tmp_path, **opts)
    problems = weather.check_values("weather_t2m", tmp_path, **opts)
    assert len(problems) == 1 and "time[7]" in problems[0]


def test_check_values_lists_every_bad_file(tmp_path):
    import xarray as xr

    write_var(tmp_path, "2m_temperature", "t2m", range(2010, 2013), 30)
    folder = tmp_path / "weather_5_625deg/2m_temperature"
    opts = dict(train_years=2010, val_years=2011, test_years=2012)
    assert weather.check_values("weather_t2m", tmp_path, **opts) == []
    for year in (2010, 2012):
        path = folder / f"2m_temperature_{year}_5.625deg.nc"
        ds = xr.load_dataset(path)
        ds["t2m"][2, 1, 1] = np.inf
        ds.to_netcdf(path)
    (folder / "2m_temperature_2011_5.625deg.nc").unlink()
    problems = weather.check_values("weather_t2m", tmp_path, **opts)
    assert len(problems) == 3
    assert (
        "2010_5.625deg.nc: 1 non-finite values; first at (t, c, y, x) = (2, 0, 1, 1)"
        in (problems[0])
    )
    assert problems[1].startswith("missing ") and "2011" in problems[1]
    assert "2012_5.625deg.nc: 1 non-finite" in problems[2]
