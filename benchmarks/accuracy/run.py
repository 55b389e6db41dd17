"""The accuracy benchmark's command line: does SVQ help forecasting, does hard VQ hurt it?

Each variant is trained with the engine for the same number of optimizer steps on the
embedded synthetic weather data (and moving digits), then tested; the command prints and
writes one Markdown table per group (mean +- std over seeds of MAE, RMSE, latitude-weighted
RMSE, the ratio to the no-quantizer row, median time per training step and peak memory)
plus all raw per-seed results as JSON. Run from the repository root:

    python benchmarks/accuracy/run.py --list                  # the groups and their rows
    python benchmarks/accuracy/run.py --group main            # ~45 min on 2 idle CPU cores
    python benchmarks/accuracy/run.py --group all             # every group
    python benchmarks/accuracy/run.py --group main --rows lfq --seeds 1,2   # one row, more seeds
    python benchmarks/accuracy/run.py --group all --report    # tables of the saved runs only
    python benchmarks/accuracy/run.py --quick                 # smoke run, about half a minute

Outputs go to runs/accuracy/ (accuracy.md, accuracy.json, results/<budget>/*.json); a run
whose result file exists is skipped, so an interrupted benchmark resumes. The published
runs' records are under docs/accuracy/results/; ``python benchmarks/results.py`` rebuilds the
tables of docs/results/ from them. The modules beside
this file hold the variants, groups and budgets (variants.py), one run (train.py, runner.py),
the driver (study.py) and the tables (tables.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the package from the repository root
    _here = Path(__file__).resolve().parent
    # this folder itself must not be on the path: its tables.py would shadow PyTables's `tables`
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
    sys.path.insert(0, str(_here.parents[1]))

from benchmarks.accuracy.runner import worker  # noqa: E402
from benchmarks.accuracy.study import RUN_COMMAND, run_benchmark  # noqa: E402
from benchmarks.accuracy.variants import GROUPS, list_groups  # noqa: E402
from svqcast.errors import ConfigError, SvqcastError  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=RUN_COMMAND,
        description="Train every quantizer variant with the same budget and compare accuracy.",
    )
    parser.add_argument(
        "--group",
        default="main",
        help=f"one of {', '.join(GROUPS)}, or all, or a comma-separated list (default main)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny budget, one seed, few rows")
    parser.add_argument("--out", default="runs/accuracy", help="output folder (runs/accuracy)")
    parser.add_argument("--data-root", default="data", help="data root (default data)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default 0,1,2)")
    parser.add_argument(
        "--rows",
        default=None,
        help="comma-separated rows of the group(s) to run (default: all; see --list)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per run (default: torch's choice; 1 with --quick)",
    )
    parser.add_argument(
        "--no-isolate",
        action="store_true",
        help="run in this process (faster start; no per-run peak memory)",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="train nothing: write the tables from the runs already saved under --out",
    )
    parser.add_argument(
        "--name",
        default="accuracy",
        help="stem of the tables written into --out: NAME.md and NAME.json (default accuracy)",
    )
    parser.add_argument("--list", action="store_true", help="list the groups and rows, then exit")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python benchmarks/accuracy/run.py [--group ...] [--quick] ...``; user errors exit 2."""
    args = build_parser().parse_args(argv)
    if args.worker:
        return worker(args.worker)
    try:
        if args.list:
            print(list_groups())
            return 0
        groups = list(GROUPS) if args.group == "all" else args.group.split(",")
        try:
            seeds = None if args.seeds is None else [int(s) for s in args.seeds.split(",") if s]
        except ValueError:
            raise ConfigError(
                f"--seeds must be comma-separated integers, got {args.seeds!r}"
            ) from None
        if args.threads is not None and args.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {args.threads}")
        run_benchmark(
            groups,
            quick=args.quick,
            out_dir=args.out,
            data_root=args.data_root,
            seeds=seeds,
            threads=args.threads,
            isolate=not args.no_isolate,
            rows=None if args.rows is None else [r for r in args.rows.split(",") if r],
            report=args.report,
            report_name=args.name,
            log=lambda msg: print(msg, flush=True),
        )
    except SvqcastError as exc:
        print(f"{RUN_COMMAND}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
