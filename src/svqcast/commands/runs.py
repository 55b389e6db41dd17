"""The run folder's own bookkeeping: a lock so that one command at a time writes a run, CSV
metric files that keep their whole history, and the resolved config saved per stage
(:class:`RunConfigCallback`).

* :class:`RunLock` holds an OS lock (``filelock``, released by the kernel when the process
  dies, even on SIGKILL) on ``<run>/.svqcast.lock``, and the holder's pid, host, command and
  start time in ``<run>/.svqcast.lock.json``. A second command on the same run folder gets
  one line naming the holder; a lock left by a killed process is simply free again and the
  next command takes it over (saying so).
* :class:`RunCSVLogger` is Lightning's CSVLogger writing ``metrics.csv`` (fit) or
  ``metrics_<stage>.csv`` (test, validate) WITHOUT clearing an existing file: rows are
  appended as they are logged (the header is rewritten atomically when new keys appear),
  and a resumed fit drops only the rows logged after its checkpoint
  (:class:`ResumeMetricsHistory`), which the resumed run logs again (a fit that loads no
  checkpoint logs everything again: it drops every row).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger

from svqcast.errors import ConfigError
from svqcast.io import atomic_path, atomic_write_text

LOCK_NAME = ".svqcast.lock"
HOLDER_NAME = ".svqcast.lock.json"


# --------------------------------------------------------------------------- the lock


class RunLock:
    """An exclusive, non-blocking lock on a run folder (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike, command: list[str] | None = None) -> None:
        self.folder = Path(folder)
        self.command = shlex.join(["svqcast", *(sys.argv[1:] if command is None else command)])
        self._lock: Any = None
        self.taken_over: dict[str, Any] | None = None  # the holder of a lock a dead process left

    def acquire(self) -> RunLock:
        from filelock import FileLock, Timeout

        lock = FileLock(self.folder / LOCK_NAME, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise ConfigError(self._busy_message()) from None
        self._lock = lock
        previous = self.holder()
        if previous is not None and previous.get("pid") != os.getpid():
            self.taken_over = previous  # its process ended without releasing: the OS freed it
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command[:300],
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        atomic_write_text(self.folder / HOLDER_NAME, json.dumps(info) + "\n")
        return self

    def holder(self) -> dict[str, Any] | None:
        """The holder recorded in the side file (None when there is none or it is unreadable)."""
        try:
            return json.loads((self.folder / HOLDER_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _busy_message(self) -> str:
        h = self.holder()
        who = (
            f"pid {h.get('pid')} on {h.get('host')} since {h.get('started')} ({h.get('command')})"
            if h
            else "another process"
        )
        return (
            f"run folder {self.folder} is in use by {who}; wait for it to finish (or stop it) "
            "or pass another --name"
        )

    def release(self) -> None:
        if self._lock is None:
            return
        try:
            holder = self.holder()
            if holder is not None and holder.get("pid") == os.getpid():
                (self.folder / HOLDER_NAME).unlink(missing_ok=True)
        finally:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def describe_holder(h: dict[str, Any]) -> str:
    return f"pid {h.get('pid')} on {h.get('host')} ({h.get('command')}, started {h.get('started')})"


# --------------------------------------------------------------------------- CSV metrics


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a CSV file; a last line cut short by a killed writer is dropped."""
    if not path.is_file():
        return [], []
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def _write_rows(path: Path, header: list[str], rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


class _AppendingWriter:
    """Lightning's ExperimentWriter interface, appending to ``<log_dir>/<filename>``."""

    def __init__(self, log_dir: str, filename: str) -> None:
        self.log_dir = log_dir
        self.metrics: list[dict[str, Any]] = []
        self.hparams: dict[str, Any] = {}
        self.metrics_file_path = os.path.join(log_dir, filename)
        os.makedirs(log_dir, exist_ok=True)
        header, _ = read_rows(Path(self.metrics_file_path))
        self.metrics_keys: list[str] = header

    def log_metrics(self, metrics_dict: dict[str, Any], step: int | None = None) -> None:
        row = {k: (v.item() if hasattr(v, "item") else v) for k, v in metrics_dict.items()}
        row["step"] = len(self.metrics) if step is None else step
        self.metrics.append(row)

    def log_hparams(self, params: dict[str, Any]) -> None:
        """``hparams.yaml`` beside metrics.csv, ``hparams_<stage>.yaml`` beside
        ``metrics_<stage>.csv`` (an evaluation never rewrites the fit's), atomically."""
        from lightning.pytorch.core.saving import save_hparams_to_yaml

        self.hparams.update(params)
        stem = Path(self.metrics_file_path).stem.replace("metrics", "hparams", 1)
        with atomic_path(Path(self.log_dir) / f"{stem}.yaml") as tmp:
            save_hparams_to_yaml(tmp, self.hparams)

    def save(self) -> None:
        if not self.metrics:
            return
        path = Path(self.metrics_file_path)
        keys = set().union(*self.metrics)
        if not path.is_file() or not keys <= set(self.metrics_keys):
            # new columns: rewrite the whole file (atomically) under the union header
            header, rows = read_rows(path)
            self.metrics_keys = sorted(set(header) | set(self.metrics_keys) | keys)
            _write_rows(path, self.metrics_keys, [*rows, *self.metrics])
        else:
            buf = io.StringIO()
            csv.DictWriter(buf, fieldnames=self.metrics_keys, lineterminator="\n").writerows(
                self.metrics
            )
            with open(path, "a", encoding="utf-8", newline="") as f:
                f.write(buf.getvalue())
        self.metrics = []

    def drop_after(self, step: int) -> int:
        """Remove the rows logged after optimiser step ``step`` (a resumed run logs them
        again); returns how many were removed. The removed rows are not lost: they are
        appended to ``<name>_dropped.csv`` beside the file (first, then the file rewritten)."""
        self.save()
        path = Path(self.metrics_file_path)
        header, rows = read_rows(path)
        keep = [r for r in rows if not (r.get("step") or "").isdigit() or int(r["step"]) <= step]
        if len(keep) != len(rows):
            dropped = [r for r in rows if r not in keep]
            side = path.with_name(f"{path.stem}_dropped{path.suffix}")
            old_header, old_rows = read_rows(side)
            union = old_header + [k for k in header if k not in old_header]
            _write_rows(side, union, old_rows + dropped)
        if len(keep) != len(rows) or (path.is_file() and not path.read_text().endswith("\n")):
            _write_rows(path, header, keep)
        self.metrics_keys = header
        return len(rows) - len(keep)


class RunCSVLogger(CSVLogger):
    """CSVLogger into the run folder that never clears an existing metrics file.

    ``filename`` is ``metrics.csv`` for fit, ``metrics_test.csv`` / ``metrics_validate.csv``
    for the evaluation commands; :meth:`use_file` switches (the test after a fit). Every
    logged row goes to disk at once (``flush_logs_every_n_steps=1``), so a killed run loses
    no row that its checkpoint covers.
    """

    def __init__(self, run_dir: str | os.PathLike, filename: str = "metrics.csv") -> None:
        super().__init__(save_dir=str(run_dir), name="", version="", flush_logs_every_n_steps=1)
        self.filename = filename

    @property
    @rank_zero_experiment
    def experiment(self) -> _AppendingWriter:  # type: ignore[override]
        if self._experiment is None:
            self._experiment = _AppendingWriter(self.log_dir, self.filename)
        return self._experiment

    def use_file(self, filename: str) -> None:
        """Write the following rows to ``filename`` (pending rows go to the current file)."""
        if self._experiment is not None:
            self._experiment.save()
            self._experiment = None
        self.filename = filename


class ResumeMetricsHistory(Callback):
    """Every metric row once across kills and resumes.

    A resumed fit drops the rows logged after its checkpoint (the run logs them again); a
    fit that loads no checkpoint (a first run, or a run killed before its first checkpoint
    restarted with ``--ckpt_path last``) drops every row with a step. The
    training row of the checkpoint's own batch is logged by Lightning just AFTER the
    checkpoint is written, so the checkpoint carries it (``svqcast_pending_row``) and a
    resume adds it when the killed run never wrote it.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        connector = trainer._logger_connector
        if not trainer.training or connector._first_loop_iter is None:
            return  # not inside a training batch (e.g. at validation end)
        if not connector.should_update_logs or trainer.fit_loop._should_accumulate():
            return
        row = {k: float(v) for k, v in connector.metrics["log"].items()}
        checkpoint["svqcast_pending_row"] = {
            "step": int(trainer.fit_loop.epoch_loop._batches_that_stepped),
            "epoch": int(trainer.current_epoch),
            "metrics": row,
        }

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        self._pending = checkpoint.get("svqcast_pending_row")

    def on_train_start(self, trainer, pl_module) -> None:
        pending, self._pending = self._pending, None
        if not trainer.is_global_zero:
            return
        # a fresh start (no checkpoint loaded, e.g. `--ckpt_path last` after a kill before
        # the first checkpoint) logs every row again: drop all the killed run's rows
        step = trainer.fit_loop.epoch_loop._batches_that_stepped if trainer.ckpt_path else -1
        for logger in trainer.loggers:
            if not isinstance(logger, RunCSVLogger):
                continue
            writer = logger.experiment
            writer.drop_after(step)
            if pending is None or pending["step"] != step or not pending["metrics"]:
                continue
            _, rows = read_rows(Path(writer.metrics_file_path))
            keys = set(pending["metrics"])
            if not any(r.get("step") == str(step) and all(r.get(k) for k in keys) for r in rows):
                writer.log_metrics({**pending["metrics"], "epoch": pending["epoch"]}, step)
                writer.save()


class RunConfigCallback(SaveConfigCallback):
    """Saves the resolved config as config.yaml (fit) or config_<stage>.yaml."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        stage = str(getattr(stage, "value", stage))  # TrainerFn or str
        self.config_filename = "config.yaml" if stage == "fit" else f"config_{stage}.yaml"
        super().setup(trainer, pl_module, stage)
