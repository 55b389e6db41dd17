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

The same identity between two specs (the data given to test or resume a checkpoint vs the
checkpoint's) is :func:`check_same_data`: the first difference named, other units accepted
where :func:`in_units_of` restates the same data. Time steps and calendars compare through
:func:`svqcast.data.gridded.times.same_step` and ``same_calendar`` on both paths.

Inputs without coordinates (``.npy``/``.npz``) are matched by shape only: channels by
position, the grid and units taken to be the checkpoint's.

The map is a permutation (and an exact affine unit conversion where units differ), so a
forecast computed through it sees the same tensor whichever layout the file had.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from svqcast.data.gridded.reader import Fields
from svqcast.data.gridded.times import same_calendar, same_step
from svqcast.data.gridded.units import conversion
from svqcast.data.spec import Channel, DataSpec, Normalizer
from svqcast.errors import CheckpointError, DataError, SvqcastError

ATOL_DEG = 1e-6
# coordinates stored as float32 (common in netCDF) are off by up to half an ulp: 2**-24 * |v|
F32_RTOL = 2.0**-23


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
    if not same_step(spec.time_step, fields.time_step):
        raise DataError(
            f"{where}: time step: checkpoint {spec.time_step} vs input {fields.time_step}; "
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


# --------------------------------------------------------------------------- spec to spec


def in_units_of(data: DataSpec, target: DataSpec) -> DataSpec | None:
    """``data``'s spec restated in ``target``'s units: each channel whose units differ
    takes ``target``'s units, and its normalisation statistics are converted (``mean *
    scale + offset``, ``std * scale``, with ``value_target = value_data * scale + offset``
    from :func:`svqcast.data.gridded.units.conversion`). The normalised values are unchanged by
    such a restatement. ``data`` itself when no units differ; None when the channels
    differ otherwise, or a pair of units has no increasing affine conversion."""
    if len(data.channels) != len(target.channels):
        return None
    if all(a.units == b.units for a, b in zip(data.channels, target.channels)):
        return data
    mean = data.normalizer.mean.copy()
    std = data.normalizer.std.copy()
    if mean.shape[0] != len(data.channels):
        return None
    channels = []
    for i, (mine, theirs) in enumerate(zip(data.channels, target.channels)):
        if mine.units != theirs.units:
            if dataclasses.replace(mine, units=theirs.units) != theirs:
                return None  # another channel, not only other units
            conv = conversion(mine.units, theirs.units)
            if conv is None or not conv[0] > 0:
                return None
            scale, offset = conv
            mean[i] = mean[i] * scale + offset
            std[i] = std[i] * scale
        channels.append(dataclasses.replace(mine, units=theirs.units))
    changes: dict = {"channels": tuple(channels), "normalizer": Normalizer(mean, std)}
    if data.attrs and isinstance(data.attrs.get("variables"), dict):  # attributes to write back
        variables = {k: dict(v) for k, v in data.attrs["variables"].items()}
        for c in channels:
            if c.variable in variables and "units" in variables[c.variable]:
                variables[c.variable]["units"] = c.units
        changes["attrs"] = {**data.attrs, "variables": variables}
    return dataclasses.replace(data, **changes)


def check_same_data(trained: DataSpec, data: DataSpec) -> None:
    """CheckpointError naming the first way ``data`` differs from the data the model was
    trained on (``DataSpec.first_difference``); the same grid in another lat/lon order is
    named as such (fit and test need the checkpoint's order; predict maps layouts). Other
    units pass when a safe conversion exists (K/degC) and the statistics converted to the
    checkpoint's units equal its own: the normalised data is then the same."""
    diff = trained.first_difference(data)
    if diff is None:
        return
    hint = "use the dataset options and files of the checkpoint's run (its config.yaml)"
    if diff.startswith("units"):
        converted = in_units_of(data, trained)
        if converted is None:
            hint = f"there is no safe conversion between these units; {hint}"
        else:
            after = trained.first_difference(converted)
            if after is None:
                return  # the same data in convertible units
            pairs = sorted(
                {(a.units, b.units) for a, b in zip(data.channels, trained.channels) if a != b}
            )
            diff = f"{after} after converting " + ", ".join(f"{a} to {b}" for a, b in pairs)
    grids = (trained.lat, trained.lon, data.lat, data.lon)
    if diff.startswith(("lat", "lon")) and all(g is not None for g in grids):  # not aligned
        try:
            grid_permutation(trained.lat, trained.lon, data.lat, data.lon, where="the data")
            hint = (
                "it is the same grid in another lat/lon order: the svqcast command and "
                "ForecastDataModule.align_to reorder it, svqcast predict and "
                "svqcast.forecast map layouts"
            )
        except SvqcastError:
            pass
    raise CheckpointError(
        f"the data differs from the data the model was trained on: {diff} "
        f"(trained vs given); {hint}"
    )
