"""WeatherBench (OpenSTL layout) through xarray: weather_t2m, _r, _uv10, _tcc, _mv, _hmv.

Files: ``<root>/weather_5_625deg/<dir>/<dir>_<year>_5.625deg.nc``, one per year, hourly, on a
32 x 64 lat/lon grid; option ``resolution`` 2.8125 (``weather_2_8125deg``, 64 x 128) or
1.40625 (``weather_1_40625deg/<dir>/<dir>_<year>_1.40625deg.nc``, 128 x 256). Each split
(train / val / test) is a range of years read into one float32 (T, C, H, W) series in RAM,
normalised per channel with TRAIN statistics only, and cut into windows sliding by ``stride``
frames. Windows never straddle a gap in time. Option ``lazy`` (true / false / auto, the
default: lazy when the splits would take more than a quarter of the available memory) reads
windows on demand from the year files instead (:mod:`svqcast.data.datasets.weather_lazy`),
the statistics from one streaming pass over the train years, cached under
``<root>/.svqcast/weather/``; both modes give the same windows and statistics to the bit.

Conventions (documented in docs/data.md):
- ``weather_r`` uses the 1000 hPa level by default: OpenSTL's config lists ``levels:
  [1000]`` and its loader keeps the last level of the file (1000 hPa in WeatherBench's
  ascending level order). Option ``levels`` picks others.
- ``weather_mv`` frames are 6 hours apart: the hourly series is subsampled to 00/06/12/18
  UTC and windows are consecutive 6-hourly frames. ``openstl_mv_indexing=True`` instead
  reproduces OpenSTL's indices into the 6-hourly array (inputs [-17, -11, -5, 0], targets
  [1, 7, 13, 19] for 4 -> 4), whose spacing is 36 h (30 h last) and not 6 h.
- ``weather_hmv`` (the paper's high-dimensional WeatherBench, "hmv" of its code): the eight
  pressure-level variables z, pv, r, q, t, u, v, vo at all 13 levels (50 ... 1000 hPa) then
  the six single-level ones u10, v10, t2m, tisr, tcc, tp: 8 x 13 + 6 = 110 channels,
  6-hourly, 4 -> 4, train 1980-2015; its frames and ``openstl_mv_indexing`` as weather_mv.
- Climatology phases: (month, hour of day), 288 phases, means of the TRAIN years.
- Eagerly, every year file goes through :func:`svqcast.data.gridded.reader.read_fields` and
  :func:`~svqcast.data.gridded.reader.check_values`: non-finite values, times not sorted / unique /
  hourly, or a grid that is not monotonic raise DataError naming the file. Lazily, the
  same checks run on each file's header and coordinates at load, and on the values of the
  train years in the statistics pass and of each window when it is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from svqcast.data.base import (
    PROTOCOLS,
    Splits,
    flag_option,
    int_option,
    year_range,
)
from svqcast.data.climatology import Climatology, climatology_phases
from svqcast.data.datasets.weather_layout import (  # noqa: F401 - the names users import
    DATASETS,
    GRID,
    HMV_LEVELS,
    MULTI_VARIABLE,
    RESOLUTIONS,
    ROOT_DIR,
    Field,
    WeatherSet,
    _ranges,
    _set,
    _years_present,
    describe,
    field_channels,
    file_path,
    grid_error,
    is_present,
    layout,
    resolution_of,
    resolutions_present,
    root_dir,
)
from svqcast.data.datasets.weather_lazy import (
    AUTO_FRACTION,
    OPEN_FILES,
    NetcdfWindows,
    available_bytes,
    cache_key,
    estimated_bytes,
    lazy_mode,
    scan,
    train_stats,
)
from svqcast.data.gridded import reader
from svqcast.data.spec import Channel, DataSpec, Normalizer
from svqcast.data.streaming import StreamingStats, cached_stats, chunk_frames, rechunk
from svqcast.data.windows import ArrayWindows, contiguous_starts, window_offsets
from svqcast.errors import ConfigError, DataError, DataNotFoundError, one_line

OPTIONS = tuple(
    "in_len out_len stride train_years val_years test_years levels protocol openstl_mv_indexing "
    "resolution lazy cache open_files".split()
)
CACHE_KIND = "weather"  # lazy statistics under <root>/.svqcast/weather/


def check(name: str, root: str | Path, resolution: Any = None) -> list[str]:
    """Problems with the files of ``name`` under ``root`` (empty list: ready to load); at
    ``resolution`` or, when None, the first resolution present (5.625 when none is)."""
    ws = _set(name)
    res = resolution_of(resolution or (resolutions_present(name, root) or [None])[0])
    problems: list[str] = []
    wanted = range(ws.train_years[0], ws.test_years[1] + 1)
    for f in ws.fields:
        present = _years_present(root, f, res)
        if not present:
            problems.append(f"no files {file_path(root, f, '<year>', res)}")
            continue
        missing = [y for y in wanted if y not in present]
        if missing:
            problems.append(
                f"{f.directory}: years {_ranges(missing)} missing for the default split "
                f"(present: {_ranges(present)}); pass train_years/val_years/test_years"
            )
        try:
            _read_year(file_path(root, f, present[0], res), f, ws.levels, ws.step_hours, res)
        except DataError as exc:
            problems.append(str(exc))
    return problems


def _read_year(
    path: Path, field: Field, levels: tuple[int, ...] | None, step_hours: int, res: str = "5.625"
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One year of one variable through the reader: (T, L, H, W) float32, datetime64[h]
    times, metadata (units, lat, lon, dims, attrs). Any problem of the values (non-finite,
    times not sorted / unique / hourly, grid not monotonic, grid of another resolution than
    ``res``) raises DataError."""
    if not path.is_file():
        raise DataNotFoundError(f"missing file {path}")
    with reader.open_dataset(path) as ds:
        if field.var not in ds.data_vars:
            raise DataError(
                f"{path} has no variable {field.var!r} (found {', '.join(map(str, ds.data_vars))})"
            )
        if field.has_level and "level" in ds.dims and levels:
            have = [int(v) for v in np.asarray(ds["level"].values)]
            lost = [lv for lv in levels if lv not in have]
            if lost:
                raise DataError(
                    f"{path}: levels {lost} hPa not in the file (has {have}); pass levels="
                )
        fields = reader.read_fields(
            ds,
            variables=field.var,
            levels=list(levels or ()) if field.has_level else None,
            level_dim="level" if field.has_level and "level" in ds.dims else None,
        )
    fields.source = str(path)
    problems = reader.check_values(fields)
    if problems:
        raise DataError(problems[0])
    if field.has_level != ("level" in fields.dims):
        want = "time, level, lat, lon" if field.has_level else "time, lat, lon"
        raise DataError(f"{path}: {field.var} has dims {fields.dims}, expected ({want})")
    values, times = fields.data, fields.times
    if times is None or fields.lat is None or fields.lon is None:
        raise DataError(
            f"{path}: {field.var} needs time, lat and lon coordinates (WeatherBench layout)"
        )
    times = np.asarray(times).astype("datetime64[h]")
    if step_hours > 1:
        keep = (times - times.astype("datetime64[D]")).astype(np.int64) % step_hours == 0
        values, times = values[keep], times[keep]
    wrong_grid = grid_error(path, values.shape[2:], res)
    if wrong_grid is not None:
        raise wrong_grid
    meta = {
        "units": fields.channels[0].units,
        "lat": fields.lat,
        "lon": fields.lon,
        "dims": fields.dims,
        "attrs": fields.attrs,
        "calendar": fields.calendar,
    }
    return values, times, meta


def read_series(
    root: str | Path,
    name: str,
    years: tuple[int, int],
    levels: tuple[int, ...] | None = None,
    resolution: Any = None,
) -> tuple[np.ndarray, np.ndarray, list[Channel], dict[str, Any]]:
    """The raw (T, C, H, W) float32 series of ``name`` for years first..last, its times,
    channels and grid metadata. Every field must have the same times.

    The first field's years fix the time axis; the (T, C, H, W) array is then allocated once
    and the other fields are read year by year into it, so memory peaks near one series.
    """
    ws, res = _set(name), resolution_of(resolution)
    levels = ws.levels if levels is None else levels
    per_field = [len(levels) if f.has_level else 1 for f in ws.fields]
    series: np.ndarray | None = None
    times: np.ndarray | None = None
    units_of: list[str] = []
    meta: dict[str, Any] = {}

    def year_files(f: Field):
        for year in range(years[0], years[1] + 1):
            path = file_path(root, f, year, res)
            if not path.is_file():
                raise DataNotFoundError(
                    f"missing {path}; {name} expects {layout(name, res)} under data root {root}"
                )
            values, t, m = _read_year(path, f, levels, ws.step_hours, res)
            if not meta:
                meta.update(lat=m["lat"], lon=m["lon"], dims=m["dims"], calendar=m["calendar"])
                meta["attrs"] = {"variables": {}, "coords": m["attrs"]["coords"]}
            meta["attrs"]["variables"].update(m["attrs"]["variables"])
            if not (np.allclose(meta["lat"], m["lat"]) and np.allclose(meta["lon"], m["lon"])):
                raise DataError(f"{path}: lat/lon differ from the other files of {name}")
            yield values, t, m

    c0 = 0
    for f, n_ch in zip(ws.fields, per_field):
        if series is None:
            chunks = list(year_files(f))
            times = np.concatenate([t for _, t, _ in chunks])
            series = np.empty((len(times), sum(per_field), *RESOLUTIONS[res]), dtype=np.float32)
            pos = 0
            for values, t, m in chunks:
                series[pos : pos + len(t), c0 : c0 + n_ch] = values
                pos += len(t)
                units = m["units"]
            del chunks
        else:
            pos = 0
            for values, t, m in year_files(f):
                if pos + len(t) > len(times) or np.any(t != times[pos : pos + len(t)]):
                    raise DataError(
                        f"{f.directory} and {ws.fields[0].directory} have different times "
                        f"in {int(t[0].astype('datetime64[Y]').astype(int)) + 1970}"
                    )
                series[pos : pos + len(t), c0 : c0 + n_ch] = values
                pos += len(t)
                units = m["units"]
            if pos != len(times):
                raise DataError(f"{f.directory} and {ws.fields[0].directory} have different times")
        units_of.append(units)
        c0 += n_ch
    return series, times, field_channels(ws, levels, units_of), meta


def series_stats(
    series: np.ndarray, phases: np.ndarray, n_phases: int
) -> tuple[Normalizer, Climatology]:
    """Normaliser and climatology of a raw (T, C, H, W) TRAIN series through
    :class:`~svqcast.data.streaming.StreamingStats`, in the blocks the lazy mode reads (so
    both modes give the same statistics to the bit)."""
    stats = StreamingStats(series.shape[1:], n_phases)
    chunk = chunk_frames(series.shape[1:])
    for lo, block in zip(range(0, len(series), chunk), rechunk([series], chunk)):
        stats.add(block, phases[lo : lo + chunk])
    return stats.result()


def normalize_inplace(series: np.ndarray, norm: Normalizer) -> np.ndarray:
    """(x - mean) / std per channel without a second copy of the series."""
    for c in range(series.shape[1]):
        series[:, c] -= np.float32(norm.mean[c])
        series[:, c] /= np.float32(norm.std[c])
    return series


def openstl_mv_offsets(in_len: int, out_len: int) -> np.ndarray:
    """OpenSTL's weather_mv frame indices into the 6-hourly array, shifted to start at 0.

    OpenSTL: idx_in = [1 + 6 i for i in -(in_len-1)..-1] + [0], idx_out = [1 + 6 i for i
    in 0..out_len-1] (4 -> 4: [-17, -11, -5, 0] and [1, 7, 13, 19]).
    """
    idx_in = [1 + 6 * i for i in range(-(in_len - 1), 0)] + [0]
    idx_out = [1 + 6 * i for i in range(out_len)]
    idx = np.asarray(idx_in + idx_out, dtype=np.int64)
    return idx - idx.min()


def _get(options: dict[str, Any], key: str, default: Any) -> Any:
    """An option's value, its default when absent or None (None = "use the default")."""
    value = options.get(key)
    return default if value is None else value


def _parse(name: str, options: dict[str, Any]):
    """The checked options: (set, in_len, out_len, stride, protocol, openstl_mv_indexing,
    levels, years by split, resolution key)."""
    ws = _set(name)
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for {name}; valid: {', '.join(OPTIONS)}"
        )
    in_len = int_option(name, "in_len", _get(options, "in_len", ws.in_len))
    out_len = int_option(name, "out_len", _get(options, "out_len", ws.out_len))
    stride = int_option(name, "stride", _get(options, "stride", 1))
    protocol = _get(options, "protocol", "standard")
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    openstl_mv = bool(options.get("openstl_mv_indexing", False))
    if openstl_mv and name not in MULTI_VARIABLE:
        raise ConfigError("openstl_mv_indexing applies to weather_mv and weather_hmv only")
    levels = options.get("levels")
    if levels is not None:
        if not any(f.has_level for f in ws.fields):
            raise ConfigError(f"{name} has no pressure levels; drop the levels option")
        levels = (levels,) if isinstance(levels, int | str) else tuple(levels)
        levels = tuple(int_option(name, "levels", lv, example=500) for lv in levels)
    levels = levels or ws.levels
    years = {
        split: year_range(_get(options, f"{split}_years", getattr(ws, f"{split}_years")), split)
        for split in ("train", "val", "test")
    }
    _check_disjoint(years)
    res = resolution_of(options.get("resolution"))
    lazy_mode(options.get("lazy"))  # checked here, decided in load
    int_option(name, "open_files", _get(options, "open_files", OPEN_FILES))
    return ws, in_len, out_len, stride, protocol, openstl_mv, levels, years, res


def check_values(name: str, root: str | Path, **options: Any) -> list[str]:
    """Problems with every year file the options select (train, val and test years): a
    missing file, anything :func:`_read_year` refuses (non-finite values, times not sorted
    / unique / on the step, grid), and fields whose times or grid differ in a year.

    With ``lazy: true`` (and the cache on) a clean check then loads the dataset as fit does,
    which writes the lazy statistics cache: the multi-node recipe's one-process pass."""
    problems = _file_problems(name, root, options)
    lazy = lazy_mode(options.get("lazy")) == "true"
    if problems or not lazy or not flag_option(options.get("cache", True)):
        return problems
    try:
        load(name, root, **options)
    except DataError as exc:
        return [one_line(exc)]
    return []


def _file_problems(name: str, root: str | Path, options: dict[str, Any]) -> list[str]:
    """:func:`check_values`' pass over the year files."""
    ws, *_, levels, years, res = _parse(name, options)
    problems: list[str] = []
    wanted = sorted({y for a, b in years.values() for y in range(a, b + 1)})
    first: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for f in ws.fields:
        for year in wanted:
            path = file_path(root, f, year, res)
            if not path.is_file():
                problems.append(f"missing {path}; {name} expects {layout(name, res)}")
                continue
            try:
                _, times, meta = _read_year(path, f, levels, ws.step_hours, res)
            except DataError as exc:
                problems.append(one_line(exc))
                continue
            ref = first.setdefault(year, (times, meta["lat"], meta["lon"]))
            if not np.array_equal(ref[0], times):
                problems.append(f"{path}: times differ from {ws.fields[0].directory}'s {year}")
            elif not (np.allclose(ref[1], meta["lat"]) and np.allclose(ref[2], meta["lon"])):
                problems.append(f"{path}: lat/lon differ from the other files of {name}")
    return problems


def load(name: str, root: str | Path, **options: Any) -> Splits:
    """Train/val/test windows of a WeatherBench dataset; see the module docstring.

    Options: in_len, out_len (defaults 12 -> 12, mv 4 -> 4), stride (1 frame), train_years,
    val_years, test_years ((first, last)), levels (hPa; r: (1000,), mv: (150, 500, 850)),
    protocol ("standard": val = the val years; "openstl": val = the test split, as the
    published tables), openstl_mv_indexing (mv and hmv only, default False), resolution
    (5.625 default, 2.8125, 1.40625 deg: the folder, file names and grid follow it), lazy
    (true, false, auto: windows read on demand from the files), cache (lazy statistics kept
    under the root, default true), open_files (lazy: year files open at once per process,
    default 64).
    """
    ws, in_len, out_len, stride, protocol, openstl_mv, levels, years, res = _parse(name, options)

    offsets = (
        openstl_mv_offsets(in_len, out_len)
        if openstl_mv
        else window_offsets(in_len, out_len, step=1)
    )
    frame_step = np.timedelta64(ws.step_hours, "h")
    root = Path(root)
    if not (root / root_dir(res)).is_dir():
        raise DataNotFoundError(
            f"no folder {root / root_dir(res)}; {name} expects {layout(name, res)} under data "
            f"root {root}"
        )

    time_step = reader.canonical_step(f"{ws.step_hours}h")
    phase_fn, n_phases, climatology_kind = climatology_phases(time_step, "the train years")
    mode = lazy_mode(options.get("lazy"))
    open_files = int_option(name, "open_files", _get(options, "open_files", OPEN_FILES))
    if mode == "auto":
        held = {k: v for k, v in years.items() if protocol != "openstl" or k != "val"}
        need = estimated_bytes(ws, root, held, levels, res)
        mode = "true" if need > AUTO_FRACTION * available_bytes() else "false"
    cache_file = None

    def starts_of(times: np.ndarray, split: str) -> np.ndarray:
        where = f"{name} {split} years {years[split]}"
        return contiguous_starts(times, offsets, stride, frame_step, where=where)

    if mode == "true":
        # every split's files and windows are checked before the (long) statistics pass
        parts = ("train", "test") if protocol == "openstl" else ("train", "test", "val")
        scanned = {s: scan(name, ws, root, years[s], levels, res) for s in parts}
        starts = {s: starts_of(scanned[s]["times"], s) for s in parts}
        channels = field_channels(ws, levels, scanned["train"]["units"])
        meta = scanned["train"]["meta"]
        shape = (len(channels), *RESOLUTIONS[res])
        phases = phase_fn(scanned["train"]["times"])

        def compute():
            return train_stats(scanned["train"], shape, phases, n_phases, channels)

        if flag_option(options.get("cache", True)):
            key = cache_key(name, scanned["train"], channels, res, ws.step_hours, years["train"])
            norm, climatology, cache_file = cached_stats(root, CACHE_KIND, key, compute)
        else:
            norm, climatology = compute()

        def windows(split: str) -> NetcdfWindows:
            return NetcdfWindows(scanned[split], starts[split], offsets, in_len, norm,
                                 phase_fn, channels, open_files)  # fmt: skip

    else:
        train_raw, train_t, channels, meta = read_series(root, name, years["train"], levels, res)
        norm, climatology = series_stats(train_raw, phase_fn(train_t), n_phases)
        series = {"train": (normalize_inplace(train_raw, norm), train_t)}

        def windows(split: str) -> ArrayWindows:
            if split not in series:
                raw, t, _, _ = read_series(root, name, years[split], levels, res)
                series[split] = (normalize_inplace(raw, norm), t)
            data, t = series[split]
            kw = dict(times=t, phase_fn=phase_fn, offsets=offsets)
            return ArrayWindows(data, in_len, out_len, starts_of(t, split), **kw)

    train, test = windows("train"), windows("test")
    val = test if protocol == "openstl" else windows("val")

    spec = DataSpec(
        name=name,
        in_len=in_len,
        out_len=out_len,
        channels=tuple(channels),
        height=RESOLUTIONS[res][0],
        width=RESOLUTIONS[res][1],
        convention="weather",
        normalizer=norm,
        lat=meta["lat"],
        lon=meta["lon"],
        extra={
            "years": {k: list(v) for k, v in years.items()},
            "levels": None if levels is None else list(levels),
            "stride": stride,
            "protocol": protocol,
            "openstl_mv_indexing": openstl_mv,
            "resolution": float(res),
            "offsets": offsets.tolist(),
            "climatology_phases": "month_hour",
            "climatology": climatology_kind,
            "lazy": mode == "true",
            "stats_cache": cache_file,
        },
        time_step=time_step,
        calendar=meta["calendar"],
        dims=dict(meta["dims"]),
        attrs=meta["attrs"],
    )
    return Splits(train=train, val=val, test=test, spec=spec, climatology=climatology)


def _check_disjoint(years: dict[str, tuple[int, int]]) -> None:
    names = list(years)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            (a0, a1), (b0, b1) = years[a], years[b]
            if a0 <= b1 and b0 <= a1:
                raise ConfigError(
                    f"{a}_years {years[a]} and {b}_years {years[b]} overlap; splits must be "
                    "disjoint"
                )
