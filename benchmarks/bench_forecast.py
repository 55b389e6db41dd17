"""Time svqcast.forecast on the WeatherBench t2m grid: windows forecast per second.

The model is the t2m SVQ preset's (src/svqcast/configs/weather_t2m.yaml: SimVP-gSTA,
hid_S 32, hid_T 256, N_S 2, N_T 8, SVQ with K = 10,000) with random weights (the time does
not depend on them), for 12 -> 12 hourly frames on the 32 x 64 grid (5.625 deg). The input
is an hourly series of ``--windows + 11`` frames stored as ERA5 stores it (latitudes north to
south, longitudes -180..174.375, degC), so every call maps the layout and the units in and
out. ``svqcast.forecast(..., windows="all")`` forecasts every window; the script prints the
wall time and windows/s, and separately the time of the mapping alone (read, match, map in,
map out) without the model.

    python benchmarks/bench_forecast.py                 # 1,000 windows, 2 threads
    python benchmarks/bench_forecast.py --quick         # a small model, 20 windows: smoke test
    python benchmarks/bench_forecast.py --windows 200 --threads 4 --batch-size 32
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import xarray as xr
import yaml

from svqcast.configs import config_path
from svqcast.data.gridded.identity import match
from svqcast.data.gridded.reader import read_fields
from svqcast.data.spec import Channel, DataSpec, Normalizer
from svqcast.inference.forecast import forecast
from svqcast.training.module import ForecastModule

IN_LEN = OUT_LEN = 12
H, W = 32, 64
MODEL_KEYS = ("hid_S", "hid_T", "N_S", "N_T", "translator", "quantizer", "quantizer_options")


def grid() -> tuple[np.ndarray, np.ndarray]:
    lat = -90.0 + (180.0 / H) * (np.arange(H) + 0.5)
    return lat, (360.0 / W) * np.arange(W)


def make_module(quick: bool) -> ForecastModule:
    cfg = yaml.safe_load(config_path("weather_t2m").read_text())["model"]
    model = {k: cfg[k] for k in MODEL_KEYS if k in cfg}
    if quick:
        model.update(hid_S=8, hid_T=16, N_T=2, quantizer_options={"codebook_size": 100})
    lat, lon = grid()
    spec = DataSpec(
        name="t2m",
        in_len=IN_LEN,
        out_len=OUT_LEN,
        channels=(Channel("t2m", "K", variable="t2m"),),
        height=H,
        width=W,
        convention="weather",
        normalizer=Normalizer([278.0], [21.0]),
        lat=lat,
        lon=lon,
        time_step="h",
        calendar="standard",
    )
    torch.manual_seed(0)
    return ForecastModule(**model, spec=spec.to_dict()).eval()


def era5_like(frames: int) -> xr.Dataset:
    """An hourly t2m series on the grid, north to south, lon -180.., in degC."""
    lat, lon = grid()
    rng = np.random.default_rng(0)
    t = np.arange(frames)[:, None, None]
    kelvin = (
        278.0
        + 25.0 * np.cos(np.deg2rad(lat))[None, :, None]
        + 3.0 * np.sin(2 * np.pi * t / 24.0 + np.deg2rad(lon)[None, None, :])
        + rng.normal(0.0, 1.0, (frames, H, W))
    )
    times = np.datetime64("2020-01-01T00", "ns") + np.arange(frames) * np.timedelta64(1, "h")
    ds = xr.Dataset(
        {"t2m": (("time", "lat", "lon"), (kelvin - 273.15).astype(np.float32), {"units": "degC"})},
        coords={"time": times, "lat": lat, "lon": lon},
    )
    ds = ds.isel(lat=slice(None, None, -1)).roll(lon=W // 2, roll_coords=True)
    return ds.assign_coords(lon=((ds["lon"] + 180.0) % 360.0) - 180.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=1000, help="windows to forecast")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="small model, 20 windows")
    args = parser.parse_args()
    windows = 20 if args.quick else args.windows
    torch.set_num_threads(args.threads)
    module = make_module(args.quick)
    ds = era5_like(windows + IN_LEN - 1)
    params = sum(p.numel() for p in module.parameters())
    print(
        f"svqcast.forecast: {windows} windows of ({IN_LEN}, 1, {H}, {W}) -> {OUT_LEN} frames, "
        f"model {params / 1e6:.2f} M parameters, batch {args.batch_size}, "
        f"threads {args.threads}{' (quick)' if args.quick else ''}"
    )
    start = time.perf_counter()
    fields = read_fields(ds)
    mapping = match(module.spec, fields)
    x = mapping.to_model(fields.data)
    mapping.to_source(np.repeat(x[None, :OUT_LEN], windows, axis=0))
    mapping_s = time.perf_counter() - start
    start = time.perf_counter()
    out = forecast(module, ds, windows="all", batch_size=args.batch_size)
    total = time.perf_counter() - start
    assert out.sizes["time"] == windows
    print(f"wall time {total:.1f} s: {windows / total:.2f} windows/s")
    print(f"mapping alone (read, match, map in and out): {mapping_s:.3f} s")


if __name__ == "__main__":
    main()
