"""Lazy WeatherBench-1 netCDF (option ``lazy``): the same windows and statistics as the
eager path, to the bit, with windows read on demand and statistics streamed and cached."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from weather_files import LAT, LON, tiny_fit_args, write_var

from svqcast.cli import main
from svqcast.commands import data as commands
from svqcast.data import streaming
from svqcast.data.datasets import weather, weather_lazy
from svqcast.data.windows import ArrayWindows
from svqcast.errors import ConfigError, DataError, DataNotFoundError, one_line

YEARS = dict(train_years=(2010, 2011), val_years=(2012, 2012), test_years=(2013, 2013))
SMALL = dict(in_len=3, out_len=2, **YEARS)


@pytest.fixture(scope="module")
def uv_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("uv")
    write_var(root, "10m_u_component_of_wind", "u10", range(2010, 2014), 30)
    write_var(root, "10m_v_component_of_wind", "v10", range(2010, 2014), 30, offset=7.0)
    return root


def assert_same_splits(eager, lazy) -> None:
    """Every window of every split, its target times and phases, equal to the bit."""
    assert isinstance(eager.train, ArrayWindows)
    assert isinstance(lazy.train, weather_lazy.NetcdfWindows)
    np.testing.assert_array_equal(eager.spec.normalizer.mean, lazy.spec.normalizer.mean)
    np.testing.assert_array_equal(eager.spec.normalizer.std, lazy.spec.normalizer.std)
    np.testing.assert_array_equal(eager.climatology.mean, lazy.climatology.mean)
    assert eager.spec.channels == lazy.spec.channels
    assert eager.spec.first_difference(lazy.spec) is None
    for what in ("dims", "attrs", "calendar", "time_step"):
        assert getattr(eager.spec, what) == getattr(lazy.spec, what), what
    for split in ("train", "val", "test"):
        a, b = getattr(eager, split), getattr(lazy, split)
        assert len(a) == len(b) > 0
        np.testing.assert_array_equal(a.starts, b.starts)
        for i in range(len(a)):
            (xa, ya), (xb, yb) = a[i], b[i]
            assert xa.dtype == xb.dtype == torch.float32
            assert torch.equal(xa, xb) and torch.equal(ya, yb), (split, i)
            np.testing.assert_array_equal(a.target_times(i), b.target_times(i))
            np.testing.assert_array_equal(a.target_phases(i), b.target_phases(i))
        b.close()  # the files may be rewritten next


def test_two_fields_lazy_equals_eager_and_physical_statistics(uv_root):
    eager = weather.load("weather_uv10", uv_root, lazy=False, **SMALL)
    lazy = weather.load("weather_uv10", uv_root, lazy=True, cache=False, **SMALL)
    assert_same_splits(eager, lazy)
    assert (eager.spec.extra["lazy"], lazy.spec.extra["lazy"]) == (False, True)
    # the normaliser against NumPy float64 over the raw train values
    raw, _, _, _ = weather.read_series(uv_root, "weather_uv10", YEARS["train_years"])
    raw = raw.astype(np.float64)
    np.testing.assert_allclose(lazy.spec.normalizer.mean, raw.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(lazy.spec.normalizer.std, raw.std(axis=(0, 2, 3)), rtol=1e-9)


def test_levels_six_hourly_and_openstl_indexing_lazy_equals_eager(tmp_path):
    for i, (d, v) in enumerate([("relative_humidity", "r"), ("temperature", "t")]):
        write_var(tmp_path, d, v, range(2000, 2003), 96, [50, 150, 500, 850], offset=1e4 * i)
    opts = dict(train_years=2000, val_years=2001, test_years=2002, levels=[850, 150])
    weather.DATASETS["weather_rt"] = weather.WeatherSet(
        "r and t (test only)", weather.DATASETS["weather_mv"].fields[:2], (150, 500), 2, 2, 6
    )
    try:
        for extra in ({}, {"openstl_mv_indexing": False, "stride": 3}):
            eager = weather.load("weather_rt", tmp_path, lazy=False, **opts, **extra)
            lazy = weather.load("weather_rt", tmp_path, lazy="true", cache=False, **opts, **extra)
            assert lazy.spec.channel_names == ["r850", "r150", "t850", "t150"]
            assert_same_splits(eager, lazy)
    finally:
        del weather.DATASETS["weather_rt"]
    write_var(tmp_path, "u_component_of_wind", "u", range(2000, 2003), 96, [150, 500, 850])
    write_var(tmp_path, "v_component_of_wind", "v", range(2000, 2003), 96, [150, 500, 850])
    mv = dict(train_years=2000, val_years=2001, test_years=2002, openstl_mv_indexing=True)
    mv.update(in_len=2, out_len=2)
    assert_same_splits(
        weather.load("weather_mv", tmp_path, lazy=False, **mv),
        weather.load("weather_mv", tmp_path, lazy=True, cache=False, **mv),
    )


def write_packed(root, years, hours=30, fill_at=None):
    """t2m year files packed as int16 with scale_factor / add_offset / _FillValue."""
    import xarray as xr

    for year in years:
        path = weather.file_path(root, weather.DATASETS["weather_t2m"].fields[0], year)
        path.parent.mkdir(parents=True, exist_ok=True)
        times = np.datetime64(f"{year}-01-01T00", "ns") + np.arange(hours) * np.timedelta64(1, "h")
        values = 250 + 40 * np.random.default_rng(year).random((hours, 32, 64))
        if fill_at is not None and year == fill_at[0]:
            values[fill_at[1], 3, 4] = np.nan  # written as _FillValue, decoded to NaN
        ds = xr.Dataset(
            {"t2m": (("time", "lat", "lon"), values, {"units": "K"})},
            coords={"time": times, "lat": LAT, "lon": LON},
        )
        enc = {"dtype": "int16", "scale_factor": 0.002, "add_offset": 270.0, "_FillValue": -32767}
        ds.to_netcdf(path, engine="netcdf4", encoding={"t2m": enc})


def test_packed_int16_decodes_as_in_the_eager_path(tmp_path):
    import netCDF4

    write_packed(tmp_path, range(2010, 2014))
    path = weather.file_path(tmp_path, weather.DATASETS["weather_t2m"].fields[0], 2011)
    with netCDF4.Dataset(path) as nc:
        assert nc["t2m"].dtype == np.int16 and nc["t2m"].scale_factor == pytest.approx(0.002)
    eager = weather.load("weather_t2m", tmp_path, lazy=False, **SMALL)
    lazy = weather.load("weather_t2m", tmp_path, lazy=True, cache=False, **SMALL)
    assert_same_splits(eager, lazy)
    # a _FillValue in a test file: eager refuses at load, lazy when the window is read
    write_packed(tmp_path, [2013], fill_at=(2013, 6))
    with pytest.raises(DataError, match="2013_5.625deg.nc: 1 non-finite"):
        weather.load("weather_t2m", tmp_path, lazy=False, **SMALL)
    lazy = weather.load("weather_t2m", tmp_path, lazy=True, cache=False, **SMALL)
    lazy.test[10]  # frames 10..14: no fill value
    with pytest.raises(DataError, match=r"2013_5.625deg.nc: 1 non-finite .*\(2, 0, 3, 4\)"):
        lazy.test[4]  # frames 4..8 hold frame 6


def test_windows_across_year_files_and_streamed_in_small_blocks(tmp_path, monkeypatch):
    """Files of consecutive years that join without a gap (31 Dec -> 1 Jan): windows span
    two files, and a statistics pass in 7-frame blocks still equals the eager path."""
    import xarray as xr

    field = weather.DATASETS["weather_t2m"].fields[0]
    for year in range(2010, 2015):
        times = np.datetime64(f"{year}-12-31T12", "h") + np.arange(12)  # 12 h to midnight
        if year > 2010:  # and the first 10 hours of the year: no gap from the file before
            times = np.concatenate([np.datetime64(f"{year}-01-01T00", "h") + np.arange(10), times])
        path = weather.file_path(tmp_path, field, year)
        path.parent.mkdir(parents=True, exist_ok=True)
        values = np.random.default_rng(year).standard_normal((len(times), 32, 64)) + 280
        ds = xr.Dataset(
            {"t2m": (("time", "lat", "lon"), values.astype(np.float32), {"units": "K"})},
            coords={"time": times.astype("datetime64[ns]"), "lat": LAT, "lon": LON},
        )
        ds.to_netcdf(path, engine="netcdf4")
    opts = dict(in_len=3, out_len=3, train_years=(2010, 2012), val_years=2013, test_years=2014)
    monkeypatch.setattr(streaming, "CHUNK_BYTES", 7 * 32 * 64 * 8)
    reads = []
    real = weather_lazy.read_block

    def spy(handles, row, frames):
        reads.append((row[0].path[-16:-12], len(frames)))
        return real(handles, row, frames)

    monkeypatch.setattr(weather_lazy, "read_block", spy)
    lazy = weather.load("weather_t2m", tmp_path, lazy=True, cache=False, **opts)
    # the pass: 12, 22, 22 frames of 2010, 2011, 2012, at most 7 per read
    assert reads == [("2010", 7), ("2010", 5), *[("2011", n) for n in (7, 7, 7, 1)]] + [
        ("2012", n) for n in (7, 7, 7, 1)
    ]
    eager = weather.load("weather_t2m", tmp_path, lazy=False, **opts)
    assert_same_splits(eager, lazy)
    span = [
        i
        for i in range(len(lazy.train))
        if len(set(lazy.train.year[lazy.train.frame_indices(i)])) > 1
    ]
    assert span  # some windows read from two year files
    reads.clear()
    lazy.train[span[0]]
    assert [n for _, n in reads] and sum(n for _, n in reads) == 6


def test_a_window_reads_only_its_slice_and_holds_no_data(uv_root, tmp_path, monkeypatch):
    import shutil

    shutil.copytree(uv_root, tmp_path, dirs_exist_ok=True)
    splits = weather.load("weather_uv10", tmp_path, lazy=True, cache=False, **SMALL)
    for part in (splits.train, splits.val, splits.test):
        arrays = [v for v in vars(part).values() if isinstance(v, np.ndarray)]
        assert max(a.nbytes for a in arrays) < 32 * 64 * 4  # indices, never a frame
    seen = []
    real = weather_lazy.read_block
    monkeypatch.setattr(
        weather_lazy, "read_block", lambda h, row, f: seen.append(f.tolist()) or real(h, row, f)
    )
    index = splits.train.starts.tolist().index(30)  # the first window of 2011
    x, y = splits.train[index]
    assert seen == [[0, 1, 2, 3, 4]]  # positions in the 2011 files, nothing else
    # every file but the 2011 ones gone: that window still reads, a 2010 window cannot
    for path in tmp_path.rglob("*.nc"):
        if "_2011_" not in path.name:
            path.unlink()
    clone = pickle.loads(pickle.dumps(splits.train))
    assert clone._handles is None and splits.train._handles is not None
    x2, y2 = clone[index]
    assert torch.equal(x, x2) and torch.equal(y, y2)
    with pytest.raises(DataNotFoundError, match="2010_5.625deg.nc"):
        clone[0]
    # at most open_files year files open: windows of two years through one handle
    one = weather.load("weather_uv10", uv_root, lazy=True, open_files=1, cache=False, **SMALL)
    first, last = one.train[0], one.train[len(one.train) - 1]
    assert list(one.train._handles.open) == [one.train.files[1][1].path]  # 2011's v10 only
    assert torch.equal(one.train[0][0], first[0]) and torch.equal(one.train[-1][1], last[1])
    for bad in (0, "x", 2.5):
        with pytest.raises(ConfigError, match=r"open_files=.* integer >= 1"):
            weather.load("weather_uv10", uv_root, lazy=True, open_files=bad, **SMALL)
    for key, bad in (("in_len", "abc"), ("stride", 0), ("out_len", "1.5")):
        with pytest.raises(ConfigError, match=rf"option {key}=.* integer >= 1"):
            weather.load("weather_uv10", uv_root, **{**SMALL, key: bad})
    with pytest.raises(ConfigError, match=r"option levels='x' of weather_r"):
        weather.load("weather_r", uv_root, levels=["500", "x"])


def test_statistics_cached_under_the_root_and_invalidated_by_a_new_file(uv_root, tmp_path):
    import shutil

    shutil.copytree(uv_root, tmp_path, dirs_exist_ok=True)
    first = weather.load("weather_uv10", tmp_path, lazy=True, **SMALL)
    cached = first.spec.extra["stats_cache"]
    assert cached.startswith(str(tmp_path / ".svqcast" / "weather"))
    meta = json.loads(open(cached).read())
    meta["normalizer"]["mean"] = [1.0, 2.0]
    open(cached, "w").write(json.dumps(meta))
    assert weather.load(
        "weather_uv10", tmp_path, lazy=True, **SMALL
    ).spec.normalizer.mean.tolist() == [1.0, 2.0]
    write_var(tmp_path, "10m_u_component_of_wind", "u10", [2011], 30, offset=100.0)
    again = weather.load("weather_uv10", tmp_path, lazy=True, **SMALL)
    assert again.spec.extra["stats_cache"] != cached
    assert again.spec.normalizer.mean[0] == pytest.approx(first.spec.normalizer.mean[0] + 50)
    assert not list(tmp_path.rglob("*.tmp"))


def test_data_check_with_lazy_writes_the_cache_a_load_then_reads(uv_root, tmp_path, monkeypatch):
    """`svqcast data check NAME --option lazy=true` (training.md's one-process pass before a
    multi-node job) writes the lazy statistics; a later load reads them without a pass."""
    import shutil

    shutil.copytree(uv_root, tmp_path, dirs_exist_ok=True)
    text = {k: str(list(v)) if isinstance(v, tuple) else str(v) for k, v in SMALL.items()}
    assert commands.check("weather_uv10", tmp_path, {**text, "lazy": "false"}) == []
    assert not (tmp_path / ".svqcast").exists()  # eager: nothing to cache
    assert commands.check("weather_uv10", tmp_path, {**text, "lazy": "true"}) == []
    entries = sorted((tmp_path / ".svqcast" / "weather").glob("*.json"))
    assert len(entries) == 1
    passes, real = [], streaming.StreamingStats.add
    monkeypatch.setattr(
        streaming.StreamingStats,
        "add",
        lambda self, *a, **k: passes.append(1) or real(self, *a, **k),
    )
    loaded = weather.load("weather_uv10", tmp_path, lazy=True, **SMALL)
    assert passes == [] and loaded.spec.extra["stats_cache"] == str(entries[0])


def test_auto_follows_the_estimated_size(uv_root, monkeypatch):
    need = weather_lazy.estimated_bytes(
        weather.DATASETS["weather_uv10"], uv_root, {"a": (2010, 2011), "b": (2012, 2013)},
        (), "5.625",
    )  # fmt: skip
    assert need == 4 * 30 * 2 * 32 * 64 * 4  # 4 years of 30 frames, 2 channels, float32
    monkeypatch.setattr(weather_lazy, "available_bytes", lambda: 4 * need)
    monkeypatch.setattr(weather, "available_bytes", lambda: 4 * need - 4)
    assert weather.load("weather_uv10", uv_root, cache=False, **SMALL).spec.extra["lazy"]
    monkeypatch.setattr(weather, "available_bytes", lambda: 4 * need)
    assert not weather.load("weather_uv10", uv_root, lazy="auto", **SMALL).spec.extra["lazy"]
    assert weather.check_values("weather_uv10", uv_root, lazy=True, **SMALL) == []
    with pytest.raises(ConfigError, match="lazy must be true, false or auto"):
        weather.load("weather_uv10", uv_root, lazy="sometimes", **SMALL)


def test_bad_files_are_one_line_errors_naming_the_file(uv_root, tmp_path, monkeypatch):
    import shutil

    shutil.copytree(uv_root, tmp_path, dirs_exist_ok=True)
    lazy = dict(lazy=True, cache=False, **SMALL)
    with pytest.raises(DataNotFoundError, match="10m_u_component_of_wind_2009_5.625deg.nc"):
        weather.load("weather_uv10", tmp_path, **{**lazy, "train_years": (2009, 2011)})
    passes = []
    monkeypatch.setattr(weather, "train_stats", lambda *a: passes.append(a) or 1 / 0)
    with pytest.raises(DataNotFoundError, match="10m_u_component_of_wind_2014_5.625deg.nc"):
        weather.load("weather_uv10", tmp_path, **{**lazy, "test_years": 2014})
    assert passes == []  # a missing test file is found before the statistics pass
    monkeypatch.undo()
    import xarray as xr

    path = weather.file_path(tmp_path, weather.DATASETS["weather_uv10"].fields[1], 2012)
    ds = xr.load_dataset(path).isel(lat=slice(0, 16), lon=slice(0, 32))
    ds.to_netcdf(path)
    for mode in (True, False):
        with pytest.raises(DataError) as info:
            weather.load("weather_uv10", tmp_path, **{**lazy, "lazy": mode})
        text = one_line(info.value)
        assert "\n" not in text and "10m_v_component_of_wind_2012_5.625deg.nc" in text
        assert "grid (16, 32)" in text
    write_var(tmp_path, "10m_v_component_of_wind", "v10", [2012], 24)
    with pytest.raises(DataError, match="different times in 2012"):
        weather.load("weather_uv10", tmp_path, **lazy)


def test_dataloader_workers_read_the_same_batches(uv_root):
    from torch.utils.data import DataLoader

    eager = weather.load("weather_uv10", uv_root, lazy=False, **SMALL)
    lazy = weather.load("weather_uv10", uv_root, lazy=True, cache=False, **SMALL)
    lazy.train[0]  # the parent has its files open when the workers fork: they open their own
    parent = lazy.train._handles
    a = list(DataLoader(eager.train, batch_size=8))
    b = list(DataLoader(lazy.train, batch_size=8, num_workers=2))
    assert lazy.train._handles is parent and len(parent.open) == 2
    assert torch.equal(lazy.train[0][1], eager.train[0][1])  # the parent's files still read
    assert len(a) == len(b) and all(torch.equal(p[0], q[0]) for p, q in zip(a, b))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_fit_and_test_end_to_end_on_a_lazy_synthetic_tree(tmp_path):
    out = commands.synth(
        "synthetic_weather", tmp_path, first_year=2010, last_year=2013, hours_per_year=48
    )
    years = ", ".join(f"{k}: [{a}, {b}]" for k, (a, b) in YEARS.items())
    options = f"{{lazy: true, {years}, in_len: 2, out_len: 2, stride: 4}}"
    args = tiny_fit_args(out, options, tmp_path / "runs", "lazy")
    assert main(args) == 0
    rows = json.loads((tmp_path / "runs" / "lazy" / "test_metrics.json").read_text())["rows"]
    assert {"persistence", "climatology"} <= set(rows) and len(rows) >= 3
    assert all(np.isfinite(r["mse"]) for r in rows.values())
    assert list((out / ".svqcast" / "weather").glob("*.climatology.npy"))
    args[args.index("fit")] = "test"
    ckpt = sorted((tmp_path / "runs" / "lazy").rglob("*.ckpt"))[-1]
    test = ["test", "--ckpt_path", str(ckpt), *args[1:]]
    test[test.index("--name") + 1] = "lazy_test"
    assert main(test) == 0


def test_data_bench_measures_the_lazy_loader(uv_root, capsys):
    from svqcast.commands import data_bench as loader_bench

    opts = ["--option", "lazy=true", "--option", "cache=false", "--option", "in_len=2"]
    opts += ["--option", "out_len=2"] + [
        f"--option={k}=[{a},{b}]" for k, (a, b) in YEARS.items()
    ]  # fmt: skip
    args = ["data", "bench", "weather_uv10", "--root", str(uv_root), *opts]
    assert main([*args, "--batches", "3", "--batch-size", "4", "--model-steps", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = [c.strip() for c in lines[2].split("|")[1:-1]]
    assert row[:4] == ["weather_uv10", "lazy", "0", "54"]  # 2 years x (30 - 4 + 1) windows
    assert float(row[8].replace(",", "")) > 0 and float(row[9].replace(",", "")) > 0
    row = loader_bench.measure("weather_uv10", uv_root, {"lazy": "false", **YEARS},
                               batches=2, batch_size=4, model_steps=1)  # fmt: skip
    assert not row["lazy"] and row["peak_mib"] >= row["load_peak_mib"] > 0
    assert "| weather_uv10 | 0 | " in loader_bench.ratios(
        [{**row, "label": "weather_uv10"}, {**row, "lazy": True, "label": "weather_uv10"}]
    )


def test_non_finite_errors_name_the_file_of_the_bad_channel(uv_root, tmp_path):
    import shutil

    import xarray as xr

    shutil.copytree(uv_root, tmp_path, dirs_exist_ok=True)
    v10 = weather.DATASETS["weather_uv10"].fields[1]

    def poison(year: int, frame: int) -> str:
        path = weather.file_path(tmp_path, v10, year)
        ds = xr.load_dataset(path)
        ds["v10"][frame, 3, 4] = np.nan
        ds.to_netcdf(path)
        return path.name

    name = poison(2013, 6)  # a test year: found when the window is read
    lazy = weather.load("weather_uv10", tmp_path, lazy=True, cache=False, **SMALL)
    with pytest.raises(DataError, match=rf"{name}: 1 non-finite .*\(2, 1, 3, 4\)"):
        lazy.test[4]
    name = poison(2010, 2)  # a train year: found by the statistics pass
    with pytest.raises(DataError, match=rf"{name}: 1 non-finite .*in channel v10"):
        weather.load("weather_uv10", tmp_path, lazy=True, cache=False, **SMALL)
    # channels map to files through each file's level count
    row = [
        weather_lazy.YearFile(f"{n}.nc", "v", (), (), levels, np.arange(1))
        for n, levels in (("a", (0, 1)), ("b", None), ("c", (0, 1, 2)))
    ]
    channels = [weather.Channel(f"c{i}", "K") for i in range(6)]
    for c, file in ((0, "a"), (1, "a"), (2, "b"), (3, "c"), (5, "c")):
        block = np.zeros((1, 6, 2, 2), np.float32)
        block[0, c, 1, 0] = np.inf
        error = weather_lazy._nonfinite_error(
            block, row, np.array(["2010-01-01"], "M8[h]"), channels
        )
        assert str(error).startswith(f"{file}.nc: 1 non-finite") and f"c{c}" in str(error)
