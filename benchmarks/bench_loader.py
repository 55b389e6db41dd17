"""The weather_* data loader (eager against lazy) and the weatherbench2 zarr loader, for 1, 4
and 16 train years.

The data is the project's synthetic weather (``svqcast.data.datasets.synthetic.synth``):
2 m temperature on the 5.625 deg grid (32 x 64, float32), hourly, ``--hours-per-year``
hours from 1 January of each year (default 8760: a whole year, 69 MB a file), one file per
year, written once into ``--data-dir`` (default a temporary folder, removed at the end).
Each year is synthesised on its own (seed = year), so generating never holds more than one
year. Train years are the first N of the tree, the next year validates, the one after
tests (``weather_t2m``, 12 -> 12 frames).

``--dataset weatherbench2`` measures the ``weatherbench2`` loader (always lazy) instead, on a
generated WeatherBench2-layout zarr store (``wb2.zarr`` under ``--data-dir``): variable
``2m_temperature`` with dims (time, longitude, latitude) on the 5.625 deg grid (64 x 32,
float32), 6-hourly (``--hours-per-year`` / 6 frames from 1 January of each year, at most the
whole year; the default 8760 h gives 1,460 frames: a leap year's last day is left out),
time-chunked by one frame as the public WeatherBench2
stores are, written year by year (``append_dim="time"``); the values are the synthetic
weather's background (latitude profile, seasons, diurnal cycle) plus noise, seed = year.
The same years train, validate and test as above.

Each measurement runs in a fresh Python process (so that peak memory belongs to it alone)
through :func:`svqcast.commands.data_bench.measure` (also behind ``svqcast data bench``):
it loads the splits (``lazy: false`` or ``lazy: true``, statistics never cached, so each
lazy run does its streaming pass), builds the project's train DataLoader
(``ForecastDataModule.train_dataloader``: shuffled, batch ``--batch-size``) with
``num_workers`` 0 or 2, times ``--batches`` batches after one warm-up batch (windows/s),
then times a small SimVP's training step (forward, L1 loss, backward, Adam) on those
batches, and reports peak resident memory (``ru_maxrss`` of the main process after the
loader's batches, and again after the model steps; the DataLoader workers' VmHWM
separately). The table prints the loader's windows/s next to the
model's and their ratio (above 1: the loader keeps up), and lazy / eager ratios side by
side.

    python benchmarks/bench_loader.py            # 1, 4, 16 years x eager, lazy x 0, 2 workers
    python benchmarks/bench_loader.py --quick    # 1 and 2 years of 48 hours (seconds)
    python benchmarks/bench_loader.py --years 1 4 --workers 0 --hours-per-year 2190
    python benchmarks/bench_loader.py --dataset weatherbench2   # 1, 4, 16 years x 0, 2 workers
    python benchmarks/bench_loader.py --dataset weatherbench2 --quick
    python benchmarks/bench_loader.py --dataset weatherbench2 --load-chunks 4096 1024 512 256

``--load-chunks`` (weatherbench2 only) measures the load alone instead (``weatherbench2.load``
with option ``chunk`` = each number of frames per statistics block), each (years, chunk) in a
fresh process: its peak RSS and seconds, one column per block size.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from svqcast.commands.data_bench import ratios, table

FIRST_YEAR = 2000
DATASETS = ("weather_t2m", "weatherbench2")
STORE = "wb2.zarr"  # the generated weatherbench2 store, under the data folder
WB2_STEP_HOURS = 6


def generate(root: Path, years: int, hours: int) -> Path:
    """The synthetic tree of ``years`` years under ``root``; returns the weather data root
    (years already present with the same hours are kept)."""
    import xarray as xr

    from svqcast.data.datasets import synthetic, weather

    out = synthetic.data_root(root)
    field = weather.DATASETS["weather_t2m"].fields[0]
    for year in range(FIRST_YEAR, FIRST_YEAR + years):
        path = weather.file_path(out, field, year)
        if path.is_file():
            with xr.open_dataset(path) as ds:
                if ds.sizes["time"] == hours:
                    continue
        synthetic.synth("synthetic_weather", root, seed=year, first_year=year, last_year=year,
                        hours_per_year=hours)  # fmt: skip
    return out


def wb2_times(year: int, hours: int):
    """The 6-hourly times of ``year`` in the store: ``hours`` / 6 frames from 1 January, at
    most the whole year."""
    import pandas as pd

    whole = pd.date_range(f"{year}-01-01", f"{year}-12-31 18:00", freq=f"{WB2_STEP_HOURS}h")
    return whole[: max(1, hours // WB2_STEP_HOURS)]


def generate_zarr(root: Path, years: int, hours: int) -> Path:
    """A WeatherBench2-layout store of ``years`` years under ``root`` (module docstring);
    returns ``root`` (a store with the same times is kept)."""
    import numpy as np
    import xarray as xr

    from svqcast.data.datasets import synthetic

    path = root / STORE
    times = [wb2_times(FIRST_YEAR + i, hours) for i in range(years)]
    if path.is_dir():
        try:
            with xr.open_zarr(path) as ds:
                if ds.sizes["time"] == sum(len(t) for t in times) and str(
                    ds["time"].values[-1].astype("datetime64[s]")
                ) == str(times[-1][-1].to_datetime64().astype("datetime64[s]")):
                    return root
        except (OSError, KeyError, ValueError):
            pass
        shutil.rmtree(path)
    lat, lon = synthetic.grid("5.625")
    for i, t in enumerate(times):
        rng = np.random.default_rng(FIRST_YEAR + i)
        field = synthetic.background(t.hour.values, t.day_of_year.values - 1, lat, lon)
        field = field + rng.standard_normal(field.shape)  # (T, lat, lon)
        data = field.transpose(0, 2, 1).astype(np.float32)  # WB2 order: time, lon, lat
        ds = xr.Dataset(
            {"2m_temperature": (("time", "longitude", "latitude"), data, {"units": "K"})},
            coords={"time": t.values, "latitude": lat, "longitude": lon},
        )
        if i == 0:
            enc = {"2m_temperature": {"chunks": (1, len(lon), len(lat))}}
            ds.to_zarr(path, mode="w", zarr_format=2, encoding=enc, consolidated=True)
        else:
            ds.to_zarr(path, append_dim="time", consolidated=True)
    return root


def data_size_mib(data: Path, dataset: str) -> float:
    files = (data / STORE).rglob("*") if dataset == "weatherbench2" else data.rglob("*.nc")
    return sum(p.stat().st_size for p in files if p.is_file()) / 2**20


def options_of(dataset: str, years: int, mode: str, in_len: int, out_len: int) -> dict:
    """The data options of one measurement: the first ``years`` years train, the next one
    validates, the one after tests; statistics never cached."""
    options = {
        "cache": False,
        "train_years": [FIRST_YEAR, FIRST_YEAR + years - 1],
        "val_years": [FIRST_YEAR + years] * 2,
        "test_years": [FIRST_YEAR + years + 1] * 2,
        "in_len": in_len,
        "out_len": out_len,
    }
    if dataset == "weatherbench2":  # always lazy: no option lazy
        return {"path": STORE, "variables": ["2m_temperature"], **options}
    return {"lazy": mode == "lazy", **options}


def measure(args: argparse.Namespace) -> dict:
    """One measurement (the child process) through svqcast.commands.data_bench.measure,
    or, with ``--load-chunk``, of the weatherbench2 load alone."""
    from svqcast.commands.data_bench import measure as measure_loader
    from svqcast.commands.data_bench import peak_mib

    n = args.train_years
    options = options_of(args.dataset, n, args.mode, args.in_len, args.out_len)
    if args.load_chunk:
        from svqcast.data.datasets import weatherbench2

        start = time.perf_counter()
        weatherbench2.load("weatherbench2", args.root, **options, chunk=args.load_chunk)
        took = time.perf_counter() - start
        return {"label": n, "chunk": args.load_chunk, "load_s": took, "peak_mib": peak_mib()}
    row = measure_loader(args.dataset, args.root, options, num_workers=args.num_workers,
                         batch_size=args.batch_size, batches=args.batches,
                         model_steps=args.model_steps, threads=args.threads)  # fmt: skip
    if args.dataset == "weatherbench2":
        row["lazy"] = True  # the weatherbench2 loader has no eager mode
    return {**row, "label": n}


def child(
    args: argparse.Namespace, data: Path, years: int, mode: str, workers: int, chunk: int = 0
) -> dict:
    cmd = [sys.executable, __file__, "--child", "--root", str(data), "--train-years", str(years),
           "--mode", mode, "--num-workers", str(workers), "--batches", str(args.batches),
           "--batch-size", str(args.batch_size), "--threads", str(args.threads),
           "--model-steps", str(args.model_steps), "--in-len", str(args.in_len),
           "--out-len", str(args.out_len), "--dataset", args.dataset,
           "--load-chunk", str(chunk)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"measurement {years} years {mode} {workers} workers failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def chunk_table(rows: list[dict], frame_bytes: int) -> str:
    """Peak RSS and seconds of the load, one row per train years, one column per block."""
    chunks = list(dict.fromkeys(r["chunk"] for r in rows))
    head = [f"{c:,} frames ({c * frame_bytes / 2**20:g} MiB)" for c in chunks]
    lines = ["| train years | " + " | ".join(head) + " |", "|---" * (len(chunks) + 1) + "|"]
    for years in dict.fromkeys(r["label"] for r in rows):
        cells = {r["chunk"]: r for r in rows if r["label"] == years}
        lines.append(f"| {years} | " + " | ".join(
            f"{cells[c]['peak_mib']:,.0f} MiB, {cells[c]['load_s']:.1f} s" for c in chunks
        ) + " |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=DATASETS, default="weather_t2m",
                        help="weather_t2m (netCDF, eager and lazy) or weatherbench2 (zarr, "
                        "lazy)")  # fmt: skip
    parser.add_argument("--years", type=int, nargs="+", default=[1, 4, 16], help="train years")
    parser.add_argument("--modes", nargs="+", default=["eager", "lazy"], choices=["eager", "lazy"])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--hours-per-year", type=int, default=8760)
    parser.add_argument("--batches", type=int, default=40, help="timed loader batches")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model-steps", type=int, default=5, help="timed model steps")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--in-len", type=int, default=12)
    parser.add_argument("--out-len", type=int, default=12)
    parser.add_argument("--data-dir", help="keep (and reuse) the generated tree here")
    parser.add_argument("--quick", action="store_true", help="1 and 2 years of 48 hours")
    parser.add_argument("--load-chunks", type=int, nargs="+", default=[],
                        help="weatherbench2: measure the load alone with these statistics "
                        "blocks (frames)")  # fmt: skip
    parser.add_argument("--load-chunk", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--train-years", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--num-workers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    if args.quick:
        args.years, args.hours_per_year, args.batches, args.batch_size = [1, 2], 48, 4, 4
        args.in_len = args.out_len = 4
    if args.load_chunks and (args.dataset != "weatherbench2" or min(args.load_chunks) < 1):
        parser.error("--load-chunks takes frames >= 1 and needs --dataset weatherbench2")
    if args.dataset == "weatherbench2":
        args.modes = ["lazy"]  # always lazy
        if args.quick:
            args.hours_per_year = 192  # 32 frames a year
    folder = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="svqb_"))
    try:
        start = time.perf_counter()
        n_years = max(args.years) + 2
        if args.dataset == "weatherbench2":
            data = generate_zarr(folder, n_years, args.hours_per_year)
            what = (f"{STORE}: {n_years} years x {len(wb2_times(FIRST_YEAR, args.hours_per_year))}"
                    " 6-hourly frames of 64 x 32 float32, time-chunked by 1")  # fmt: skip
        else:
            data = generate(folder, n_years, args.hours_per_year)
            what = f"{n_years} years x {args.hours_per_year} h of 32 x 64 float32"
        size, took = data_size_mib(data, args.dataset), time.perf_counter() - start
        print(f"data: {what} under {data} ({size:,.0f} MiB, ready in {took:.0f} s)")
        if args.load_chunks:
            rows = []
            for years in args.years:
                for chunk in args.load_chunks:
                    rows.append(child(args, data, years, "lazy", 0, chunk))
                    print(f"  {years:>2} years, blocks of {chunk} frames: load peak "
                          f"{rows[-1]['peak_mib']:,.0f} MiB, {rows[-1]['load_s']:.1f} s",
                          flush=True)  # fmt: skip
            print(chunk_table(rows, 8 * 64 * 32))  # float64 frames of the store's grid
            return
        rows = []
        for years in args.years:
            for mode in args.modes:
                for workers in args.workers:
                    rows.append(child(args, data, years, mode, workers))
                    r = rows[-1]
                    print(f"  {years:>2} years {mode:<5} {workers} workers: loader peak "
                          f"{r['peak_mib']:,.0f} MiB, {r['loader_wps']:,.0f} windows/s",
                          flush=True)  # fmt: skip
        print(table(rows, "train years"))
        if {"eager", "lazy"} <= set(args.modes):
            print()
            print(ratios(rows, "train years"))
    finally:
        if not args.data_dir:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
