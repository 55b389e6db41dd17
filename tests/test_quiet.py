"""A command that fails on the user's input prints ONE line on stderr: Lightning's start-up
log records and warnings are held until a run starts, and dropped if it never does."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings

import layouts as L
import pytest

from svqcast.commands.quiet import held_lightning_logs, release_held


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _with_handler():
    logger = logging.getLogger("lightning.pytorch")
    keep = Keep()
    logger.addHandler(keep)
    return logger, keep


def test_held_records_and_warnings_are_emitted_when_a_run_starts():
    logger, keep = _with_handler()
    shown: list[str] = []
    original = warnings.showwarning
    warnings.showwarning = lambda message, *args, **kwargs: shown.append(str(message))
    try:
        with held_lightning_logs():
            logger.warning("GPU available: False")
            logger.warning("💡 Tip: an advertisement")
            with warnings.catch_warnings():
                warnings.simplefilter("always")
                warnings.warn("max_epochs was not set", UserWarning, stacklevel=1)
            assert keep.messages == [] and shown == []  # held
            release_held()
            assert keep.messages == ["GPU available: False"]  # the advert is dropped
            assert shown == ["max_epochs was not set"]
            logger.warning("after the start")
            assert keep.messages[-1] == "after the start"  # no longer held
    finally:
        warnings.showwarning = original
        logger.removeHandler(keep)


def test_held_records_are_dropped_when_no_run_starts():
    logger, keep = _with_handler()
    try:
        with held_lightning_logs():
            logger.warning("Seed set to 0")
        assert keep.messages == []
        logger.warning("later")
        assert keep.messages == ["later"]  # the handlers are back
    finally:
        logger.removeHandler(keep)


@pytest.mark.slow  # a fresh `svqcast fit` process: its whole stderr is the claim
def test_fit_on_a_broken_file_prints_exactly_one_line(tmp_path):
    bad = L.empty_npy(tmp_path / "empty.npy")
    args = [
        "fit",
        "--data.dataset=arrays",
        f"--data.root={tmp_path}",
        f"--data.options={{path: {bad.name}, in_len: 4, out_len: 4}}",
        "--model.hid_S=8",
        "--model.hid_T=16",
        f"--runs_dir={tmp_path / 'runs'}",
    ]  # no --trainer.max_epochs: Lightning warns about it at start-up
    code = "import sys; from svqcast.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [f"svqcast: error: {bad} is empty (0 bytes); write or download it again"]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
