"""``synthetic_weather``: a temperature-like field on a WeatherBench grid (5.625 deg default).

A small stand-in for WeatherBench 2 m temperature that needs no download. It is written to
disk in the WeatherBench layout (yearly netCDF files, variable ``t2m`` in K, dims time/lat/
lon) under ``<root>/synthetic_weather/`` and then read by the real ``weather_t2m`` loader,
so the demo exercises the same path as real data.

The field, hourly, is the sum of
- a latitudinal profile: 300 K at the equator falling to about 250 K at the poles;
- a seasonal cycle: solar declination with 23.44 deg tilt warms the summer hemisphere;
- a diurnal cycle that follows the sun: peak at 14:00 local solar time (UTC + lon / 15),
  amplitude largest where the sun is high;
- synoptic anomalies (about 3 K) advected semi-Lagrangianly by a westerly jet near 40 deg,
  easterly trades, a slowly oscillating zonal wind and a travelling meridional wave
  (periodic in longitude), diffused, damped over 5 days and forced by slowly evolving
  smooth random patterns;
- observation noise (0.1 K).

Each synthetic "year" is a short run of ``hours_per_year`` hours starting on 1 January
00:00 UTC of that year (default 2010-2018 x 360 h = 15 days), so the default year split of
``weather_t2m`` applies unchanged; the anomaly state runs on continuously from one year to
the next, while windows never cross the jump in time between years.

Option ``resolution`` (2.8125 or 1.40625 deg) writes the same weather on that WeatherBench
grid, in its folder and file names: the background and the noise are computed on the fine
grid, the anomalies (simulated on the 5.625 deg grid) are interpolated bilinearly to it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.data.base import Splits
from svqcast.data.datasets import weather
from svqcast.errors import ConfigError
from svqcast.io import atomic_fill

FOLDER = "synthetic_weather"  # under the data root; holds a WeatherBench-style tree
MARKER = "synthetic_weather.json"
VERSION = 1

LAT = -87.1875 + 5.625 * np.arange(32)  # degrees north, as WeatherBench 5.625 deg
LON = 5.625 * np.arange(64)  # degrees east
EARTH_RADIUS = 6.371e6  # m
TILT = 23.44  # deg


@dataclass(frozen=True)
class SynthConfig:
    """What determines the generated files (saved beside them in ``synthetic_weather.json``)."""

    seed: int = 0
    first_year: int = 2010
    last_year: int = 2018
    hours_per_year: int = 360
    noise: float = 0.1  # K, observation noise
    version: int = VERSION
    resolution: str = "5.625"  # deg: a key of weather.RESOLUTIONS

    def __post_init__(self) -> None:
        object.__setattr__(self, "resolution", weather.resolution_of(self.resolution))
        if self.first_year > self.last_year:
            raise ConfigError(f"first_year {self.first_year} is after last_year {self.last_year}")
        if not 24 <= self.hours_per_year <= 8760:
            raise ConfigError(f"hours_per_year must be in [24, 8760], got {self.hours_per_year}")
        if self.noise < 0:
            raise ConfigError(f"noise must be >= 0, got {self.noise}")


SYNTH_OPTIONS = ("seed", "first_year", "last_year", "hours_per_year", "noise", "resolution")
LOAD_OPTIONS = (
    "in_len", "out_len", "stride", "train_years", "val_years", "test_years", "protocol", "lazy",
    "cache", "open_files",
)  # fmt: skip


def describe(name: str) -> str:
    return (
        "synthetic 2 m temperature on the 5.625 deg grid (option resolution: 2.8125, 1.40625; "
        "generated; WeatherBench layout)"
    )


def layout(name: str) -> str:
    return f"{FOLDER}/{weather.layout('weather_t2m')} + {FOLDER}/{MARKER} (written by synth)"


def data_root(root: str | Path) -> Path:
    """The WeatherBench-style data root that holds the synthetic files."""
    return Path(root) / FOLDER


def _read_marker(root: str | Path) -> SynthConfig | None:
    path = data_root(root) / MARKER
    if not path.is_file():
        return None
    try:
        return SynthConfig(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None


def is_present(name: str, root: str | Path) -> bool:
    cfg = _read_marker(root)
    if cfg is None:
        return False
    field = weather.DATASETS["weather_t2m"].fields[0]
    years = range(cfg.first_year, cfg.last_year + 1)
    return all(
        weather.file_path(data_root(root), field, y, cfg.resolution).is_file() for y in years
    )


def check(name: str, root: str | Path) -> list[str]:
    cfg = _read_marker(root)
    if cfg is None:
        return [f"no {data_root(root) / MARKER}; run `svqcast data synth {name}`"]
    problems = weather.check("weather_t2m", data_root(root), cfg.resolution)
    default = weather.DATASETS["weather_t2m"]
    if (cfg.first_year, cfg.last_year) == (default.train_years[0], default.test_years[1]):
        return problems
    # custom years: the default-split complaint is expected; keep the other problems
    return [p for p in problems if "missing for the default split" not in p]


# ----------------------------------------------------------------------------- physics


def declination(day_of_year: np.ndarray) -> np.ndarray:
    """Solar declination (degrees) for a day of the year (0 = 1 January)."""
    return TILT * np.sin(2 * np.pi * (day_of_year - 80.0) / 365.0)


def grid(resolution: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) cell centres of a WeatherBench grid, degrees (5.625: LAT, LON)."""
    res = weather.resolution_of(resolution)
    d, (h, w) = float(res), weather.RESOLUTIONS[res]
    return -90.0 + d / 2 + d * np.arange(h), d * np.arange(w)


def regrid(field: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """(T, 32, 64) on LAT, LON -> (T, len(lat), len(lon)), bilinear (periodic in longitude,
    constant beyond the outermost latitudes)."""
    a_lat = np.stack([np.interp(lat, LAT, e) for e in np.eye(len(LAT))], axis=1)
    wrap = np.append(LON, 360.0)
    a_lon = np.stack([np.interp(lon, wrap, e) for e in np.eye(len(wrap))], axis=1)
    a_lon[:, 0] += a_lon[:, -1]
    return a_lat @ field @ a_lon[:, :-1].T


def background(
    hours_utc: np.ndarray,
    day_of_year: np.ndarray,
    lat: np.ndarray = LAT,
    lon: np.ndarray = LON,
) -> np.ndarray:
    """Latitudinal profile + seasonal cycle + diurnal cycle, (T, len(lat), len(lon)) K."""
    lat = np.deg2rad(lat)[None, :, None]
    lon = lon[None, None, :]
    dec = declination(np.asarray(day_of_year, dtype=np.float64))[:, None, None]
    profile = 300.0 - 50.0 * np.sin(lat) ** 2
    seasonal = 15.0 * np.sin(lat) * (dec / TILT)  # summer hemisphere warmer
    sun_height = np.clip(np.cos(lat - np.deg2rad(dec)), 0.0, None)
    local_hour = (np.asarray(hours_utc, dtype=np.float64)[:, None, None] + lon / 15.0) % 24.0
    diurnal = 4.0 * sun_height * np.cos(2 * np.pi * (local_hour - 14.0) / 24.0)
    return profile + seasonal + diurnal  # (T, H, W)


def wind(t_hours: float) -> tuple[np.ndarray, np.ndarray]:
    """Zonal and meridional wind (m/s) on the grid at model time ``t_hours``: (32, 64) each."""
    lat = LAT[:, None]
    lon = np.deg2rad(LON)[None, :]
    coslat = np.cos(np.deg2rad(lat))
    jet = 25.0 * np.exp(-(((np.abs(lat) - 40.0) / 12.0) ** 2))
    trades = -6.0 * np.exp(-((lat / 12.0) ** 2))
    slow = 8.0 * coslat * np.sin(2 * np.pi * t_hours / (24.0 * 5.0))
    u = (jet + trades + slow) * np.ones_like(lon)
    v = 4.0 * coslat * np.sin(3 * lon - 2 * np.pi * t_hours / (24.0 * 7.0))
    return u, v


def advect(field: np.ndarray, u: np.ndarray, v: np.ndarray, dt: float = 3600.0) -> np.ndarray:
    """One semi-Lagrangian step: bilinear value at each point's departure point.

    Longitude is periodic; latitude is clamped at the outermost rows.
    """
    h, w = field.shape
    dlat = 5.625
    coslat = np.maximum(np.cos(np.deg2rad(LAT)), 0.1)[:, None]
    dx = np.rad2deg(u * dt / (EARTH_RADIUS * coslat)) / dlat  # cells moved east
    dy = np.rad2deg(v * dt / EARTH_RADIUS) / dlat  # cells moved north
    rows = np.clip(np.arange(h)[:, None] - dy, 0.0, h - 1.0)
    cols = (np.arange(w)[None, :] - dx) % w
    r0 = np.floor(rows).astype(np.int64)
    c0 = np.floor(cols).astype(np.int64)
    fr, fc = rows - r0, cols - c0
    c0 %= w  # a tiny negative offset can round cols up to exactly w
    r1 = np.minimum(r0 + 1, h - 1)
    c1 = (c0 + 1) % w
    top = field[r0, c0] * (1 - fc) + field[r0, c1] * fc
    bottom = field[r1, c0] * (1 - fc) + field[r1, c1] * fc
    return top * (1 - fr) + bottom * fr


def diffuse(field: np.ndarray, kappa: float = 0.05) -> np.ndarray:
    """One explicit diffusion step (5-point Laplacian, periodic lon, no-flux lat)."""
    padded = np.pad(field, ((1, 1), (0, 0)), mode="edge")
    lap = (
        padded[:-2]
        + padded[2:]
        + np.roll(field, 1, axis=1)
        + np.roll(field, -1, axis=1)
        - 4 * field
    )
    return field + kappa * lap


def _smooth_noise(rng: np.random.Generator) -> np.ndarray:
    """A unit-std random pattern of synoptic scale: coarse 8 x 16 noise upsampled to 32 x 64."""
    coarse = rng.standard_normal((8, 16))
    rows = np.linspace(0, 7, 32)
    r0 = np.floor(rows).astype(int)
    r1 = np.minimum(r0 + 1, 7)
    fr = (rows - r0)[:, None]
    cols = np.arange(64) / 4.0
    c0 = np.floor(cols).astype(int)
    c1 = (c0 + 1) % 16
    fc = (cols - c0)[None, :]
    top = coarse[r0][:, c0] * (1 - fc) + coarse[r0][:, c1] * fc
    bottom = coarse[r1][:, c0] * (1 - fc) + coarse[r1][:, c1] * fc
    pattern = top * (1 - fr) + bottom * fr
    return pattern / pattern.std()


def simulate_anomalies(
    hours: int, seed: int = 0, spinup: int = 240, damping_hours: float = 120.0
) -> np.ndarray:
    """(hours, 32, 64) synoptic anomalies (K): advected, diffused, damped, slowly forced."""
    rng = np.random.default_rng(seed)
    state = np.zeros((32, 64))
    forcing = _smooth_noise(rng)
    rho = 0.95  # forcing memory ~ 20 h: anomalies grow smoothly, not by white jumps
    gain = 0.12  # K per hour of forcing; gives anomalies of about 3 K
    decay = 1.0 - 1.0 / damping_hours
    out = np.empty((hours, 32, 64))
    for k in range(-spinup, hours):
        u, v = wind(float(k))
        state = diffuse(advect(state, u, v)) * decay + gain * forcing
        forcing = rho * forcing + np.sqrt(1 - rho**2) * _smooth_noise(rng)
        if k >= 0:
            out[k] = state
    return out


def generate(cfg: SynthConfig) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(year, datetime64 times, (T, H, W) float32 K) for each synthetic year, on the grid of
    ``cfg.resolution`` (32 x 64 by default)."""
    lat, lon = grid(cfg.resolution)
    n_years = cfg.last_year - cfg.first_year + 1
    anomalies = simulate_anomalies(n_years * cfg.hours_per_year, seed=cfg.seed)
    rng = np.random.default_rng([cfg.seed, 1])
    years = []
    for i, year in enumerate(range(cfg.first_year, cfg.last_year + 1)):
        start = np.datetime64(f"{year}-01-01T00", "h")
        times = start + np.arange(cfg.hours_per_year).astype("timedelta64[h]")
        hours_utc = (times - times.astype("datetime64[D]")).astype(np.int64)
        doy = (times.astype("datetime64[D]") - start.astype("datetime64[D]")).astype(np.int64)
        block = anomalies[i * cfg.hours_per_year : (i + 1) * cfg.hours_per_year]
        if cfg.resolution != "5.625":
            block = regrid(block, lat, lon)
        field = background(hours_utc, doy, lat, lon) + block
        field += cfg.noise * rng.standard_normal(field.shape)
        years.append((year, times, field.astype(np.float32)))
    return years


# ----------------------------------------------------------------------------- files


def synth(name: str, root: str | Path, seed: int = 0, **options: Any) -> Path:
    """Write the synthetic files under ``<root>/synthetic_weather`` (not atomically: use
    :func:`svqcast.commands.data.synth` for that). Returns that folder."""
    import xarray as xr

    unknown = sorted(set(options) - set(SYNTH_OPTIONS))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for synth {name}; "
            f"valid: {', '.join(SYNTH_OPTIONS)}"
        )
    cfg = SynthConfig(seed=int(seed), **options)
    out = data_root(root)
    field = weather.DATASETS["weather_t2m"].fields[0]
    lat, lon = grid(cfg.resolution)
    for year, times, values in generate(cfg):
        path = weather.file_path(out, field, year, cfg.resolution)
        path.parent.mkdir(parents=True, exist_ok=True)
        ds = xr.Dataset(
            {
                "t2m": (
                    ("time", "lat", "lon"),
                    values,
                    {"units": "K", "long_name": "2 metre temperature (synthetic)"},
                )
            },
            coords={
                "time": ("time", times.astype("datetime64[ns]")),
                "lat": ("lat", lat, {"units": "degrees_north", "long_name": "latitude"}),
                "lon": ("lon", lon, {"units": "degrees_east", "long_name": "longitude"}),
            },
            attrs={"source": "svqcast synthetic_weather", "seed": cfg.seed},
        )
        ds.to_netcdf(path, engine="netcdf4")
    (out / MARKER).write_text(json.dumps(asdict(cfg), indent=1))
    return out


def load(name: str, root: str | Path, **options: Any) -> Splits:
    """Generate the files if absent (or made with other synth options), then load them with
    the ``weather_t2m`` loader. Options: the synth options (seed, first_year, last_year,
    hours_per_year, noise, resolution: also the loader's) and the weather options (in_len,
    out_len, stride, *_years, protocol)."""
    valid = SYNTH_OPTIONS + LOAD_OPTIONS
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for {name}; valid: {', '.join(valid)}"
        )
    synth_opts = {k: options.pop(k) for k in SYNTH_OPTIONS if k in options}
    wanted = SynthConfig(**synth_opts)
    if (wanted.first_year, wanted.last_year) != (2010, 2018):
        years = range(wanted.first_year, wanted.last_year + 1)
        if len(years) < 3 and not all(f"{s}_years" in options for s in ("train", "val", "test")):
            raise ConfigError(
                f"{name}: {len(years)} synthetic years cannot hold train/val/test; "
                "use 3 or more years or pass train_years, val_years and test_years"
            )
        if not any(f"{s}_years" in options for s in ("train", "val", "test")):
            ys = list(years)
            n_test = max(1, len(ys) // 5)
            options.update(
                train_years=(ys[0], ys[-n_test - 2]),
                val_years=(ys[-n_test - 1], ys[-n_test - 1]),
                test_years=(ys[-n_test], ys[-1]),
            )
    if _read_marker(root) != wanted or not is_present(name, root):
        print(f"svqcast: generating {name} under {data_root(root)} (seed {wanted.seed})")
        params = {k: v for k, v in asdict(wanted).items() if k != "version"}
        atomic_fill(root, lambda tmp: synth(name, tmp, **params))
    options["resolution"] = wanted.resolution
    splits = weather.load("weather_t2m", data_root(root), **options)
    splits.spec = replace(splits.spec, name=name)
    splits.spec.extra["synthetic"] = asdict(wanted)
    # the weather_t2m loader's (month, hour of day) climatology; its own text when it has one
    splits.spec.extra.setdefault("climatology", "by (month, hour of day) over the train years")
    return splits
