"""svqcast.forecast and `svqcast predict`: every layout of one field gives the forecast of the
checkpoint's own layout, bit for bit; what cannot be mapped is refused naming both sides."""

from __future__ import annotations

from pathlib import Path

import layouts as L
import numpy as np
import pytest
import torch
import xarray as xr

from svqcast.cli import main
from svqcast.data.gridded.identity import grid_permutation, match
from svqcast.data.gridded.reader import open_dataset, read_fields
from svqcast.data.gridded.units import conversion
from svqcast.data.spec import Channel, DataSpec, Normalizer
from svqcast.errors import DataError
from svqcast.inference.forecast import forecast, load_module
from svqcast.training.module import ForecastModule

IN, OUT = 4, 3
TINY = dict(hid_S=4, hid_T=8, N_S=2, N_T=2, translator="gsta")


def make_module(**spec_changes) -> ForecastModule:
    """A randomly initialised tiny module whose DataSpec is the base field's identity (the
    same weights for every spec with the same channel count)."""
    lat, lon = L.grid()
    spec = DataSpec(
        name="t2m",
        in_len=IN,
        out_len=OUT,
        channels=(Channel("t2m", "K", variable="t2m"),),
        height=8,
        width=16,
        convention="weather",
        normalizer=Normalizer([275.0], [10.0]),
        lat=lat,
        lon=lon,
        time_step="h",
        calendar="standard",
    )
    for key, value in spec_changes.items():
        setattr(spec, key, value)
    torch.manual_seed(0)
    return ForecastModule(**TINY, spec=spec.to_dict()).eval()


@pytest.fixture(scope="session")
def base():
    return L.base_field()


@pytest.fixture(scope="session")
def module():
    return make_module()


@pytest.fixture(scope="session")
def canonical(module, base):
    return forecast(module, base, windows="all")


@pytest.fixture(scope="session")
def one_by_one(module, base):
    """The canonical forecast one window a batch: what a window gives whatever the others
    (CPU kernels may round differently for other batch sizes)."""
    return forecast(module, base, windows="all", batch_size=1)


@pytest.fixture(scope="session")
def ckpt(module, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "best.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


def to_base(out: xr.Dataset) -> xr.DataArray:
    """The forecast of t2m mapped back to the base layout (names, lon 0..360, ascending)."""
    dims = {"latitude": "lat", "longitude": "lon", "y": "lat", "x": "lon"}
    da = out[L.VAR].rename({k: v for k, v in dims.items() if k in out[L.VAR].dims})
    da = da.assign_coords(lon=np.mod(da["lon"].values, 360.0)).sortby("lat").sortby("lon")
    return da.transpose("time", "prediction_timedelta", "lat", "lon")


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("svqcast: error: ") and "\n" not in err, err
    return err


# ----------------------------------------------------------------------------- units, grid


def test_units_conversion():
    assert conversion("K", "K") == (1.0, 0.0)
    assert conversion("K", "degC") == (1.0, -273.15)
    assert conversion("degrees_Celsius", "K") == (1.0, 273.15)
    assert conversion("m s-1", "m/s") == (1.0, 0.0)
    assert conversion("%", "1") == (0.01, 0.0)
    scale, offset = conversion("km h-1", "m s-1")
    assert offset == 0.0 and scale == pytest.approx(1 / 3.6, rel=1e-15)
    assert conversion("K", "m s-1") is None
    assert conversion("furlongs per gizmo", "K") is None


def test_grid_permutation_maps_orders_and_conventions():
    lat, lon = L.grid()
    cases = [(lat[::-1], lon), (lat, ((lon + 180) % 360) - 180), (lat, np.roll(lon, -4) + 360)]
    for in_lat, in_lon in cases:
        ilat, ilon = grid_permutation(lat, lon, in_lat, in_lon, where="x")
        assert np.array_equal(in_lat[ilat], lat)
        assert np.allclose(np.mod(in_lon[ilon], 360), lon, rtol=0, atol=1e-9)
    with pytest.raises(DataError, match=r"lon: checkpoint 16 values 0..337.5 step 22.5 vs input "
                       r"16 values 1..338.5 step 22.5"):  # fmt: skip
        grid_permutation(lat, lon, lat, lon + 1, where="x")
    third = np.arange(-60, 60, 1 / 3)  # a 1/3 degree grid with float32 coordinates
    ilat, _ = grid_permutation(third, lon, third.astype(np.float32)[::-1], lon, where="x")
    assert np.array_equal(ilat, np.arange(third.size)[::-1])
    with pytest.raises(DataError, match=r"lat: .*\(8 vs 4 points\)"):
        grid_permutation(lat, lon, lat[::2], lon, where="x")


# ----------------------------------------------------------------------------- layout


def test_canonical_forecast_is_the_model_on_the_windows(module, base, canonical, one_by_one):
    out = canonical
    assert out[L.VAR].dims == ("time", "prediction_timedelta", "lat", "lon")
    times = base["time"].values
    assert np.array_equal(out["time"].values, times[IN - 1 :])
    assert np.array_equal(
        out["prediction_timedelta"].values, np.arange(1, OUT + 1) * np.timedelta64(1, "h")
    )
    assert np.array_equal(out["valid_time"].values[0], times[IN : IN + OUT])
    assert out[L.VAR].attrs == {"units": "K", "long_name": "2 metre temperature"}
    assert out["lat"].attrs["standard_name"] == "latitude"
    assert out.attrs["checkpoint"] == "(in-memory module)" and out.attrs["windows"] == 45
    x = module.spec.normalizer.normalize(base[L.VAR].values[:, None]).astype(np.float32)
    x = torch.from_numpy(np.stack([x[s : s + IN] for s in range(len(x) - IN + 1)]))
    with torch.no_grad():  # the same batches as forecast(): a batch of 16 windows
        want = module.predict_step(x[:16], 0).numpy()[:, :, 0]
    assert np.array_equal(out[L.VAR].values[:16], want)
    last = forecast(module, base)  # windows="last"
    assert np.array_equal(last[L.VAR].values, one_by_one[L.VAR].values[-1:])
    assert np.abs(one_by_one[L.VAR].values - out[L.VAR].values).max() < 1e-3


VARIANTS = [L.descending_lat, L.lon_180, L.shifted_lon, L.cds_names, L.axis_only_names, L.dim_order]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda f: f.__name__)
def test_every_layout_gives_the_same_forecast(module, base, canonical, variant):
    src = variant(base)
    out = forecast(module, src, windows="all")
    assert np.array_equal(to_base(out).values, canonical[L.VAR].values)
    # the input's own names and order of values come back
    var_dims = [d for d in src[L.VAR].dims if d not in ("time", "valid_time", "t")]
    assert list(out[L.VAR].dims) == ["time", "prediction_timedelta", *var_dims]
    for d in var_dims:
        assert np.array_equal(out[d].values, src[d].values)
        assert out[d].attrs == src[d].attrs


def test_packed_int16_equals_its_decoded_values(module, tmp_path):
    path = L.to_nc(L.packed_int16(L.base_field()), tmp_path / "packed.nc")
    with xr.open_dataset(path) as ds:
        decoded = ds.load()
    assert decoded[L.VAR].encoding["dtype"] == np.int16
    from_file = forecast(module, path, windows="all")
    assert np.array_equal(from_file[L.VAR].values, forecast(module, decoded, windows="all")[L.VAR])
    assert from_file.attrs["source"] == str(path)


def test_celsius_input_gives_the_kelvin_forecast_in_celsius(module, base, canonical):
    out = forecast(module, L.deg_c(base), windows="all")
    assert out[L.VAR].attrs["units"] == "degC"
    diff = np.abs(out[L.VAR].values - (canonical[L.VAR].values - 273.15))
    assert diff.max() < 1e-4


@pytest.mark.parametrize("fmt", [2, 3])
def test_zarr_input(module, base, canonical, tmp_path, fmt):
    path = L.to_zarr(L.descending_lat(base), tmp_path / "in.zarr", zarr_format=fmt)
    out = forecast(module, path, windows="all")
    assert np.array_equal(to_base(out).values, canonical[L.VAR].values)


def test_npy_input_is_matched_by_shape(module, one_by_one, tmp_path):
    path = L.to_npy(L.base_field(), tmp_path / "series.npy")
    out = forecast(module, path)
    assert np.array_equal(out[L.VAR].values, one_by_one[L.VAR].values[-1:])
    assert np.array_equal(out["lat"].values, module.spec.lat)
    assert out["time"].values.tolist() == [47]  # the last input frame's index
    assert out[L.VAR].attrs["units"] == "K"


def test_360_day_calendar(module, base, canonical, tmp_path):
    m360 = make_module(calendar="360_day")
    m360.load_state_dict(module.state_dict())
    out = forecast(m360, L.cal_360(base), windows="all")
    assert np.array_equal(out[L.VAR].values, canonical[L.VAR].values)
    assert out["time"].values[0].calendar == "360_day"
    assert str(out["time"].values[0]) == "2000-01-01 03:00:00"
    out.to_netcdf(tmp_path / "fc.nc")  # cftime dates are written and read back as such
    with open_dataset(tmp_path / "fc.nc") as ds:
        assert ds["time"].values[0] == out["time"].values[0]
        assert np.array_equal(ds["valid_time"].values, out["valid_time"].values)
    assert np.array_equal(out["prediction_timedelta"].values, canonical["prediction_timedelta"])
    # annual steps: 360 days in this calendar
    yearly = make_module(calendar="360_day", time_step="YS-JAN")
    out = forecast(yearly, L.cal_360(base, freq="YS"))
    days = out["prediction_timedelta"].values / np.timedelta64(1, "D")
    assert days.tolist() == [360.0, 720.0, 1080.0]
    assert str(out["valid_time"].values[0, 0]) == "2048-01-01 00:00:00"


def test_monthly_steps_on_the_standard_calendar_are_counted(base):
    monthly = make_module(time_step="MS")
    times = xr.date_range("2000-01-01", periods=48, freq="MS").values
    out = forecast(monthly, base.assign_coords(time=("time", times)))
    assert out["prediction_timedelta"].values.tolist() == [1, 2, 3]
    assert out["prediction_timedelta"].attrs["units"] == "steps of MS"
    valid = out["valid_time"].values[0]
    assert [str(v)[:10] for v in valid] == ["2004-01-01", "2004-02-01", "2004-03-01"]


def test_levels_come_back_as_a_level_dim(base):
    spec_ch = (
        Channel("t_850", "K", "t", 850),
        Channel("t2m", "K", "t2m"),
        Channel("t_500", "K", "t", 500),
    )
    m = make_module(channels=spec_ch, normalizer=Normalizer([250.0, 275, 270.0], [10.0] * 3))
    src = L.with_level(base)
    out = forecast(m, src, windows="all")
    assert list(out.data_vars) == ["t", "t2m"]
    assert out["t2m"].dims == ("time", "prediction_timedelta", "lat", "lon")
    assert out["t"].dims == ("time", "prediction_timedelta", "level", "lat", "lon")
    assert out["level"].values.tolist() == [500, 850]  # the input's order
    assert out["level"].attrs["units"] == "hPa"
    cds = forecast(m, L.cds_names(L.descending_lat(src)), windows="all")
    assert cds["t"].dims == ("time", "prediction_timedelta", "pressure_level", "latitude",
                             "longitude")  # fmt: skip
    flipped = cds["t"].isel(latitude=slice(None, None, -1)).values
    assert np.array_equal(flipped, out["t"].values)


# ----------------------------------------------------------------------------- refusals


def refused(module, ds, fragment: str, **kw):
    with pytest.raises(DataError) as info:
        forecast(module, ds, **kw)
    assert fragment in str(info.value) and "\n" not in str(info.value), str(info.value)
    return str(info.value)


def test_refusals_name_both_sides(module, base):
    refused(module, L.other_grid(base), "lat: checkpoint 8 values -78.75..78.75 step 22.5 vs "
            "input 8 values -77.75..79.75 step 22.5")  # fmt: skip
    refused(module, L.coarser(base), "(8 vs 4 points)")
    refused(module, L.other_units(base), "units of t2m: checkpoint 'K' vs input 'm s-1'")
    no_units = base.copy()
    no_units[L.VAR] = base[L.VAR].copy()
    no_units[L.VAR].attrs = {}
    refused(module, no_units, "set the units attribute")
    six = base.assign_coords(time=base["time"].values[0] + np.arange(48) * np.timedelta64(6, "h"))
    refused(module, six, "time step: checkpoint h vs input 6h")
    refused(module, L.cal_360(base), "calendar: checkpoint standard vs input 360_day")
    refused(module, base.rename({L.VAR: "u10"}), "missing t2m the checkpoint was trained on; "
            "the input has u10")  # fmt: skip
    refused(module, L.with_nan(base), "1 NaN/inf value(s)", windows="all")


def test_times_sorted_unique_on_the_step(module, base, one_by_one):
    refused(module, L.unsorted(base), "2020-01-01T10:00:00")
    refused(module, L.duplicated_time(base), "2020-01-01T10:00:00")
    refused(module, L.irregular(base), "2020-01-01T10:15:00", windows="all")
    # windows="last" reads the last in_len + 2 steps of sorted times only
    assert np.array_equal(forecast(module, L.irregular(base))[L.VAR], one_by_one[L.VAR][-1:])
    refused(module, L.irregular(base, index=46), "time[46] = 2020-01-02T22:15:00")
    ok = forecast(module, L.irregular(base, index=20), time_tolerance=0.3)
    assert np.array_equal(ok[L.VAR].values, one_by_one[L.VAR].values[-1:])
    # a NaN outside the frames forecast from does not matter
    assert np.array_equal(forecast(module, L.with_nan(base))[L.VAR], one_by_one[L.VAR][-1:])


def test_windows_all_skips_windows_across_a_gap(module, base, one_by_one):
    out = forecast(module, L.gap(base, index=10), windows="all", batch_size=1)
    # the 4 windows that would contain step 10 are gone: 1 with it, 3 across the gap
    times = base["time"].values
    gone = set(times[10 : 10 + IN].tolist())
    assert out["time"].values.tolist() == [t for t in times[IN - 1 :].tolist() if t not in gone]
    want = one_by_one.sel(time=out["time"].values)
    assert np.array_equal(out[L.VAR].values, want[L.VAR].values)
    refused(module, L.gap(base, index=46), "not consecutive steps of h (gap after 2020-01-02T21")
    # only the file's last 6 frames are read for windows="last"; here none of their 4-frame
    # windows is consecutive, yet the file has many: the message must still name the gap
    refused(module, L.gap(base, index=44), "not consecutive steps of h (gap after 2020-01-02T19")
    sparse = base.isel(time=slice(None, None, 2)).assign_coords(time=base["time"].values[:24])
    sparse = sparse.isel(time=[0, 1, 2, 4, 5, 6, 8, 9, 10])  # 3 steps, then a gap, ...
    refused(module, sparse, "no 4 consecutive steps of h", windows="all")


def test_progress_bar(module, base, one_by_one, capsys):
    out = forecast(module, base, progress=True)
    assert "forecast" in capsys.readouterr().err
    assert np.array_equal(out[L.VAR].values, one_by_one[L.VAR].values[-1:])


def test_variables_with_other_names_are_paired_when_named(module, base, canonical):
    renamed = base.rename({L.VAR: "2m_temperature"})
    out = forecast(module, renamed, windows="all", variables=["2m_temperature"])
    assert np.array_equal(out["2m_temperature"].values, canonical[L.VAR].values)
    bad = L.other_units(base).rename({L.VAR: "si10"})
    refused(module, bad, "checkpoint 'K' vs input 'm s-1'", variables="si10")


def test_match_maps_to_model_and_back(module, base):
    fields = read_fields(L.lon_180(L.descending_lat(L.deg_c(base))))
    m = match(module.spec, fields)
    x = m.to_model(fields.data)
    assert np.abs(x - base[L.VAR].values[:, None]).max() < 1e-4
    back = m.to_source(x)
    assert np.abs(back - fields.data).max() < 1e-4


# ----------------------------------------------------------------------------- svqcast predict


def predict(ckpt, src, out, *extra) -> int:
    return main(["predict", "--ckpt", str(ckpt), "--input", str(src), "--output", str(out), *extra])


@pytest.mark.parametrize("suffix", [".nc", ".zarr", ".npy"])
def test_predict_writes_the_wb2_layout(ckpt, canonical, tmp_path, suffix, capsys):
    src = L.to_nc(L.cds_names(L.descending_lat(L.base_field())), tmp_path / "in.nc")
    out = tmp_path / f"fc{suffix}"
    assert predict(ckpt, src, out, "--windows", "all") == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    if suffix == ".npy":
        arr = np.load(out)
        assert arr.shape == (45, OUT, 1, 8, 16)
        assert np.array_equal(arr[:, :, 0, ::-1], canonical[L.VAR].values)
        return
    with xr.open_dataset(out, engine=None if suffix == ".nc" else "zarr") as ds:
        assert ds[L.VAR].dims == ("time", "prediction_timedelta", "latitude", "longitude")
        assert ds[L.VAR].attrs["units"] == "K"
        assert ds["latitude"].attrs["standard_name"] == "latitude"
        assert ds.attrs["checkpoint"] == str(ckpt) and ds.attrs["source"] == str(src)
        assert ds["prediction_timedelta"].values[0] == np.timedelta64(1, "h")
        assert np.array_equal(ds[L.VAR].values[:, :, ::-1], canonical[L.VAR].values)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.nc", out.name])


def test_predict_refuses_bad_inputs_in_one_line(ckpt, tmp_path, capsys):
    base = L.base_field()
    bad = {
        "garbage.nc": lambda p: L.garbage(p),
        "truncated.nc": lambda p: L.truncated(L.to_nc(base, p)),
        "empty.nc": lambda p: L.empty_npy(p),
        "garbage.npy": lambda p: L.garbage(p),
        "truncated.npy": lambda p: L.truncated(L.to_npy(base, p)),
        "empty.npy": lambda p: L.empty_npy(p),
    }
    for name, make in bad.items():
        src = make(tmp_path / name)
        assert predict(ckpt, src, tmp_path / "out.nc") == 2, name
        assert name in one_line_error(capsys)
    assert not (tmp_path / "out.nc").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(bad)  # nothing half-written


def test_predict_checks_the_output_before_the_work(ckpt, tmp_path, capsys):
    src = L.to_nc(L.base_field(), tmp_path / "in.nc")
    for out, fragment in [
        ("/proc/forecast.nc", "cannot write in /proc"),
        (tmp_path / "missing" / "fc.nc", "does not exist"),
        (tmp_path / "fc.csv", "use a .nc, .zarr, .npy name"),
    ]:
        # a missing checkpoint would fail later: the output is checked first
        assert predict(tmp_path / "no.ckpt", src, out) == 2
        assert fragment in one_line_error(capsys)
    assert predict(tmp_path / "no.ckpt", src, tmp_path / "fc.nc") == 2
    assert "does not exist; pass a run's best.ckpt" in one_line_error(capsys)


def test_time_tolerance_option(ckpt, tmp_path, capsys):
    src = L.to_nc(L.irregular(L.base_field(), index=20), tmp_path / "in.nc")
    assert predict(ckpt, src, tmp_path / "a.nc", "--windows", "all") == 2
    assert "accept with time_tolerance" in one_line_error(capsys)
    assert predict(ckpt, src, tmp_path / "a.nc", "--windows", "all", "--time-tolerance", "0.3") == 0


def test_a_checkpoint_with_time_step_hours_still_forecasts(module, ckpt, base, canonical, tmp_path):
    # saved before time_step existed: the spec's step in hours only, converted at load
    saved = torch.load(ckpt, weights_only=False)
    spec = dict(saved["hyper_parameters"]["spec"])
    del spec["time_step"]
    spec["time_step_hours"] = 1.0
    saved["hyper_parameters"] = {**saved["hyper_parameters"], "spec": spec}
    old = tmp_path / "old.ckpt"
    torch.save(saved, old)
    loaded = load_module(old)
    assert loaded.spec.time_step == "h" and loaded.spec.first_difference(module.spec) is None
    out = forecast(old, base, windows="all")
    assert np.array_equal(out[L.VAR].values, canonical[L.VAR].values)
    refused(loaded, base.isel(time=slice(None, None, 2)), "time step: checkpoint h vs input 2h")


def test_forecast_is_exported():
    import svqcast

    assert svqcast.forecast is forecast
