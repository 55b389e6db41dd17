"""Lightning's CLI (jsonargparse) for ``svqcast fit | validate | test``: YAML configs plus
dotted overrides, run folders, atomic checkpoints and one-line errors.

The resolved configuration is saved in the run folder ``<runs_dir>/<name>/config.yaml``. A
run folder this command created is removed again when the command fails before writing a
checkpoint. One command at a time writes a run folder (:class:`~svqcast.commands.runs.RunLock`);
temporary files of killed writes are swept when a command starts. With ``--ckpt_path`` the
model options given must agree with the checkpoint's (or ``--from_checkpoint true`` takes the
checkpoint's), and ``trainer.max_epochs`` must not be below the epochs it has completed
(nor leave the epoch it was saved in unfinished).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from svqcast.commands import LIGHTNING_COMMANDS
from svqcast.commands.quiet import ReleaseHeldLogs, held_lightning_logs
from svqcast.commands.runs import (
    ResumeMetricsHistory,
    RunConfigCallback,
    RunCSVLogger,
    RunLock,
    describe_holder,
)
from svqcast.data.datamodule import ForecastDataModule
from svqcast.errors import CheckpointError, ConfigError, SvqcastError, one_line
from svqcast.io import ensure_writable, sweep_temp_files
from svqcast.training.callbacks import run_checkpoints
from svqcast.training.checkpoints import AtomicCheckpointIO, has_checkpoints
from svqcast.training.module import ForecastModule

RUN_NAME_ENV = "SVQCAST_RUN_NAME"
# model options that change only what a test writes, never the model: free to differ from a
# checkpoint's
TEST_TIME_OPTIONS = ("plots", "diagnostics")


@dataclass
class RunState:
    """What one command holds: the run folders it created (removed again if it fails before
    writing a checkpoint) and the run-folder locks (released when it ends)."""

    created: list[Path] = field(default_factory=list)
    locks: list[RunLock] = field(default_factory=list)

    def cleanup(self) -> None:
        """Remove the folders this command created that hold no checkpoint."""
        for folder in self.created:
            if folder.is_dir() and not has_checkpoints(folder):
                shutil.rmtree(folder, ignore_errors=True)
        self.created.clear()

    def release(self) -> None:
        while self.locks:
            self.locks.pop().release()

    def lock(self, run_dir: Path) -> None:
        """Lock ``run_dir`` for this command (once), then sweep what killed writers left."""
        if _is_launched_child() or any(lock.folder == run_dir for lock in self.locks):
            return
        if not run_dir.is_dir():
            return  # nothing to lock yet (the check before the folder is made)
        lock = RunLock(run_dir).acquire()
        self.locks.append(lock)
        if lock.taken_over is not None:
            print(
                f"svqcast: taking over {run_dir} from {describe_holder(lock.taken_over)}, "
                "which ended without releasing it",
                file=sys.stderr,
            )
        sweep_temp_files(run_dir)


class SvqcastCLI(LightningCLI):
    """LightningCLI with run folders, atomic checkpoints and clean one-line errors."""

    def __init__(self, args: list[str], state: RunState | None = None, **kwargs: Any) -> None:
        self.state = RunState() if state is None else state
        self.given_model: set[str] = set()  # the model options the command names
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

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        # the model options given on the command line or in its config files (a value equal
        # to the default counts as given too): a second parse without defaults
        given = parser.parse_args(args, defaults=False)
        model = (given.get(given.get("subcommand") or "") or {}).get("model")
        self.given_model = set(_plain(model) or {})

    def _parse_ckpt_path(self) -> None:
        if self.config.get("subcommand"):
            cfg = self.config[self.config["subcommand"]]
            cfg["ckpt_path"] = _resolve_ckpt_path(cfg, self.run_dir_of(cfg))
            if cfg.get("ckpt_path"):
                _check_against_checkpoint(cfg, self.config["subcommand"], self.given_model)
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
        return self.run_dir_of(self._config())

    @staticmethod
    def run_dir_of(cfg: Any) -> Path:
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
            self.state.lock(run_dir)  # a running fit: say who holds it
            raise ConfigError(
                f"run folder {run_dir} already holds checkpoints; resume it with "
                "--ckpt_path last or pick another --name"
            )
        existed = run_dir.exists()
        ensure_writable(run_dir)
        if not existed:
            self.state.created.append(run_dir)
        self._run_dir = run_dir
        self.state.lock(run_dir)

    def instantiate_trainer(self, **kwargs: Any):
        cfg = self._config()
        trainer_cfg = self._get(self.config_init, "trainer", default={}) or {}  # instantiated
        kwargs.setdefault("default_root_dir", str(self._run_dir))
        logger = trainer_cfg.get("logger")
        if logger is None or logger is True:
            kwargs["logger"] = _default_loggers(self._run_dir, self.subcommand or "fit")
        every = int(cfg.get("checkpoint_every_n_steps") or 0)
        callbacks = run_checkpoints(self._run_dir, every)
        if trainer_cfg.get("enable_checkpointing") is False:
            callbacks = []
        callbacks += [ResumeMetricsHistory(), ReleaseHeldLogs()]
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
            print("svqcast: no validation checkpoint: testing the final weights", file=sys.stderr)
        for logger in self.trainer.loggers:  # test rows go to metrics_test.csv
            if isinstance(logger, RunCSVLogger):
                logger.use_file(_metrics_file("test"))
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=which)


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
    parser.add_argument(
        "--from_checkpoint",
        type=bool,
        default=False,
        help="with --ckpt_path: take the checkpoint's model configuration; model options "
        "given that differ from it are ignored (by default they are an error)",
    )


def config_parser():
    """A parser for the ``fit`` configuration (trainer, model, data and run options), used
    to validate presets without running anything."""
    from jsonargparse import ActionConfigFile
    from lightning.pytorch import Trainer

    parser = LightningArgumentParser(exit_on_error=False)
    parser.add_argument("-c", "--config", action=ActionConfigFile)
    parser.add_lightning_class_args(Trainer, "trainer")
    parser.add_lightning_class_args(ForecastModule, "model")
    parser.add_lightning_class_args(ForecastDataModule, "data")
    add_run_arguments(parser)
    return parser


def _as_list(value: Any) -> list:
    return [] if value is None else list(value) if isinstance(value, list) else [value]


def _metrics_file(stage: str) -> str:
    """``metrics.csv`` for fit, ``metrics_<stage>.csv`` for test and validate."""
    return "metrics.csv" if stage == "fit" else f"metrics_{stage}.csv"


def _default_loggers(run_dir: Path, stage: str = "fit") -> list:
    """CSV always (appending: a resume or an evaluation never loses fit rows); TensorBoard
    too when it is installed."""
    import importlib.util

    loggers: list = [RunCSVLogger(run_dir, _metrics_file(stage))]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version=""))
    return loggers


def run_lightning(args: list[str]) -> SvqcastCLI:
    """Run ``svqcast fit|validate|test ARGS`` in this process; returns the CLI object.

    User errors raise :class:`~svqcast.errors.SvqcastError` (one line); a run folder this
    call created is removed again when it fails before writing a checkpoint.
    """
    import warnings

    from jsonargparse import ArgumentError

    # we pass args explicitly (also from `main`), and check run folders ourselves
    warnings.filterwarnings("ignore", message=".*args parameter is intended to run.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
    if "LOCAL_RANK" not in os.environ:  # a fresh command, not a DDP child Lightning launched
        os.environ.pop(RUN_NAME_ENV, None)
    state = RunState()
    try:
        with held_lightning_logs():  # start-up chatter only once a run starts: one-line errors
            return SvqcastCLI([str(a) for a in args], state=state)
    except ArgumentError as exc:
        state.cleanup()
        raise ConfigError(one_line(exc)) from None
    except ValueError as exc:  # jsonargparse wraps instantiation errors of our classes
        state.cleanup()
        if isinstance(exc, SvqcastError):
            raise
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, SvqcastError):
            raise cause from None
        raise ConfigError(one_line(exc)) from None
    except BaseException:
        state.cleanup()  # only folders without checkpoints
        raise
    finally:
        state.release()


def _is_launched_child() -> bool:
    """A process that is not rank 0 of its job (a DDP child Lightning launched, another
    torchrun/SLURM rank, a node other than the first): it neither locks nor sweeps the run
    folder, its rank 0 does."""
    for var in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "NODE_RANK", "GROUP_RANK"):
        value = os.environ.get(var, "0")
        if value.isdigit() and int(value) != 0:
            return True
    return False


def _resolve_ckpt_path(cfg: Any, run_dir: Path) -> str | None:
    """``last`` / ``best`` name the run folder's last.ckpt / best.ckpt (when it exists, so
    that the checks below see it); a file that does not exist is a one-line error."""
    ckpt = cfg.get("ckpt_path")
    if ckpt is None:
        return None
    ckpt = str(ckpt)
    if ckpt in ("last", "best"):
        found = run_dir / f"{ckpt}.ckpt"
        return str(found) if found.is_file() else ckpt
    if not Path(ckpt).is_file():
        raise CheckpointError(
            f"checkpoint {ckpt} does not exist; pass a run's best.ckpt or last.ckpt, or "
            "--ckpt_path last with the run's --name"
        )
    return ckpt


def _check_against_checkpoint(cfg: Any, subcommand: str, named: set[str]) -> None:
    """Refuse model options that contradict the checkpoint's (they would be silently
    replaced), and a fit whose max_epochs / max_steps lie below what the checkpoint did."""
    import inspect

    import torch

    path = str(cfg["ckpt_path"])
    if not Path(path).is_file():
        return  # "last"/"best" without a file: Lightning says so
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu", mmap=True)
    except Exception:  # noqa: BLE001 - unreadable: _parse_ckpt_path reports it in one line
        return
    saved = dict(ckpt.get("hyper_parameters") or {})
    if not cfg.get("from_checkpoint"):
        given = _plain(cfg.get("model"))
        defaults = {
            name: p.default
            for name, p in inspect.signature(ForecastModule.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        for key, value in (given or {}).items():
            if key in ("spec", *TEST_TIME_OPTIONS) or key not in saved or key not in defaults:
                continue
            if key not in named and value == _plain(defaults[key]):
                continue  # not given: the checkpoint's value is taken
            if value != _plain(saved[key]):
                raise ConfigError(
                    f"--model.{key} {value!r} contradicts the checkpoint {path} "
                    f"({key}={saved[key]!r}); drop the option, or pass --from_checkpoint true "
                    "to take the checkpoint's model configuration"
                )
    if subcommand != "fit":
        return
    trainer = _plain(cfg.get("trainer")) or {}
    done, mid_epoch = epochs_completed(ckpt)
    max_epochs = trainer.get("max_epochs")
    if max_epochs is not None and 0 <= int(max_epochs) < done:
        raise ConfigError(
            f"--trainer.max_epochs {max_epochs} is below the {done} epochs checkpoint "
            f"{path} has completed; pass --trainer.max_epochs {done + 1} or more to train on"
        )
    if max_epochs is not None and mid_epoch and int(max_epochs) == done:
        raise ConfigError(
            f"--trainer.max_epochs {max_epochs} would leave checkpoint {path} in the middle "
            f"of epoch {done + 1} ({done} completed); pass --trainer.max_epochs {done + 1} or "
            "more to train on"
        )
    max_steps, step = trainer.get("max_steps"), int(ckpt.get("global_step") or 0)
    if max_steps is not None and 0 <= int(max_steps) < step:
        raise ConfigError(
            f"--trainer.max_steps {max_steps} is below the {step} steps checkpoint {path} "
            f"has done; pass a larger --trainer.max_steps to train on"
        )


def epochs_completed(ckpt: dict[str, Any]) -> tuple[int, bool]:
    """(epochs a checkpoint has completed, whether it was saved in the middle of the next).

    From the fit loop's state: ``processed`` counts the epochs whose training finished (a
    checkpoint at an epoch's end, after its validation, has it one above ``epoch``, which
    Lightning counts up only after the checkpoint); ``started`` above it means the next epoch
    was under way. ``trainer.max_epochs`` must be at least ``processed + 1`` to train on
    (Lightning stops when ``processed >= max_epochs``). Without loop state: ``epoch``.
    """
    try:
        current = ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]
        processed, started = int(current["processed"]), int(current["started"])
    except (KeyError, TypeError, ValueError):
        return int(ckpt.get("epoch") or 0), False
    return processed, started > processed


def _plain(value: Any) -> Any:
    """A jsonargparse Namespace (nested) as plain dicts, for comparisons."""
    from jsonargparse import Namespace

    if isinstance(value, Namespace):
        value = value.as_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
