"""``arrays``: the user's own data as one long series, from netCDF, zarr or NumPy files.

Every format goes through the one reader, :func:`svqcast.data.gridded.reader.read_fields` (option
``path``, relative to the data root unless absolute):
- ``.nc`` / ``.zarr`` (or a zarr URL): ``variables`` (default: every data variable with the
  time, lat and lon dims). Dims are found by name (time/valid_time, lat/latitude,
  lon/longitude) or CF attributes; ``time_dim``, ``lat_dim``, ``lon_dim`` name others. A
  variable with a level dim gives one channel per level (``level_dim``, ``levels``).
  The time step is inferred (or ``time_step``, checked within ``time_tolerance``).
- ``.npy``: a (T, C, H, W) or (T, H, W) array; ``.npz``: the same under ``key`` (optional
  when the file holds one array). No time coordinate unless ``start`` (and ``time_step`` or
  ``time_step_hours``, default 1 h) give one.

The series is split chronologically (``split`` fractions of frames, default 0.7/0.1/0.2, or
``split_dates`` = (first val time, first test time)), normalised with TRAIN statistics per
channel, and cut into windows that never straddle a split or a gap in time. Times must be
sorted, unique and on the step (else DataError). NaN policy ``nan``: "error" (default; the
message gives the count and the first (t, c, y, x) and timestamp), "zero" (NaN -> 0 in
physical units before statistics), "mean" (NaN -> the channel's training mean). The
climatology baseline is phased by the step (see
:func:`svqcast.data.climatology.climatology_phases`); ``spec.extra["climatology"]`` says how.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from svqcast.data.base import PROTOCOL_ALIASES, PROTOCOLS, Splits
from svqcast.data.climatology import climatology_phases, fit_climatology
from svqcast.data.gridded.reader import (
    Fields,
    read_fields,
    times_to_seconds,
)
from svqcast.data.gridded.reader import check_values as reader_check_values
from svqcast.data.gridded.times import hours_step
from svqcast.data.spec import DataSpec, Normalizer
from svqcast.data.windows import ArrayWindows, contiguous_starts, window_offsets
from svqcast.errors import ConfigError, DataError, DataNotFoundError, SvqcastError, one_line

NAN_POLICIES = ("error", "zero", "mean")
CONVENTIONS = ("weather", "video")
DEFAULTS: dict[str, Any] = {
    "path": None,
    "key": None,
    "variables": None,
    "time_dim": None,
    "lat_dim": None,
    "lon_dim": None,
    "level_dim": None,
    "levels": None,
    "in_len": 12,
    "out_len": 12,
    "stride": 1,
    "split": (0.7, 0.1, 0.2),
    "split_dates": None,
    "nan": "error",
    "convention": None,
    "start": None,
    "time_step_hours": None,
    "time_step": None,
    "time_tolerance": 0.0,
    "protocol": "standard",
}


def describe(name: str) -> str:
    return "your own series: .npy/.npz (T, [C,] H, W) or netCDF/zarr variables (option path)"


def layout(name: str) -> str:
    return (
        "any file given by option path (relative to the root): .nc / .zarr with dims "
        "time, lat, lon (or valid_time, latitude, longitude, or CF axis attributes; other "
        "names via time_dim, lat_dim, lon_dim); .npy / .npz (key) holding (T, C, H, W) or "
        "(T, H, W)"
    )


def is_present(name: str, root: str | Path) -> bool:
    """``arrays`` has no fixed files; it is 'present' when the root exists."""
    return Path(root).is_dir()


def check(name: str, root: str | Path) -> list[str]:
    if not Path(root).is_dir():
        return [f"data root {root} does not exist"]
    return []


# ----------------------------------------------------------------------------- reading


def _resolve(root: str | Path, path: str | Path | None) -> Path | str:
    """The file's path (relative paths under ``root``), or a URL (``s3://...``) as is."""
    if path is None:
        raise ConfigError("arrays needs option path= (a .npy, .npz, .nc or .zarr file)")
    if isinstance(path, str) and "://" in path and not path.startswith("file://"):
        return path  # a zarr store behind fsspec: the reader opens it
    p = Path(str(path).removeprefix("file://"))
    p = p if p.is_absolute() else Path(root) / p
    if not p.exists():
        raise DataNotFoundError(f"no file {p}; arrays expects {layout('arrays')}")
    return p


def read(root: str | Path, opts: dict[str, Any]) -> Fields:
    """The series of ``opts["path"]`` through the reader, with the arrays options."""
    path = _resolve(root, opts["path"])
    step = opts["time_step"]
    if step is None and opts["start"] is not None:
        step = hours_step(opts["time_step_hours"] or 1.0)
    levels = opts["levels"]
    if levels is not None and not isinstance(levels, list | tuple):
        levels = [levels]
    return read_fields(
        path,
        variables=opts["variables"],
        levels=None if levels is None else list(levels),
        level_dim=opts["level_dim"],
        time_dim=opts["time_dim"],
        lat_dim=opts["lat_dim"],
        lon_dim=opts["lon_dim"],
        key=opts["key"],
        start=opts["start"],
        time_step=step,
        time_tolerance=float(opts["time_tolerance"]),
    )


def _as_time(value: Any, times: np.ndarray) -> int:
    """An ISO date as seconds in the calendar of ``times``."""
    import pandas as pd

    stamp = pd.Timestamp(str(value))
    if np.issubdtype(times.dtype, np.datetime64):
        return int(times_to_seconds(np.array([stamp.to_datetime64()]))[0])
    import cftime

    date = cftime.datetime(
        stamp.year,
        stamp.month,
        stamp.day,
        stamp.hour,
        stamp.minute,
        stamp.second,
        calendar=times[0].calendar,
    )
    return int(times_to_seconds(np.array([date], dtype=object))[0])


def _split_bounds(n: int, opts: dict[str, Any], times: np.ndarray | None) -> tuple[int, int]:
    """Frame indices (val_start, test_start) of the chronological split."""
    if opts["split_dates"] is not None:
        if times is None:
            raise ConfigError("split_dates needs a time coordinate; use split fractions")
        try:
            val_t, test_t = (_as_time(d, times) for d in opts["split_dates"])
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"split_dates must be (first val time, first test time) as ISO dates, got "
                f"{opts['split_dates']!r}"
            ) from exc
        if not val_t < test_t:
            raise ConfigError(
                f"split_dates: val start {opts['split_dates'][0]} must be before test "
                f"{opts['split_dates'][1]}"
            )
        seconds = times_to_seconds(times)
        return int(np.searchsorted(seconds, val_t)), int(np.searchsorted(seconds, test_t))
    split = tuple(float(f) for f in opts["split"])
    if len(split) != 3 or min(split) < 0 or abs(sum(split) - 1) > 1e-6 or split[0] == 0:
        raise ConfigError(f"split must be 3 fractions (train, val, test) summing to 1, got {split}")
    val_start = int(round(n * split[0]))
    return val_start, int(round(n * (split[0] + split[1])))


def _options(options: dict[str, Any]) -> dict[str, Any]:
    """The options with defaults filled in, checked."""
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
    if min(int(opts["in_len"]), int(opts["out_len"]), int(opts["stride"])) < 1:
        raise ConfigError("in_len, out_len and stride must be >= 1 for arrays")
    opts["protocol"] = protocol
    return opts


def check_values(name: str, root: str | Path, **options: Any) -> list[str]:
    """Problems with the values of the file ``options["path"]`` (every one found: non-finite
    values unless the ``nan`` policy fills them, times not sorted / unique / on the step,
    grid not monotonic), then anything that stops :func:`load` with these options."""
    opts = _options(options)
    try:
        fields = read(root, opts)
    except DataError as exc:
        return [one_line(exc)]
    problems = reader_check_values(fields, time_tolerance=float(opts["time_tolerance"]))
    if opts["nan"] != "error":
        problems = [p for p in problems if "non-finite" not in p]
    if problems:
        return problems
    try:
        load(name, root, **options)
    except SvqcastError as exc:
        return [one_line(exc)]
    return []


def load(name: str, root: str | Path, **options: Any) -> Splits:
    """Train/val/test windows over the user's series; see the module docstring for options."""
    opts = _options(options)
    protocol = opts["protocol"]
    in_len, out_len, stride = int(opts["in_len"]), int(opts["out_len"]), int(opts["stride"])

    fields = read(root, opts)
    path, times, series, channels = fields.source, fields.times, fields.data, fields.channels
    if not series.flags.writeable:
        series = series.copy()
    problems = reader_check_values(fields, time_tolerance=float(opts["time_tolerance"]))
    nan_problem = problems[0] if problems and "non-finite" in problems[0] else None
    others = [p for p in problems if p is not nan_problem]
    if others:
        raise DataError(others[0])
    n = len(series)
    val_start, test_start = _split_bounds(n, opts, times)
    parts = {"train": (0, val_start), "val": (val_start, test_start), "test": (test_start, n)}
    if protocol == "openstl":
        parts["train"] = (0, test_start)

    bad = ~np.isfinite(series)
    if bad.any():
        if opts["nan"] == "error":
            raise DataError(nan_problem)
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
    phase_fn, n_phases, climatology_kind = climatology_phases(fields.time_step)

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
            starts = contiguous_starts(t, offsets, stride, fields.time_step, where=where)
        return ArrayWindows(
            series[a:b],
            in_len,
            out_len,
            starts,
            times=t,
            phase_fn=phase_fn if t is not None else None,
            offsets=offsets,
        )

    train, test = windows("train"), windows("test")
    val = test if protocol == "openstl" else windows("val")
    phases = None if phase_fn is None or times is None else phase_fn(times[lo:hi])
    climatology = fit_climatology(series[lo:hi], phases, n_phases)

    convention = opts["convention"]
    if convention is None:
        in_unit = physical_range[0] >= 0.0 and physical_range[1] <= 1.0
        convention = "weather" if times is not None or not in_unit else "video"
    coordinates = fields.lat is not None and fields.lon is not None
    spec = DataSpec(
        name=name,
        in_len=in_len,
        out_len=out_len,
        channels=tuple(channels),
        height=series.shape[2],
        width=series.shape[3],
        convention=convention,
        normalizer=norm,
        lat=fields.lat,
        lon=fields.lon,
        data_range=(0.0, 1.0) if convention == "video" else None,
        extra={
            "path": str(path),
            "parts": {k: list(v) for k, v in parts.items()},
            "protocol": protocol,
            "nan": opts["nan"],
            "climatology_phases": {288: "month_hour", 12: "month"}.get(n_phases, "none"),
            "climatology": climatology_kind,
        },
        time_step=fields.time_step,
        calendar=fields.calendar,
        dims=dict(fields.dims) if coordinates else None,
        attrs=fields.attrs if coordinates else None,
    )
    return Splits(train=train, val=val, test=test, spec=spec, climatology=climatology)
