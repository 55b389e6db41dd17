"""arrays: the user's own .npy / .npz / netCDF / zarr series."""

from __future__ import annotations

import numpy as np
import pytest

from svqcast.data.climatology import month_hour_phase
from svqcast.data.datasets import arrays
from svqcast.errors import ConfigError, DataError, DataNotFoundError

T = 100


def ramp(t: int = T, c: int = 2, h: int = 4, w: int = 6) -> np.ndarray:
    """Frame k of channel j holds k + 1000 j (+ a spatial pattern): time is readable."""
    base = np.arange(t)[:, None, None, None] + 1000.0 * np.arange(c)[None, :, None, None]
    return (base + 0.01 * np.arange(h * w).reshape(1, 1, h, w)).astype(np.float32)


def frame_ids(splits, ds, index):
    x, y = ds[index]
    phys = splits.spec.normalizer.denormalize(np.concatenate([x.numpy(), y.numpy()]))
    return np.round(phys[:, 0, 0, 0]).astype(int)


@pytest.fixture
def npy(tmp_path):
    np.save(tmp_path / "series.npy", ramp())
    return tmp_path


def test_npy_chronological_split_and_windows(npy):
    s = arrays.load("arrays", npy, path="series.npy", in_len=3, out_len=2)
    assert s.spec.in_shape == (3, 2, 4, 6) and s.spec.channel_names == ["c0", "c1"]
    assert len(s.train) == 70 - 5 + 1 and len(s.val) == 10 - 5 + 1 and len(s.test) == 20 - 5 + 1
    np.testing.assert_array_equal(frame_ids(s, s.train, 0), [0, 1, 2, 3, 4])
    assert frame_ids(s, s.train, len(s.train) - 1)[-1] == 69
    np.testing.assert_array_equal(frame_ids(s, s.val, 0), [70, 71, 72, 73, 74])
    assert frame_ids(s, s.val, len(s.val) - 1)[-1] == 79
    np.testing.assert_array_equal(frame_ids(s, s.test, 0), [80, 81, 82, 83, 84])


def test_train_only_statistics(tmp_path):
    data = ramp()
    np.save(tmp_path / "a.npy", data)
    data[80:] *= 50  # only the test part changes
    np.save(tmp_path / "b.npy", data)
    a = arrays.load("arrays", tmp_path, path="a.npy", in_len=2, out_len=2)
    b = arrays.load("arrays", tmp_path, path="b.npy", in_len=2, out_len=2)
    np.testing.assert_array_equal(a.spec.normalizer.mean, b.spec.normalizer.mean)
    np.testing.assert_array_equal(a.climatology.mean, b.climatology.mean)
    np.testing.assert_allclose(a.spec.normalizer.mean, ramp()[:70].mean(axis=(0, 2, 3)), 1e-6)


@pytest.mark.parametrize("in_len, out_len, stride", [(1, 1, 1), (5, 10, 3), (8, 8, 7)])
def test_any_lengths_and_stride(npy, in_len, out_len, stride):
    s = arrays.load(
        "arrays",
        npy,
        path="series.npy",
        in_len=in_len,
        out_len=out_len,
        stride=stride,
        split=(0.6, 0.2, 0.2),
    )
    span = in_len + out_len
    assert len(s.train) == len(range(0, 60 - span + 1, stride))
    x, y = s.test[len(s.test) - 1]
    assert x.shape[0] == in_len and y.shape[0] == out_len
    ids = frame_ids(s, s.train, 1)
    assert ids[0] == stride and np.all(np.diff(ids) == 1)


def test_three_dim_array_and_no_times(tmp_path):
    np.save(tmp_path / "g.npy", np.random.default_rng(0).random((40, 8, 8)).astype(np.float32))
    s = arrays.load("arrays", tmp_path, path="g.npy", in_len=2, out_len=2)
    assert s.spec.in_shape == (2, 1, 8, 8)
    assert s.climatology.mean.shape == (1, 1, 8, 8) and s.train.target_phases(0) is None
    assert s.spec.convention == "video" and s.spec.data_range == (0.0, 1.0)  # values in [0, 1]
    assert s.spec.time_step is None


def test_npz_key(tmp_path):
    np.savez(tmp_path / "d.npz", a=ramp(), b=ramp() * 2)
    s = arrays.load("arrays", tmp_path, path="d.npz", key="b", in_len=2, out_len=2)
    assert s.spec.normalizer.mean[0] == pytest.approx(2 * ramp()[:70, 0].mean(), rel=1e-6)
    with pytest.raises(ConfigError, match="holds a, b; pass key="):
        arrays.load("arrays", tmp_path, path="d.npz")
    with pytest.raises(ConfigError, match="no array 'c'"):
        arrays.load("arrays", tmp_path, path="d.npz", key="c")


def test_start_gives_times_and_phases(npy):
    s = arrays.load(
        "arrays",
        npy,
        path="series.npy",
        in_len=2,
        out_len=2,
        start="2020-03-01T00",
        time_step_hours=6,
    )
    assert s.spec.time_step == "6h" and s.spec.convention == "weather"
    times = s.test.target_times(0)
    assert str(times[0]).startswith("2020-03-21T12")  # frame 82: 492 h after start
    np.testing.assert_array_equal(s.test.target_phases(0), month_hour_phase(times))


def _xr_dataset(t: int = 60):
    import xarray as xr

    times = np.datetime64("2021-01-01T00", "ns") + np.arange(t) * np.timedelta64(1, "h")
    base = ramp(t, 1)[:, 0]
    return xr.Dataset(
        {
            "temp": (("valid_time", "latitude", "longitude"), base, {"units": "K"}),
            "wind": (
                ("valid_time", "height", "latitude", "longitude"),
                np.stack([base + 1, base + 2], axis=1),
                {"units": "m s-1"},
            ),
            "mask": (("latitude", "longitude"), np.ones((4, 6))),
        },
        coords={
            "valid_time": times,
            "height": [10, 100],
            "latitude": np.linspace(-10, 10, 4),
            "longitude": np.linspace(0, 50, 6),
        },
    )


XR_DIMS = dict(time_dim="valid_time", lat_dim="latitude", lon_dim="longitude")


@pytest.mark.filterwarnings("ignore:Consolidated metadata")
@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_netcdf_and_zarr_with_named_dims(tmp_path, suffix):
    ds = _xr_dataset()
    path = tmp_path / f"data{suffix}"
    if suffix == ".nc":
        ds.to_netcdf(path, engine="netcdf4")
    else:
        ds.to_zarr(path)
    s = arrays.load("arrays", tmp_path, path=path.name, in_len=2, out_len=3, **XR_DIMS)
    assert s.spec.channel_names == ["temp", "wind_10", "wind_100"]
    assert [c.units for c in s.spec.channels] == ["K", "m s-1", "m s-1"]
    assert s.spec.convention == "weather" and s.spec.time_step == "h"
    np.testing.assert_allclose(s.spec.lat, np.linspace(-10, 10, 4))
    x, _ = s.train[0]
    phys = s.spec.normalizer.denormalize(x.numpy())
    np.testing.assert_allclose(phys[0, :, 0, 0], [0, 1, 2], atol=1e-4)
    assert s.climatology.mean.shape == (288, 3, 4, 6)
    phase = month_hour_phase(np.array(["2021-01-01T05"], dtype="datetime64[h]"))[0]
    same_phase = s.train.data[[5, 29]].numpy().mean(axis=0)  # train = hours 0..41
    np.testing.assert_allclose(s.climatology.mean[phase], same_phase, atol=1e-6)


def test_netcdf_variables_option_and_split_dates(tmp_path):
    _xr_dataset().to_netcdf(tmp_path / "d.nc", engine="netcdf4")
    s = arrays.load(
        "arrays",
        tmp_path,
        path="d.nc",
        variables=["temp"],
        in_len=2,
        out_len=2,
        split_dates=("2021-01-02T00", "2021-01-02T12"),
        **XR_DIMS,
    )
    assert s.spec.channel_names == ["temp"]
    assert s.spec.extra["parts"] == {"train": [0, 24], "val": [24, 36], "test": [36, 60]}
    assert str(s.val.target_times(0)[0]).startswith("2021-01-02T02")


def test_netcdf_cds_names_need_no_options_and_unknown_dims_are_named(tmp_path):
    _xr_dataset().to_netcdf(tmp_path / "d.nc", engine="netcdf4")
    s = arrays.load("arrays", tmp_path, path="d.nc", in_len=2, out_len=2)
    assert s.spec.channel_names == ["temp", "wind_10", "wind_100"]
    assert s.spec.dims == dict(time="valid_time", lat="latitude", lon="longitude", level="height")
    _xr_dataset().rename(valid_time="a", latitude="b", longitude="c").to_netcdf(
        tmp_path / "e.nc", engine="netcdf4"
    )
    with pytest.raises(DataError, match="no time / lat / lon dim found.*time_dim="):
        arrays.load("arrays", tmp_path, path="e.nc")
    with pytest.raises(DataError, match="mask has dims"):
        arrays.load("arrays", tmp_path, path="d.nc", variables="mask", **XR_DIMS)


def test_time_gap_splits_windows(tmp_path):
    ds = _xr_dataset(40)
    times = ds["valid_time"].values.copy()
    times[20:] += np.timedelta64(5, "h")  # a 6-hour hole after frame 19
    ds = ds.assign_coords(valid_time=times)
    ds.to_netcdf(tmp_path / "g.nc", engine="netcdf4")
    s = arrays.load(
        "arrays",
        tmp_path,
        path="g.nc",
        variables="temp",
        in_len=2,
        out_len=2,
        split=(0.75, 0.125, 0.125),
        **XR_DIMS,
    )
    assert len(s.train) == (20 - 3) + (10 - 3)  # no window across the hole


def test_nan_policies(tmp_path):
    data = ramp()
    data[5, 1, 2, 3] = np.nan
    data[9, 0, 0, 0] = np.nan
    np.save(tmp_path / "n.npy", data)
    opts = dict(path="n.npy", in_len=2, out_len=2, start="2020-01-01T00")
    with pytest.raises(DataError, match=r"2 non-finite.*\(5, 1, 2, 3\).*2020-01-01T05"):
        arrays.load("arrays", tmp_path, **opts)
    zero = arrays.load("arrays", tmp_path, nan="zero", **opts)
    assert zero.spec.normalizer.denormalize(zero.train[5][0].numpy())[0, 1, 2, 3] == (
        pytest.approx(0.0, abs=1e-3)
    )
    mean = arrays.load("arrays", tmp_path, nan="mean", **opts)
    assert np.isfinite(mean.train.data.numpy()).all()
    # filled with the channel's training mean, which is then the normaliser's mean: 0
    assert float(mean.train.data[5, 1, 2, 3]) == pytest.approx(0.0, abs=1e-4)
    assert float(mean.train.data[9, 0, 0, 0]) == pytest.approx(0.0, abs=1e-4)
    expected = np.nanmean(data[:70, 1])
    assert mean.spec.normalizer.mean[1] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "opts, error, match",
    [
        (dict(), ConfigError, "needs option path"),
        (dict(path="none.npy"), DataNotFoundError, "no file"),
        (dict(path="series.npy", in_len=40, out_len=40), DataError, "needs 80"),
        (dict(path="series.npy", split=(0.5, 0.5)), ConfigError, "3 fractions"),
        (dict(path="series.npy", nan="drop"), ConfigError, "nan must be"),
        (dict(path="series.npy", split_dates=("2020", "2021")), ConfigError, "time coordinate"),
        (dict(path="series.npy", colour=1), ConfigError, "valid: path"),
    ],
)
def test_errors(npy, opts, error, match):
    with pytest.raises(error, match=match):
        arrays.load("arrays", npy, **opts)


def test_wrong_ndim(tmp_path):
    np.save(tmp_path / "v.npy", np.zeros((10, 4)))
    with pytest.raises(DataError, match=r"expected \(T, C, H, W\)"):
        arrays.load("arrays", tmp_path, path="v.npy")


def test_openstl_protocol(npy):
    s = arrays.load("arrays", npy, path="series.npy", in_len=2, out_len=2, protocol="openstl")
    assert s.val is s.test and len(s.train) == 80 - 4 + 1
