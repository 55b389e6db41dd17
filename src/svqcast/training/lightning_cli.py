"""Lightning's CLI (jsonargparse) for ``svqcast fit | validate | test``: YAML configs plus
dotted overrides, run folders, atomic checkpoints and one-line errors.

The resolved configuration is saved in the run folder ``<runs_dir>/<name>/config.yaml``. A
run folder this process created is removed again when the command fails before writing a
checkpoint.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from svqcast.data.datamodule import ForecastDataModule
from svqcast.errors import CheckpointError, ConfigError, SvqcastError, one_line
from svqcast.io import ensure_writable
from svqcast.training.checkpoints import has_checkpoints

LIGHTNING_COMMANDS = ("fit", "validate", "test")
RUN_NAME_ENV = "SVQCAST_RUN_NAME"
# run folders this invocation created, removed again if it fails before writing a checkpoint
_CREATED: list[Path] = []


def _cli_class() -> type:
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

    from svqcast.training.callbacks import RunConfigCallback, run_checkpoints
    from svqcast.training.checkpoints import AtomicCheckpointIO
    from svqcast.training.module import ForecastModule

    class SvqcastCLI(LightningCLI):
        """LightningCLI with run folders, atomic checkpoints and clean one-line errors."""

        def __init__(self, args: list[str], **kwargs: Any) -> None:
            super().__init__(
                ForecastModule,
                ForecastDataModule,
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
            if self.subcommand == "fit" and ckpt is None and has_checkpoints(run_dir):
                raise ConfigError(
                    f"run folder {run_dir} already holds checkpoints; resume it with "
                    "--ckpt_path last or pick another --name"
                )
            existed = run_dir.exists()
            ensure_writable(run_dir)
            if not existed:
                _CREATED.append(run_dir)
            self._run_dir = run_dir

        def instantiate_trainer(self, **kwargs: Any):
            cfg = self._config()
            trainer_cfg = self._get(self.config_init, "trainer", default={}) or {}  # instantiated
            kwargs.setdefault("default_root_dir", str(self._run_dir))
            logger = trainer_cfg.get("logger")
            if logger is None or logger is True:
                kwargs["logger"] = _default_loggers(self._run_dir)
            every = int(cfg.get("checkpoint_every_n_steps") or 0)
            callbacks = run_checkpoints(self._run_dir, every)
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

    from svqcast.training.module import ForecastModule

    parser = LightningArgumentParser(exit_on_error=False)
    parser.add_argument("-c", "--config", action=ActionConfigFile)
    parser.add_lightning_class_args(Trainer, "trainer")
    parser.add_lightning_class_args(ForecastModule, "model")
    parser.add_lightning_class_args(ForecastDataModule, "data")
    add_run_arguments(parser)
    return parser


def _as_list(value: Any) -> list:
    return [] if value is None else list(value) if isinstance(value, list) else [value]


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
    """Run ``svqcast fit|validate|test ARGS`` in this process; returns the CLI object.

    User errors raise :class:`~svqcast.errors.SvqcastError` (one line); a run folder this
    call created is removed again when it fails before writing a checkpoint.
    """
    import warnings

    # we pass args explicitly (also from `main`), and check run folders ourselves
    warnings.filterwarnings("ignore", message=".*args parameter is intended to run.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")

    _CREATED.clear()
    if "LOCAL_RANK" not in os.environ:  # a fresh command, not a DDP child Lightning launched
        os.environ.pop(RUN_NAME_ENV, None)
    try:
        return _run_cli(args)
    except SvqcastError:
        _cleanup_created()
        raise


def _run_cli(args: list[str]):
    from jsonargparse import ArgumentError

    try:
        return _cli_class()(args)
    except ArgumentError as exc:
        raise ConfigError(one_line(exc)) from None
    except ValueError as exc:  # jsonargparse wraps instantiation errors of our classes
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, SvqcastError):
            raise cause from None
        if isinstance(exc, SvqcastError):
            raise
        raise ConfigError(one_line(exc)) from None


def _cleanup_created() -> None:
    for folder in _CREATED:
        if folder.is_dir() and not has_checkpoints(folder):
            shutil.rmtree(folder, ignore_errors=True)
    _CREATED.clear()
