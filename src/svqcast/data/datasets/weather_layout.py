"""WeatherBench-1 (OpenSTL layout) constants: the dataset names, their variables, folders,
file names and grids. :mod:`svqcast.data.datasets.weather` loads them (eagerly, or lazily
through :mod:`svqcast.data.datasets.weather_lazy`)."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

from svqcast.data.spec import Channel
from svqcast.errors import ConfigError, DataError

ROOT_DIR = "weather_5_625deg"  # the default resolution's folder
GRID = (32, 64)  # (lat, lon) of the 5.625 deg grid
# resolution (deg, as in the file names) -> (lat, lon) grid, as WeatherBench ships them
RESOLUTIONS = {"5.625": (32, 64), "2.8125": (64, 128), "1.40625": (128, 256)}


def resolution_of(value: Any = None) -> str:
    """The resolution key ("5.625", "2.8125", "1.40625") of 5.625 / "2_8125" / None (default)."""
    try:
        deg = float(str("5.625" if value is None else value).replace("_", "."))
    except ValueError:
        deg = None
    for key in RESOLUTIONS:
        if deg == float(key):
            return key
    raise ConfigError(f"resolution must be one of {', '.join(RESOLUTIONS)} (deg), got {value!r}")


def root_dir(resolution: Any = None) -> str:
    """The folder of one resolution under the data root: weather_5_625deg, ..."""
    return f"weather_{resolution_of(resolution).replace('.', '_')}deg"


@dataclass(frozen=True)
class Field:
    """One WeatherBench variable: its folder (also the file prefix) and netCDF name."""

    directory: str
    var: str
    has_level: bool = False


@dataclass(frozen=True)
class WeatherSet:
    """Constants of one weather dataset name."""

    description: str
    fields: tuple[Field, ...]
    levels: tuple[int, ...] | None = None  # hPa, for fields with a level dim
    in_len: int = 12
    out_len: int = 12
    step_hours: int = 1
    train_years: tuple[int, int] = (2010, 2015)
    val_years: tuple[int, int] = (2016, 2016)
    test_years: tuple[int, int] = (2017, 2018)


_PRESSURE = tuple(
    Field(d, v, has_level=True)
    for d, v in (
        ("relative_humidity", "r"),
        ("temperature", "t"),
        ("u_component_of_wind", "u"),
        ("v_component_of_wind", "v"),
    )
)

# weather_hmv: every pressure-level variable of WeatherBench at all its levels, then every
# single-level one (the order of the paper's code, channels level-major within a variable)
HMV_LEVELS = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)
_PRESSURE_ALL = tuple(
    Field(d, v, has_level=True)
    for d, v in (
        ("geopotential", "z"),
        ("potential_vorticity", "pv"),
        ("relative_humidity", "r"),
        ("specific_humidity", "q"),
        ("temperature", "t"),
        ("u_component_of_wind", "u"),
        ("v_component_of_wind", "v"),
        ("vorticity", "vo"),
    )
)
_SINGLE_ALL = tuple(
    Field(d, v)
    for d, v in (
        ("10m_u_component_of_wind", "u10"),
        ("10m_v_component_of_wind", "v10"),
        ("2m_temperature", "t2m"),
        ("toa_incident_solar_radiation", "tisr"),
        ("total_cloud_cover", "tcc"),
        ("total_precipitation", "tp"),
    )
)

DATASETS: dict[str, WeatherSet] = {
    "weather_t2m": WeatherSet(
        "WeatherBench 5.625 deg 2 m temperature t2m (K), hourly, 12 -> 12",
        (Field("2m_temperature", "t2m"),),
    ),
    "weather_r": WeatherSet(
        "WeatherBench 5.625 deg relative humidity r at 1000 hPa (%), hourly, 12 -> 12",
        (Field("relative_humidity", "r", has_level=True),),
        levels=(1000,),
    ),
    "weather_uv10": WeatherSet(
        "WeatherBench 5.625 deg 10 m wind u10, v10 (m s-1), hourly, 12 -> 12",
        (Field("10m_u_component_of_wind", "u10"), Field("10m_v_component_of_wind", "v10")),
    ),
    "weather_tcc": WeatherSet(
        "WeatherBench 5.625 deg total cloud cover tcc (0-1), hourly, 12 -> 12",
        (Field("total_cloud_cover", "tcc"),),
    ),
    "weather_mv": WeatherSet(
        "WeatherBench 5.625 deg r, t, u, v at 150/500/850 hPa (12 channels), 6-hourly, 4 -> 4",
        _PRESSURE,
        levels=(150, 500, 850),
        in_len=4,
        out_len=4,
        step_hours=6,
        train_years=(1979, 2015),
    ),
    "weather_hmv": WeatherSet(
        "WeatherBench 5.625 deg z, pv, r, q, t, u, v, vo at 13 levels + u10, v10, t2m, tisr, "
        "tcc, tp (110 channels), 6-hourly, 4 -> 4",
        _PRESSURE_ALL + _SINGLE_ALL,
        levels=HMV_LEVELS,
        in_len=4,
        out_len=4,
        step_hours=6,
        train_years=(1980, 2015),
    ),
}
MULTI_VARIABLE = ("weather_mv", "weather_hmv")  # 6-hourly; openstl_mv_indexing applies


def _set(name: str) -> WeatherSet:
    if name not in DATASETS:
        raise ConfigError(f"unknown weather dataset {name!r}; valid: {', '.join(DATASETS)}")
    return DATASETS[name]


def file_path(root: str | Path, field: Field, year: int | str, resolution: Any = None) -> Path:
    """Where WeatherBench (and OpenSTL) keep one year of one variable."""
    d, res = field.directory, resolution_of(resolution)
    return Path(root) / root_dir(res) / d / f"{d}_{year}_{res}deg.nc"


def describe(name: str) -> str:
    return _set(name).description


def layout(name: str, resolution: Any = None) -> str:
    """The files of ``name`` at ``resolution``; None: the default's, then the other grids."""
    ws, res = _set(name), resolution_of(resolution)
    years = f"{ws.train_years[0]}..{ws.test_years[1]}"
    parts = []
    for f in ws.fields:
        dims = "time, level, lat, lon" if f.has_level else "time, lat, lon"
        parts.append(f"{file_path('', f, '<year>', res)} (var {f.var}; dims {dims}; years {years})")
    text = "; ".join(parts) + " on the {} x {} (lat x lon) grid".format(*RESOLUTIONS[res])
    if resolution is None:
        text += "; option resolution: " + ", ".join(
            f"{k} ({root_dir(k)}/.._{k}deg.nc, {h} x {w})" for k, (h, w) in RESOLUTIONS.items()
        )
    return text


def _years_present(root: str | Path, field: Field, resolution: Any = None) -> list[int]:
    tail = f"_{resolution_of(resolution)}deg.nc"
    folder = Path(root) / root_dir(resolution) / field.directory
    years = []
    for p in folder.glob(f"{field.directory}_*{tail}"):
        middle = p.name[len(field.directory) + 1 : -len(tail)]
        if middle.isdigit():
            years.append(int(middle))
    return sorted(years)


def resolutions_present(name: str, root: str | Path) -> list[str]:
    """The resolutions with files of every field of ``name`` under ``root``."""
    fields = _set(name).fields
    return [r for r in RESOLUTIONS if all(_years_present(root, f, r) for f in fields)]


def is_present(name: str, root: str | Path) -> bool:
    return bool(resolutions_present(name, root))


def _ranges(years: list[int]) -> str:
    runs = [[y for _, y in g] for _, g in groupby(enumerate(years), lambda iy: iy[1] - iy[0])]
    return ", ".join(f"{r[0]}" if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def grid_error(path: Path, grid: tuple[int, ...], res: str) -> DataError | None:
    """The one-line error for a file whose (lat, lon) grid is not ``res``'s; None if it is."""
    grid = tuple(int(g) for g in grid)
    if grid == RESOLUTIONS[res]:
        return None
    other = [k for k, g in RESOLUTIONS.items() if g == grid]
    return DataError(
        f"{path}: grid {grid} (lat, lon) does not match resolution {res} deg "
        f"{RESOLUTIONS[res]}"
        + (f"; it is {other[0]} deg: pass resolution={other[0]}" if other else "")
    )


def field_channels(
    ws: WeatherSet, levels: tuple[int, ...] | None, units: list[str]
) -> list[Channel]:
    """The channels of ``ws``'s fields (one units string per field), in series order: a
    level field gives one channel per level, named ``<var><level>`` unless it is the only
    channel (then ``<var>``, its level recorded)."""
    channels: list[Channel] = []
    for f, u in zip(ws.fields, units):
        if f.has_level and (len(levels) > 1 or len(ws.fields) > 1):
            channels += [Channel(f"{f.var}{lv}", u, f.var, lv) for lv in levels]
        elif f.has_level:
            channels.append(Channel(f.var, u, f.var, levels[0]))
        else:
            channels.append(Channel(f.var, u, f.var))
    return channels
