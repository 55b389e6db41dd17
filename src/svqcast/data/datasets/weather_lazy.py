"""Lazy WeatherBench-1 netCDF: the ``weather_*`` year files read window by window.

:func:`scan` opens every year file of a split once and reads only its header and
coordinates (variable, dims, levels, times, lat/lon), with the checks of the eager path
(missing file, levels, dims, times not sorted / unique / on the step, grid not monotonic or
of another resolution, fields whose times or grid differ), each a one-line error naming the
file. :class:`NetcdfWindows` then holds, per frame, the year file and its position in it
(indices, never values); ``__getitem__`` reads the in_len + out_len frames of one window
through xarray (so packed int16 with scale_factor / add_offset / _FillValue decodes as in
the eager path) and normalises them with the same float32 operations, so a lazy window
equals the eager one to the bit. Files are opened on first use, once per process (DataLoader
workers open their own), at most ``open_files`` (default :data:`OPEN_FILES`) at a time.

:func:`train_stats` computes the normaliser and the climatology in ONE streaming float64
pass over the train years (:class:`svqcast.data.streaming.StreamingStats`, blocks of
:func:`~svqcast.data.streaming.chunk_frames` frames across the year files, the blocks the
eager path uses), so peak memory does not depend on the number of years.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from svqcast.data.base import ForecastDataset
from svqcast.data.datasets.weather_layout import (
    RESOLUTIONS,
    Field,
    WeatherSet,
    file_path,
    grid_error,
    layout,
)
from svqcast.data.gridded import reader
from svqcast.data.gridded.times import checked_times, fmt_time
from svqcast.data.streaming import StreamingStats, chunk_frames, first_nonfinite, rechunk
from svqcast.errors import ConfigError, DataError, DataNotFoundError

#: Year files a process keeps open at once by default (the least recently used is closed
#: first); an open file costs a few MiB and reopening one about 10 ms.
OPEN_FILES = 64
#: ``lazy: auto`` goes lazy when the split arrays would take more than this fraction of
#: the memory available when the data is loaded.
AUTO_FRACTION = 0.25


@dataclass(frozen=True)
class YearFile:
    """How to read one variable from one year file: dims, level indices, kept positions."""

    path: str
    var: str
    dims: tuple[str, ...]  # (time, [level,] lat, lon) as named in the file
    drop: tuple[str, ...]  # other size-1 dims, dropped as the eager reader does
    levels: tuple[int, ...] | None  # indices along the level dim
    positions: np.ndarray  # (n,) positions along time of the frames kept (step_hours)


def available_bytes() -> int:
    """Memory available to a new allocation (MemAvailable; else physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def lazy_mode(value: Any) -> str:
    """The checked ``lazy`` option: "true", "false" or "auto" (default)."""
    text = "auto" if value is None else str(value).strip().lower()
    text = {"1": "true", "yes": "true", "on": "true", "0": "false", "no": "false"}.get(text, text)
    if text not in ("true", "false", "auto"):
        raise ConfigError(f"lazy must be true, false or auto, got {value!r}")
    return text


def estimated_bytes(ws: WeatherSet, root, years, levels, res: str) -> int:
    """Float32 bytes the eager path would hold for the splits ``years`` ({split: (a, b)}):
    frames counted from the first field's file headers (a missing file counts 0)."""
    import xarray as xr

    channels = sum(len(levels) if f.has_level else 1 for f in ws.fields)
    frames = 0
    for a, b in set(years.values()):
        for year in range(a, b + 1):
            path = file_path(root, ws.fields[0], year, res)
            if path.is_file():
                try:
                    with xr.open_dataset(path, engine="netcdf4", decode_times=False) as ds:
                        n = max((ds.sizes[d] for d in ds.dims if "time" in str(d)), default=0)
                except Exception:  # noqa: BLE001 - the scan reports unreadable files
                    n = 0
                frames += -(-n // ws.step_hours)
    return frames * channels * int(np.prod(RESOLUTIONS[res])) * 4


def _scan_file(path: Path, field: Field, levels, step_hours: int, res: str):
    """(YearFile, kept times, lat, lon, units, dims by role, attrs, calendar) of one year
    file, reading its header and coordinates only."""
    with reader.open_dataset(path) as ds:
        if field.var not in ds.data_vars:
            raise DataError(
                f"{path} has no variable {field.var!r} (found {', '.join(map(str, ds.data_vars))})"
            )
        da = ds[field.var]
        roles = reader.find_dims(ds)
        t, y, x = roles["time"], roles["lat"], roles["lon"]
        has_level = "level" in da.dims
        if field.has_level != has_level or not {t, y, x} <= set(map(str, da.dims)):
            want = "time, level, lat, lon" if field.has_level else "time, lat, lon"
            raise DataError(f"{path}: {field.var} has dims {da.dims}, expected ({want})")
        level_idx = None
        if has_level:
            have = [int(v) for v in np.asarray(ds["level"].values)]
            lost = [lv for lv in levels if lv not in have]
            if lost:
                raise DataError(
                    f"{path}: levels {lost} hPa not in the file (has {have}); pass levels="
                )
            level_idx = tuple(have.index(lv) for lv in levels)
        drop = tuple(str(d) for d in da.dims if d not in (t, y, x, "level"))
        if any(da.sizes[d] > 1 for d in drop):
            raise DataError(f"{path}: {field.var} has extra dims {drop} besides time/lat/lon")
        raw_times = reader._times_of(ds, t)
        if raw_times is None:
            raise DataError(
                f"{path}: {field.var} needs time, lat and lon coordinates (WeatherBench layout)"
            )
        times, step = checked_times(raw_times, None, 0.0, str(path))
        lat, lon = reader._coord(ds, y), reader._coord(ds, x)
        if lat is None or lon is None:
            raise DataError(
                f"{path}: {field.var} needs time, lat and lon coordinates (WeatherBench layout)"
            )
        header = reader.Fields(
            data=np.empty((len(times), 0, 0, 0), np.float32),
            channels=(),
            times=times,
            time_step=step,
            lat=lat,
            lon=lon,
            source=str(path),
        )
        problems = reader.check_values(header)
        if problems:
            raise DataError(problems[0])
        wrong_grid = grid_error(path, (len(lat), len(lon)), res)
        if wrong_grid is not None:
            raise wrong_grid
        dims = (t, "level", y, x) if has_level else (t, y, x)
        roles_used = {"time": t, "lat": y, "lon": x, **({"level": "level"} if has_level else {})}
        attrs = {
            "variables": {field.var: reader._attrs(da.attrs)},
            "coords": {r: reader._attrs(ds[d].attrs) for r, d in roles_used.items() if d in ds},
        }
        units = str(da.attrs.get("units", ""))
    hours = np.asarray(times).astype("datetime64[h]")
    keep = np.arange(len(hours), dtype=np.int64)
    if step_hours > 1:
        keep = keep[(hours - hours.astype("datetime64[D]")).astype(np.int64) % step_hours == 0]
    entry = YearFile(str(path), field.var, dims, drop, level_idx, keep)
    calendar = reader.calendar_of(times)
    return entry, hours[keep], lat, lon, units, roles_used, attrs, calendar


def scan(name: str, ws: WeatherSet, root, years: tuple[int, int], levels, res: str) -> dict:
    """Every year file of ``years`` for every field of ``ws``, checked (module docstring):
    {"files": [[YearFile per field] per year], "times": kept datetime64[h] per frame,
    "year": year index per frame, "pos": position in the year's files, "units", "meta"}."""
    files, times, year_of, pos, units, meta = [], [], [], [], [], {}
    for iy, year in enumerate(range(years[0], years[1] + 1)):
        row, ref = [], None
        for f in ws.fields:
            path = file_path(root, f, year, res)
            if not path.is_file():
                raise DataNotFoundError(
                    f"missing {path}; {name} expects {layout(name, res)} under data root {root}"
                )
            entry, t, lat, lon, u, dims, attrs, calendar = _scan_file(
                path, f, levels, ws.step_hours, res
            )
            if not meta:
                meta.update(lat=lat, lon=lon, dims=dims, calendar=calendar)
                meta["attrs"] = {"variables": {}, "coords": attrs["coords"]}
            meta["attrs"]["variables"].update(attrs["variables"])
            if not (np.allclose(meta["lat"], lat) and np.allclose(meta["lon"], lon)):
                raise DataError(f"{path}: lat/lon differ from the other files of {name}")
            if ref is None:
                ref = t
            elif not np.array_equal(ref, t):
                raise DataError(
                    f"{f.directory} and {ws.fields[0].directory} have different times in "
                    f"{year} ({path})"
                )
            if iy == 0:
                units.append(u)
            row.append(entry)
        files.append(row)
        times.append(ref)
        year_of.append(np.full(len(ref), iy, np.int32))
        pos.append(np.arange(len(ref), dtype=np.int64))
    return {
        "files": files,
        "times": np.concatenate(times),
        "year": np.concatenate(year_of),
        "pos": np.concatenate(pos),
        "units": units,
        "meta": meta,
    }


class _Handles:
    """Open year files of one process, least recently used closed first."""

    def __init__(self, limit: int = OPEN_FILES) -> None:
        self.limit, self.open = limit, OrderedDict()

    def get(self, path: str):
        ds = self.open.pop(path, None)
        if ds is None:
            ds = reader.open_dataset(path)
            while len(self.open) >= self.limit:
                self.open.popitem(last=False)[1].close()
        self.open[path] = ds
        return ds

    def close(self) -> None:
        while self.open:
            self.open.popitem()[1].close()


def read_block(handles: _Handles, row: list[YearFile], frames: np.ndarray) -> np.ndarray:
    """Frames ``frames`` (indices into each file's kept positions) of one year, every field
    of ``row``, as float32 (n, C, H, W) in physical units (a slice when evenly spaced)."""
    blocks = []
    for entry in row:
        index = entry.positions[frames]
        step = np.diff(index)
        if len(index) == 1 or (len(step) and np.all(step == step[0])):
            where: Any = slice(int(index[0]), int(index[-1]) + 1, int(step[0]) if len(step) else 1)
        else:
            where = index
        ds = handles.get(entry.path)  # a file gone since load: DataNotFoundError naming it
        try:
            da = ds[entry.var]
            for d in entry.drop:
                da = da.isel({d: 0}, drop=True)
            da = da.isel({entry.dims[0]: where})
            if entry.levels is not None:
                da = da.isel({"level": list(entry.levels)})
            values = np.asarray(da.transpose(*entry.dims).values, dtype=np.float32)
        except Exception as exc:  # noqa: BLE001 - truncated files, codecs
            raise DataError(
                f"cannot read {entry.var} from {entry.path}: {reader._why(exc)}; the file is "
                "corrupt or incomplete (write or download it again)"
            ) from exc
        blocks.append(values if entry.levels is not None else values[:, None])
    return np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]


def _nonfinite_error(block, row: list[YearFile], times, channels) -> DataError | None:
    """The error for the first non-finite value of ``block`` (the fields of ``row``), naming
    the file of the channel that holds it; None when all finite."""
    bad = first_nonfinite(block)
    if bad is None:
        return None
    count, (ti, c, yi, xi) = bad
    widths = [1 if e.levels is None else len(e.levels) for e in row]
    entry = row[int(np.searchsorted(np.cumsum(widths), c, side="right"))]
    return DataError(
        f"{entry.path}: {count} non-finite values; first at (t, c, y, x) = ({ti}, {c}, {yi}, "
        f"{xi}) (time {fmt_time(times[ti])}) in channel {channels[c].name}; fix the data"
    )


def train_stats(scanned: dict, shape, phases, n_phases, channels):
    """(Normalizer, Climatology) of the scanned train years in one streaming pass."""
    stats = StreamingStats(shape, n_phases)
    chunk = chunk_frames(shape)
    handles = _Handles(len(scanned["files"][0]))  # one year's files at a time

    def blocks():
        for iy, row in enumerate(scanned["files"]):
            n = len(row[0].positions)
            year_times = scanned["times"][scanned["year"] == iy]
            for lo in range(0, n, chunk):
                block = read_block(handles, row, np.arange(lo, min(n, lo + chunk)))
                error = _nonfinite_error(block, row, year_times[lo:], channels)
                if error is not None:
                    raise error
                yield block

    try:
        for lo, block in zip(range(0, len(phases), chunk), rechunk(blocks(), chunk)):
            stats.add(block, phases[lo : lo + chunk])
    finally:
        handles.close()
    return stats.result()


def cache_key(name: str, scanned: dict, channels, res: str, step_hours: int, years) -> dict:
    """What the cached statistics depend on: the dataset, grid, channels, step, train
    years and every train file's path, size and modification time."""
    files = []
    for row in scanned["files"]:
        for entry in row:
            st = os.stat(entry.path)
            files.append([entry.path, st.st_size, st.st_mtime_ns])
    return {
        "dataset": name,
        "resolution": res,
        "channels": [c.name for c in channels],
        "step_hours": step_hours,
        "train_years": list(years),
        "files": files,
    }


class NetcdfWindows(ForecastDataset):
    """Windows over the year files of one split, read on demand (module docstring). The
    API of :class:`svqcast.data.windows.ArrayWindows` without ``data``: ``times``,
    ``starts``, ``offsets``, :meth:`frame_indices`, :meth:`target_times`,
    :meth:`target_phases`."""

    def __init__(
        self, scanned: dict, starts, offsets, in_len: int, norm, phase_fn, channels,
        open_files: int = OPEN_FILES,
    ) -> None:  # fmt: skip
        self.files, self.channels = scanned["files"], list(channels)
        self.year, self.pos, self.times = scanned["year"], scanned["pos"], scanned["times"]
        self.starts = np.asarray(starts, dtype=np.int64)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.in_len, self.out_len = int(in_len), len(self.offsets) - int(in_len)
        self.mean = norm.mean.astype(np.float32)[:, None, None]
        self.std = norm.std.astype(np.float32)[:, None, None]
        self.phase_fn = phase_fn
        self.open_files = int(open_files)
        self._handles: _Handles | None = None
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handles": None}

    def __len__(self) -> int:
        return len(self.starts)

    def close(self) -> None:
        """Close the year files this process opened (they reopen on the next read)."""
        if self._handles is not None and self._pid == os.getpid():
            self._handles.close()

    def frame_indices(self, index: int) -> np.ndarray:
        """Split frame indices of the in_len + out_len frames of item ``index``."""
        return self.starts[index] + self.offsets

    def read(self, frames: np.ndarray) -> np.ndarray:
        """Split frames ``frames`` as raw float32 (n, C, H, W), one read per year file."""
        if self._handles is None or self._pid != os.getpid():
            # first read, or a forked DataLoader worker holding its parent's copies: open
            # this process's own files (a parent's handles are never shared)
            self._handles, self._pid = _Handles(self.open_files), os.getpid()
        years = self.year[frames]
        parts = []
        for iy in dict.fromkeys(years.tolist()):
            mine = frames[years == iy]
            block = read_block(self._handles, self.files[iy], self.pos[mine])
            if first_nonfinite(block) is not None:
                raise _nonfinite_error(block, self.files[iy], self.times[mine], self.channels)
            parts.append(block)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        frames = torch.from_numpy((self.read(self.frame_indices(index)) - self.mean) / self.std)
        return frames[: self.in_len], frames[self.in_len :]

    def target_times(self, index: int) -> np.ndarray:
        return self.times[self.frame_indices(index)[self.in_len :]]

    def target_phases(self, index: int) -> np.ndarray | None:
        return None if self.phase_fn is None else self.phase_fn(self.target_times(index))
