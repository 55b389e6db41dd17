"""One reader for every gridded file svqcast takes: ``fit``/``test`` (datasets ``arrays`` and
``weather_*``), ``svqcast data check``, ``svqcast predict`` and :func:`svqcast.forecast`.

CONTRACT (being implemented; the signatures and the Fields layout are fixed):

- :func:`open_dataset` opens netCDF (.nc/.nc4/.netcdf; packed int16 with scale_factor /
  add_offset and _FillValue decoded by xarray), zarr v2 and v3 (a .zarr folder or an fsspec
  URL), and .npy/.npz (wrapped as a Dataset with dims ("time", "channel", "lat", "lon")
  and no coordinates). Non-standard CF calendars decode to cftime dates. A missing, empty,
  truncated or garbage file raises DataError / DataNotFoundError in one line.
- :func:`find_dims` names the time, lat, lon (and extra, e.g. level) dims of a Dataset by
  role: explicit names first, then CF/ERA5/CDS names (time, valid_time; lat, latitude;
  lon, longitude), then CF ``axis`` (T/Y/X) and ``standard_name`` attributes.
- :func:`read_fields` selects variables (and levels of an extra dim) into one float32
  (T, C, H, W) array in physical units. Dims are transposed to (time, channel, lat, lon),
  but lat/lon keep the SOURCE's order of values (no flipping or rolling: matching a grid to
  a checkpoint's is :mod:`svqcast.data.identity`'s job). Times are sorted and unique or it
  raises DataError; ``time_step`` is the frequency xarray infers (or the ``time_step``
  option, checked against the data with ``time_tolerance``).
- :func:`check_values` lists problems of the values: non-finite counts and first position,
  time not sorted / duplicated / off the step, coordinates not strictly monotonic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.data.spec import Channel


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


def open_dataset(path: str | Path, *, key: str | None = None):
    """The file at ``path`` as an ``xarray.Dataset`` (see the module docstring)."""
    raise NotImplementedError


def find_dims(
    ds,
    *,
    time_dim: str | None = None,
    lat_dim: str | None = None,
    lon_dim: str | None = None,
) -> dict[str, str]:
    """Source dim names by role ("time", "lat", "lon"); see the module docstring."""
    raise NotImplementedError


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
    """Read ``source`` (a path, URL or an open ``xarray.Dataset``) into :class:`Fields`."""
    raise NotImplementedError


def check_values(fields: Fields, *, time_tolerance: float = 0.0) -> list[str]:
    """Problems with the values of ``fields`` (empty list: none)."""
    raise NotImplementedError
