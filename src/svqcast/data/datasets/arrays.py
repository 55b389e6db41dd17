"""``arrays``: the user's own data as one long series, from NumPy or netCDF / zarr files.

Sources (option ``path``, relative to the data root unless absolute):
- ``.npy``: a (T, C, H, W) or (T, H, W) array; ``.npz``: the same under ``key`` (optional
  when the file holds one array). No time coordinate unless ``start`` (and
  ``time_step_hours``, default 1) give one.
- ``.nc`` (netCDF) or ``.zarr``: ``variables`` (default: every data variable with the time,
  lat and lon dims) read through xarray; dims are named by ``time_dim``, ``lat_dim``,
  ``lon_dim``; a variable with one more dim (e.g. level) gives one channel per index.

The series is split chronologically (``split`` fractions of frames, default 0.7/0.1/0.2, or
``split_dates`` = (first val time, first test time)), normalised with TRAIN statistics per
channel, and cut into windows that never straddle a split or a gap in time. NaN policy
``nan``: "error" (default; the message gives the count and the first (t, c, y, x) and
timestamp), "zero" (NaN -> 0 in physical units before statistics), "mean" (NaN -> the
channel's training mean). With times: convention "weather" and (month, hour-of-day)
climatology phases; without: per-position climatology.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from svqcast.data.base import PROTOCOL_ALIASES, PROTOCOLS, Splits
from svqcast.data.spec import Channel, DataSpec, Normalizer
from svqcast.data.windows import (
    MONTH_HOUR_PHASES,
    ArrayWindows,
    contiguous_starts,
    fit_climatology,
    month_hour_phase,
    window_offsets,
)
from svqcast.errors import ConfigError, DataError, DataNotFoundError

NAN_POLICIES = ("error", "zero", "mean")
CONVENTIONS = ("weather", "video")
DEFAULTS: dict[str, Any] = {
    "path": None,
    "key": None,
    "variables": None,
    "time_dim": "time",
    "lat_dim": "lat",
    "lon_dim": "lon",
    "in_len": 12,
    "out_len": 12,
    "stride": 1,
    "split": (0.7, 0.1, 0.2),
    "split_dates": None,
    "nan": "error",
    "convention": None,
    "start": None,
    "time_step_hours": None,
    "protocol": "standard",
}


def describe(name: str) -> str:
    return "your own series: .npy/.npz (T, [C,] H, W) or netCDF/zarr variables (option path)"


def layout(name: str) -> str:
    return (
        "any file given by option path (relative to the root): .npy / .npz (key) holding "
        "(T, C, H, W) or (T, H, W); .nc / .zarr with dims time, lat, lon (names via "
        "time_dim, lat_dim, lon_dim)"
    )


def is_present(name: str, root: str | Path) -> bool:
    """``arrays`` has no fixed files; it is 'present' when the root exists."""
    return Path(root).is_dir()


def check(name: str, root: str | Path) -> list[str]:
    if not Path(root).is_dir():
        return [f"data root {root} does not exist"]
    return []


# ----------------------------------------------------------------------------- reading


def _resolve(root: str | Path, path: str | Path | None) -> Path:
    if path is None:
        raise ConfigError("arrays needs option path= (a .npy, .npz, .nc or .zarr file)")
    p = Path(path)
    p = p if p.is_absolute() else Path(root) / p
    if not p.exists():
        raise DataNotFoundError(f"no file {p}; arrays expects {layout('arrays')}")
    return p


def _read_numpy(path: Path, key: str | None) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path)
    with np.load(path) as z:
        keys = list(z.keys())
        if key is None:
            if len(keys) != 1:
                raise ConfigError(f"{path} holds {', '.join(keys)}; pass key= to pick one")
            key = keys[0]
        if key not in keys:
            raise ConfigError(f"{path} has no array {key!r}; keys: {', '.join(keys)}")
        return z[key]


def _numpy_series(array: np.ndarray, path: Path) -> tuple[np.ndarray, list[Channel]]:
    if array.ndim == 3:
        array = array[:, None]  # (T, 1, H, W)
    if array.ndim != 4:
        raise DataError(f"{path}: array of shape {array.shape}; expected (T, C, H, W) or (T, H, W)")
    channels = [Channel(f"c{i}") for i in range(array.shape[1])]
    return np.asarray(array, dtype=np.float32), channels


def _read_xarray(path: Path, opts: dict[str, Any]) -> dict[str, Any]:
    import xarray as xr

    try:
        if path.suffix == ".zarr" or path.is_dir():
            ds = xr.open_zarr(path)
        else:
            ds = xr.open_dataset(path, engine="netcdf4")
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"cannot open {path} with xarray ({exc})") from exc
    t, y, x = opts["time_dim"], opts["lat_dim"], opts["lon_dim"]
    with ds:
        names = opts["variables"]
        if names is None:
            names = [v for v in ds.data_vars if {t, y, x} <= set(ds[v].dims)]
            if not names:
                found = {str(v): tuple(map(str, ds[v].dims)) for v in ds.data_vars}
                raise DataError(
                    f"{path}: no variable with dims ({t}, {y}, {x}); found {found}; "
                    "pass time_dim/lat_dim/lon_dim"
                )
        names = [names] if isinstance(names, str) else list(names)
        blocks, channels = [], []
        for v in names:
            if v not in ds.data_vars:
                raise ConfigError(
                    f"{path} has no variable {v!r}; variables: {', '.join(map(str, ds.data_vars))}"
                )
            da = ds[v]
            extra = [d for d in da.dims if d not in (t, y, x)]
            if not {t, y, x} <= set(da.dims) or len(extra) > 1:
                raise DataError(
                    f"{path}: {v} has dims {da.dims}; expected ({t}, {y}, {x}) plus at most "
                    "one more (e.g. level); pass time_dim/lat_dim/lon_dim"
                )
            units = str(da.attrs.get("units", ""))
            if extra:
                da = da.transpose(t, extra[0], y, x)
                labels = np.asarray(da[extra[0]].values) if extra[0] in da.coords else None
                n = da.shape[1]
                labels = labels if labels is not None else np.arange(n)
                channels += [Channel(f"{v}_{lab}", units) for lab in labels.tolist()]
                blocks.append(np.asarray(da.values, dtype=np.float32))
            else:
                channels.append(Channel(str(v), units))
                blocks.append(np.asarray(da.transpose(t, y, x).values, dtype=np.float32)[:, None])
        time_values = np.asarray(ds[t].values) if t in ds.coords else None
        lat = np.asarray(ds[y].values, dtype=np.float64) if y in ds.coords else None
        lon = np.asarray(ds[x].values, dtype=np.float64) if x in ds.coords else None
    times = (
        time_values
        if time_values is not None and np.issubdtype(time_values.dtype, np.datetime64)
        else None
    )
    return {
        "series": np.concatenate(blocks, axis=1),
        "channels": channels,
        "times": times,
        "lat": lat,
        "lon": lon,
    }


# ----------------------------------------------------------------------------- checks


def _nan_report(series: np.ndarray, times: np.ndarray | None, path: Path) -> str:
    bad = ~np.isfinite(series)
    t, c, y, x = np.argwhere(bad)[0]
    when = f" ({times[t]})" if times is not None else ""
    return (
        f"{path}: {int(bad.sum())} non-finite values; first at (t, c, y, x) = "
        f"({t}, {c}, {y}, {x}){when}; fix the data or pass nan='zero' or nan='mean'"
    )


def _split_bounds(n: int, opts: dict[str, Any], times: np.ndarray | None) -> tuple[int, int]:
    """Frame indices (val_start, test_start) of the chronological split."""
    if opts["split_dates"] is not None:
        if times is None:
            raise ConfigError("split_dates needs a time coordinate; use split fractions")
        try:
            val_t, test_t = (np.datetime64(d) for d in opts["split_dates"])
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"split_dates must be (first val time, first test time) as ISO dates, got "
                f"{opts['split_dates']!r}"
            ) from exc
        if not val_t < test_t:
            raise ConfigError(f"split_dates: val start {val_t} must be before test {test_t}")
        return int(np.searchsorted(times, val_t)), int(np.searchsorted(times, test_t))
    split = tuple(float(f) for f in opts["split"])
    if len(split) != 3 or min(split) < 0 or abs(sum(split) - 1) > 1e-6 or split[0] == 0:
        raise ConfigError(f"split must be 3 fractions (train, val, test) summing to 1, got {split}")
    val_start = int(round(n * split[0]))
    return val_start, int(round(n * (split[0] + split[1])))


def load(name: str, root: str | Path, **options: Any) -> Splits:
    """Train/val/test windows over the user's series; see the module docstring for options."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for arrays; valid: {', '.join(DEFAULTS)}"
        )
    opts = {k: (DEFAULTS[k] if options.get(k) is None else options[k]) for k in DEFAULTS}
    protocol = PROTOCOL_ALIASES.get(opts["protocol"], opts["protocol"])
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if opts["nan"] not in NAN_POLICIES:
        raise ConfigError(f"nan must be one of {', '.join(NAN_POLICIES)}, got {opts['nan']!r}")
    if opts["convention"] is not None and opts["convention"] not in CONVENTIONS:
        raise ConfigError(f"convention must be one of {', '.join(CONVENTIONS)}")
    in_len, out_len, stride = int(opts["in_len"]), int(opts["out_len"]), int(opts["stride"])
    if min(in_len, out_len, stride) < 1:
        raise ConfigError("in_len, out_len and stride must be >= 1 for arrays")

    path = _resolve(root, opts["path"])
    if path.suffix in (".npy", ".npz"):
        series, channels = _numpy_series(_read_numpy(path, opts["key"]), path)
        lat = lon = None
        times = None
        if opts["start"] is not None:
            step = float(opts["time_step_hours"] or 1.0)
            try:
                start = np.datetime64(opts["start"], "s")
            except ValueError as exc:
                raise ConfigError(f"start must be an ISO time, got {opts['start']!r}") from exc
            times = start + (np.arange(len(series)) * step * 3600).astype("timedelta64[s]")
    elif path.suffix in (".nc", ".zarr") or path.is_dir():
        got = _read_xarray(path, opts)
        series, channels, times = got["series"], got["channels"], got["times"]
        lat, lon = got["lat"], got["lon"]
    else:
        raise ConfigError(f"{path}: unknown format {path.suffix!r}; use .npy, .npz, .nc, .zarr")

    if times is not None:
        times = np.asarray(times).astype("datetime64[s]")
        if np.any(np.diff(times) <= np.timedelta64(0, "s")):
            raise DataError(f"{path}: time coordinate is not strictly increasing")
    n = len(series)
    val_start, test_start = _split_bounds(n, opts, times)
    parts = {"train": (0, val_start), "val": (val_start, test_start), "test": (test_start, n)}
    if protocol == "openstl":
        parts["train"] = (0, test_start)

    bad = ~np.isfinite(series)
    if bad.any():
        if opts["nan"] == "error":
            raise DataError(_nan_report(series, times, path))
        if opts["nan"] == "zero":
            series[bad] = 0.0
        else:
            lo, hi = parts["train"]
            with np.errstate(invalid="ignore"):
                fill = np.nanmean(series[lo:hi], axis=(0, 2, 3), dtype=np.float64)
            if not np.all(np.isfinite(fill)):
                raise DataError(f"{path}: a channel has no finite training value; cannot fill")
            series = np.where(bad, fill[None, :, None, None], series).astype(np.float32)

    lo, hi = parts["train"]
    train_raw = series[lo:hi]
    mean = np.array([train_raw[:, c].mean(dtype=np.float64) for c in range(series.shape[1])])
    std = np.array([train_raw[:, c].std(dtype=np.float64) for c in range(series.shape[1])])
    norm = Normalizer(mean, np.where(std > 0, std, 1.0))
    physical_range = (float(series.min()), float(series.max()))
    series = ((series - mean[None, :, None, None]) / norm.std[None, :, None, None]).astype(
        np.float32
    )

    offsets = window_offsets(in_len, out_len)
    frame_step = None
    if times is not None and n > 1:
        frame_step = np.diff(times).min()

    def windows(split: str) -> ArrayWindows:
        a, b = parts[split]
        where = f"arrays {split} part (frames {a}..{b - 1} of {n})"
        if b - a < len(offsets):
            raise DataError(
                f"{where} has {b - a} frames but one window of {in_len} -> {out_len} needs "
                f"{len(offsets)}; use more data, other split fractions or shorter windows"
            )
        t = None if times is None else times[a:b]
        if t is None:
            starts = np.arange(0, b - a - len(offsets) + 1, stride)
        else:
            starts = contiguous_starts(t, offsets, stride, frame_step, where=where)
        return ArrayWindows(
            series[a:b],
            in_len,
            out_len,
            starts,
            times=t,
            phase_fn=month_hour_phase if t is not None else None,
            offsets=offsets,
        )

    train, test = windows("train"), windows("test")
    val = test if protocol == "openstl" else windows("val")
    if times is None:
        climatology = fit_climatology(series[lo:hi])
    else:
        climatology = fit_climatology(
            series[lo:hi], month_hour_phase(times[lo:hi]), MONTH_HOUR_PHASES
        )

    convention = opts["convention"]
    if convention is None:
        in_unit = physical_range[0] >= 0.0 and physical_range[1] <= 1.0
        convention = "weather" if times is not None or not in_unit else "video"
    step_hours = None
    if frame_step is not None:
        step_hours = float(frame_step / np.timedelta64(1, "h"))
    spec = DataSpec(
        name=name,
        in_len=in_len,
        out_len=out_len,
        channels=tuple(channels),
        height=series.shape[2],
        width=series.shape[3],
        convention=convention,
        normalizer=norm,
        lat=lat,
        lon=lon,
        time_step_hours=step_hours,
        data_range=(0.0, 1.0) if convention == "video" else None,
        extra={
            "path": str(path),
            "parts": {k: list(v) for k, v in parts.items()},
            "protocol": protocol,
            "nan": opts["nan"],
            "climatology_phases": "month_hour" if times is not None else "none",
        },
    )
    return Splits(train=train, val=val, test=test, spec=spec, climatology=climatology)
