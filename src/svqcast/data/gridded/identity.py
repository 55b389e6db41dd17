"""Matching data to a checkpoint's data identity (:class:`~svqcast.data.spec.DataSpec`).

A checkpoint knows the grid, channels, units, time step and calendar it was trained on. Data
read by :func:`svqcast.data.gridded.reader.read_fields` keeps its SOURCE layout (latitudes north to
south or south to north, longitudes from -180 or from any origin, variables in any order,
temperatures in K or degC, ...). :func:`match` works out the exact map between the two and
refuses what cannot be mapped, naming both sides:

- mapped: channel order (by variable and level, else by name), latitude order, longitude
  convention and origin (equal modulo 360 within 1e-6 degrees), units of the same
  dimensionality (K <-> degC, m s-1 <-> km h-1, % <-> 1; through :mod:`svqcast.data.gridded.units`);
- refused: another grid, incompatible units, an input without units where the checkpoint
  has them, a missing variable or level, another time step or calendar.

Inputs without coordinates (``.npy``/``.npz``) are matched by shape only: channels by
position, the grid and units taken to be the checkpoint's.

The map is a permutation (and an exact affine unit conversion where units differ), so a
forecast computed through it sees the same tensor whichever layout the file had.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from svqcast.data.gridded.reader import Fields
from svqcast.data.gridded.units import conversion
from svqcast.data.spec import Channel, DataSpec
from svqcast.errors import DataError

ATOL_DEG = 1e-6
# coordinates stored as float32 (common in netCDF) are off by up to half an ulp: 2**-24 * |v|
F32_RTOL = 2.0**-23

# CF calendar names that are the same calendar for dates after 1582
_CALENDAR_ALIASES = {
    "gregorian": "standard",
    "proleptic_gregorian": "standard",
    "365_day": "noleap",
    "366_day": "all_leap",
}


def describe_axis(values: np.ndarray) -> str:
    """``"8 values -78.75..78.75 step 22.5"`` (the step only when it is regular)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return "no values"
    text = f"{v.size} values {v[0]:g}..{v[-1]:g}"
    if v.size > 1:
        d = np.diff(v)
        if np.allclose(d, d[0], rtol=0, atol=ATOL_DEG):
            text += f" step {d[0]:g}"
    return text


def _axis_index(
    want: np.ndarray, have: np.ndarray, *, name: str, where: str, period: float | None
) -> np.ndarray:
    """Index ``i`` with ``have[i] == want`` (modulo ``period``) within ATOL_DEG plus float32
    rounding of the values, else DataError."""
    want = np.asarray(want, dtype=np.float64)
    have = np.asarray(have, dtype=np.float64)

    def fail(detail: str) -> DataError:
        return DataError(
            f"{where}: {name}: checkpoint {describe_axis(want)} vs input {describe_axis(have)}"
            f" ({detail}); regrid the input to the checkpoint's grid"
        )

    if want.shape != have.shape:
        raise fail(f"{want.size} vs {have.size} points")
    w, h = want, have
    if period is not None:
        w, h = np.mod(want, period), np.mod(have, period)
        w[np.abs(w - period) <= ATOL_DEG] = 0.0
        h[np.abs(h - period) <= ATOL_DEG] = 0.0
    order = np.argsort(h, kind="stable")
    hs = h[order]
    pos = np.clip(np.searchsorted(hs, w), 0, max(hs.size - 1, 0))
    left = np.clip(pos - 1, 0, None)
    pick = np.where(np.abs(hs[left] - w) < np.abs(hs[pos] - w), left, pos)
    dist = np.abs(hs[pick] - w)
    bad = np.flatnonzero(
        dist > ATOL_DEG + F32_RTOL * np.maximum(np.abs(want), np.abs(have[order][pick]))
    )
    if bad.size:
        i = int(bad[0])
        raise fail(f"checkpoint {name}[{i}] = {want[i]:g} has no equal in the input")
    index = order[pick]
    if np.unique(index).size != index.size:
        raise fail(f"the input repeats {name} values")
    return index


def grid_permutation(
    spec_lat: np.ndarray,
    spec_lon: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    *,
    where: str,
) -> tuple[np.ndarray, np.ndarray]:
    """``(ilat, ilon)`` with ``lat[ilat] == spec_lat`` and ``lon[ilon] == spec_lon`` modulo
    360 (within 1e-6 degrees, plus float32 rounding of the coordinate values), else a
    one-line DataError naming the first difference."""
    ilat = _axis_index(spec_lat, lat, name="lat", where=where, period=None)
    ilon = _axis_index(spec_lon, lon, name="lon", where=where, period=360.0)
    return ilat, ilon


def same_calendar(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return True
    return _CALENDAR_ALIASES.get(a.lower(), a.lower()) == _CALENDAR_ALIASES.get(
        b.lower(), b.lower()
    )


def same_step(a: str | None, b: str | None) -> bool:
    """Whether two xarray frequency strings are the same step ("h" == "1h" == "60min")."""
    if a is None or b is None or a == b:
        return True
    from xarray.coding.cftime_offsets import to_offset

    try:
        if to_offset(a) == to_offset(b):
            return True
    except Exception:  # noqa: BLE001 - an unparsable frequency string is simply not equal
        return False
    da, db = fixed_step(a), fixed_step(b)  # "D" == "24h", "h" == "60min"
    return da is not None and da == db


def fixed_step(step: str | None, calendar: str | None = None):
    """The length of ``step`` (an xarray frequency string) as a ``datetime.timedelta`` when
    it is the same for every date in ``calendar`` ("6h", "D", "360D"; "MS" and "YS" in the
    360_day calendar; "YS" in noleap), else None ("MS" and "YS" in the standard calendar,
    unparsable strings)."""
    if step is None:
        return None
    return _fixed_step(step, _CALENDAR_ALIASES.get((calendar or "standard").lower(), calendar))


@lru_cache(maxsize=64)
def _fixed_step(step: str, calendar: str | None):
    import xarray as xr

    try:  # 60 steps from a leap year's start cover month and leap-year lengths
        dates = xr.date_range(
            "2000-01-01", periods=60, freq=step, calendar=calendar or "standard", use_cftime=True
        )
    except Exception:  # noqa: BLE001 - an unparsable frequency or calendar: not fixed
        return None
    diffs = {dates[i + 1] - dates[i] for i in range(len(dates) - 1)}
    return diffs.pop() if len(diffs) == 1 else None


def step_hours(step: str | None, calendar: str | None = None) -> float | None:
    """The length of a fixed step in hours (see :func:`fixed_step`), else None."""
    d = fixed_step(step, calendar)
    return None if d is None else d.total_seconds() / 3600.0


@dataclass
class Mapping:
    """The exact map between an input's layout and units and a checkpoint's.

    ``channel_index[c]`` is the input channel of checkpoint channel ``c``; ``ilat``/``ilon``
    index the input's lat/lon into the checkpoint's order (None: same order, shape only);
    ``to_checkpoint[c]``/``to_input[c]`` are ``(scale, offset)`` unit conversions.
    """

    channel_index: np.ndarray
    input_channels: tuple[Channel, ...]  # the input's channel for each checkpoint channel
    to_checkpoint: tuple[tuple[float, float], ...]
    to_input: tuple[tuple[float, float], ...]
    ilat: np.ndarray | None
    ilon: np.ndarray | None
    shape_only: bool = False

    @property
    def inv_lat(self) -> np.ndarray | None:
        return None if self.ilat is None else np.argsort(self.ilat)

    @property
    def inv_lon(self) -> np.ndarray | None:
        return None if self.ilon is None else np.argsort(self.ilon)

    def to_model(self, data: np.ndarray) -> np.ndarray:
        """(..., C_input, H, W) in the input's layout and units -> (..., C, H, W) in the
        checkpoint's (float32)."""
        out = np.asarray(data)[..., self.channel_index, :, :]
        if self.ilat is not None:
            out = out[..., self.ilat, :]
        if self.ilon is not None:
            out = out[..., self.ilon]
        return _convert(out, self.to_checkpoint)

    def to_source(self, pred: np.ndarray) -> np.ndarray:
        """(..., C, H, W) in the checkpoint's layout and units -> the same channels in the
        input's grid order and units (float32); channel ``c`` is ``input_channels[c]``."""
        out = np.asarray(pred)
        if self.ilat is not None:
            out = out[..., self.inv_lat, :]
        if self.ilon is not None:
            out = out[..., self.inv_lon]
        return _convert(out, self.to_input)


def _convert(data: np.ndarray, conv: tuple[tuple[float, float], ...]) -> np.ndarray:
    if all(c == (1.0, 0.0) for c in conv):
        return np.ascontiguousarray(data, dtype=np.float32)
    out = np.empty(data.shape, dtype=np.float32)
    for c, (scale, offset) in enumerate(conv):
        out[..., c, :, :] = data[..., c, :, :].astype(np.float64) * scale + offset
    return out


def _same_level(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    try:
        return bool(np.isclose(float(a), float(b), rtol=0, atol=1e-9))
    except (TypeError, ValueError):
        return str(a) == str(b)


def _key(ch: Channel) -> str:
    name = ch.variable or ch.name
    return name if ch.level is None else f"{name} at level {ch.level}"


def _find_channel(want: Channel, have: tuple[Channel, ...]) -> int | None:
    var = want.variable or want.name
    for i, ch in enumerate(have):
        if (ch.variable or ch.name) == var and _same_level(ch.level, want.level):
            return i
    for i, ch in enumerate(have):  # a checkpoint without variable names: by channel name
        if ch.name == want.name:
            return i
    return None


def match(
    spec: DataSpec, fields: Fields, *, time_tolerance: float = 0.0, by_position: bool = False
) -> Mapping:
    """The :class:`Mapping` from ``fields`` (as read from a file) to ``spec`` (a checkpoint's
    identity), or a one-line DataError naming what differs and both values.

    ``by_position=True`` pairs the channels in order when no name matches (for a file whose
    variables have other names, chosen explicitly by the caller); units are still checked.
    ``time_tolerance`` is accepted for symmetry with the reader (which checks the times
    against the step with it); the step and calendar themselves must be equal.
    """
    del time_tolerance  # the reader applies it to the times; the step must match exactly
    where = f"input {fields.source or '(dataset)'}"
    shape_only = fields.lat is None and fields.lon is None
    have = tuple(fields.channels)
    h, w = fields.data.shape[-2:]
    if (h, w) != (spec.height, spec.width) and (shape_only or spec.lat is None):
        raise DataError(
            f"{where}: grid (H, W): checkpoint ({spec.height}, {spec.width}) vs input ({h}, {w});"
            " regrid the input to the checkpoint's grid"
        )
    # channels
    index: list[int] = []
    for ch in spec.channels:
        i = _find_channel(ch, have)
        if i is None and (shape_only or by_position) and len(have) == len(spec.channels):
            i = len(index)  # no names to go by, or other names chosen: channels by position
        if i is None:
            raise DataError(
                f"{where}: missing {_key(ch)} the checkpoint was trained on; the input has "
                f"{', '.join(_key(c) for c in have) or 'no variables'}; pass variables= "
                "(--variables) naming it"
            )
        index.append(i)
    # units
    to_ckpt, to_input = [], []
    for ch, i in zip(spec.channels, index, strict=True):
        src = have[i].units or ""
        if shape_only and not src:
            src = ch.units  # .npy: the checkpoint's units (documented)
        dst = ch.units or ""
        if not dst or src == dst:
            to_ckpt.append((1.0, 0.0))
            to_input.append((1.0, 0.0))
            continue
        if not src:
            raise DataError(
                f"{where}: {_key(have[i])} has no units but the checkpoint's are {dst!r}; set "
                f"the units attribute of the variable (e.g. units={dst!r})"
            )
        fwd, back = conversion(src, dst), conversion(dst, src)
        if fwd is None or back is None:
            raise DataError(
                f"{where}: units of {_key(have[i])}: checkpoint {dst!r} vs input {src!r}, which "
                "do not convert; convert the data or fix its units attribute"
            )
        to_ckpt.append(fwd)
        to_input.append(back)
    # grid
    ilat = ilon = None
    if not shape_only and spec.lat is not None and spec.lon is not None:
        if fields.lat is None or fields.lon is None:
            raise DataError(f"{where}: no lat/lon coordinates; the checkpoint has a lat/lon grid")
        ilat, ilon = grid_permutation(spec.lat, spec.lon, fields.lat, fields.lon, where=where)
        if np.array_equal(ilat, np.arange(ilat.size)):
            ilat = None
        if np.array_equal(ilon, np.arange(ilon.size)):
            ilon = None
    # time
    mine = spec.time_step
    if mine is None and spec.time_step_hours and fields.time_step is not None:
        mine = f"{spec.time_step_hours:g}h"  # a checkpoint from before time_step existed
        if step_hours(fields.time_step) is None:
            mine = None
    if not same_step(mine, fields.time_step):
        raise DataError(
            f"{where}: time step: checkpoint {mine} vs input {fields.time_step}; "
            "resample the input to the checkpoint's step"
        )
    if not same_calendar(spec.calendar, fields.calendar):
        raise DataError(
            f"{where}: calendar: checkpoint {spec.calendar} vs input {fields.calendar}; a model "
            "trained on one calendar cannot date forecasts in another"
        )
    return Mapping(
        channel_index=np.asarray(index, dtype=np.int64),
        input_channels=tuple(have[i] for i in index),
        to_checkpoint=tuple(to_ckpt),
        to_input=tuple(to_input),
        ilat=ilat,
        ilon=ilon,
        shape_only=shape_only,
    )
