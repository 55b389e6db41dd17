"""Real-world layout variants of ONE small field, for the reader tests (not a test module).

:func:`base_field` is a (time, lat, lon) temperature ``t2m`` in K whose values are multiples
of 1/64 (exact in float32), so a reader that maps a variant back to the base layout can be
compared with ``==``. Each variant takes and returns an ``xarray.Dataset``; the writers put a
Dataset (or garbage) on disk in one format. Other helpers' tests import these names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

VAR = "t2m"
#: (t, y, x) of the NaN that :func:`with_nan` sets, in the base field's layout.
NAN_AT = (5, 2, 3)
#: Pressure levels of :func:`with_level` (hPa) and the offset each adds to the field (K).
LEVELS = (500, 850, 1000)
LEVEL_OFFSET = {500: -40.0, 850: -10.0, 1000: 0.0}


def grid(h: int = 8, w: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre latitudes (ascending) of an ``h``-row global grid and longitudes from 0."""
    lat = -90.0 + (180.0 / h) * (np.arange(h) + 0.5)
    lon = (360.0 / w) * np.arange(w)
    return lat, lon


def _coord_attrs() -> dict[str, dict[str, str]]:
    return {
        "time": {"standard_name": "time", "axis": "T", "long_name": "time"},
        "lat": {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"},
        "lon": {"units": "degrees_east", "standard_name": "longitude", "axis": "X"},
    }


def base_field(T: int = 48, H: int = 8, W: int = 16, seed: int = 0) -> xr.Dataset:
    """``t2m`` (float32 K) with dims (time, lat, lon): hourly times from 2020-01-01T00, lat
    ascending (cell centres), lon 0..360-360/W; a smooth field plus noise, in multiples of
    1/64 so every value is exact in float32."""
    lat, lon = grid(H, W)
    times = np.datetime64("2020-01-01T00", "ns") + np.arange(T) * np.timedelta64(1, "h")
    rng = np.random.default_rng(seed)
    phase = 2 * np.pi * np.arange(T) / 24.0
    smooth = (
        275.0
        + 25.0 * np.cos(np.deg2rad(lat))[None, :, None]
        + 5.0 * np.sin(np.deg2rad(lon))[None, None, :]
        + 3.0 * np.sin(phase)[:, None, None]
    )
    values = np.round((smooth + rng.normal(0.0, 1.0, (T, H, W))) * 64) / 64
    attrs = _coord_attrs()
    ds = xr.Dataset(
        {VAR: (("time", "lat", "lon"), values.astype(np.float32))},
        coords={
            "time": ("time", times, attrs["time"]),
            "lat": ("lat", lat, attrs["lat"]),
            "lon": ("lon", lon, attrs["lon"]),
        },
    )
    ds[VAR].attrs = {"units": "K", "long_name": "2 metre temperature"}
    return ds


def _rename_keep(ds: xr.Dataset, names: dict[str, str]) -> xr.Dataset:
    return ds.rename({k: v for k, v in names.items() if k in ds.dims or k in ds.variables})


def descending_lat(ds: xr.Dataset) -> xr.Dataset:
    """Latitudes north to south (ERA5's order); values flipped with them."""
    return ds.isel(lat=slice(None, None, -1))


def lon_180(ds: xr.Dataset) -> xr.Dataset:
    """Longitudes in -180..180 (ascending from -180); values rolled with them."""
    lon = ((ds["lon"].values + 180.0) % 360.0) - 180.0
    out = ds.assign_coords(lon=("lon", lon, ds["lon"].attrs)).sortby("lon")
    return out


def shifted_lon(ds: xr.Dataset, origin: float = 90.0) -> xr.Dataset:
    """Longitudes starting at ``origin`` and increasing past 360 (e.g. 90..427.5): the same
    cells, rolled; values rolled with them."""
    lon = ds["lon"].values
    k = int(np.argmin(np.abs(lon - origin)))
    out = ds.roll(lon=-k, roll_coords=True)
    new = out["lon"].values.copy()
    new[new < origin] += 360.0
    return out.assign_coords(lon=("lon", new, ds["lon"].attrs))


def cds_names(ds: xr.Dataset) -> xr.Dataset:
    """The Copernicus CDS names: valid_time, latitude, longitude (and pressure_level)."""
    return _rename_keep(
        ds,
        {"time": "valid_time", "lat": "latitude", "lon": "longitude", "level": "pressure_level"},
    )


def axis_only_names(ds: xr.Dataset) -> xr.Dataset:
    """Dims named t, y, x: only the CF ``axis`` / ``standard_name`` attributes say which is
    which."""
    return _rename_keep(ds, {"time": "t", "lat": "y", "lon": "x"})


def dim_order(ds: xr.Dataset) -> xr.Dataset:
    """Every variable stored as (lon, lat, time)."""
    return ds.transpose("lon", "lat", "time", ...)


def packed_int16(ds: xr.Dataset, scale: float = 0.01, offset: float = 275.0) -> xr.Dataset:
    """Encoding set so :func:`to_nc` packs every data variable as int16 with
    scale_factor/add_offset and _FillValue -32767 (decoded values are within scale/2)."""
    out = ds.copy()
    for v in out.data_vars:
        out[v].encoding.update(
            {"dtype": "int16", "scale_factor": scale, "add_offset": offset, "_FillValue": -32767}
        )
    return out


def deg_c(ds: xr.Dataset) -> xr.Dataset:
    """``t2m`` in degrees Celsius (value - 273.15, units "degC")."""
    out = ds.copy()
    out[VAR] = (ds[VAR] - np.float32(273.15)).astype(np.float32)
    out[VAR].attrs = {**ds[VAR].attrs, "units": "degC"}
    return out


def other_units(ds: xr.Dataset, units: str = "m s-1") -> xr.Dataset:
    """The same values labelled with other units (e.g. a wind speed)."""
    out = ds.copy()
    out[VAR].attrs = {**ds[VAR].attrs, "units": units}
    return out


def cftime_times(n: int, freq: str = "h", calendar: str = "360_day", start: str = "2000-01-01"):
    """``n`` cftime dates from ``start`` every ``freq`` in ``calendar`` (an object array)."""
    idx = xr.date_range(start, periods=n, freq=freq, calendar=calendar, use_cftime=True)
    return np.asarray(idx)


def cal_360(ds: xr.Dataset, freq: str = "h") -> xr.Dataset:
    """The same steps dated in the 360_day calendar (cftime), from 2000-01-01."""
    times = cftime_times(ds.sizes["time"], freq=freq)
    return ds.assign_coords(time=("time", times, ds["time"].attrs))


def annual_360(years: int = 2, H: int = 4, W: int = 8, seed: int = 0) -> xr.Dataset:
    """A daily series over ``years`` 360-day years (360_day calendar) with a seasonal
    cycle: long enough for windows and a by-month climatology."""
    ds = base_field(T=360 * years, H=H, W=W, seed=seed)
    season = np.round(10.0 * np.sin(2 * np.pi * np.arange(360 * years) / 360.0) * 64) / 64
    ds[VAR] = ds[VAR] + season.astype(np.float32)[:, None, None]
    ds[VAR].attrs = {"units": "K", "long_name": "2 metre temperature"}
    return cal_360(ds, freq="D")


def irregular(ds: xr.Dataset, index: int = 10, fraction: float = 0.25) -> xr.Dataset:
    """Time ``index`` moved by ``fraction`` of the (first) step."""
    times = ds["time"].values.copy()
    step = times[1] - times[0]
    times[index] = times[index] + step * fraction
    return ds.assign_coords(time=("time", times, ds["time"].attrs))


def gap(ds: xr.Dataset, index: int = 10) -> xr.Dataset:
    """Step ``index`` missing (the following times keep their dates)."""
    keep = [i for i in range(ds.sizes["time"]) if i != index]
    return ds.isel(time=keep)


def unsorted(ds: xr.Dataset, index: int = 10) -> xr.Dataset:
    """Steps ``index`` and ``index + 1`` swapped (times and values together)."""
    order = list(range(ds.sizes["time"]))
    order[index], order[index + 1] = order[index + 1], order[index]
    return ds.isel(time=order)


def duplicated_time(ds: xr.Dataset, index: int = 10) -> xr.Dataset:
    """Step ``index`` stored twice in a row (one more step)."""
    order = list(range(ds.sizes["time"]))
    return ds.isel(time=order[: index + 1] + order[index:])


def with_nan(ds: xr.Dataset, at: tuple[int, int, int] = NAN_AT) -> xr.Dataset:
    """NaN at (t, y, x) = ``at`` of ``t2m`` (indices in the base (time, lat, lon) layout)."""
    out = ds.copy(deep=True)
    values = out[VAR].transpose("time", "lat", "lon").values.copy()
    values[at] = np.nan
    out[VAR] = (("time", "lat", "lon"), values, ds[VAR].attrs)
    return out


def with_level(ds: xr.Dataset, dim: str = "level") -> xr.Dataset:
    """Adds ``t`` (time, ``dim``, lat, lon) on :data:`LEVELS` hPa: t2m + LEVEL_OFFSET[level]."""
    out = ds.copy()
    stack = np.stack([ds[VAR].values + np.float32(LEVEL_OFFSET[lv]) for lv in LEVELS], axis=1)
    level_attrs = {"units": "hPa", "standard_name": "air_pressure", "long_name": "pressure level"}
    out = out.assign_coords({dim: (dim, np.asarray(LEVELS, dtype=np.int32), level_attrs)})
    out["t"] = (("time", dim, "lat", "lon"), stack.astype(np.float32))
    out["t"].attrs = {"units": "K", "long_name": "temperature"}
    return out


def coarser(ds: xr.Dataset) -> xr.Dataset:
    """Every second lat and lon: a (H/2, W/2) grid that is a subset of the base grid."""
    return ds.isel(lat=slice(None, None, 2), lon=slice(None, None, 2))


def other_grid(ds: xr.Dataset, dlat: float = 1.0) -> xr.Dataset:
    """The same shape, latitudes shifted by ``dlat`` degrees: another grid."""
    return ds.assign_coords(lat=("lat", ds["lat"].values + dlat, ds["lat"].attrs))


# ----------------------------------------------------------------------------- writers


def to_nc(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` as netCDF-4 (engine netcdf4) and return the path."""
    path = Path(path)
    ds.to_netcdf(path, engine="netcdf4")
    return path


def to_zarr(ds: xr.Dataset, path: str | Path, zarr_format: int = 2, chunk_t: int = 12) -> Path:
    """Write ``ds`` as a zarr store of ``zarr_format`` (2 or 3), ``chunk_t`` steps a chunk."""
    path = Path(path)
    out = ds.copy()
    for v in out.data_vars:
        dims = out[v].dims
        out[v].encoding["chunks"] = tuple(
            min(chunk_t, out.sizes[d]) if d in ("time", "valid_time", "t") else out.sizes[d]
            for d in dims
        )
    out.to_zarr(path, zarr_format=zarr_format, mode="w", consolidated=zarr_format == 2)
    return path


def to_npy(ds: xr.Dataset, path: str | Path, var: str = VAR) -> Path:
    """``var``'s values as a (T, H, W) float32 .npy (no coordinates)."""
    path = Path(path)
    np.save(path, np.asarray(ds[var].values, dtype=np.float32))
    return path


def to_npz(ds: xr.Dataset, path: str | Path, var: str = VAR, key: str = "data") -> Path:
    """``var``'s values as a (T, H, W) float32 array named ``key`` in an .npz."""
    path = Path(path)
    np.savez(path, **{key: np.asarray(ds[var].values, dtype=np.float32)})
    return path


def truncated(path: str | Path) -> Path:
    """Cut the written file at ``path`` to half its length (an interrupted download)."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def garbage(path: str | Path, n: int = 4096, seed: int = 0) -> Path:
    """Write ``n`` random bytes at ``path`` (a file with the right name and no format)."""
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes())
    return path


def empty_npy(path: str | Path) -> Path:
    """A zero-byte file at ``path`` (e.g. ``series.npy``)."""
    path = Path(path)
    path.write_bytes(b"")
    return path


def corrupt_chunk(store: str | Path, var: str = VAR) -> Path:
    """Overwrite the first data chunk of ``var`` in the zarr store with garbage bytes and
    return the chunk's path."""
    folder = Path(store) / var
    chunks = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name != "zarr.json"
    )
    if not chunks:
        raise FileNotFoundError(f"no chunk files under {folder}")
    garbage(chunks[0], n=64, seed=1)
    return chunks[0]
