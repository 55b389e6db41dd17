"""The run lifecycle: kills at any moment resume bit-exactly, metrics.csv never loses or
repeats a row, one command at a time per run folder (a killed holder's lock is taken over),
temp files of killed writes are swept, and options or data that contradict a checkpoint are
refused in one line, leaving nothing behind."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from test_checkpoints_resume import make_module, weights
from test_cli import TINY_YAML as CLI_TINY_YAML
from test_module import TinyData, trainer

from svqcast.cli import main
from svqcast.commands.runs import ResumeMetricsHistory, RunCSVLogger, RunLock
from svqcast.data.gridded.identity import check_same_data
from svqcast.errors import CheckpointError
from svqcast.io import atomic_path, sweep_temp_files
from svqcast.training.callbacks import run_checkpoints
from svqcast.training.checkpoints import AtomicCheckpointIO

# ----------------------------------------------------------------------------- kills


class Killed(RuntimeError):
    pass


class Events:
    """Numbers the moments a process can die at; raises at moment ``kill_at``."""

    def __init__(self, kill_at: int | None = None) -> None:
        self.kill_at, self.log = kill_at, []

    def happened(self, what: str) -> None:
        self.log.append(what)
        if len(self.log) == self.kill_at:
            raise Killed(what)


class KillingIO(AtomicCheckpointIO):
    """Dies right after a checkpoint file is complete."""

    def __init__(self, events: Events) -> None:
        super().__init__()
        self.events = events

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        super().save_checkpoint(checkpoint, path, storage_options)
        self.events.happened(f"saved {Path(path).name} at step {checkpoint['global_step']}")


class KillBeforeValidation(L.Callback):
    """Dies after an epoch's last optimiser step, before its validation."""

    def __init__(self, events: Events) -> None:
        self.events = events

    def on_validation_start(self, trainer, pl_module):
        self.events.happened(f"validation at step {trainer.global_step}")


def fit(folder: Path, kill_at: int | None = None, resume: bool = False):
    """2 epochs of 2 steps; last.ckpt after every step (the CLI's checkpoints), the CLI's
    CSV log. Returns (module, trainer, events); module is None when killed."""
    torch.manual_seed(1234)
    data = TinyData(n_train=8, n_val=4, batch_size=4, seed=7)
    module = make_module()
    events = Events(kill_at)
    t = trainer(
        folder,
        max_epochs=2,
        callbacks=[
            *run_checkpoints(folder, 1),
            ResumeMetricsHistory(),
            KillBeforeValidation(events),
        ],
        enable_checkpointing=True,
        plugins=[KillingIO(events)],
        logger=RunCSVLogger(folder),
        log_every_n_steps=1,
    )
    try:
        t.fit(module, data, ckpt_path="last" if resume else None)
    except Killed:
        return None, t, events
    return module, t, events


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ref")
    module, t, events = fit(folder)
    rows = csv_rows(folder / "metrics.csv")
    return weights(module), t.global_step, events.log, rows, saved_counters(folder)


def saved_counters(folder: Path) -> tuple[int, int]:
    """(epoch, global_step) of the run's last.ckpt."""
    ckpt = torch.load(folder / "last.ckpt", weights_only=False, map_location="cpu")
    return ckpt["epoch"], ckpt["global_step"]


# the moments of the uninterrupted run: after each checkpoint file and before each validation
MOMENTS = [
    "saved last.ckpt at step 1",
    "validation at step 2",  # after the epoch's last step (no checkpoint is taken there)
    "saved best.ckpt at step 2",
    "saved last.ckpt at step 2",
    "saved last.ckpt at step 3",
    "validation at step 4",
    "saved best.ckpt at step 4",
    "saved last.ckpt at step 4",
]


@pytest.mark.slow
def test_the_kill_moments_are_every_boundary(uninterrupted):
    assert uninterrupted[2] == MOMENTS


@pytest.mark.slow
@pytest.mark.parametrize("first", range(1, len(MOMENTS) + 1), ids=lambda k: MOMENTS[k - 1])
def test_killed_twice_anywhere_resumes_bit_exactly(tmp_path, uninterrupted, first):
    """Kill at ``first``, resume, kill again at the resumed run's second moment (e.g. after
    the epoch's validation checkpoint but before last.ckpt), resume to the end: the same
    weights, step count and metric rows as the uninterrupted run."""
    ref_weights, ref_step, _, ref_rows, ref_counters = uninterrupted
    assert fit(tmp_path, kill_at=first)[0] is None
    module, t, events = fit(tmp_path, kill_at=2, resume=True)
    if module is None:
        module, t, _ = fit(tmp_path, resume=True)
    assert t.global_step == ref_step == 4
    got = weights(module)
    assert got.keys() == ref_weights.keys()
    for key in got:
        assert torch.equal(got[key], ref_weights[key]), key
    assert csv_rows(tmp_path / "metrics.csv") == ref_rows  # every row once, same values
    # the saved counters too (a resume finishing the last epoch stored epoch 2, not 1)
    assert saved_counters(tmp_path) == ref_counters == (1, 4)


class RaiseAt(L.Callback):
    """Dies after optimiser step ``step``, before that step's checkpoint."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise Killed(f"step {self.step}")


@pytest.mark.slow
def test_killed_before_the_first_checkpoint_restarts_without_repeating_rows(
    tmp_path, uninterrupted
):
    """Killed before any checkpoint, `--ckpt_path last` starts from scratch (Lightning
    finds no last.ckpt): the killed run's rows are dropped, not kept beside the new ones."""
    ref_weights, _, _, ref_rows, _ = uninterrupted

    def run(*callbacks, ckpt_path=None):
        torch.manual_seed(1234)
        data = TinyData(n_train=8, n_val=4, batch_size=4, seed=7)
        module = make_module()
        t = trainer(
            tmp_path,
            max_epochs=2,
            callbacks=[*run_checkpoints(tmp_path, 3), ResumeMetricsHistory(), *callbacks],
            enable_checkpointing=True,
            plugins=[AtomicCheckpointIO()],
            logger=RunCSVLogger(tmp_path),
            log_every_n_steps=1,
        )
        t.fit(module, data, ckpt_path=ckpt_path)
        return module

    with pytest.raises(Killed):
        run(RaiseAt(2))
    assert not (tmp_path / "last.ckpt").exists()
    killed_rows = csv_rows(tmp_path / "metrics.csv")
    assert len(killed_rows) >= 1  # the killed run's rows
    module = run(ckpt_path="last")
    assert csv_rows(tmp_path / "metrics.csv") == ref_rows
    # the dropped rows are kept aside, not lost
    assert csv_rows(tmp_path / "metrics_dropped.csv") == killed_rows
    got = weights(module)
    for key in got:
        assert torch.equal(got[key], ref_weights[key]), key


# ----------------------------------------------------------------------------- the CLI

# the CLI tests' tiny run, without plots, 2 whole epochs logged at every step
_TINY = yaml.safe_load(CLI_TINY_YAML)
_TINY["model"]["plots"] = False
_TINY["trainer"] = {
    "max_epochs": 2,
    "log_every_n_steps": 1,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "limit_test_batches": 1,
}
TINY_YAML = yaml.safe_dump(_TINY)


def one_line_error(capsys) -> str:
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("svqcast: error:")]
    assert len(err) == 1, err
    return err[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """`svqcast fit` of 2 epochs (tested afterwards), shared by the tests below."""
    root = tmp_path_factory.mktemp("cli")
    (root / "tiny.yaml").write_text(TINY_YAML)
    args = ["--config", str(root / "tiny.yaml"), "--data.root", str(root / "data")]
    args += ["--runs_dir", str(root / "runs"), "--name", "tiny"]
    assert main(["fit", *args]) == 0
    return root / "runs" / "tiny", args


@pytest.mark.slow
def test_resume_and_test_keep_every_metrics_row_once(run):
    folder, args = run
    fit_rows = csv_rows(folder / "metrics.csv")
    tested = csv_rows(folder / "metrics_test.csv")  # the test after fit has its own file
    assert len(tested) == 1 and float(tested[0]["test_mae"]) > 0
    more = ["--ckpt_path", "last", "--trainer.max_epochs", "3", "--test_after_fit", "false"]
    assert main(["fit", *args, *more]) == 0
    fit_hparams = (folder / "hparams.yaml").read_text()
    assert main(["test", *args, "--ckpt_path", str(folder / "best.ckpt")]) == 0
    assert (folder / "hparams.yaml").read_text() == fit_hparams  # the test has its own
    assert "hid_S: 8" in (folder / "hparams_test.yaml").read_text()
    rows = csv_rows(folder / "metrics.csv")
    assert rows[: len(fit_rows)] == fit_rows  # the history is kept as it was
    assert not any(k.startswith("test_") for k in rows[0])  # test rows never go here
    val = [r["epoch"] for r in rows if r["val_loss"]]
    train = [r["step"] for r in rows if r["train_loss"]]
    assert val == ["0", "1", "2"]  # every epoch's validation exactly once
    assert [int(s) for s in train] == list(range(len(train)))  # every step once
    assert len(train) % 3 == 0 and len(train) > 0
    assert len(csv_rows(folder / "metrics_test.csv")) == 2  # the later test appended


@pytest.mark.slow
def test_model_option_contradicting_the_checkpoint_is_refused(run, capsys):
    folder, args = run
    ckpt = ["--ckpt_path", str(folder / "best.ckpt")]
    assert main(["test", *args, *ckpt, "--model.hid_S", "16"]) == 2
    line = one_line_error(capsys)
    assert "--model.hid_S 16 contradicts the checkpoint" in line and "(hid_S=8)" in line
    assert "--from_checkpoint true" in line
    assert main(["fit", *args, "--ckpt_path", "last", "--model.lr", "0.01"]) == 2
    assert "--model.lr 0.01 contradicts" in one_line_error(capsys)


@pytest.mark.slow
def test_test_time_switches_may_differ_from_the_checkpoint(run, tmp_path):
    """``plots`` and ``diagnostics`` change what a test writes, not the model: a test of a
    checkpoint may turn them off without --from_checkpoint."""
    import shutil

    folder, args = run
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(".svqcast.lock*"))
    more = ["--model.plots", "false", "--model.diagnostics", "false"]
    elsewhere = [*args[:-4], "--runs_dir", str(tmp_path), "--name", "copy"]
    assert main(["test", *elsewhere, "--ckpt_path", str(copy / "best.ckpt"), *more]) == 0
    assert (
        len(csv_rows(copy / "metrics_test.csv")) == len(csv_rows(folder / "metrics_test.csv")) + 1
    )


@pytest.mark.slow
def test_from_checkpoint_takes_the_checkpoints_model(run, capsys):
    folder, args = run
    ckpt = ["--ckpt_path", str(folder / "best.ckpt"), "--from_checkpoint", "true"]
    assert main(["validate", *args, *ckpt, "--model.hid_S", "16"]) == 0
    assert len(csv_rows(folder / "metrics_validate.csv")) == 1
    assert "val_loss" in csv_rows(folder / "metrics_validate.csv")[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    "option,value,message",
    [
        ("--data.options.out_len", "2", "output frames: 4 vs 2"),
        ("--data.options.first_year", "2009", "normalisation mean"),
    ],
)
def test_data_differing_from_the_checkpoint_is_refused(run, capsys, option, value, message):
    folder, args = run
    rc = main(["test", *args, "--ckpt_path", str(folder / "best.ckpt"), option, value])
    assert rc == 2
    line = one_line_error(capsys)
    assert message in line and "trained vs given" in line


def test_same_grid_in_another_order_is_named(tiny_spec):
    spec = tiny_spec()
    flipped = tiny_spec()
    flipped.lat = spec.lat[::-1].copy()
    with pytest.raises(CheckpointError, match="same grid in another lat/lon order"):
        check_same_data(spec, flipped)
    check_same_data(spec, tiny_spec())  # the same data passes


@pytest.mark.slow
def test_max_epochs_below_the_checkpoint_is_refused(run, capsys):
    folder, args = run
    rc = main(["fit", *args, "--ckpt_path", "last", "--trainer.max_epochs", "1"])
    assert rc == 2
    assert "--trainer.max_epochs 1 is below the" in one_line_error(capsys)


@pytest.mark.parametrize("command", ["fit", "test"])
def test_missing_checkpoint_file_is_one_line_and_leaves_nothing(tmp_path, capsys, command):
    runs = tmp_path / "runs"
    rc = main([command, "--runs_dir", str(runs), "--ckpt_path", str(tmp_path / "no.ckpt")])
    assert rc == 2
    assert f"checkpoint {tmp_path / 'no.ckpt'} does not exist" in one_line_error(capsys)
    assert not runs.exists()


@pytest.mark.slow
@pytest.mark.parametrize("where", ["file", "proc"])
def test_unusable_data_root_is_one_line_and_leaves_nothing(tmp_path, capsys, where):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    root = blocker / "data" if where == "file" else Path("/proc/svqcast-data")
    (tmp_path / "tiny.yaml").write_text(TINY_YAML)
    args = ["fit", "--config", str(tmp_path / "tiny.yaml"), "--data.root", str(root)]
    assert main([*args, "--runs_dir", str(tmp_path / "runs"), "--name", "x"]) == 2
    assert f"data at {root}" in one_line_error(capsys)
    assert not (tmp_path / "runs" / "x").exists()


# ----------------------------------------------------------------------------- the lock

HOLD = textwrap.dedent(
    """
    import sys, time
    from svqcast.commands.runs import RunLock
    lock = RunLock(sys.argv[1], ["fit", "--name", "held"]).acquire()
    print("held", flush=True)
    time.sleep(120)
    """
)


def hold_lock(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.slow
def test_a_held_run_folder_is_refused_and_a_killed_holders_lock_taken_over(run, capsys):
    folder, args = run
    ckpt = ["--ckpt_path", str(folder / "best.ckpt")]
    holder = hold_lock(folder)
    try:
        assert main(["test", *args, *ckpt]) == 2
        line = one_line_error(capsys)
        assert f"is in use by pid {holder.pid} on" in line
        assert "(svqcast fit --name held)" in line
        assert main(["fit", *args]) == 2  # also before the "holds checkpoints" refusal
        assert f"pid {holder.pid}" in one_line_error(capsys)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    # the killed holder left its lock files and a temp file of a write it never finished
    stale = folder / ".best.ckpt.k1lled_x.tmp"
    stale.write_bytes(b"half a checkpoint")
    keep = [folder / "notes.tmp", folder / ".keep.tmp", folder / "plots.ab12cd34.tmp"]
    for path in keep:
        path.write_text("mine")
    assert main(["test", *args, *ckpt]) == 0
    err = capsys.readouterr().err
    assert f"taking over {folder} from pid {holder.pid}" in err
    assert not stale.exists() and all(p.read_text() == "mine" for p in keep)
    assert not (folder / ".svqcast.lock.json").exists()  # released at the end


def test_ddp_children_do_not_lock(tmp_path, monkeypatch):
    from svqcast.commands.fit import RunState

    lock = RunLock(tmp_path, ["fit"]).acquire()
    state = RunState()
    try:
        monkeypatch.setenv("LOCAL_RANK", "1")
        state.lock(tmp_path)  # a child: passes the parent's lock
        assert state.locks == []
        monkeypatch.setenv("LOCAL_RANK", "0")
        with pytest.raises(Exception, match=f"in use by pid {os.getpid()}"):
            state.lock(tmp_path)
    finally:
        lock.release()


def test_sweep_removes_only_temp_files_of_atomic_writes(tmp_path):
    (tmp_path / "plots").mkdir()
    stale = []
    for target in (tmp_path / "best.ckpt", tmp_path / "plots" / "panel.png"):
        with pytest.raises(Killed), atomic_path(target) as tmp:
            stale.append(tmp)
            raise Killed  # atomic_path removes its temp file; SIGKILL would not:
    for path in stale:
        path.write_bytes(b"half")
    others = ["notes.tmp", ".keep.tmp", "x.a1b2c3d4.tmp", ".svqcast.lock", "best.ckpt"]
    for name in others:
        (tmp_path / name).write_text("mine")
    assert sorted(sweep_temp_files(tmp_path)) == sorted(stale)
    assert all((tmp_path / n).read_text() == "mine" for n in others)
    assert not any(p.exists() for p in stale)


# ----------------------------------------------------------------------------- grid order

ARRAYS_YAML = """
model: {hid_S: 8, hid_T: 16, N_S: 2, N_T: 2, translator: convmixer, lr: 0.005,
        scheduler: none, plots: false}
data:
  dataset: arrays
  batch_size: 4
  options: {path: base.nc, in_len: 4, out_len: 4, stride: 2}
trainer: {max_epochs: 1, enable_progress_bar: false, enable_model_summary: false}
"""


@pytest.mark.slow
def test_the_same_grid_in_another_order_is_reordered_to_the_checkpoint(tmp_path, capsys):
    """A checkpoint trained on a south-first 0..360 grid, tested on the same field stored
    north-first on -180..180: the data is reordered to the checkpoint's grid and scores
    the same; another grid is refused naming the first differing latitude."""
    import json

    import layouts

    base = layouts.base_field(T=96)
    layouts.to_nc(base, tmp_path / "base.nc")
    layouts.to_nc(layouts.lon_180(layouts.descending_lat(base)), tmp_path / "flipped.nc")
    layouts.to_nc(layouts.other_grid(base), tmp_path / "other.nc")
    (tmp_path / "arrays.yaml").write_text(ARRAYS_YAML)
    args = ["--config", str(tmp_path / "arrays.yaml"), "--data.root", str(tmp_path)]
    args += ["--runs_dir", str(tmp_path / "runs"), "--name", "a"]
    assert main(["fit", *args]) == 0
    ckpt = ["--ckpt_path", str(tmp_path / "runs" / "a" / "best.ckpt")]
    report = tmp_path / "runs" / "a" / "test_metrics.json"
    assert main(["test", *args, *ckpt]) == 0
    expected = json.loads(report.read_text())["rows"]["simvp"]
    capsys.readouterr()
    assert main(["test", *args, *ckpt, "--data.options.path", "flipped.nc"]) == 0
    assert "reordered to the checkpoint's" in capsys.readouterr().err
    got = json.loads(report.read_text())["rows"]["simvp"]
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key
    assert main(["test", *args, *ckpt, "--data.options.path", "other.nc"]) == 2
    assert "lat[0]" in one_line_error(capsys)


@pytest.mark.slow
def test_data_in_convertible_units_is_converted_to_the_checkpoints(tmp_path, capsys):
    """A checkpoint trained in K, tested on the same field in degC: converted (the
    normalised windows are the same), the same scores, reported in K; data in m s-1 (no
    conversion to K) is refused naming both units."""
    import json

    import layouts

    base = layouts.base_field(T=96)
    layouts.to_nc(base, tmp_path / "base.nc")
    layouts.to_nc(layouts.deg_c(base), tmp_path / "celsius.nc")
    layouts.to_nc(layouts.other_units(base), tmp_path / "wind.nc")
    (tmp_path / "arrays.yaml").write_text(ARRAYS_YAML)
    args = ["--config", str(tmp_path / "arrays.yaml"), "--data.root", str(tmp_path)]
    args += ["--runs_dir", str(tmp_path / "runs"), "--name", "u"]
    assert main(["fit", *args, "--test_after_fit", "false"]) == 0
    ckpt = ["--ckpt_path", str(tmp_path / "runs" / "u" / "best.ckpt")]
    report = tmp_path / "runs" / "u" / "test_metrics.json"
    assert main(["test", *args, *ckpt]) == 0
    expected = json.loads(report.read_text())["rows"]["simvp"]
    capsys.readouterr()
    assert main(["test", *args, *ckpt, "--data.options.path", "celsius.nc"]) == 0
    err = capsys.readouterr().err
    assert "degC" in err and "converted to the checkpoint's K" in err
    got = json.loads(report.read_text())["rows"]["simvp"]
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == pytest.approx(expected[key], rel=1e-4, abs=1e-4), key
    assert main(["test", *args, *ckpt, "--data.options.path", "wind.nc"]) == 2
    line = one_line_error(capsys)
    assert "units" in line and "'K'" in line and "'m s-1'" in line


def test_convertible_units_pass_the_identity_check_only_with_converted_statistics(tiny_spec):
    from svqcast.data.spec import Channel, Normalizer

    kelvin = tiny_spec()  # t2m in K, mean 280, std 5

    def other(units: str, mean: float) -> object:
        spec = tiny_spec()
        spec.channels = (Channel("t2m", units),)
        spec.normalizer = Normalizer(np.array([mean]), np.array([5.0]))
        return spec

    check_same_data(kelvin, other("degC", 280.0 - 273.15))  # the same data in degC
    with pytest.raises(CheckpointError, match="normalisation mean.*after converting degC to K"):
        check_same_data(kelvin, other("degC", 281.0 - 273.15))  # other data
    with pytest.raises(CheckpointError, match=r"units: \['K'\] vs \['m s-1'\]"):
        check_same_data(kelvin, other("m s-1", 280.0))


# ----------------------------------------------------------------------------- a real kill


class SigkillAt(L.Callback):
    """SIGKILLs its own process after optimiser step ``step`` (before that step's
    checkpoint: Lightning runs checkpoint callbacks last)."""

    def __init__(self, step: int = 5) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.slow
def test_sigkilled_fit_resumes_to_the_same_weights_and_rows(tmp_path, capsys):
    (tmp_path / "tiny.yaml").write_text(TINY_YAML)
    args = ["fit", "--config", str(tmp_path / "tiny.yaml"), "--data.root", str(tmp_path)]
    args += ["--data.batch_size", "4", "--checkpoint_every_n_steps", "1"]
    args += ["--test_after_fit", "false", "--runs_dir", str(tmp_path / "runs")]
    assert main([*args, "--name", "ref"]) == 0
    # bit-exactness needs the same thread count as this process (tests use 1)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    env["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    kill = ["--trainer.callbacks+=test_fit.SigkillAt", "--trainer.callbacks.step=5"]
    cmd = [sys.executable, "-m", "svqcast.cli", *args, "--name", "k", *kill]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    runs = tmp_path / "runs"
    assert torch.load(runs / "k" / "last.ckpt", weights_only=False)["global_step"] == 4
    assert (runs / "k" / ".svqcast.lock.json").is_file()  # the dead holder's record
    mid = tmp_path / "mid.ckpt"  # saved in epoch 2 (index 1), none of it completed
    mid.write_bytes((runs / "k" / "last.ckpt").read_bytes())
    capsys.readouterr()
    assert main([*args, "--name", "k", "--ckpt_path", "last"]) == 0
    assert f"taking over {runs / 'k'} from pid {proc.pid}" in capsys.readouterr().err
    ref = torch.load(runs / "ref" / "last.ckpt", weights_only=False)
    got = torch.load(runs / "k" / "last.ckpt", weights_only=False)
    assert got["global_step"] == ref["global_step"] == 6
    assert got["epoch"] == ref["epoch"] == 1
    for key, value in ref["state_dict"].items():
        assert torch.equal(got["state_dict"][key], value), key
    assert csv_rows(runs / "k" / "metrics.csv") == csv_rows(runs / "ref" / "metrics.csv")
    # max_epochs against the epochs a checkpoint has completed, exactly
    assert main([*args, "--name", "k", "--ckpt_path", "last"]) == 0  # done: nothing to train
    assert torch.load(runs / "k" / "last.ckpt", weights_only=False)["global_step"] == 6
    assert main([*args, "--name", "k", "--ckpt_path", "last", "--trainer.max_epochs", "1"]) == 2
    line = one_line_error(capsys)
    assert "--trainer.max_epochs 1 is below the 2 epochs checkpoint" in line
    assert "pass --trainer.max_epochs 3 or more" in line
    rc = main([*args, "--name", "k2", "--ckpt_path", str(mid), "--trainer.max_epochs", "1"])
    assert rc == 2
    line = one_line_error(capsys)
    assert "in the middle of epoch 2" in line and "pass --trainer.max_epochs 2 or more" in line
    assert not (runs / "k2").exists()
