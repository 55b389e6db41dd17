"""``weatherbench2``: a WeatherBench2-layout zarr store (local path or fsspec URL), read lazily.

The store holds dims ``time``, ``latitude``, ``longitude`` (and ``level`` for pressure-level
variables such as ``temperature``), typically 6-hourly. Options:

- ``path`` (required): the store, relative to the data root unless absolute, or a URL
  (``gs://...``, opened through :func:`svqcast.data.gridded.reader.open_dataset`);
- ``variables`` (default ``2m_temperature``); ``levels`` (default every level) picks the
  levels of variables with a level dim: one channel per (variable, level);
- ``time_step``: keep every frame on this step (aligned to 00 UTC; e.g. "12h" of a 6-hourly
  store keeps 00 and 12 UTC); default the store's own step;
- ``train_years``, ``val_years``, ``test_years``: (first, last) years, disjoint; defaults:
  the last year tests, the one before validates, the rest trains;
- ``in_len``, ``out_len`` (default 4 -> 4), ``stride`` (1 frame), ``protocol``; integers
  >= 1 (a one-line ConfigError otherwise), as ``chunk``;
- ``chunk``: frames per block of the statistics pass (default: about 8 MiB of float64,
  :data:`ZARR_CHUNK_BYTES`: 512 frames of a 64 x 32 grid; larger blocks cost several times
  their size in transient reads of many small zarr chunks and raise the peak);
- ``storage_options`` (URL paths only): a mapping handed to fsspec when the store is opened
  (here and in every DataLoader worker), e.g. ``{token: anon}`` for a public bucket or
  ``{requester_pays: true}``; prefer the environment's credentials to secrets in a config,
  which the run folder keeps;
- ``cache`` (default true): keep the statistics under
  ``<root>/.svqcast/weatherbench2/<key>.json`` (+ ``.climatology.npy``), key = a hash of the
  path and the options that change them (variables, levels, time_step, train years), the
  store's time axis and grid, and, for a local store, the size and modification time of
  its metadata files (``.zmetadata``, ``zarr.json``, ``.zattrs``, ``.zarray``, ``.zgroup``
  of the store and of the variables read), for a URL what fsspec reports of the root's
  metadata files (size, modification time, etag or generation): rewriting the store
  recomputes them (:func:`store_stamp`); where a URL's backend reports nothing, after
  changing the data behind it delete ``<root>/.svqcast/weatherbench2/`` or pass
  ``cache=false``. Processes loading at once
  (DDP ranks) compute it once, under an OS lock on ``<key>.lock``.

Laziness: only the time axis and coordinates are loaded. :class:`ZarrWindows` holds the
store's frame indices of its split; ``__getitem__`` opens the store once per process and
reads the in_len + out_len frames of one window. Normalisation statistics (per channel,
float64, merged chunk by chunk) and the climatology (raw sums per (month, hour of day) phase
and grid point, normalised at the end) come from ONE streaming pass over the train frames,
``chunk`` frames at a time, so peak memory does not grow with the number of years (the
climatology sums cost K x C x H x W float64 for the K phases the train frames have, K = 12 x
24 / step hours, 48 for 6-hourly data; the climatology itself P x C x H x W float32, P = 288
phases for sub-daily steps).
Windows never straddle a gap in time (between years, or missing frames).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from svqcast.data.base import (
    ForecastDataset,
    Splits,
    check_protocol,
    flag_option,
    int_option,
    year_range,
)
from svqcast.data.climatology import climatology_phases
from svqcast.data.gridded import reader
from svqcast.data.gridded.times import (
    calendar_of,
    canonical_step,
    checked_times,
    step_seconds,
    times_to_seconds,
)
from svqcast.data.spec import Channel, DataSpec
from svqcast.data.streaming import StreamingStats, cached_stats, chunk_frames, first_nonfinite
from svqcast.data.windows import contiguous_starts, window_offsets
from svqcast.errors import ConfigError, DataError, DataNotFoundError, one_line

DEFAULTS: dict[str, Any] = {
    "path": None,
    "variables": ("2m_temperature",),
    "levels": None,
    "time_step": None,
    "train_years": None,
    "val_years": None,
    "test_years": None,
    "in_len": 4,
    "out_len": 4,
    "stride": 1,
    "protocol": "standard",
    "cache": True,
    "chunk": None,
    "storage_options": None,
}
CACHE_KIND = "weatherbench2"  # statistics under <root>/.svqcast/weatherbench2/
#: Bytes of float64 per block of the statistics pass. Smaller than the netCDF path's
#: CHUNK_BYTES: a block read from a store of one-frame chunks costs several times its size
#: in transient memory (benchmarks/bench_loader.py --dataset weatherbench2: 64 MiB blocks
#: lifted the 16-year peak to about 1.1 GiB; 8 MiB ones keep 1, 4 and 16 years at ~0.4 GiB).
ZARR_CHUNK_BYTES = 8 * 2**20


def describe(name: str) -> str:
    return "a WeatherBench2-layout zarr (local or URL, option path), read lazily"


def layout(name: str) -> str:
    return (
        "one zarr store given by option path (relative to the root, or a URL) with dims time, "
        "latitude, longitude (and level), variables such as 2m_temperature, temperature"
    )


def is_present(name: str, root: str | Path) -> bool:
    """No fixed files: 'present' when the root exists (the store is option path)."""
    return Path(root).is_dir()


def check(name: str, root: str | Path) -> list[str]:
    return [] if Path(root).is_dir() else [f"data root {root} does not exist"]


def check_values(name: str, root: str | Path, **options: Any) -> list[str]:
    """Anything in the data that stops :func:`load` (non-finite training values included);
    bad options raise their ConfigError, as for every other dataset (exit status 2)."""
    try:
        load(name, root, **options)
    except DataError as exc:
        return [one_line(exc)]
    return []


# ----------------------------------------------------------------------------- options


def _options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for weatherbench2; valid: "
            f"{', '.join(DEFAULTS)}"
        )
    opts = {k: (DEFAULTS[k] if options.get(k) is None else options[k]) for k in DEFAULTS}
    if opts["path"] is None:
        raise ConfigError("weatherbench2 needs option path= (a zarr store or URL)")
    for key in ("variables", "levels"):
        value = opts[key]
        if value is not None and not isinstance(value, list | tuple):
            opts[key] = (value,)
    opts["variables"] = tuple(str(v) for v in opts["variables"])
    for key in ("in_len", "out_len", "stride"):
        opts[key] = int_option("weatherbench2", key, opts[key])
    if opts["chunk"] is not None:  # None: frames of about ZARR_CHUNK_BYTES
        opts["chunk"] = int_option("weatherbench2", "chunk", opts["chunk"])
    opts["protocol"] = check_protocol(opts["protocol"])
    opts["cache"] = flag_option(opts["cache"])
    so = opts["storage_options"]
    if so is not None and not isinstance(so, Mapping):
        raise ConfigError(
            f"option storage_options={so!r} of weatherbench2 is not a mapping; pass e.g. "
            "storage_options={token: anon}"
        )
    if so and not reader._is_url(str(opts["path"])):
        raise ConfigError(
            "option storage_options of weatherbench2 applies to a URL path (gs://, s3://, "
            f"...), not to the local path {opts['path']}; drop it"
        )
    opts["storage_options"] = dict(so) if so else None
    return opts


def _split_years(opts: dict[str, Any], present: np.ndarray) -> dict[str, tuple[int, int]]:
    have = sorted(set(present.tolist()))
    if any(opts[f"{s}_years"] is None for s in ("train", "val", "test")) and len(have) < 3:
        raise ConfigError(
            f"the store has years {have}; default splits need 3 years, pass train_years, "
            "val_years and test_years"
        )
    defaults = {"train": (have[0], have[-3]), "val": (have[-2],) * 2, "test": (have[-1],) * 2}
    years = {
        s: year_range(opts[f"{s}_years"] if opts[f"{s}_years"] is not None else d, f"{s}_years")
        for s, d in defaults.items()
    }
    names = list(years)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if years[a][0] <= years[b][1] and years[b][0] <= years[a][1]:
                raise ConfigError(f"{a}_years {years[a]} and {b}_years {years[b]} overlap")
    return years


def _year_of(times: np.ndarray) -> np.ndarray:
    if np.issubdtype(times.dtype, np.datetime64):
        return times.astype("datetime64[Y]").astype(np.int64) + 1970
    return np.fromiter((d.year for d in times), dtype=np.int64, count=len(times))


# ----------------------------------------------------------------------------- the store


def _resolve(root: str | Path, path: Any) -> str:
    path = str(path)
    if reader._is_url(path):
        return path
    p = Path(path.removeprefix("file://"))
    p = p if p.is_absolute() else Path(root) / p
    if not p.exists():
        raise DataNotFoundError(f"no zarr store {p}; weatherbench2 expects {layout('')}")
    return str(p)


class _Selection:
    """What to read from the store: per variable, its dims and level indices."""

    def __init__(self, ds, source: str, variables: tuple[str, ...], levels) -> None:
        roles = reader.find_dims(ds)
        self.t, self.y, self.x = roles["time"], roles["lat"], roles["lon"]
        self.level = roles.get("level")
        self.reads: list[tuple[str, str | None, list[int] | None]] = []
        self.channels: list[Channel] = []
        var_attrs: dict[str, Any] = {}
        used_level = False
        for v in variables:
            if v not in ds.data_vars:
                raise ConfigError(
                    f"{source} has no variable {v!r}; variables: "
                    f"{', '.join(map(str, ds.data_vars))}"
                )
            da = ds[v]
            extra = [str(d) for d in da.dims if d not in (self.t, self.y, self.x)]
            if len(da.dims) - len(extra) != 3 or len(extra) > 1:
                raise DataError(
                    f"{source}: {v} has dims {tuple(map(str, da.dims))}; expected "
                    f"({self.t}, {self.y}, {self.x}) plus at most a level dim"
                )
            units = str(da.attrs.get("units", ""))
            var_attrs[v] = reader._attrs(da.attrs)
            if not extra:
                self.reads.append((v, None, None))
                self.channels.append(Channel(v, units, variable=v))
                continue
            ldim = extra[0]
            used_level = True
            self.level = ldim
            labels = [reader._label(lv) for lv in np.asarray(da[ldim].values).tolist()]
            want = labels if levels is None else [reader._label(lv) for lv in levels]
            lost = [lv for lv in want if lv not in labels]
            if lost:
                raise DataError(f"{source}: {v} has no {ldim} {lost} (has {labels})")
            self.reads.append((v, ldim, [labels.index(lv) for lv in want]))
            self.channels += [Channel(f"{v}_{lv}", units, variable=v, level=lv) for lv in want]
        if levels is not None and not used_level:
            raise ConfigError("levels= given but no selected variable has a level dim")
        self.dims = {"time": self.t, "lat": self.y, "lon": self.x}
        if used_level:
            self.dims["level"] = self.level
        coords = {r: reader._attrs(ds[d].attrs) for r, d in self.dims.items() if d in ds.variables}
        self.attrs = {"variables": var_attrs, "coords": coords}
        self.lat, self.lon = reader._coord(ds, self.y), reader._coord(ds, self.x)
        self.shape = (len(self.channels), ds.sizes[self.y], ds.sizes[self.x])


def read_frames(ds, sel: _Selection, index: np.ndarray, source: str = "") -> np.ndarray:
    """The frames ``index`` (store positions along time) as float32 (n, C, H, W), physical
    units: only those frames are read (a slice when evenly spaced)."""
    index = np.asarray(index, dtype=np.int64)
    step = np.diff(index)
    if len(index) == 1 or (len(step) and np.all(step == step[0]) and step[0] > 0):
        where: Any = slice(int(index[0]), int(index[-1]) + 1, int(step[0]) if len(step) else 1)
    else:
        where = index
    blocks = []
    try:
        for v, ldim, levels in sel.reads:
            da = ds[v].isel({sel.t: where})
            if ldim is None:
                blocks.append(np.asarray(da.transpose(sel.t, sel.y, sel.x).values)[:, None])
            else:
                da = da.isel({ldim: levels}).transpose(sel.t, ldim, sel.y, sel.x)
                blocks.append(np.asarray(da.values))
    except Exception as exc:  # noqa: BLE001 - corrupt chunks, network errors
        raise DataError(f"cannot read frames of {source}: {reader._why(exc)}") from exc
    return np.concatenate(blocks, axis=1).astype(np.float32, copy=False)


class ZarrWindows(ForecastDataset):
    """Windows over a zarr store, read on demand: item ``i`` reads the frames
    ``frames[starts[i] + offsets]`` of the store, normalised. Holds indices, never data;
    the store is opened once per process (not pickled to DataLoader workers)."""

    def __init__(
        self, source, sel, frames, times, starts, offsets, in_len, norm, phase_fn, storage=None
    ):
        self.source, self.sel, self.storage_options = source, sel, storage
        self.frames, self.times = np.asarray(frames), np.asarray(times)
        self.starts, self.offsets = np.asarray(starts), np.asarray(offsets)
        self.in_len, self.phase_fn = int(in_len), phase_fn
        self.mean = norm.mean.astype(np.float32)[:, None, None]
        self.std = norm.std.astype(np.float32)[:, None, None]
        self._ds = None
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_ds": None}

    def __len__(self) -> int:
        return len(self.starts)

    def store_indices(self, index: int) -> np.ndarray:
        """Store positions (along time) of the in_len + out_len frames of item ``index``."""
        return self.frames[self.starts[index] + self.offsets]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._ds is None or self._pid != os.getpid():
            # first read, or a forked DataLoader worker holding its parent's copy: open
            # this process's own store (a parent's open store is never shared)
            self._ds = reader.open_dataset(self.source, storage_options=self.storage_options)
            self._pid = os.getpid()
        raw = read_frames(self._ds, self.sel, self.store_indices(index), self.source)
        if not np.all(np.isfinite(raw)):
            raise DataError(f"{self.source}: non-finite values in window {index}")
        frames = torch.from_numpy((raw - self.mean) / self.std)
        return frames[: self.in_len], frames[self.in_len :]

    def target_times(self, index: int) -> np.ndarray:
        """Times of the target frames of item ``index``."""
        return self.times[self.starts[index] + self.offsets[self.in_len :]]

    def target_phases(self, index: int) -> np.ndarray | None:
        return None if self.phase_fn is None else self.phase_fn(self.target_times(index))


# ----------------------------------------------------------------------------- statistics

#: Metadata files whose size and modification time key the statistics cache of a local store.
METADATA_FILES = (".zmetadata", "zarr.json", ".zattrs", ".zarray", ".zgroup")


def store_stamp(source: str, sel: _Selection, storage_options: dict | None = None) -> list | None:
    """What identifies the store's current content, for the statistics cache key: rewriting
    the store changes it, so the cached statistics are recomputed.

    A local store: [name, size, mtime_ns] of the metadata files of its root, the selected
    variables and their coordinates. A URL: what fsspec's ``info`` reports (size and the
    backend's modification time, etag or generation) of the root's metadata files (a
    consolidated store rewrites ``.zmetadata`` / ``zarr.json``); None where none can be
    read, and the entry is then keyed by path and options only."""
    if reader._is_url(source):
        return _url_stamp(source, storage_options)
    root = Path(source)
    names = dict.fromkeys(["", *(v for v, _, _ in sel.reads), *sel.dims.values()])
    stamp = []
    for name in names:
        for meta in METADATA_FILES:
            path = root / name / meta
            try:
                st = path.stat()
            except OSError:
                continue
            stamp.append([f"{name}/{meta}".lstrip("/"), st.st_size, st.st_mtime_ns])
    return stamp


#: fsspec ``info`` fields that change when an object is rewritten, across backends (local
#: and memory, S3, GCS, Azure, HTTP)
URL_STAMP_FIELDS = ("size", "mtime", "created", "LastModified", "last_modified", "updated",
                    "generation", "ETag", "etag", "md5Hash")  # fmt: skip


def _url_stamp(source: str, storage_options: dict | None) -> list | None:
    try:
        import fsspec

        fs, base = fsspec.core.url_to_fs(source, **(storage_options or {}))
    except Exception:  # noqa: BLE001 - no fsspec backend: keyed by path and options
        return None
    stamp = []
    for meta in METADATA_FILES:
        try:
            info = fs.info(f"{base.rstrip('/')}/{meta}")
        except Exception:  # noqa: BLE001 - absent file, no permission, network
            continue
        stamp.append([meta, *(f"{k}={info[k]}" for k in URL_STAMP_FIELDS if info.get(k))])
    return stamp or None


def streaming_stats(ds, sel, frames, phases, n_phases, chunk, source=""):
    """One pass over the store frames ``frames``, ``chunk`` at a time: (Normalizer,
    Climatology) from :class:`svqcast.data.streaming.StreamingStats`."""
    stats = StreamingStats(sel.shape, n_phases)
    for lo in range(0, len(frames), chunk):
        block = read_frames(ds, sel, frames[lo : lo + chunk], source)
        bad = first_nonfinite(block)
        if bad is not None:
            count, (t, ch, y, x) = bad
            raise DataError(
                f"{source}: {count} non-finite training values; first at store "
                f"frame {int(frames[lo + t])}, channel {sel.channels[ch].name}, (y, x) = "
                f"({y}, {x}); select other variables or years"
            )
        stats.add(block, phases[lo : lo + chunk])
    return stats.result()


# ----------------------------------------------------------------------------- load


def load(name: str, root: str | Path, **options: Any) -> Splits:
    """Train/val/test lazy windows over a WeatherBench2 zarr; see the module docstring."""
    opts = _options(options)
    in_len, out_len, stride = opts["in_len"], opts["out_len"], opts["stride"]
    source = _resolve(root, opts["path"])
    storage = opts["storage_options"]
    ds = reader.open_dataset(source, storage_options=storage)
    try:
        sel = _Selection(ds, source, opts["variables"], opts["levels"])
        raw_times = reader._times_of(ds, sel.t)
        if raw_times is None or len(raw_times) < 2:
            raise DataError(f"{source}: {sel.t} has no dates; weatherbench2 needs a time axis")
        raw_times, src_step = checked_times(raw_times, None, 0.0, source)
        step = src_step if opts["time_step"] is None else canonical_step(opts["time_step"])
        step_s, src_s = step_seconds(step), step_seconds(src_step)
        if step_s is None or src_s is None or step_s % src_s:
            raise ConfigError(
                f"time_step {step} must be a whole multiple of the store's step {src_step}"
            )
        seconds = times_to_seconds(raw_times)
        keep = np.flatnonzero(seconds % step_s == 0)
        times, year = raw_times[keep], _year_of(raw_times[keep])
        years = _split_years(opts, year)
        phase_fn, n_phases, kind = climatology_phases(step, "the train years")
        offsets = window_offsets(in_len, out_len)

        def part(split: str):
            a, b = years[split]
            mask = (year >= a) & (year <= b)
            if not mask.any():
                raise DataError(f"{source}: no frames in {split}_years {years[split]}")
            return keep[mask], times[mask]

        train_frames, train_times = part("train")
        chunk = opts["chunk"] or chunk_frames(sel.shape, ZARR_CHUNK_BYTES)
        phases = phase_fn(train_times) if phase_fn is not None else np.zeros(len(train_times), int)

        def compute():
            return streaming_stats(ds, sel, train_frames, phases, n_phases, chunk, source)

        key = {
            "path": source,
            "variables": list(opts["variables"]),
            "channels": [c.name for c in sel.channels],
            "time_step": step,
            "train_years": list(years["train"]),
            "climatology": kind,
            "times": [str(raw_times[0]), str(raw_times[-1]), len(raw_times)],
            "grid": list(sel.shape),
            "store": store_stamp(source, sel, storage),
        }
        if opts["cache"]:
            norm, climatology, cache_file = cached_stats(root, CACHE_KIND, key, compute)
        else:
            (norm, climatology), cache_file = compute(), None
    finally:
        ds.close()

    def windows(split: str) -> ZarrWindows:
        frames, t = part(split)
        where = f"{name} {split} years {years[split]}"
        starts = contiguous_starts(t, offsets, stride, step, where=where)
        return ZarrWindows(source, sel, frames, t, starts, offsets, in_len, norm, phase_fn, storage)

    train, test = windows("train"), windows("test")
    val = test if opts["protocol"] == "openstl" else windows("val")
    spec = DataSpec(
        name=name,
        in_len=in_len,
        out_len=out_len,
        channels=tuple(sel.channels),
        height=sel.shape[1],
        width=sel.shape[2],
        convention="weather",
        normalizer=norm,
        lat=sel.lat,
        lon=sel.lon,
        extra={
            "path": source,
            "lazy": True,
            "years": {k: list(v) for k, v in years.items()},
            "levels": None if opts["levels"] is None else list(opts["levels"]),
            "stride": stride,
            "protocol": opts["protocol"],
            "climatology_phases": {288: "month_hour", 12: "month"}.get(n_phases, "none"),
            "climatology": f"{kind}, streamed",
            "stats_cache": cache_file,
        },
        time_step=step,
        calendar=calendar_of(times),
        dims=dict(sel.dims),
        attrs=sel.attrs,
    )
    return Splits(train=train, val=val, test=test, spec=spec, climatology=climatology)
