"""What ``svqcast data list | synth | check | bench`` do; :mod:`svqcast.cli` parses the
arguments and calls :func:`run`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from svqcast.data import DATASETS, dataset_module
from svqcast.errors import ConfigError, SvqcastError, one_line
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


def check(name: str, root: str | Path, options: dict[str, Any] | None = None) -> list[str]:
    """Problems with ``name`` under ``root``: its files first, then its VALUES, loaded with
    the ``options`` fit would use (text values parsed as on the command line). Empty when
    ready to load.

    Datasets with a ``check_values`` (``arrays``, ``weather_*``) read every file through
    the reader and list non-finite values, times not sorted / unique / on the step and
    grids that are not monotonic. Other file datasets are loaded and every split checked
    for non-finite values. Embedded datasets (``synth``) are made by svqcast: files only.
    """
    from svqcast.data.datamodule import _from_text

    module = dataset_module(name)
    options = {key: _from_text(value) for key, value in (options or {}).items()}
    values = getattr(module, "check_values", None)
    if values is None and hasattr(module, "synth") and options:
        raise ConfigError(f"{name} is made by svqcast; data check takes no --option for it")
    if values is None or not options:
        problems = list(module.check(name, root))
        if problems:
            return problems
    if values is not None:
        return list(values(name, root, **options))
    if hasattr(module, "synth"):
        return []
    return _loaded_values(name, root, options)


def _loaded_values(name: str, root: str | Path, options: dict[str, Any]) -> list[str]:
    """Load ``name`` as fit does and list each split's non-finite values."""
    import torch

    from svqcast.data.datamodule import load_splits

    try:
        splits = load_splits(name, root, options=options)
    except SvqcastError as exc:
        return [one_line(exc)]
    problems = []
    for split in ("train", "val", "test"):
        ds = getattr(splits, split)
        arrays = [getattr(ds, a, None) for a in ("data", "inputs", "targets")]
        arrays = [a for a in arrays if isinstance(a, torch.Tensor) and a.is_floating_point()]
        if not arrays:  # no array behind the windows: look at every item
            arrays = [torch.cat([x.flatten(), y.flatten()]) for x, y in ds]
        bad = sum(int((~torch.isfinite(a)).sum()) for a in arrays)
        if bad:
            problems.append(f"{name} {split} split: {bad} non-finite values")
    return problems


def run(args: Any) -> int:
    """``svqcast data list | synth | check | bench`` with parsed arguments; the exit status."""
    if args.action == "list":
        print(list_datasets(args.root))
        return 0
    if args.action == "synth":
        print(f"wrote {synth(args.name, args.root, seed=args.seed)}")
        return 0
    options = {}
    for text in args.option:
        key, eq, value = text.partition("=")
        if not eq or not key:
            raise ConfigError(f"svqcast data {args.action}: --option takes KEY=VALUE, got {text!r}")
        options[key.strip()] = value
    if args.action == "bench":
        from svqcast.commands import data_bench

        sizes = {k: getattr(args, k) for k in ("translator", "hid_S", "hid_T", "N_S", "N_T")}
        model = data_bench.model_options(args.config, quantizer=args.quantizer, **sizes)
        rows = []
        for workers in args.workers:
            row = data_bench.measure(
                args.name, args.root, options, num_workers=workers, batch_size=args.batch_size,
                batches=args.batches, model_steps=args.model_steps, threads=args.threads,
                model=model,
            )  # fmt: skip
            rows.append({**row, "label": args.name})
        print(data_bench.table(rows, "dataset"))
        print(f"model measured: {rows[-1]['model']}")
        print("(peak memory of this one process across the rows; benchmarks/bench_loader.py "
              "measures each in a fresh process)")  # fmt: skip
        return 0
    problems = check(args.name, args.root, options)
    if problems:
        for line in problems:
            print(f"- {line}")
        return 1
    print(f"{args.name}: ok")
    return 0


__all__ = ["check", "embedded_datasets", "list_datasets", "run", "synth"]
