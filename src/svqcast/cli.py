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
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from svqcast.errors import CheckpointError, ConfigError, SvqcastError

LIGHTNING_COMMANDS = ("fit", "validate", "test")
USAGE = (
    "usage: svqcast {fit,validate,test,predict,data,reproduce,bench,demo} ... "
    "(svqcast COMMAND --help for details)"
)

RUN_NAME_ENV = "SVQCAST_RUN_NAME"
# run folders this invocation created, removed again if it fails before writing a checkpoint
_CREATED: list[Path] = []


# --------------------------------------------------------------------------- Lightning CLI


def _cli_class() -> type:
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

    class RunConfigCallback(SaveConfigCallback):
        """Saves the resolved config as config.yaml (fit) or config_<stage>.yaml."""

        def setup(self, trainer, pl_module, stage: str) -> None:
            stage = str(getattr(stage, "value", stage))  # TrainerFn or str
            self.config_filename = "config.yaml" if stage == "fit" else f"config_{stage}.yaml"
            super().setup(trainer, pl_module, stage)

    class SvqcastCLI(LightningCLI):
        """LightningCLI with run folders, atomic checkpoints and clean one-line errors."""

        def __init__(self, args: list[str], **kwargs: Any) -> None:
            from svqcast.training import EngineDataModule, ForecastModule

            super().__init__(
                ForecastModule,
                EngineDataModule,
                args=args,
                save_config_callback=RunConfigCallback,
                save_config_kwargs={"overwrite": True},
                trainer_defaults={"use_distributed_sampler": False},
                parser_kwargs={"exit_on_error": False, "prog": "svqcast"},
                seed_everything_default=0,
                **kwargs,
            )

        @staticmethod
        def subcommands() -> dict[str, set[str]]:
            return {k: v for k, v in LightningCLI.subcommands().items() if k in LIGHTNING_COMMANDS}

        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            add_run_arguments(parser)

        def _parse_ckpt_path(self) -> None:
            try:
                super()._parse_ckpt_path()
            except SvqcastError:
                raise
            except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint: one line
                sub = self.config.get("subcommand")
                path = self.config[sub].get("ckpt_path") if sub else None
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise CheckpointError(f"cannot read checkpoint {path}: {first[:200]}") from None

        def _config(self) -> Any:
            return self.config[self.subcommand] if self.subcommand else self.config

        def run_dir(self) -> Path:
            cfg = self._config()
            name = cfg.get("name")
            ckpt = cfg.get("ckpt_path")
            if name is None and ckpt and Path(str(ckpt)).is_file():
                return Path(str(ckpt)).resolve().parent  # evaluate into the checkpoint's run
            if name is None:
                # generated once; DDP processes that Lightning launches inherit it (under
                # torchrun or SLURM every rank starts on its own: pass --name there)
                name = os.environ.get(RUN_NAME_ENV)
            if name is None:
                data = cfg.get("data") or {}
                model = cfg.get("model") or {}
                stamp = time.strftime("%Y%m%d-%H%M%S")
                name = f"{data.get('dataset', 'data')}_{model.get('quantizer', 'none')}_{stamp}"
                os.environ[RUN_NAME_ENV] = name
            return Path(cfg.get("runs_dir") or "runs") / str(name)

        def before_instantiate_classes(self) -> None:
            cfg = self._config()
            ckpt = cfg.get("ckpt_path")
            run_dir = self.run_dir()
            if self.subcommand == "fit" and ckpt is None and _has_ckpts(run_dir):
                raise ConfigError(
                    f"run folder {run_dir} already holds checkpoints; resume it with "
                    "--ckpt_path last or pick another --name"
                )
            existed = run_dir.exists()
            from svqcast.runs import ensure_writable

            ensure_writable(run_dir)
            if not existed:
                _CREATED.append(run_dir)
            self._run_dir = run_dir

        def instantiate_trainer(self, **kwargs: Any):
            from svqcast.runs import AtomicCheckpointIO

            cfg = self._config()
            trainer_cfg = self._get(self.config_init, "trainer", default={}) or {}  # instantiated
            kwargs.setdefault("default_root_dir", str(self._run_dir))
            logger = trainer_cfg.get("logger")
            if logger is None or logger is True:
                kwargs["logger"] = _default_loggers(self._run_dir)
            every = int(cfg.get("checkpoint_every_n_steps") or 0)
            callbacks = [
                ModelCheckpoint(
                    dirpath=self._run_dir,
                    filename="best",
                    monitor="val_loss",
                    mode="min",
                    save_last=True,
                    enable_version_counter=False,
                ),
            ]
            if every > 0:
                callbacks.append(
                    ModelCheckpoint(
                        dirpath=self._run_dir,
                        filename="last",
                        save_top_k=0,
                        save_last=True,
                        every_n_train_steps=every,
                        enable_version_counter=False,
                    )
                )
            if trainer_cfg.get("enable_checkpointing") is False:
                callbacks = []
            kwargs["callbacks"] = [*_as_list(trainer_cfg.get("callbacks")), *callbacks]
            kwargs["plugins"] = [*_as_list(trainer_cfg.get("plugins")), AtomicCheckpointIO()]
            return super().instantiate_trainer(**kwargs)

        def after_fit(self) -> None:
            if not self._config().get("test_after_fit", True) or self.trainer.interrupted:
                return
            ckpt = self.trainer.checkpoint_callback
            best = getattr(ckpt, "best_model_path", "") if ckpt is not None else ""
            which = "best" if best else None
            if which is None:
                print(
                    "svqcast: no validation checkpoint: testing the final weights", file=sys.stderr
                )
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=which)

    return SvqcastCLI


def add_run_arguments(parser) -> None:
    """The run-folder options the command adds to Lightning's (one definition for both)."""
    parser.add_argument("--name", type=str | None, default=None, help="run folder name")
    parser.add_argument("--runs_dir", type=str, default="runs", help="parent of run folders")
    parser.add_argument(
        "--test_after_fit",
        type=bool,
        default=True,
        help="fit: test the best (validation) checkpoint afterwards",
    )
    parser.add_argument(
        "--checkpoint_every_n_steps",
        type=int,
        default=0,
        help="also refresh last.ckpt every n optimiser steps (mid-epoch resume)",
    )


def config_parser():
    """A parser for the ``fit`` configuration (trainer, model, data and run options), used
    to validate presets without running anything."""
    from jsonargparse import ActionConfigFile
    from lightning.pytorch import Trainer
    from lightning.pytorch.cli import LightningArgumentParser

    from svqcast.training import EngineDataModule, ForecastModule

    parser = LightningArgumentParser(exit_on_error=False)
    parser.add_argument("-c", "--config", action=ActionConfigFile)
    parser.add_lightning_class_args(Trainer, "trainer")
    parser.add_lightning_class_args(ForecastModule, "model")
    parser.add_lightning_class_args(EngineDataModule, "data")
    add_run_arguments(parser)
    return parser


def _as_list(value: Any) -> list:
    return [] if value is None else list(value) if isinstance(value, list) else [value]


def _has_ckpts(folder: Path) -> bool:
    from svqcast.runs import has_checkpoints

    return has_checkpoints(folder)


def _default_loggers(run_dir: Path) -> list:
    """CSV always; TensorBoard too when it is installed."""
    import importlib.util

    from lightning.pytorch.loggers import CSVLogger

    loggers: list = [CSVLogger(save_dir=str(run_dir), name="", version="")]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version=""))
    return loggers


def run_lightning(args: list[str]):
    """Run ``svqcast fit|validate|test ARGS`` in this process; returns the CLI object."""
    import warnings

    from jsonargparse import ArgumentError

    # we pass args explicitly (also from `main`), and check run folders ourselves
    warnings.filterwarnings("ignore", message=".*args parameter is intended to run.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")

    try:
        return _cli_class()(args)
    except ArgumentError as exc:
        raise ConfigError(_one_line(exc)) from None
    except ValueError as exc:  # jsonargparse wraps instantiation errors of our classes
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, SvqcastError):
            raise cause from None
        if isinstance(exc, SvqcastError):
            raise
        raise ConfigError(_one_line(exc)) from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:500] if text else type(exc).__name__


# --------------------------------------------------------------------------- predict


def predict_command(argv: list[str]) -> int:
    parser = _parser("predict", "forecast new data with a trained checkpoint")
    parser.add_argument("--ckpt", required=True, help="a run's best.ckpt")
    parser.add_argument("--input", required=True, help=".npy (T, C, H, W) or netCDF")
    parser.add_argument("--output", default="forecast.npy", help=".npy or .nc")
    parser.add_argument(
        "--windows",
        choices=("last", "all"),
        default="last",
        help="forecast from the last window only",
    )
    parser.add_argument("--batch_size", type=int, default=16)
    args = parser.parse_args(argv)
    from svqcast.training import predict_file

    out = predict_file(args.ckpt, args.input, args.output, args.windows, args.batch_size)
    print(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------- data


def data_command(argv: list[str]) -> int:
    from svqcast.data import commands

    parser = _parser("data", "list, generate or check datasets")
    sub = parser.add_subparsers(dest="action", required=True)
    p_list = sub.add_parser("list", help="datasets, their layout and presence under --root")
    p_list.add_argument("--root", default="data")
    p_synth = sub.add_parser("synth", help="write an embedded dataset under --root")
    p_synth.add_argument("name")
    p_synth.add_argument("--root", default="data")
    p_synth.add_argument("--seed", type=int, default=0)
    p_check = sub.add_parser("check", help="check a dataset's files under --root")
    p_check.add_argument("name")
    p_check.add_argument("--root", default="data")
    args = parser.parse_args(argv)
    if args.action == "list":
        print(commands.list_datasets(args.root))
        return 0
    if args.action == "synth":
        print(f"wrote {commands.synth(args.name, args.root, seed=args.seed)}")
        return 0
    problems = commands.check(args.name, args.root)
    if problems:
        for line in problems:
            print(f"- {line}")
        return 1
    print(f"{args.name}: ok")
    return 0


# --------------------------------------------------------------------------- reproduce, demo


def reproduce_command(argv: list[str]) -> int:
    from svqcast import reproduce

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


def bench_command(argv: list[str]) -> int:
    from svqcast import bench

    return bench.command(argv)


def demo_command(argv: list[str]) -> int:
    from svqcast import demo

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


def _cleanup_created() -> None:
    for folder in _CREATED:
        if folder.is_dir() and not any(folder.glob("*.ckpt")):
            shutil.rmtree(folder, ignore_errors=True)
    _CREATED.clear()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _CREATED.clear()
    if "LOCAL_RANK" not in os.environ:  # a fresh command, not a DDP child Lightning launched
        os.environ.pop(RUN_NAME_ENV, None)
    try:
        if argv[:1] in (["--version"], ["version"]):
            from svqcast import __version__

            print(__version__)
            return 0
        if not argv or argv[0] in ("-h", "--help", "help"):
            print(USAGE)
            return 0 if argv else 2
        command, rest = argv[0], argv[1:]
        if command in LIGHTNING_COMMANDS:
            run_lightning([command, *rest])
            return 0
        handlers = {
            "predict": predict_command,
            "data": data_command,
            "reproduce": reproduce_command,
            "bench": bench_command,
            "demo": demo_command,
        }
        if command not in handlers:
            raise ConfigError(
                f"unknown command {command!r}; choose one of "
                f"{', '.join([*LIGHTNING_COMMANDS, *handlers])}"
            )
        return handlers[command](rest)
    except SvqcastError as exc:
        _cleanup_created()
        print(f"svqcast: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("svqcast: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
