"""Atomic file writes and writability checks: the one place that writes files safely.

Every file svqcast writes (checkpoints, reports, plots, forecasts, benchmark records) goes
to a temporary name in the destination folder and is moved into place with ``os.replace``,
so a reader, or a run resumed after a crash, sees either the old file or the complete new
one, never a half-written file. Temporary names start with ``.<name>.`` and end with
``.tmp``, so a sweep can find what a killed process left behind.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from svqcast.errors import ConfigError

TMP_SUFFIX = ".tmp"
# what atomic_path names its temporary files: "." + name + "." + mkstemp's 8 random
# characters + ".tmp" (tempfile draws them from lowercase letters, digits and "_")
TMP_PATTERN = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = TMP_SUFFIX) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    For writers that want a file name (``xarray.to_netcdf``, ``matplotlib.savefig``). On any
    error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_with(
    path: str | os.PathLike, write: Callable[[object], None], mode: str = "wb", fsync: bool = False
) -> Path:
    """Call ``write(file)`` on a temporary file opened with ``mode``, then move it to ``path``.

    ``fsync=True`` flushes the data to disk before the move (checkpoints).
    """
    path = Path(path)
    encoding = None if "b" in mode else "utf-8"
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding) as f:
        write(f)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_with(path, lambda f: f.write(text), mode="w")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write_with(path, lambda f: f.write(data), mode="wb")


def ensure_writable(folder: str | os.PathLike) -> Path:
    """Create the run folder ``folder`` (and parents) and prove it is writable, else a
    one-line ConfigError."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(
            f"cannot write to the run folder {folder}: {exc.strerror or exc}; "
            "pass a writable --runs_dir or fix its permissions"
        ) from None
    return folder


def sweep_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that killed :func:`atomic_path` writers left under
    ``folder`` (only names of that pattern, ``.<name>.<8 random>.tmp``; nothing else is
    touched). Call it only while no other process writes there (the run lock). Returns
    the removed paths."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for path in sorted(folder.rglob(".*.tmp")):
        if TMP_PATTERN.match(path.name) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def atomic_fill(root: str | os.PathLike, make: Callable[[Path], Path]) -> Path:
    """Populate ``root`` atomically entry by entry: ``make(tmp)`` writes into a fresh
    temporary folder beside ``root``'s entries and returns what it made there; each top-level
    entry then replaces the same entry under ``root`` by rename. On any failure the temporary
    folder is removed and ``root`` is left as it was. Returns ``make``'s result under ``root``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".fill-", dir=root))
    try:
        made = Path(make(tmp))
        for entry in sorted(tmp.iterdir()):
            target = root / entry.name
            old = None
            if target.exists():
                old = root / f".old-{entry.name}-{os.getpid()}"
                os.replace(target, old)
            os.replace(entry, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
        return root / made.relative_to(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
