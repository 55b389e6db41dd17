"""What ``svqcast data list | synth | check`` do; the CLI only wires arguments to these."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from svqcast.data import DATASETS, dataset_module
from svqcast.errors import ConfigError
from svqcast.io import atomic_fill


def _present(name: str, root: str | Path) -> str:
    try:
        return "yes" if dataset_module(name).is_present(name, root) else "no"
    except ImportError:
        return "n/a"  # module not available in this build


def _field(name: str, attr: str) -> str:
    try:
        return str(getattr(dataset_module(name), attr)(name))
    except (ImportError, AttributeError):
        return "(not available)"


def list_datasets(root: str | Path) -> str:
    """A plain-text table: name, description, expected layout, present under ``root``."""
    rows = [("name", "present", "description", "expected layout under " + str(root))]
    for name in DATASETS:
        rows.append((name, _present(name, root), _field(name, "describe"), _field(name, "layout")))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = []
    for r in rows:
        lines.append(f"{r[0]:<{w0}}  {r[1]:<{w1}}  {r[2]}")
        lines.append(f"{'':<{w0}}  {'':<{w1}}    {r[3]}")
    return "\n".join(lines)


def embedded_datasets() -> list[str]:
    """Names whose module can generate its data (has ``synth``)."""
    out = []
    for name in DATASETS:
        try:
            if hasattr(dataset_module(name), "synth"):
                out.append(name)
        except ImportError:
            continue
    return out


def synth(name: str, root: str | Path, seed: int = 0, **options: Any) -> Path:
    """Generate an embedded dataset under ``root`` atomically; returns its folder.

    The module writes into a fresh temporary folder beside ``root``'s entries; each top-level
    entry it made then replaces the same entry under ``root`` by rename. On any failure the
    temporary folder is removed and ``root`` is left as it was.
    """
    module = dataset_module(name)
    if not hasattr(module, "synth"):
        raise ConfigError(
            f"{name} is not an embedded dataset; synth works for: {', '.join(embedded_datasets())}"
        )
    return atomic_fill(root, lambda tmp: module.synth(name, tmp, seed=seed, **options))


def check(name: str, root: str | Path) -> list[str]:
    """Problems with the files of ``name`` under ``root``; empty when ready to load."""
    return list(dataset_module(name).check(name, root))


__all__ = ["check", "embedded_datasets", "list_datasets", "synth"]
