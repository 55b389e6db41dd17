"""Writers of small WeatherBench-format files for the data tests (not a test module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

LAT = -87.1875 + 5.625 * np.arange(32)
LON = 5.625 * np.arange(64)


def hours_of(year: int, hours: int) -> np.ndarray:
    start = np.datetime64(f"{year}-01-01T00", "h")
    return start + np.arange(hours).astype("timedelta64[h]")


def encoded(times: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """Values that encode time: hours since 2000 (+ offset), with a small spatial pattern."""
    t = (times - np.datetime64("2000-01-01T00", "h")).astype(np.float64)
    pattern = 0.01 * np.arange(32)[:, None] + 0.001 * np.arange(64)[None, :]
    return (t[:, None, None] + offset + pattern).astype(np.float32)


def write_var(
    root: Path,
    directory: str,
    var: str,
    years,
    hours: int = 48,
    levels: list[int] | None = None,
    units: str = "K",
    offset: float = 0.0,
    dims: tuple[str, ...] | None = None,
) -> None:
    """One variable as yearly files <root>/weather_5_625deg/<dir>/<dir>_<year>_5.625deg.nc.

    Values: :func:`encoded` times; with levels, level L adds L to the value.
    """
    import xarray as xr

    folder = Path(root) / "weather_5_625deg" / directory
    folder.mkdir(parents=True, exist_ok=True)
    for year in years:
        times = hours_of(year, hours)
        values = encoded(times, offset)
        coords = {
            "time": ("time", times.astype("datetime64[ns]")),
            "lat": ("lat", LAT),
            "lon": ("lon", LON),
        }
        if levels is None:
            data = (dims or ("time", "lat", "lon"), values)
        else:
            stack = np.stack([values + lv for lv in levels], axis=1)  # (T, L, H, W)
            data = (dims or ("time", "level", "lat", "lon"), stack)
            coords["level"] = ("level", np.asarray(levels, dtype=np.int32))
        da_attrs = {"units": units, "long_name": var}
        ds = xr.Dataset({var: (*data, da_attrs)}, coords=coords)
        ds.to_netcdf(folder / f"{directory}_{year}_5.625deg.nc", engine="netcdf4")


def tiny_fit_args(root, options: str, runs_dir, name: str, *extra: str) -> list[str]:
    """`svqcast fit` arguments for a tiny SimVP, one epoch, on weather_t2m under ``root``
    with ``options`` (YAML text); ``extra`` arguments follow."""
    return [
        "fit", "--data.dataset", "weather_t2m", "--data.root", str(root), "--data.batch_size", "4",
        "--data.options", options,
        "--model.hid_S", "8", "--model.hid_T", "16", "--model.N_S", "2", "--model.N_T", "2",
        "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--runs_dir", str(runs_dir), "--name", name, *extra,
    ]  # fmt: skip
