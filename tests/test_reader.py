"""The one reader (svqcast.data.gridded.reader) on real-world layouts of one field
(tests/layouts.py)."""

from __future__ import annotations

import cftime
import layouts as L
import numpy as np
import pytest
import xarray as xr

from svqcast.cli import main
from svqcast.data.climatology import climatology_phases
from svqcast.data.datasets import arrays
from svqcast.data.gridded.reader import check_values, find_dims, open_dataset, read_fields
from svqcast.data.gridded.times import (
    advance,
    calendar_of,
    canonical_calendar,
    fixed_step,
    same_calendar,
    same_step,
    step_seconds,
)
from svqcast.errors import ConfigError, DataError, DataNotFoundError


@pytest.fixture(scope="module")
def base():
    return L.base_field()


def canonical(fields) -> np.ndarray:
    """Channel 0 of ``fields`` mapped back to the base layout (lat ascending, lon 0..360)."""
    da = xr.DataArray(
        fields.data[:, 0],
        dims=("time", "lat", "lon"),
        coords={"lat": fields.lat, "lon": fields.lon},
    )
    da = da.assign_coords(lon=da["lon"] % 360.0).sortby("lat").sortby("lon")
    return da.values


VARIANTS = {
    "descending_lat": ({}, ("time", "lat", "lon")),
    "lon_180": ({}, ("time", "lat", "lon")),
    "shifted_lon": ({}, ("time", "lat", "lon")),
    "cds_names": ({}, ("valid_time", "latitude", "longitude")),
    "axis_only_names": ({}, ("t", "y", "x")),
    "dim_order": ({}, ("time", "lat", "lon")),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_layout_variants_read_exactly(base, tmp_path, name):
    variant = getattr(L, name)(base)
    fields = read_fields(L.to_nc(variant, tmp_path / f"{name}.nc"))
    t, y, x = VARIANTS[name][1]
    assert fields.dims == {"time": t, "lat": y, "lon": x}
    assert fields.data.dtype == np.float32 and fields.data.shape == (48, 1, 8, 16)
    # coordinates in the SOURCE order, values exactly the base field's once mapped back
    np.testing.assert_array_equal(fields.lat, variant[y].values)
    np.testing.assert_array_equal(fields.lon, variant[x].values)
    np.testing.assert_array_equal(canonical(fields), base[L.VAR].values)
    np.testing.assert_array_equal(fields.times, base["time"].values)
    assert fields.time_step == "h" and fields.calendar == "standard"
    assert fields.channels[0].name == "t2m" and fields.channels[0].units == "K"
    assert fields.channels[0].variable == "t2m" and fields.channels[0].level is None
    assert fields.attrs["variables"]["t2m"]["long_name"] == "2 metre temperature"
    assert fields.attrs["coords"]["lat"]["units"] == "degrees_north"
    assert check_values(fields) == []


def test_same_result_from_an_open_dataset(base):
    fields = read_fields(L.descending_lat(base))
    np.testing.assert_array_equal(canonical(fields), base[L.VAR].values)


def test_packed_int16_within_half_a_quantum(base, tmp_path):
    path = L.to_nc(L.packed_int16(base, scale=0.01), tmp_path / "p.nc")
    with open_dataset(path) as ds:
        assert ds[L.VAR].encoding["dtype"] == np.int16
    fields = read_fields(path)
    assert fields.data.dtype == np.float32
    err = np.abs(fields.data[:, 0].astype(np.float64) - base[L.VAR].values)
    assert err.max() <= 0.005 + 1e-4  # half the 0.01 quantum (+ float32 rounding)


def test_units_are_kept_as_written(base, tmp_path):
    fields = read_fields(L.to_nc(L.deg_c(base), tmp_path / "c.nc"))
    assert fields.channels[0].units == "degC"
    np.testing.assert_allclose(fields.data[:, 0], base[L.VAR].values - 273.15, atol=1e-4)
    assert read_fields(L.other_units(base)).channels[0].units == "m s-1"


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_v2_and_v3(base, tmp_path, zarr_format):
    store = L.to_zarr(L.cds_names(base), tmp_path / "s.zarr", zarr_format=zarr_format)
    fields = read_fields(store)
    np.testing.assert_array_equal(fields.data[:, 0], base[L.VAR].values)
    assert fields.dims["time"] == "valid_time" and fields.time_step == "h"


@pytest.mark.parametrize("writer", ["to_npy", "to_npz"])
def test_numpy_files_have_no_coordinates(base, tmp_path, writer):
    path = getattr(L, writer)(base, tmp_path / f"a.{writer[3:]}")
    fields = read_fields(path)
    np.testing.assert_array_equal(fields.data[:, 0], base[L.VAR].values)
    assert fields.channels[0].name == "c0" and fields.channels[0].variable is None
    assert fields.times is None and fields.lat is None and fields.time_step is None
    dated = read_fields(path, start="2020-01-01T00", time_step="6h")
    assert dated.time_step == "6h" and str(dated.times[2])[:13] == "2020-01-01T12"


def test_360_day_calendar(base, tmp_path):
    fields = read_fields(L.to_nc(L.cal_360(base), tmp_path / "c.nc"))
    assert fields.calendar == "360_day" and fields.time_step == "h"
    assert fields.times[0].calendar == "360_day"
    assert [(d.year, d.month, d.day, d.hour) for d in fields.times[[0, 47]]] == [
        (2000, 1, 1, 0),
        (2000, 1, 2, 23),
    ]
    np.testing.assert_array_equal(fields.data[:, 0], base[L.VAR].values)
    daily = read_fields(L.annual_360(years=1, H=2, W=2))
    assert daily.time_step == "D" and daily.calendar == "360_day"
    assert daily.times[359].month == 12 and daily.times[359].day == 30


def test_arrays_on_a_360_day_series_windows_and_climatology(tmp_path):
    ds = L.annual_360(years=2, H=4, W=8)
    L.to_nc(ds, tmp_path / "d360.nc")
    s = arrays.load("arrays", tmp_path, path="d360.nc", in_len=3, out_len=2, stride=5)
    spec = s.spec
    assert spec.calendar == "360_day" and spec.time_step == "D"
    assert spec.extra["climatology"] == "by month over the train split"
    assert s.climatology.mean.shape == (12, 1, 4, 8)
    # train = the first 504 days: a month's climatology is the mean of its train days
    month = np.array([d.month for d in ds["time"].values[:504]])
    norm = s.train.data.numpy()[:, 0]
    np.testing.assert_allclose(s.climatology.mean[6, 0], norm[month == 7].mean(axis=0), atol=1e-5)
    times = s.test.target_times(0)
    assert times[0].calendar == "360_day" and len(s.train) == len(range(0, 504 - 5 + 1, 5))
    np.testing.assert_array_equal(s.test.target_phases(0), [d.month - 1 for d in times])


@pytest.mark.parametrize(
    "step, kind",
    [
        ("h", "by (month, hour of day) over the train split"),
        ("6h", "by (month, hour of day) over the train split"),
        ("D", "by month over the train split"),
        ("MS", "by month over the train split"),
        ("W-SUN", "by month over the train split"),
        ("7h", "overall mean per grid point: 7h steps do not repeat at a fixed hour of day"),
        ("YS-JAN", "overall mean per grid point: YS-JAN steps are longer than a month"),
        (None, "overall mean per grid point: the series has no time coordinate"),
    ],
)
def test_climatology_kind_follows_the_step(step, kind):
    assert climatology_phases(step)[2] == kind


def test_seven_hourly_arrays_record_their_climatology(tmp_path):
    ds = L.base_field(T=60, H=2, W=4)
    ds = ds.assign_coords(time=ds["time"].values[0] + np.arange(60) * np.timedelta64(7, "h"))
    L.to_nc(ds, tmp_path / "s.nc")
    s = arrays.load("arrays", tmp_path, path="s.nc", in_len=2, out_len=2)
    assert s.spec.time_step == "7h"
    assert s.spec.extra["climatology"].startswith("overall mean per grid point: 7h steps")
    assert s.climatology.mean.shape == (1, 1, 2, 4)


def test_irregular_time_refused_then_accepted_within_tolerance(base, tmp_path):
    path = L.to_nc(L.irregular(base, index=10, fraction=0.25), tmp_path / "i.nc")
    with pytest.raises(DataError, match=r"time\[10\] = 2020-01-01T10:15:00 is off .* 0\.25"):
        read_fields(path)
    fields = read_fields(path, time_tolerance=0.3)
    np.testing.assert_array_equal(fields.times, base["time"].values)  # snapped onto the grid
    with pytest.raises(DataError, match="off the time_step 2h grid by 0.5"):
        read_fields(L.base_field(T=6, H=2, W=2), time_step="2h")
    with pytest.raises(ConfigError, match="not a frequency"):
        read_fields(base, time_step="fortnightly")
    with pytest.raises(ConfigError, match="must be a positive step"):
        read_fields(base, time_step="0h")


def test_gaps_of_whole_steps_are_allowed(base):
    fields = read_fields(L.gap(base, index=10))
    assert fields.time_step == "h" and len(fields.times) == 47
    assert check_values(fields) == []


@pytest.mark.parametrize(
    "variant, match",
    [
        ("unsorted", r"times not sorted: time\[11\] = 2020-01-01T10:00:00 is before time\[10\]"),
        ("duplicated_time", r"duplicated time at index 11: 2020-01-01T10:00:00"),
    ],
)
def test_unsorted_and_duplicated_times_refused(base, tmp_path, variant, match):
    path = L.to_nc(getattr(L, variant)(base), tmp_path / "t.nc")
    with pytest.raises(DataError, match=match):
        read_fields(path)


def test_nan_is_counted_and_located(base, tmp_path):
    fields = read_fields(L.to_nc(L.with_nan(base), tmp_path / "n.nc"))
    problems = check_values(fields)
    assert len(problems) == 1
    assert "1 non-finite values; first at (t, c, y, x) = (5, 0, 2, 3)" in problems[0]
    assert "(time 2020-01-01T05:00:00)" in problems[0]


def test_check_values_sees_grid_and_time_problems(base):
    fields = read_fields(base)
    fields.lon = fields.lon.copy()
    fields.lon[3] = fields.lon[2]
    fields.times = fields.times.copy()
    fields.times[5] = fields.times[4]
    problems = check_values(fields)
    assert any("duplicated time at index 5" in p for p in problems)
    assert any("lon is not strictly monotonic at index 3" in p for p in problems)


def test_levels_become_channels(base):
    ds = L.with_level(base)
    fields = read_fields(ds)
    assert [c.name for c in fields.channels] == ["t2m", "t_500", "t_850", "t_1000"]
    assert [c.level for c in fields.channels] == [None, 500, 850, 1000]
    assert fields.dims["level"] == "level"
    np.testing.assert_array_equal(fields.data[:, 2], base[L.VAR].values - 10.0)
    one = read_fields(ds, variables="t", levels=[850])
    assert one.channels[0].variable == "t" and one.channels[0].level == 850
    cds = read_fields(L.cds_names(L.with_level(base, dim="pressure_level")), variables=["t"])
    assert cds.dims["level"] == "pressure_level" and len(cds.channels) == 3
    with pytest.raises(DataError, match=r"no level \[925\] \(has \[500, 850, 1000\]\)"):
        read_fields(ds, variables="t", levels=[925])


def test_size_one_extra_dims_drop_and_others_are_named(base):
    one = base.expand_dims(member=[0]).transpose("time", "member", "lat", "lon")
    assert read_fields(one).data.shape == (48, 1, 8, 16)
    two = L.with_level(base).expand_dims(member=[0, 1])
    with pytest.raises(DataError, match=r"extra dims \(member: 2\).*level_dim="):
        read_fields(two, variables="t")


def test_dims_explicit_then_names_then_attributes(base):
    assert find_dims(L.axis_only_names(base)) == {"time": "t", "lat": "y", "lon": "x"}
    bare = base.rename(time="a", lat="b", lon="c")
    for v in ("a", "b", "c"):
        bare[v].attrs = {}
    with pytest.raises(DataError, match=r"no time / lat / lon dim found among dims \(a, b, c\)"):
        find_dims(bare)
    assert find_dims(bare, time_dim="a", lat_dim="b", lon_dim="c") == {
        "time": "a",
        "lat": "b",
        "lon": "c",
    }
    with pytest.raises(ConfigError, match="lat_dim='nope' is not a dim"):
        find_dims(base, lat_dim="nope")


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda p: L.truncated(L.to_nc(L.base_field(), p / "x.nc")), DataError, "truncated"),
        (lambda p: L.garbage(p / "x.nc"), DataError, "cannot read .* as netCDF"),
        (lambda p: L.empty_npy(p / "x.npy"), DataError, r"is empty \(0 bytes\)"),
        (lambda p: L.garbage(p / "x.npy"), DataError, "cannot read .* as NumPy"),
        (lambda p: L.truncated(L.to_npy(L.base_field(), p / "x.npy")), DataError, "NumPy"),
        (lambda p: L.truncated(L.to_npz(L.base_field(), p / "x.npz")), DataError, "NumPy .npz"),
        (lambda p: p / "missing.nc", DataNotFoundError, "no file"),
        (lambda p: L.garbage(p / "x.grib"), DataError, "unknown format '.grib'"),
    ],
)
def test_bad_files_are_one_line(tmp_path, make, error, match):
    path = make(tmp_path)
    with pytest.raises(error, match=match) as info:
        read_fields(path)
    assert "\n" not in str(info.value)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_corrupt_zarr_chunk_is_one_line(base, tmp_path):
    store = L.to_zarr(base, tmp_path / "c.zarr", zarr_format=2)
    L.corrupt_chunk(store)
    with pytest.raises(DataError, match="cannot read t2m from .*corrupt") as info:
        read_fields(store)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- the CLI

TINY = [
    "--model.hid_S", "4", "--model.hid_T", "8", "--model.N_S", "2", "--model.N_T", "1",
    "--model.translator", "convmixer", "--model.quantizer", "none",
    "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
    "--trainer.enable_progress_bar", "false", "--data.batch_size", "2",
]  # fmt: skip


def one_line_error(capsys) -> str:
    """The one ``svqcast: error:`` line on stderr (Lightning may log INFO lines beside it);
    no traceback of the error."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("svqcast: error:")]
    assert len(lines) == 1 and "svqcast.errors" not in err, err
    return lines[0]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("kind", ["empty_npy", "corrupt_zarr"])
def test_fit_on_a_broken_file_is_one_line_and_leaves_no_run(tmp_path, capsys, kind):
    if kind == "empty_npy":
        path = L.empty_npy(tmp_path / "series.npy")
        expected = "is empty (0 bytes)"
    else:
        path = L.to_zarr(L.base_field(), tmp_path / "series.zarr")
        L.corrupt_chunk(path)
        expected = "cannot read t2m from"
    runs = tmp_path / "runs"
    args = ["fit", "--data.dataset", "arrays", "--data.root", str(tmp_path)]
    args += ["--data.options", f"{{path: {path.name}, in_len: 2, out_len: 2}}"]
    rc = main([*args, *TINY, "--runs_dir", str(runs), "--name", "broken"])
    assert rc == 2
    assert expected in one_line_error(capsys)
    assert not (runs / "broken").exists()


def test_data_check_arrays_lists_values_problems(base, tmp_path, capsys):
    L.to_nc(L.with_nan(base), tmp_path / "nan.nc")
    L.to_nc(base, tmp_path / "ok.nc")
    check = ["data", "check", "arrays", "--root", str(tmp_path)]
    assert main([*check, "--option", "path=nan.nc", "--option", "in_len=2"]) == 1
    out = capsys.readouterr().out
    assert (
        out.startswith("- ") and "1 non-finite values; first at (t, c, y, x) = (5, 0, 2, 3)" in out
    )
    short = ["--option", "in_len=2", "--option", "out_len=2"]
    assert main([*check, "--option", "path=nan.nc", "--option", "nan=zero", *short]) == 0
    assert main([*check, "--option", "path=ok.nc", *short]) == 0
    assert capsys.readouterr().out.strip().endswith("arrays: ok")
    assert main([*check, "--option", "path=ok.nc", "--option", "in_len=40"]) == 1
    assert "needs 52" in capsys.readouterr().out
    assert main(check) == 2
    assert "needs option path" in one_line_error(capsys)
    assert main([*check, "--option", "path"]) == 2
    assert "KEY=VALUE" in one_line_error(capsys)


def test_split_dates_in_a_360_day_calendar(tmp_path):
    L.to_nc(L.annual_360(years=1, H=2, W=2), tmp_path / "d.nc")
    s = arrays.load(
        "arrays",
        tmp_path,
        path="d.nc",
        in_len=2,
        out_len=2,
        split_dates=("2000-10-01", "2000-11-30"),
    )
    # 30-day months: October 1st is day 270, November 30th day 329
    assert s.spec.extra["parts"] == {"train": [0, 270], "val": [270, 329], "test": [329, 360]}


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_zarr_behind_an_fsspec_url(base, tmp_path):
    url = "memory://svqcast-test-reader/field.zarr"  # fsspec's in-memory filesystem
    L.cds_names(base).to_zarr(url, zarr_format=2, mode="w", consolidated=True)
    fields = read_fields(url)
    np.testing.assert_array_equal(fields.data[:, 0], base[L.VAR].values)
    assert fields.source == url and fields.dims["lat"] == "latitude"
    s = arrays.load("arrays", tmp_path, path=url, in_len=2, out_len=2)
    assert s.spec.extra["path"] == url and s.spec.time_step == "h"
    with pytest.raises(DataError, match="cannot open memory://nothing.zarr as zarr"):
        read_fields("memory://nothing.zarr")


# --------------------------------------------------------------------------- the step rule


def test_one_calendar_table():
    assert [canonical_calendar(c) for c in ("gregorian", "365_day", "366_day", None)] == [
        "standard",
        "noleap",
        "all_leap",
        "standard",
    ]
    assert canonical_calendar("proleptic_gregorian") == "standard"
    assert same_calendar("proleptic_gregorian", "standard") and same_calendar("NoLeap", "365_day")
    assert not same_calendar("noleap", "360_day") and same_calendar(None, "360_day")
    # times keep the name cftime computes with
    day = cftime.datetime(2000, 1, 1, calendar="proleptic_gregorian")
    assert calendar_of(np.array([day], dtype=object)) == "proleptic_gregorian"
    assert calendar_of(np.array([cftime.datetime(2000, 1, 1, calendar="365_day")])) == "noleap"


@pytest.mark.parametrize(
    "step, calendar, hours",
    [
        ("6h", None, 6.0),
        ("D", "noleap", 24.0),
        ("360D", None, 360 * 24.0),
        ("MS", "360_day", 30 * 24.0),
        ("YS", "360_day", 360 * 24.0),
        ("YS", "365_day", 365 * 24.0),
        ("MS", "standard", None),
        ("YS", None, None),
        ("bogus", None, None),
        (None, None, None),
    ],
)
def test_the_length_of_a_step_in_a_calendar(step, calendar, hours):
    fixed = fixed_step(step, calendar)
    assert (None if fixed is None else fixed.total_seconds() / 3600) == hours
    assert step_seconds(step, calendar) == (None if hours is None else int(hours * 3600))


def test_same_step_and_advance():
    assert same_step("h", "60min") and same_step("D", "24h") and same_step(None, "6h")
    assert not same_step("6h", "D") and not same_step("MS", "bogus")
    t = np.array(["2000-01-31T00", "2000-02-29T00"], dtype="datetime64[ns]")
    assert advance(t, 2, "6h").astype(str).tolist() == [
        "2000-01-31T12:00:00.000000000",
        "2000-02-29T12:00:00.000000000",
    ]
    months = advance(np.array(["2000-01-01"], dtype="datetime64[ns]"), 2, "MS")
    assert str(months[0])[:10] == "2000-03-01"
    d360 = np.array([cftime.datetime(2000, 1, 1, calendar="360_day")], dtype=object)
    assert str(advance(d360, 1, "YS", "360_day")[0])[:10] == "2001-01-01"
