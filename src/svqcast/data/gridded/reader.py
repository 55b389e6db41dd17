"""One reader for every gridded file svqcast takes: ``fit``/``test`` (datasets ``arrays`` and
``weather_*``), ``svqcast data check``, ``svqcast predict`` and :func:`svqcast.forecast`.

- :func:`open_dataset` opens netCDF (.nc/.nc4/.netcdf/.cdf; packed int16 with scale_factor /
  add_offset and _FillValue decoded by xarray), zarr v2 and v3 (a .zarr folder or an fsspec
  URL), and .npy/.npz (wrapped as a Dataset with dims ("time", "channel", "lat", "lon")
  and no coordinates). Non-standard CF calendars decode to cftime dates. A missing, empty,
  truncated or garbage file raises DataError / DataNotFoundError in one line.
- :func:`find_dims` names the time, lat, lon (and level) dims of a Dataset by role:
  explicit names first, then CF/ERA5/CDS names (time, valid_time; lat, latitude; lon,
  longitude; level, pressure_level, plev), then CF ``axis`` (T/Y/X/Z) and ``standard_name``
  attributes (or degrees_north / degrees_east units).
- :func:`read_fields` selects variables (and levels of an extra dim) into one float32
  (T, C, H, W) array in physical units. Dims are transposed to (time, channel, lat, lon),
  but lat/lon keep the SOURCE's order of values (no flipping or rolling: matching a grid to
  a checkpoint's is :mod:`svqcast.data.gridded.identity`'s job). Times are sorted and unique or it
  raises DataError; ``time_step`` is the frequency xarray infers (or the ``time_step``
  option, checked against the data with ``time_tolerance``). Gaps of whole steps are
  allowed; a time off the step by more than ``time_tolerance`` (a fraction of the step) is
  refused, and times within the tolerance are snapped onto the step's grid.
- :func:`check_values` lists problems of the values: non-finite counts and first position,
  time not sorted / duplicated / off the step, coordinates not strictly monotonic.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.data.gridded.times import (
    calendar_of,
    canonical_step,
    checked_times,
    fmt_time,
    step_seconds,
    time_problem,
    times_to_seconds,
)
from svqcast.data.spec import Channel
from svqcast.errors import ConfigError, DataError, DataNotFoundError, SvqcastError, one_line

NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf")
NUMPY_SUFFIXES = (".npy", ".npz")
FORMATS = "netCDF (.nc, .nc4), zarr v2/v3 (.zarr folder or URL), .npy or .npz"
#: Dim names recognised without options, by role (CF, ERA5/WeatherBench, Copernicus CDS).
NAMES = {
    "time": ("time", "valid_time"),
    "lat": ("lat", "latitude"),
    "lon": ("lon", "longitude"),
    "level": ("level", "pressure_level", "plev", "isobaricInhPa"),
}
_AXIS = {"T": "time", "Y": "lat", "X": "lon", "Z": "level"}
_STANDARD = {
    "time": "time",
    "latitude": "lat",
    "longitude": "lon",
    "air_pressure": "level",
    "grid_latitude": "lat",
    "grid_longitude": "lon",
}
_UNITS = {
    "degrees_north": "lat",
    "degree_north": "lat",
    "degrees_east": "lon",
    "degree_east": "lon",
}
#: Marks a Dataset wrapped around a NumPy array (channels named c0, c1, ...).
NUMPY_MARK = "svqcast_numpy_source"


@dataclass
class Fields:
    """Channels of one source as a (time, channel, lat, lon) array with its identity."""

    data: np.ndarray  # float32 (T, C, H, W), physical units, lat/lon in the source's order
    channels: tuple[Channel, ...]  # name, units, variable, level per channel
    times: np.ndarray | None = None  # datetime64[ns], or an object array of cftime dates
    calendar: str | None = None  # CF calendar ("standard", "noleap", "360_day", ...)
    time_step: str | None = None  # xarray frequency string ("h", "6h", "MS", "360D", ...)
    lat: np.ndarray | None = None  # (H,) float64 degrees north, source order
    lon: np.ndarray | None = None  # (W,) float64 degrees east, source order and convention
    dims: dict[str, str] = field(default_factory=dict)  # role -> source dim name
    attrs: dict[str, Any] = field(default_factory=dict)  # {"variables": {}, "coords": {}}
    source: str = ""  # path or URL, for messages


# ----------------------------------------------------------------------------- opening


def _is_url(path: str | Path) -> bool:
    return isinstance(path, str) and "://" in path and not path.startswith("file://")


def open_dataset(path: str | Path, *, key: str | None = None, storage_options: dict | None = None):
    """The file at ``path`` as an ``xarray.Dataset`` (see the module docstring).

    The Dataset is lazy for netCDF and zarr: close it when done (``with``). ``key`` picks
    the array of an .npz holding several. ``storage_options`` go to fsspec for a URL
    (credentials, ``{"token": "anon"}``, requester pays, ...).
    """
    import xarray as xr

    if _is_url(path):
        extra = {"storage_options": dict(storage_options)} if storage_options else {}
        try:
            return _quiet(lambda: xr.open_zarr(path, decode_times=_time_coder(), **extra))
        except Exception as exc:  # noqa: BLE001 - any backend failure becomes one line
            raise DataError(f"cannot open {path} as zarr: {_why(exc)}") from exc
    p = Path(str(path).removeprefix("file://"))
    if not p.exists():
        raise DataNotFoundError(f"no file {p}; expected {FORMATS}")
    suffix = p.suffix.lower()
    if p.is_dir():
        markers = (".zgroup", ".zarray", "zarr.json", ".zmetadata")
        if suffix != ".zarr" and not any((p / m).exists() for m in markers):
            raise DataError(f"{p} is a folder but not a zarr store; expected {FORMATS}")
        try:
            return _quiet(lambda: xr.open_zarr(p, decode_times=_time_coder()))
        except Exception as exc:  # noqa: BLE001
            raise DataError(
                f"cannot open {p} as zarr: {_why(exc)}; write or download the store again"
            ) from exc
    if p.stat().st_size == 0:
        raise DataError(f"{p} is empty (0 bytes); write or download it again")
    if suffix in NUMPY_SUFFIXES:
        return _numpy_dataset(p, key)
    if suffix not in NETCDF_SUFFIXES:
        raise DataError(f"{p}: unknown format {p.suffix!r}; expected {FORMATS}")
    try:
        return xr.open_dataset(p, engine="netcdf4", decode_times=_time_coder())
    except Exception as exc:  # noqa: BLE001
        raise DataError(
            f"cannot read {p} as netCDF: {_why(exc)}; the file is truncated, corrupt or not "
            "netCDF (write or download it again)"
        ) from exc


def _time_coder():
    import xarray as xr

    return xr.coders.CFDatetimeCoder(use_cftime=None)


def _quiet(fn):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        warnings.filterwarnings("ignore", category=RuntimeWarning, module="zarr")
        return fn()


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {one_line(exc, 200)}"


def _load_numpy(path: Path, key: str | None) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            if key is None:
                if len(keys) != 1:
                    raise ConfigError(f"{path} holds {', '.join(keys)}; pass key= to pick one")
                key = keys[0]
            if key not in keys:
                raise ConfigError(f"{path} has no array {key!r}; keys: {', '.join(keys)}")
            return z[key]
    except SvqcastError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise DataError(
            f"cannot read {path} as NumPy {path.suffix}: {_why(exc)}; the file is truncated, "
            "corrupt or not a NumPy file (write it again)"
        ) from exc


def _numpy_dataset(path: Path, key: str | None):
    import xarray as xr

    array = _load_numpy(path, key)
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4:
        raise DataError(f"{path}: array of shape {array.shape}; expected (T, C, H, W) or (T, H, W)")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise DataError(f"{path}: array of dtype {array.dtype}; expected numbers")
    name = key or "data"
    ds = xr.Dataset({name: (("time", "channel", "lat", "lon"), array)})
    ds.attrs[NUMPY_MARK] = 1
    return ds


# ----------------------------------------------------------------------------- dims


def _role_of(ds, dim: str) -> str | None:
    """The role CF attributes give ``dim``'s coordinate variable, if any."""
    if dim not in ds.variables:
        return None
    attrs = ds[dim].attrs
    axis = str(attrs.get("axis", "")).upper()
    if axis in _AXIS:
        return _AXIS[axis]
    std = str(attrs.get("standard_name", "")).lower()
    if std in _STANDARD:
        return _STANDARD[std]
    return _UNITS.get(str(attrs.get("units", "")).lower())


def find_dims(
    ds,
    *,
    time_dim: str | None = None,
    lat_dim: str | None = None,
    lon_dim: str | None = None,
) -> dict[str, str]:
    """Source dim names by role ("time", "lat", "lon"; "level" when one is recognised).

    Explicit names first, then the usual names (:data:`NAMES`), then CF ``axis`` /
    ``standard_name`` / units attributes. A role that cannot be found raises DataError
    naming the dims present and the option to pass.
    """
    dims = [str(d) for d in ds.dims]
    explicit = {"time": time_dim, "lat": lat_dim, "lon": lon_dim}
    found: dict[str, str] = {}
    for role, name in explicit.items():
        if name is not None:
            if name not in dims:
                raise ConfigError(
                    f"{role}_dim={name!r} is not a dim of the data; dims: {', '.join(dims)}"
                )
            found[role] = name
    for role in ("time", "lat", "lon", "level"):
        if role in found:
            continue
        taken = set(found.values())
        named = [d for d in NAMES[role] if d in dims and d not in taken]
        if named:
            found[role] = named[0]
            continue
        by_attr = [d for d in dims if d not in taken and _role_of(ds, d) == role]
        if len(by_attr) > 1 and role != "level":
            raise DataError(
                f"dims {', '.join(by_attr)} all look like {role}; pass {role}_dim= to pick one"
            )
        if by_attr:
            found[role] = by_attr[0]
    missing = [r for r in ("time", "lat", "lon") if r not in found]
    if missing:
        raise DataError(
            f"no {' / '.join(missing)} dim found among dims ({', '.join(dims)}); name them "
            f"{' / '.join(NAMES[m][0] for m in missing)}, set CF axis attributes, or pass "
            f"{', '.join(f'{m}_dim=' for m in missing)}"
        )
    return found


def _times_of(ds, tdim: str) -> np.ndarray | None:
    if tdim not in ds.coords:
        return None
    values = np.asarray(ds[tdim].values)
    if np.issubdtype(values.dtype, np.datetime64):
        return values.astype("datetime64[ns]")
    if values.dtype == object and len(values) and hasattr(values[0], "calendar"):
        return values
    return None  # numbers without CF time units: no dates


# ----------------------------------------------------------------------------- reading


def _json_safe(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _attrs(a: dict) -> dict[str, Any]:
    return {str(k): _json_safe(v) for k, v in a.items()}


def _label(value: Any) -> Any:
    value = _json_safe(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _values(da, source: str) -> np.ndarray:
    """Load a DataArray's values as float32, turning any backend failure into one line."""
    try:
        return np.asarray(da.values, dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 - corrupt chunks, truncated files, codecs
        raise DataError(
            f"cannot read {da.name} from {source}: {_why(exc)}; the file or store is corrupt "
            "or incomplete (write or download it again)"
        ) from exc


def read_fields(
    source,
    *,
    variables: str | list[str] | None = None,
    levels: list | None = None,
    level_dim: str | None = None,
    time_dim: str | None = None,
    lat_dim: str | None = None,
    lon_dim: str | None = None,
    key: str | None = None,
    start: str | None = None,
    time_step: str | None = None,
    time_tolerance: float = 0.0,
) -> Fields:
    """Read ``source`` (a path, URL or an open ``xarray.Dataset``) into :class:`Fields`.

    ``variables``: default every data variable with the time, lat and lon dims. A variable
    with one more dim (the level dim: ``level_dim``, a recognised name, or its only extra
    dim) gives one channel per level, named ``<var>_<level>``; ``levels`` selects some.
    Other extra dims of size 1 are dropped (a recognised or named level dim is kept, so
    its channel keeps its level). ``start`` (with ``time_step``, default "h") dates a
    source without a time coordinate (.npy). See the module docstring for the rest.
    """
    import xarray as xr

    if isinstance(source, xr.Dataset):
        return _read(source, str(source.encoding.get("source", "dataset")), locals())
    name = str(source)
    ds = open_dataset(source, key=key)
    try:
        return _read(ds, name, locals())
    finally:
        ds.close()


def _read(ds, source: str, opts: dict[str, Any]) -> Fields:
    roles = find_dims(
        ds, time_dim=opts["time_dim"], lat_dim=opts["lat_dim"], lon_dim=opts["lon_dim"]
    )
    t, y, x = roles["time"], roles["lat"], roles["lon"]
    numpy_source = bool(ds.attrs.get(NUMPY_MARK))
    level_dim = opts["level_dim"]
    if level_dim is not None and level_dim not in ds.dims:
        raise ConfigError(
            f"level_dim={level_dim!r} is not a dim of {source}; dims: "
            f"{', '.join(map(str, ds.dims))}"
        )
    if ds.sizes[t] == 0:
        raise DataError(f"{source}: no time steps ({t} has length 0)")
    # the time axis first: a file with bad times is refused before its values are read
    times = _times_of(ds, t)
    step = opts["time_step"]
    if times is None and opts["start"] is not None:
        times = _dated(opts["start"], step or "h", ds.sizes[t])
    elif times is not None and opts["start"] is not None:
        raise ConfigError(f"start= is for files without a time coordinate; {source} has {t}")
    calendar = None
    if times is not None:
        times, step = checked_times(times, step, opts["time_tolerance"], source)
        calendar = calendar_of(times)
    else:
        step = None
    names = opts["variables"]
    if names is None:
        names = [str(v) for v in ds.data_vars if {t, y, x} <= set(ds[v].dims)]
        if not names:
            found = {str(v): tuple(map(str, ds[v].dims)) for v in ds.data_vars}
            raise DataError(
                f"{source}: no variable with dims ({t}, {y}, {x}); found {found}; pass "
                "time_dim/lat_dim/lon_dim"
            )
    names = [names] if isinstance(names, str) else [str(n) for n in names]
    levels = opts["levels"]
    if levels is not None and not isinstance(levels, list | tuple | np.ndarray):
        levels = [levels]
    blocks: list[np.ndarray] = []
    channels: list[Channel] = []
    var_attrs: dict[str, Any] = {}
    used_level: str | None = None
    for v in names:
        if v not in ds.data_vars:
            raise ConfigError(
                f"{source} has no variable {v!r}; variables: {', '.join(map(str, ds.data_vars))}"
            )
        da = ds[v]
        if not {t, y, x} <= set(da.dims):
            raise DataError(
                f"{source}: {v} has dims {tuple(map(str, da.dims))}; expected ({t}, {y}, {x}) "
                "plus at most one level dim; pass time_dim/lat_dim/lon_dim"
            )
        extra = [str(d) for d in da.dims if d not in (t, y, x)]
        if numpy_source:
            ldim = "channel"
        else:
            ldim = _level_dim(da, extra, level_dim, roles.get("level"), source, v)
        for d in extra:
            if d != ldim:
                da = da.isel({d: 0}, drop=True)
        units = str(da.attrs.get("units", ""))
        var_attrs[v] = _attrs(da.attrs)
        if ldim is None:
            channels.append(Channel(v, units, variable=v))
            blocks.append(_values(da.transpose(t, y, x), source)[:, None])
            continue
        used_level = ldim
        if ldim in da.coords:
            labels = [_label(lv) for lv in np.asarray(da[ldim].values).tolist()]
        else:
            labels = list(range(da.sizes[ldim]))
        if levels is not None:
            want = [_label(lv) for lv in levels]
            lost = [lv for lv in want if lv not in labels]
            if lost:
                raise DataError(
                    f"{source}: {v} has no {ldim} {lost} (has {labels}); pass levels= from those"
                )
            da = da.isel({ldim: [labels.index(lv) for lv in want]})
            labels = want
        block = _values(da.transpose(t, ldim, y, x), source)
        if numpy_source:
            channels += [Channel(f"c{len(channels) + i}", units) for i in range(len(labels))]
        else:
            channels += [Channel(f"{v}_{lv}", units, variable=v, level=lv) for lv in labels]
        blocks.append(block)
    if levels is not None and used_level is None:
        raise ConfigError(f"levels= given but no selected variable of {source} has a level dim")
    data = np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]
    dims = {"time": t, "lat": y, "lon": x}
    if used_level is not None and not numpy_source:
        dims["level"] = used_level
    coords = {r: _attrs(ds[d].attrs) for r, d in dims.items() if d in ds.variables}
    return Fields(
        data=data,
        channels=tuple(channels),
        times=times,
        calendar=calendar,
        time_step=step,
        lat=_coord(ds, y),
        lon=_coord(ds, x),
        dims=dims,
        attrs={"variables": var_attrs, "coords": coords},
        source=source,
    )


def _level_dim(da, extra, level_dim, recognised, source, var) -> str | None:
    """The dim of ``var`` whose values become channels (None: none); size-1 dims drop."""
    big = [d for d in extra if da.sizes[d] > 1]
    if level_dim is not None and level_dim in extra:
        chosen = level_dim
    elif recognised is not None and recognised in extra:
        chosen = recognised
    elif len(big) == 1:
        chosen = big[0]
    elif not big:
        return None
    else:
        chosen = None
    others = [d for d in big if d != chosen]
    if others:
        sizes = ", ".join(f"{d}: {da.sizes[d]}" for d in others)
        raise DataError(
            f"{source}: {var} has extra dims ({sizes}) besides time/lat/lon and the level dim; "
            "select one value of each first (e.g. ds.isel(member=0)) or pass level_dim="
        )
    return chosen


def _coord(ds, dim: str) -> np.ndarray | None:
    if dim not in ds.coords:
        return None
    values = np.asarray(ds[dim].values)
    if not np.issubdtype(values.dtype, np.number):
        return None
    return values.astype(np.float64)


def _dated(start: str, step: str, n: int) -> np.ndarray:
    import pandas as pd

    try:
        first = pd.Timestamp(str(start))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"start must be an ISO time, got {start!r}") from exc
    step = canonical_step(step)
    return np.asarray(pd.date_range(first, periods=n, freq=step).values, dtype="datetime64[ns]")


# ----------------------------------------------------------------------------- checks


def check_values(fields: Fields, *, time_tolerance: float = 0.0) -> list[str]:
    """Problems with the values of ``fields`` (empty list: none): non-finite values (count,
    first (t, c, y, x) and its time), times not sorted / duplicated / off the step,
    lat or lon not strictly monotonic or lat outside [-90, 90]."""
    where = fields.source or "data"
    problems: list[str] = []
    bad = ~np.isfinite(fields.data)
    if bad.any():
        ti, c, yi, xi = (int(i) for i in np.argwhere(bad)[0])
        when = f" (time {fmt_time(fields.times[ti])})" if fields.times is not None else ""
        name = fields.channels[c].name if c < len(fields.channels) else c
        problems.append(
            f"{where}: {int(bad.sum())} non-finite values; first at (t, c, y, x) = "
            f"({ti}, {c}, {yi}, {xi}){when} in channel {name}; fix the data or pass "
            "nan='zero' or nan='mean'"
        )
    if fields.times is not None:
        if len(fields.times) != len(fields.data):
            problems.append(f"{where}: {len(fields.times)} times for {len(fields.data)} time steps")
        else:
            problem = time_problem(fields.times, fields.time_step, time_tolerance)
            if problem:
                problems.append(f"{where}: {problem}")
    for what, values in (("lat", fields.lat), ("lon", fields.lon)):
        if values is None or len(values) < 2:
            continue
        d = np.diff(values)
        if not (np.all(d > 0) or np.all(d < 0)):
            i = int(np.flatnonzero(np.sign(d) != np.sign(d[0]) if d[0] else d == 0)[0]) + 1
            problems.append(
                f"{where}: {what} is not strictly monotonic at index {i} "
                f"({values[i - 1]:g} then {values[i]:g}); sort the grid"
            )
        if not np.all(np.isfinite(values)):
            problems.append(f"{where}: {what} has non-finite values")
    if fields.lat is not None and np.any(np.abs(fields.lat) > 90):
        problems.append(
            f"{where}: lat values outside [-90, 90] (min {fields.lat.min():g}, max "
            f"{fields.lat.max():g}); is the lat dim another coordinate?"
        )
    return problems


__all__ = [
    "Fields",
    "NAMES",
    "calendar_of",
    "canonical_step",
    "check_values",
    "find_dims",
    "open_dataset",
    "read_fields",
    "step_seconds",
    "time_problem",
    "times_to_seconds",
]
