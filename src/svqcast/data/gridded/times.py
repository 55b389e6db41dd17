"""Time axes for :mod:`svqcast.data.gridded.reader`: calendars, steps, and the checks that times
are sorted, unique and on the step's grid (within a tolerance). datetime64 and cftime
times alike: differences are taken in whole seconds in the times' own calendar.
"""

from __future__ import annotations

import numpy as np

from svqcast.errors import ConfigError, DataError

_CALENDARS = {"gregorian": "standard", "365_day": "noleap", "366_day": "all_leap"}


def fmt_time(t) -> str:
    """A datetime64 or cftime date as ISO text to the second."""
    if isinstance(t, np.datetime64):
        return str(t.astype("datetime64[s]"))
    iso = getattr(t, "isoformat", None)
    return iso() if iso else str(t)


def calendar_of(times: np.ndarray) -> str:
    """The CF calendar of datetime64 ("standard") or cftime times."""
    if np.issubdtype(np.asarray(times).dtype, np.datetime64) or len(times) == 0:
        return "standard"
    cal = str(getattr(times[0], "calendar", "standard") or "standard").lower()
    return _CALENDARS.get(cal, cal)


def times_to_seconds(times: np.ndarray) -> np.ndarray:
    """Whole seconds since 1970-01-01 (int64) of datetime64 or cftime times, in their own
    calendar (so steps and gaps are differences)."""
    times = np.asarray(times)
    if np.issubdtype(times.dtype, np.datetime64):
        return times.astype("datetime64[s]").astype(np.int64)
    import cftime

    cal = calendar_of(times)
    num = cftime.date2num(list(times), "seconds since 1970-01-01", calendar=cal)
    return np.round(np.asarray(num, dtype=np.float64)).astype(np.int64)


def canonical_step(step: str) -> str:
    """A frequency string in one spelling ("1h" -> "h", "24h" -> "D", "YS" -> "YS-JAN")."""
    from pandas.tseries.frequencies import to_offset

    try:
        offset = to_offset(str(step))
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"time_step {step!r} is not a frequency xarray understands (e.g. h, 6h, D, MS)"
        ) from exc
    seconds = step_seconds(offset.freqstr)
    if seconds is None:
        return offset.freqstr
    if seconds <= 0:
        raise ConfigError(f"time_step {step!r} must be a positive step (e.g. h, 6h, D, MS)")
    for unit, size in (("D", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds % size == 0:
            n = seconds // size
            return unit if n == 1 else f"{n}{unit}"
    return offset.freqstr


def step_seconds(step: str | None) -> int | None:
    """The length of a fixed step in seconds (None for months, years or no step)."""
    if step is None:
        return None
    import pandas as pd
    from pandas.tseries.frequencies import to_offset

    try:
        return int(pd.to_timedelta(to_offset(step)).total_seconds())
    except (TypeError, ValueError):
        return None


def step_hours(step: str | None) -> float | None:
    """The length of a fixed step in hours, None for calendar steps (months, years)."""
    seconds = step_seconds(step)
    return None if seconds is None else seconds / 3600.0


def _grid(times: np.ndarray, step: str, calendar: str) -> np.ndarray:
    """Seconds of the regular ``step`` grid from times[0] to (just past) times[-1]."""
    import xarray as xr

    fixed = step_seconds(step)
    t = times_to_seconds(times)
    if fixed is not None:
        n = int((t[-1] - t[0]) // fixed) + 2
        return t[0] + fixed * np.arange(n, dtype=np.int64)
    kw = dict(freq=step, calendar=calendar, use_cftime=_is_obj(times))
    grid = list(xr.date_range(start=times[0], end=times[-1], **kw))
    grid += list(xr.date_range(start=grid[-1] if grid else times[0], periods=2, **kw))[-1:]
    if len(grid) < 2:
        grid = list(xr.date_range(start=times[0], periods=2, **kw))
    return times_to_seconds(np.asarray(grid))


def time_problem(times: np.ndarray, step: str | None, tolerance: float = 0.0) -> str | None:
    """The first problem of a time axis (not increasing, duplicated, off the step grid by
    more than ``tolerance`` steps), or None."""
    t = times_to_seconds(times)
    d = np.diff(t)
    bad = np.flatnonzero(d <= 0)
    if len(bad):
        i = int(bad[0])
        now, before = fmt_time(times[i + 1]), fmt_time(times[i])
        if d[i] == 0:
            return (
                f"duplicated time at index {i + 1}: {now} equals time[{i}]; drop the "
                "duplicates (e.g. ds.drop_duplicates('time'))"
            )
        return (
            f"times not sorted: time[{i + 1}] = {now} is before time[{i}] = {before}; sort "
            "the file by time (e.g. ds.sortby('time'))"
        )
    if step is None or len(t) < 2:
        return None
    off = _off_step(times, step, tolerance)
    return None if off is None else off[0]


def _off_step(times: np.ndarray, step: str, tolerance: float):
    """(message, None) for the first time off the step grid beyond ``tolerance``; ("",
    snapped seconds) when every time lies within it but some are off; None when all on it."""
    calendar = calendar_of(times)
    t = times_to_seconds(times)
    grid = _grid(times, step, calendar)
    pos = np.clip(np.searchsorted(grid, t), 1, len(grid) - 1)
    left, right = grid[pos - 1], grid[pos]
    nearest = np.where(t - left <= right - t, left, right)
    length = (right - left).astype(np.float64)
    frac = np.abs(t - nearest) / length
    over = np.flatnonzero(frac > tolerance + 1e-9)
    if len(over):
        i = int(over[0])
        j = max(i - 1, 0)
        return (
            f"time[{i}] = {fmt_time(times[i])} is off the time_step {step} grid by "
            f"{frac[i]:.3g} of a step (nearest step time "
            f"{fmt_time(_date(nearest[i], times))}; time[{j}] = {fmt_time(times[j])}); fix "
            "the times, pass time_step= if the step is another, or accept with "
            f"time_tolerance >= {frac[i]:.3g}"
        ), None
    if np.any(np.diff(nearest) <= 0):
        i = int(np.flatnonzero(np.diff(nearest) <= 0)[0]) + 1
        return (
            f"time[{i}] = {fmt_time(times[i])} and time[{i - 1}] = {fmt_time(times[i - 1])} "
            f"fall on the same {step} step within time_tolerance={tolerance}; lower the "
            "tolerance or fix the times"
        ), None
    return None if np.array_equal(nearest, t) else ("", nearest)


def _date(seconds: int, like: np.ndarray):
    if np.issubdtype(np.asarray(like).dtype, np.datetime64):
        return np.datetime64(int(seconds), "s")
    import cftime

    return cftime.num2date(int(seconds), "seconds since 1970-01-01", calendar=calendar_of(like))


def _infer_step(times: np.ndarray) -> str | None:
    """xarray's inferred frequency, else the most common spacing as a fixed step."""
    import xarray as xr

    if len(times) < 2:
        return None
    if len(times) >= 3:
        try:
            freq = xr.infer_freq(times if not _is_obj(times) else xr.CFTimeIndex(times))
        except (TypeError, ValueError):
            freq = None
        if freq is not None:
            return canonical_step(freq)
    d = np.diff(times_to_seconds(times))
    values, counts = np.unique(d[d > 0], return_counts=True)
    if len(values) == 0:
        return None
    return canonical_step(f"{int(values[np.argmax(counts)])}s")


def _is_obj(times: np.ndarray) -> bool:
    return not np.issubdtype(np.asarray(times).dtype, np.datetime64)


def checked_times(
    times: np.ndarray, step: str | None, tolerance: float, source: str
) -> tuple[np.ndarray, str | None]:
    """(times snapped onto the step grid, canonical step) or DataError."""
    if not 0.0 <= float(tolerance) < 0.5:
        raise ConfigError(f"time_tolerance must be in [0, 0.5) of a step, got {tolerance}")
    problem = time_problem(times, None)
    if problem:
        raise DataError(f"{source}: {problem}")
    step = canonical_step(step) if step is not None else _infer_step(times)
    if step is None:
        return times, None
    off = _off_step(times, step, float(tolerance))
    if off is None:
        return times, step
    message, snapped = off
    if snapped is None:
        raise DataError(f"{source}: {message}")
    if np.issubdtype(times.dtype, np.datetime64):
        return snapped.astype("datetime64[s]").astype("datetime64[ns]"), step
    return np.asarray([_date(s, times) for s in snapped], dtype=object), step


def step_index(times: np.ndarray, step: str) -> np.ndarray:
    """Position (int64) of each time on the ``step`` grid that starts at times[0]; times
    must lie on the grid (as :func:`checked_times` leaves them)."""
    t = times_to_seconds(times)
    fixed = step_seconds(step)
    if fixed is not None:
        return (t - t[0]) // fixed
    return np.searchsorted(_grid(times, step, calendar_of(times)), t).astype(np.int64)


__all__ = [
    "calendar_of",
    "fmt_time",
    "canonical_step",
    "checked_times",
    "step_hours",
    "step_index",
    "step_seconds",
    "time_problem",
    "times_to_seconds",
]
