"""The ``svqcast`` command. User errors become one line on stderr and exit status 2.

    svqcast fit|validate|test [--config F.yaml] [--name N] [--model.* ...] [--data.* ...]
                              [--trainer.* ...] [--ckpt_path P|last]
    svqcast predict --ckpt RUN/best.ckpt --input FILE [--output out.npy|out.nc]
    svqcast data list|synth|check ...
    svqcast reproduce --list | NAME [--data-root DIR] [overrides]
    svqcast demo

fit/validate/test are Lightning's CLI (jsonargparse): YAML configs plus dotted overrides;
the resolved configuration is saved in the run folder ``<runs_dir>/<name>/config.yaml``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from svqcast.commands import LIGHTNING_COMMANDS
from svqcast.errors import ConfigError, SvqcastError, one_line

USAGE = (
    "usage: svqcast {fit,validate,test,predict,data,reproduce,demo} ... "
    "(svqcast COMMAND --help for details)"
)

# commands that left the package, and where they went
MOVED = {
    "bench": "the benchmarks are scripts beside the package now; from a source checkout run "
    "python benchmarks/accuracy/run.py --list (accuracy) or benchmarks/bench_svq.py (speed)",
}


# --------------------------------------------------------------------------- predict


def predict_command(argv: list[str]) -> int:
    parser = _parser("predict", "forecast new data with a trained checkpoint")
    parser.add_argument("--ckpt", required=True, help="a run's best.ckpt")
    parser.add_argument(
        "--input",
        required=True,
        help="netCDF, zarr, or .npy/.npz (T, [C,] H, W), in physical units",
    )
    parser.add_argument(
        "--output",
        default="forecast.npy",
        help=".nc or .zarr (WeatherBench2 layout) or .npy (N, T_out, C, H, W)",
    )
    parser.add_argument(
        "--windows",
        choices=("last", "all"),
        default="last",
        help="forecast from the last window only, or from every window without a gap",
    )
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument(
        "--variables",
        default=None,
        help="comma-separated input variables (default: the checkpoint's)",
    )
    parser.add_argument(
        "--time-tolerance",
        type=float,
        default=0.0,
        help="accept times off the step by this fraction of a step (default 0)",
    )
    parser.add_argument("--progress", action="store_true", help="show a progress bar")
    args = parser.parse_args(argv)
    from svqcast.inference.predict import predict_file

    variables = None if args.variables is None else [v for v in args.variables.split(",") if v]
    out = predict_file(
        args.ckpt,
        args.input,
        args.output,
        args.windows,
        args.batch_size,
        variables=variables,
        time_tolerance=args.time_tolerance,
        progress=args.progress,
    )
    print(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------- data


def data_command(argv: list[str]) -> int:
    from svqcast.commands import data as commands

    parser = _parser("data", "list, generate, check or benchmark datasets")
    sub = parser.add_subparsers(dest="action", required=True)
    p_list = sub.add_parser("list", help="datasets, their layout and presence under --root")
    p_list.add_argument("--root", default="data")
    p_synth = sub.add_parser("synth", help="write an embedded dataset under --root")
    p_synth.add_argument("name")
    p_synth.add_argument("--root", default="data")
    p_synth.add_argument("--seed", type=int, default=0)
    p_check = sub.add_parser("check", help="check a dataset's files and values under --root")
    p_bench = sub.add_parser(
        "bench", help="train DataLoader windows/s beside a small model's step, peak memory"
    )
    for p, example in ((p_check, "path=series.nc"), (p_bench, "lazy=true")):
        p.add_argument("name")
        p.add_argument("--root", default="data")
        hint = f"a data option as fit takes it, e.g. {example} (repeatable)"
        p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help=hint)
    p_bench.add_argument("--workers", type=int, nargs="+", default=[0], help="num_workers")
    p_bench.add_argument("--batches", type=int, default=40, help="timed loader batches")
    p_bench.add_argument("--batch-size", type=int, default=16)
    p_bench.add_argument("--model-steps", type=int, default=5, help="timed model steps")
    p_bench.add_argument("--threads", type=int, default=1, help="torch threads")
    p_bench.add_argument(
        "--config", help="take the model from this fit YAML's model section (or a packaged name)"
    )
    p_bench.add_argument("--translator", help="SimVP translator (default gsta)")
    for flag, dest, default in (("--hid-S", "hid_S", 16), ("--hid-T", "hid_T", 64),
                                ("--N-S", "N_S", 2), ("--N-T", "N_T", 2)):  # fmt: skip
        p_bench.add_argument(flag, dest=dest, type=int, help=f"default {default}")
    p_bench.add_argument("--quantizer", help="svq, vq, ... or none (default none)")
    return commands.run(parser.parse_args(argv))


# --------------------------------------------------------------------------- reproduce, demo


def reproduce_command(argv: list[str]) -> int:
    from svqcast.commands import reproduce

    parser = _parser("reproduce", "run one paper experiment preset and record the result")
    parser.add_argument("name", nargs="?", help="preset name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the presets")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--print-config", action="store_true", help="print the YAML and exit")
    args, overrides = parser.parse_known_args(argv)
    if args.list or not args.name:
        print(reproduce.list_presets())
        return 0
    if args.print_config:
        print(reproduce.preset_yaml(args.name, data_root=args.data_root), end="")
        return 0
    entry = reproduce.run_preset(
        args.name, data_root=args.data_root, runs_dir=args.runs_dir, overrides=overrides
    )
    print(reproduce.describe_entry(entry))
    return 0


def demo_command(argv: list[str]) -> int:
    from svqcast.commands import demo

    parser = _parser("demo", "train SimVP+SVQ and SimVP on synthetic weather; compare")
    parser.add_argument("--root", default="data")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--epochs", type=int, default=None, help="override the demo budget")
    parser.add_argument("--quick", action="store_true", help="a tiny smoke-test budget")
    args = parser.parse_args(argv)
    demo.run_demo(root=args.root, runs_dir=args.runs_dir, epochs=args.epochs, quick=args.quick)
    return 0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        raise ConfigError(f"{self.prog}: {message}")


def _parser(name: str, description: str) -> argparse.ArgumentParser:
    return _Parser(prog=f"svqcast {name}", description=description)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # zarr's async I/O leaves "Task was destroyed but it is pending!" on a corrupt store: the
    # command reports the store in one line instead
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    try:
        if argv[:1] in (["--version"], ["version"]):
            from svqcast.version import __version__

            print(__version__)
            return 0
        if not argv or argv[0] in ("-h", "--help", "help"):
            print(USAGE)
            return 0 if argv else 2
        command, rest = argv[0], argv[1:]
        if command in LIGHTNING_COMMANDS:
            from svqcast.commands.fit import run_lightning

            run_lightning([command, *rest])
            return 0
        handlers = {
            "predict": predict_command,
            "data": data_command,
            "reproduce": reproduce_command,
            "demo": demo_command,
        }
        if command in MOVED:
            raise ConfigError(f"svqcast {command}: {MOVED[command]}")
        if command not in handlers:
            raise ConfigError(
                f"unknown command {command!r}; choose one of "
                f"{', '.join([*LIGHTNING_COMMANDS, *handlers])}"
            )
        return handlers[command](rest)
    except SvqcastError as exc:
        print(f"svqcast: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("svqcast: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
