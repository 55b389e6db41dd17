"""Time axes: the one home of calendars and steps, and the checks that times are sorted,
unique and on the step's grid (within a tolerance). datetime64 and cftime times alike:
differences are taken in whole seconds in the times' own calendar.

- calendars: :func:`canonical_calendar` (the one table of CF calendar aliases),
  :func:`calendar_of`, :func:`same_calendar`;
- steps (xarray frequency strings: "h", "6h", "D", "MS", "YS-JAN", "360D", ...):
  :func:`canonical_step` (parse and spell one way; :func:`hours_step` for a length in
  hours), :func:`fixed_step` /
  :func:`step_seconds` (the length of a step in a calendar, None when it varies),
  :func:`same_step`, :func:`step_unit` (a step as an amount of a unit, for labels),
  :func:`advance` (times moved by k steps), :func:`step_index`
  (positions on the step grid, which tell consecutive frames from gaps).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from svqcast.errors import ConfigError, DataError

# CF calendar names -> one name per calendar. "proleptic_gregorian" is "standard" for the
# dates after 1582 that data has: the two compare equal, but times keep their own name
# (:func:`calendar_of`), with which cftime computes.
_CALENDARS = {
    "gregorian": "standard",
    "proleptic_gregorian": "standard",
    "365_day": "noleap",
    "366_day": "all_leap",
}


def canonical_calendar(calendar: str | None) -> str:
    """One name per CF calendar ("gregorian" -> "standard", "365_day" -> "noleap", ...;
    None -> "standard")."""
    cal = str(calendar or "standard").lower()
    return _CALENDARS.get(cal, cal)


def same_calendar(a: str | None, b: str | None) -> bool:
    """Whether two CF calendar names are the same calendar (None matches any)."""
    if a is None or b is None:
        return True
    return canonical_calendar(a) == canonical_calendar(b)


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
    return cal if cal == "proleptic_gregorian" else canonical_calendar(cal)


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
    seconds = step_seconds(offset.freqstr) if offset.n > 0 else 0
    if seconds is None:
        return offset.freqstr
    if seconds <= 0:
        raise ConfigError(f"time_step {step!r} must be a positive step (e.g. h, 6h, D, MS)")
    for unit, size in (("D", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds % size == 0:
            n = seconds // size
            return unit if n == 1 else f"{n}{unit}"
    return offset.freqstr


def hours_step(hours: float) -> str:
    """The step of ``hours`` hours, spelled as :func:`canonical_step` does (6.0 -> "6h",
    24 -> "D", 0.5 -> "30min"): what a length in hours (an old spec's ``time_step_hours``,
    the ``arrays`` option) becomes."""
    return canonical_step(f"{float(hours):g}h")


def fixed_step(step: str | None, calendar: str | None = None):
    """The length of ``step`` (an xarray frequency string) as a ``datetime.timedelta`` when
    it is the same for every date in ``calendar`` ("6h", "D", "360D"; "MS" and "YS" in the
    360_day calendar; "YS" in noleap), else None ("MS" and "YS" in the standard calendar,
    unparsable strings, no step)."""
    if step is None:
        return None
    return _fixed_step(str(step), canonical_calendar(calendar))


@lru_cache(maxsize=64)
def _fixed_step(step: str, calendar: str):
    import xarray as xr

    try:  # 60 steps from a leap year's start cover month and leap-year lengths
        dates = xr.date_range(
            "2000-01-01", periods=60, freq=step, calendar=calendar, use_cftime=True
        )
    except Exception:  # noqa: BLE001 - an unparsable frequency or calendar: not fixed
        return None
    diffs = {dates[i + 1] - dates[i] for i in range(len(dates) - 1)}
    return diffs.pop() if len(diffs) == 1 else None


def step_seconds(step: str | None, calendar: str | None = None) -> int | None:
    """The length of a fixed step in whole seconds (:func:`fixed_step`), else None."""
    fixed = fixed_step(step, calendar)
    return None if fixed is None else int(fixed.total_seconds())


def same_step(a: str | None, b: str | None) -> bool:
    """Whether two xarray frequency strings are the same step ("h" == "1h" == "60min",
    "D" == "24h"); None matches any."""
    if a is None or b is None or a == b:
        return True
    from xarray.coding.cftime_offsets import to_offset

    try:
        if to_offset(a) == to_offset(b):
            return True
    except Exception:  # noqa: BLE001 - an unparsable frequency string is simply not equal
        return False
    da, db = fixed_step(a), fixed_step(b)
    return da is not None and da == db


def advance(times: np.ndarray, k: int, step: str, calendar: str | None = None) -> np.ndarray:
    """``times`` (datetime64 or cftime dates) moved by ``k`` steps of ``step``."""
    fixed = fixed_step(step, calendar)
    times = np.asarray(times)
    if np.issubdtype(times.dtype, np.datetime64):
        if fixed is not None:
            return times + k * np.timedelta64(int(fixed.total_seconds() * 1e9), "ns")
        import pandas as pd

        off = pd.tseries.frequencies.to_offset(step)
        return np.asarray([np.datetime64(pd.Timestamp(t) + k * off, "ns") for t in times])
    if fixed is not None:
        return np.asarray([t + k * fixed for t in times], dtype=object)
    from xarray.coding.cftime_offsets import to_offset

    off = to_offset(step)
    return np.asarray([t + k * off for t in times], dtype=object)


# offset class (xarray's or pandas') -> (steps of the unit per n, unit)
_OFFSET_UNITS: dict[str, tuple[int, str]] = {
    "Day": (1, "d"),
    "Hour": (1, "h"),
    "Minute": (1, "min"),
    "Second": (1, "s"),
    "Millisecond": (1, "ms"),
    "Milli": (1, "ms"),
    "Microsecond": (1, "us"),
    "Micro": (1, "us"),
    "Week": (1, "week"),
    "MonthBegin": (1, "month"),
    "MonthEnd": (1, "month"),
    "QuarterBegin": (3, "month"),
    "QuarterEnd": (3, "month"),
    "YearBegin": (1, "year"),
    "YearEnd": (1, "year"),
}


def step_unit(time_step: str | None) -> tuple[float, str] | None:
    """One frame step as (amount, unit) from an xarray frequency string: "6h" -> (6, "h"),
    "D" -> (1, "d"), "360D" -> (360, "d"), "MS" -> (1, "month"), "QS" -> (3, "month"),
    "YS-JAN" -> (1, "year"); None when absent or not a regular calendar step."""
    if not time_step:
        return None
    from pandas.tseries.frequencies import to_offset as pandas_offset
    from xarray.coding.cftime_offsets import to_offset as xarray_offset

    for parse in (xarray_offset, pandas_offset):  # xarray's names first ("A", "M", "H" too)
        try:
            offset = parse(str(time_step))
        except (ValueError, TypeError, KeyError):
            continue
        unit = _OFFSET_UNITS.get(type(offset).__name__)
        if unit is not None and offset.n > 0:
            return float(offset.n * unit[0]), unit[1]
    return None


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
    "advance",
    "calendar_of",
    "canonical_calendar",
    "canonical_step",
    "checked_times",
    "fixed_step",
    "hours_step",
    "fmt_time",
    "same_calendar",
    "same_step",
    "step_index",
    "step_seconds",
    "step_unit",
    "time_problem",
    "times_to_seconds",
]
