"""The ``weatherbench2`` dataset: a WeatherBench2-layout zarr read lazily."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from svqcast.cli import main
from svqcast.data import dataset_module
from svqcast.data.climatology import fit_climatology, month_hour_phase
from svqcast.data.datasets import weatherbench2 as wb2
from svqcast.errors import ConfigError, DataError

YEARS = (2001, 2002, 2003)
LEVELS = (500, 850, 1000)
OPTS = {
    "path": "wb2.zarr",
    "variables": ["2m_temperature", "temperature"],
    "levels": [500, 850],
    "train_years": [2001, 2001],
    "val_years": [2002, 2002],
    "test_years": [2003, 2003],
    "in_len": 2,
    "out_len": 2,
}


def make_store(path):
    """3 years of 5 days each (gaps between years), 6-hourly, 16 x 32, time-chunked by 1."""
    times = np.concatenate(
        [pd.date_range(f"{y}-01-01", periods=20, freq="6h").values for y in YEARS]
    )
    rng = np.random.default_rng(0)
    lat = np.linspace(84.375, -84.375, 16)  # descending, as some stores: order is kept
    lon = np.arange(32) * 11.25
    t2m = 280 + 10 * rng.standard_normal((len(times), 32, 16)).astype(np.float32)
    temp = 250 + 5 * rng.standard_normal((len(times), 3, 32, 16)).astype(np.float32)
    ds = xr.Dataset(
        {
            "2m_temperature": (("time", "longitude", "latitude"), t2m, {"units": "K"}),
            "temperature": (("time", "level", "longitude", "latitude"), temp, {"units": "K"}),
        },
        coords={"time": times, "level": list(LEVELS), "latitude": lat, "longitude": lon},
    )
    enc = {v: {"chunks": (1, *ds[v].shape[1:])} for v in ds.data_vars}
    ds.to_zarr(path, zarr_format=2, encoding=enc, consolidated=True)
    return ds


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("wb2")
    ds = make_store(root / "wb2.zarr")
    return root, ds


def full_series(ds: xr.Dataset, year: int) -> np.ndarray:
    """The whole (T, C, H, W) series of one year, loaded eagerly (the reference)."""
    part = ds.sel(time=str(year))
    t2m = part["2m_temperature"].transpose("time", "latitude", "longitude").values[:, None]
    temp = (
        part["temperature"]
        .sel(level=[500, 850])
        .transpose("time", "level", "latitude", "longitude")
    )
    return np.concatenate([t2m, temp.values], axis=1).astype(np.float64)


def test_identity_and_streamed_statistics_equal_numpy(store, monkeypatch):
    root, ds = store
    reads = []
    real = wb2.read_frames

    def spy(ds, sel, index, source=""):
        reads.append(len(index))
        return real(ds, sel, index, source)

    monkeypatch.setattr(wb2, "read_frames", spy)
    splits = wb2.load("weatherbench2", root, cache=False, chunk=7, **OPTS)
    assert reads == [7, 7, 6]  # one pass over the 20 train frames, 7 at a time
    spec = splits.spec
    assert spec.channel_names == ["2m_temperature", "temperature_500", "temperature_850"]
    assert [c.level for c in spec.channels] == [None, 500, 850]
    assert [c.units for c in spec.channels] == ["K"] * 3
    assert (spec.height, spec.width) == (16, 32)
    np.testing.assert_array_equal(spec.lat, ds.latitude.values)  # source order
    assert spec.time_step == "6h" and spec.calendar == "standard"
    assert spec.dims == {"time": "time", "lat": "latitude", "lon": "longitude", "level": "level"}
    train = full_series(ds, 2001)
    np.testing.assert_allclose(spec.normalizer.mean, train.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(spec.normalizer.std, train.std(axis=(0, 2, 3)), rtol=1e-6)
    norm = (train - spec.normalizer.mean[:, None, None]) / spec.normalizer.std[:, None, None]
    times = ds.sel(time="2001").time.values
    ref = fit_climatology(norm.astype(np.float32), month_hour_phase(times), 288)
    np.testing.assert_allclose(splits.climatology.mean, ref.mean, atol=1e-4)
    assert "month, hour of day" in spec.extra["climatology"]


def test_lazy_window_equals_loaded_window_and_windows_skip_gaps(store):
    root, ds = store
    splits = wb2.load("weatherbench2", root, cache=False, **OPTS)
    test = splits.test
    assert len(test) == 20 - 4 + 1  # one year of 20 frames, no window across years
    norm = splits.spec.normalizer
    full = full_series(ds, 2003)
    full = (full - norm.mean[:, None, None]) / norm.std[:, None, None]
    for i in (0, 7, len(test) - 1):
        x, y = test[i]
        np.testing.assert_allclose(x.numpy(), full[i : i + 2], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(y.numpy(), full[i + 2 : i + 4], rtol=1e-5, atol=1e-5)
    subsampled = wb2.load("weatherbench2", root, cache=False, **{**OPTS, "time_step": "12h"})
    assert subsampled.spec.time_step == "12h" and len(subsampled.test) == 10 - 4 + 1
    np.testing.assert_array_equal(subsampled.test.store_indices(0), [40, 42, 44, 46])


def test_windows_hold_no_data_and_read_only_their_slice(store, tmp_path):
    root, _ = store
    shutil.copytree(root / "wb2.zarr", tmp_path / "wb2.zarr")
    splits = wb2.load("weatherbench2", tmp_path, cache=False, **OPTS)
    for part in (splits.train, splits.val, splits.test):
        arrays = [v for v in vars(part).values() if isinstance(v, np.ndarray)]
        assert max(a.nbytes for a in arrays) < 16 * 32 * 4  # indices, never a frame
    window = splits.test.store_indices(3)
    # delete every time chunk of the store but the window's: the window still reads
    for var in ("2m_temperature", "temperature"):
        for chunk in (tmp_path / "wb2.zarr" / var).iterdir():
            if not chunk.name.startswith(".") and int(chunk.name.split(".")[0]) not in window:
                chunk.unlink()
    x, y = splits.test[3]
    assert x.shape == (2, 3, 16, 32) and bool(x.isfinite().all())
    assert splits.test._ds is not None  # opened once, then dropped when sent to a worker
    clone = pickle.loads(pickle.dumps(splits.test))
    assert clone._ds is None and torch.equal(clone[3][1], y)
    with pytest.raises(DataError):  # another window's chunks are gone (or read as NaN)
        splits.test[10]


def test_statistics_are_cached_under_the_data_root(store, tmp_path):
    root, _ = store
    shutil.copytree(root / "wb2.zarr", tmp_path / "wb2.zarr")
    first = wb2.load("weatherbench2", tmp_path, **OPTS)
    cached = first.spec.extra["stats_cache"]
    assert cached and cached.startswith(str(tmp_path / ".svqcast" / "weatherbench2"))
    meta = json.loads(open(cached).read())
    meta["normalizer"]["mean"] = [1.0, 2.0, 3.0]  # the second load reads the cache
    open(cached, "w").write(json.dumps(meta))
    again = wb2.load("weatherbench2", tmp_path, **OPTS)
    assert again.spec.normalizer.mean.tolist() == [1.0, 2.0, 3.0]
    other = wb2.load("weatherbench2", tmp_path, **{**OPTS, "levels": [1000]})
    assert other.spec.extra["stats_cache"] != cached


def test_registered_and_url_path_is_passed_to_the_reader(store, monkeypatch):
    assert dataset_module("weatherbench2") is wb2
    seen = []

    def fake_open(path, **kw):
        seen.append(path)
        raise DataError("no network")

    monkeypatch.setattr(wb2.reader, "open_dataset", fake_open)
    with pytest.raises(DataError, match="no network"):
        wb2.load("weatherbench2", store[0], **{**OPTS, "path": "gs://bucket/wb2.zarr"})
    assert seen == ["gs://bucket/wb2.zarr"]


@pytest.mark.slow  # `svqcast fit` then test through the CLI
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_fit_and_test_end_to_end(store, tmp_path):
    root, _ = store
    options = json.dumps({**OPTS, "path": str(root / "wb2.zarr")})
    args = ["fit", "--data.dataset", "weatherbench2", "--data.root", str(tmp_path)]
    args += ["--data.options", options, "--data.batch_size", "4"]
    args += ["--model.hid_S", "8", "--model.hid_T", "16", "--model.N_S", "2", "--model.N_T", "2"]
    args += ["--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false"]
    rc = main([*args, "--runs_dir", str(tmp_path / "runs"), "--name", "wb2"])
    assert rc == 0
    rows = json.loads((tmp_path / "runs" / "wb2" / "test_metrics.json").read_text())["rows"]
    assert {"persistence", "climatology"} <= set(rows) and len(rows) >= 3


def test_forked_dataloader_workers_open_their_own_store(store, tmp_path, monkeypatch):
    from torch.utils.data import DataLoader

    root, _ = store
    splits = wb2.load("weatherbench2", root, cache=False, **OPTS)
    test = splits.test
    expected = [test[i] for i in range(len(test))]  # the parent has the store open
    parent = test._ds
    log = tmp_path / "opens"
    real = wb2.reader.open_dataset

    def spy(path, **kw):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        return real(path, **kw)

    monkeypatch.setattr(wb2.reader, "open_dataset", spy)
    loader = DataLoader(test, batch_size=4, num_workers=2, multiprocessing_context="fork")
    batches = list(loader)
    pids = set(log.read_text().split()) if log.exists() else set()
    assert len(pids) == 2 and str(os.getpid()) not in pids  # each worker opened its own
    assert test._ds is parent  # and the parent's store is untouched
    x = torch.cat([b[0] for b in batches])
    assert torch.equal(x, torch.stack([e[0] for e in expected]))


def test_default_statistics_blocks_hold_at_most_zarr_chunk_bytes(store, tmp_path, monkeypatch):
    """Without ``chunk`` the pass reads blocks of at most ZARR_CHUNK_BYTES of float64 (big
    blocks of one-frame zarr chunks raised the loader's peak with the number of years)."""
    root, _ = store
    frame = 8 * 3 * 16 * 32  # float64 bytes of one (C, H, W) frame of OPTS on this store
    monkeypatch.setattr(wb2, "ZARR_CHUNK_BYTES", 6 * frame)  # blocks of 6 of 20 frames
    seen, read = [], wb2.read_frames

    def spy(ds, sel, index, source=""):
        seen.append(len(index))
        return read(ds, sel, index, source)

    monkeypatch.setattr(wb2, "read_frames", spy)
    opts = {**OPTS, "cache": False}
    wb2.load("weatherbench2", root, **opts)
    assert seen == [6, 6, 6, 2]  # the year's 20 train frames
    seen.clear()
    wb2.load("weatherbench2", root, chunk=7, **opts)  # an explicit chunk wins
    assert seen == [7, 7, 6]


@pytest.mark.parametrize("bad", [0, -1, -5, "x", 2.5])
def test_chunk_must_be_a_positive_integer(store, tmp_path, bad):
    root, _ = store
    shutil.copytree(root / "wb2.zarr", tmp_path / "wb2.zarr")
    with pytest.raises(ConfigError, match=r"option chunk=.* integer >= 1") as info:
        wb2.load("weatherbench2", tmp_path, chunk=bad, **OPTS)
    assert "\n" not in str(info.value)
    assert not (tmp_path / ".svqcast").exists()  # no statistics cached


def test_bad_numeric_options_are_one_line_errors_from_data_check(store, capsys):
    root, _ = store
    check = ["data", "check", "weatherbench2", "--root", str(root), "--option", "path=wb2.zarr"]
    for option in ("in_len=abc", "out_len=0", "stride=1.5", "chunk=x"):
        assert main([*check, "--option", option]) == 2  # a config error, as for weather_*
        out, err = capsys.readouterr()
        lines = [line for line in (out + err).splitlines() if line.strip()]
        key, value = option.split("=")
        assert len(lines) == 1 and "Traceback" not in out + err, lines
        assert f"option {key}=" in lines[0] and value in lines[0]
        assert "integer >= 1" in lines[0]


def test_cache_follows_a_rewritten_local_store(store, tmp_path):
    root, ds = store
    path = tmp_path / "wb2.zarr"
    shutil.copytree(root / "wb2.zarr", path)
    first = wb2.load("weatherbench2", tmp_path, **OPTS)
    assert first.spec.extra["stats_cache"]
    before = first.test[0][0]
    with xr.set_options(keep_attrs=True):
        warmer = ds + 100.0  # the same store, every value 100 K higher
    enc = {v: {"chunks": (1, *ds[v].shape[1:])} for v in ds.data_vars}
    warmer.to_zarr(path, zarr_format=2, encoding=enc, consolidated=True, mode="w")
    again = wb2.load("weatherbench2", tmp_path, **OPTS)
    assert again.spec.extra["stats_cache"] != first.spec.extra["stats_cache"]
    np.testing.assert_allclose(
        again.spec.normalizer.mean, first.spec.normalizer.mean + 100.0, rtol=1e-9
    )
    np.testing.assert_allclose(again.spec.normalizer.std, first.spec.normalizer.std, rtol=1e-5)
    # normalised, the shifted store reads as before: climatology and windows
    np.testing.assert_allclose(again.climatology.mean, first.climatology.mean, atol=1e-4)
    np.testing.assert_allclose(again.test[0][0], before, atol=1e-4)


def test_spec_says_lazy_for_the_loader_bench(store):
    from svqcast.commands import data_bench as loader_bench

    root, _ = store
    splits = wb2.load("weatherbench2", root, cache=False, **OPTS)
    assert splits.spec.extra["lazy"] is True
    options = {**OPTS, "cache": False}
    row = loader_bench.measure(
        "weatherbench2", root, options, batches=1, batch_size=2, model_steps=1
    )
    assert row["lazy"] is True


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_real_fsspec_memory_store_equals_the_local_store(store, tmp_path):
    root, ds = store
    url = "memory://svqcast-test-wb2/wb2.zarr"  # fsspec's in-memory filesystem
    enc = {v: {"chunks": (1, *ds[v].shape[1:])} for v in ds.data_vars}
    ds.to_zarr(url, zarr_format=2, encoding=enc, consolidated=True, mode="w")
    local = wb2.load("weatherbench2", root, cache=False, **OPTS)
    remote = wb2.load("weatherbench2", tmp_path, **{**OPTS, "path": url})
    assert remote.spec.extra["path"] == url and remote.spec.extra["stats_cache"]
    np.testing.assert_array_equal(remote.spec.normalizer.mean, local.spec.normalizer.mean)
    np.testing.assert_array_equal(remote.spec.normalizer.std, local.spec.normalizer.std)
    np.testing.assert_array_equal(remote.climatology.mean, local.climatology.mean)
    for split in ("train", "val", "test"):
        a, b = getattr(local, split), getattr(remote, split)
        assert len(a) == len(b) > 0
        for i in (0, len(a) // 2, len(a) - 1):
            assert all(torch.equal(p, q) for p, q in zip(a[i], b[i])), (split, i)
    assert pickle.loads(pickle.dumps(remote.test))[1][0].shape == (2, 3, 16, 32)


def test_storage_options_reach_fsspec_for_a_url_and_are_refused_for_a_path(store, monkeypatch):
    """storage_options go to xarray.open_zarr wherever a URL store is opened (the load and a
    window read, also after pickling to a worker); a local path refuses them in one line."""
    root, ds = store
    url = "memory://svqcast-test-wb2-so/wb2.zarr"
    enc = {v: {"chunks": (1, *ds[v].shape[1:])} for v in ds.data_vars}
    ds.to_zarr(url, zarr_format=2, encoding=enc, consolidated=True, mode="w")
    seen, real = [], xr.open_zarr

    def spy(path, **kwargs):
        seen.append(kwargs.get("storage_options"))
        return real(path, **kwargs)

    monkeypatch.setattr(xr, "open_zarr", spy)
    so = {"skip_instance_cache": False}  # an fsspec option the memory filesystem accepts
    splits = wb2.load("weatherbench2", root, cache=False, **{**OPTS, "path": url},
                      storage_options=so)  # fmt: skip
    assert seen == [so]
    worker_copy = pickle.loads(pickle.dumps(splits.train))
    worker_copy[0]
    assert seen == [so, so]
    with pytest.raises(ConfigError, match="applies to a URL path") as info:
        wb2.load("weatherbench2", root, storage_options=so, **OPTS)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="not a mapping"):
        wb2.load("weatherbench2", root, storage_options="anon", **{**OPTS, "path": url})


def test_cache_follows_a_rewritten_url_store(store, tmp_path):
    """A store written again behind the same URL (memory://) gets new statistics: the cache
    key holds what fsspec reports of its root metadata."""
    _, ds = store
    url = "memory://svqcast-test-wb2-rewrite/wb2.zarr"
    enc = {v: {"chunks": (1, *ds[v].shape[1:])} for v in ds.data_vars}
    ds.to_zarr(url, zarr_format=2, encoding=enc, consolidated=True, mode="w")
    first = wb2.load("weatherbench2", tmp_path, **{**OPTS, "path": url})
    again = wb2.load("weatherbench2", tmp_path, **{**OPTS, "path": url})
    assert again.spec.extra["stats_cache"] == first.spec.extra["stats_cache"]  # reused
    with xr.set_options(keep_attrs=True):
        (ds + 100.0).to_zarr(url, zarr_format=2, encoding=enc, consolidated=True, mode="w")
    warmer = wb2.load("weatherbench2", tmp_path, **{**OPTS, "path": url})
    assert warmer.spec.extra["stats_cache"] != first.spec.extra["stats_cache"]
    np.testing.assert_allclose(
        warmer.spec.normalizer.mean, first.spec.normalizer.mean + 100.0, atol=1e-4
    )  # float32 data: + 100 rounds in the last bits
