"""The weather_* data loader, eager against lazy, for 1, 4 and 16 train years.

The data is the project's synthetic weather (``svqcast.data.datasets.synthetic.synth``):
2 m temperature on the 5.625 deg grid (32 x 64, float32), hourly, ``--hours-per-year``
hours from 1 January of each year (default 8760: a whole year, 69 MB a file), one file per
year, written once into ``--data-dir`` (default a temporary folder, removed at the end).
Each year is synthesised on its own (seed = year), so generating never holds more than one
year. Train years are the first N of the tree, the next year validates, the one after
tests (``weather_t2m``, 12 -> 12 frames).

Each measurement runs in a fresh Python process (so that peak memory belongs to it alone)
through :func:`svqcast.training.loader_bench.measure` (also behind ``svqcast data bench``):
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

from svqcast.training.loader_bench import ratios, table

FIRST_YEAR = 2000


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


def measure(args: argparse.Namespace) -> dict:
    """One measurement (the child process) through svqcast.training.loader_bench.measure."""
    from svqcast.training.loader_bench import measure as measure_loader

    n = args.train_years
    options = {
        "lazy": args.mode == "lazy",
        "cache": False,
        "train_years": [FIRST_YEAR, FIRST_YEAR + n - 1],
        "val_years": [FIRST_YEAR + n] * 2,
        "test_years": [FIRST_YEAR + n + 1] * 2,
        "in_len": args.in_len,
        "out_len": args.out_len,
    }
    row = measure_loader("weather_t2m", args.root, options, num_workers=args.num_workers,
                         batch_size=args.batch_size, batches=args.batches,
                         model_steps=args.model_steps, threads=args.threads)  # fmt: skip
    return {**row, "label": n}


def child(args: argparse.Namespace, data: Path, years: int, mode: str, workers: int) -> dict:
    cmd = [sys.executable, __file__, "--child", "--root", str(data), "--train-years", str(years),
           "--mode", mode, "--num-workers", str(workers), "--batches", str(args.batches),
           "--batch-size", str(args.batch_size), "--threads", str(args.threads),
           "--model-steps", str(args.model_steps), "--in-len", str(args.in_len),
           "--out-len", str(args.out_len)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"measurement {years} years {mode} {workers} workers failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
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
    folder = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="svqb_"))
    try:
        start = time.perf_counter()
        data = generate(folder, max(args.years) + 2, args.hours_per_year)
        size = sum(p.stat().st_size for p in data.rglob("*.nc")) / 2**20
        took = time.perf_counter() - start
        print(f"data: {max(args.years) + 2} years x {args.hours_per_year} h of 32 x 64 float32 "
              f"under {data} ({size:,.0f} MiB, ready in {took:.0f} s)")  # fmt: skip
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
        print()
        print(ratios(rows, "train years"))
    finally:
        if not args.data_dir:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
