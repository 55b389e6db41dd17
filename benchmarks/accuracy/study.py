"""The accuracy benchmark's driver: run (or resume) groups of runs, then write the tables.

Every variant (no quantizer, SVQ learnable / frozen, SVQ-raw, the library VQ baselines at the
paper's presets, a codebook-free bottleneck MLP, ...) is trained with the engine for the SAME
fixed number of optimizer steps on the embedded synthetic data, with several seeds, then
tested on the test split (:mod:`.train`). Each run happens in its own Python process and
leaves a JSON record (:mod:`.runner`); a run whose record exists is skipped, so an
interrupted benchmark continues where it stopped. :func:`run_benchmark` is what
``python benchmarks/accuracy/run.py`` calls.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from svqcast.errors import ConfigError, SvqcastError

from .runner import Task, estimate_seconds, execute, load_result, saved_records
from .tables import decision_section, group_section, write_report
from .variants import BUDGETS, GROUPS, Budget, DataChoice, describe_budget

RUN_COMMAND = "python benchmarks/accuracy/run.py"  # how the docs and messages name the benchmark


def plan(group_name: str, quick: bool, only: Sequence[str] | None = None) -> list[str]:
    """The rows a group runs: all of them, or its quick subset; ``only`` keeps those named."""
    group = GROUPS[group_name]
    rows = list(group.quick_rows if quick else group.rows)
    return rows if only is None else [row for row in rows if row in only]


def _fmt_duration(seconds: float) -> str:
    minutes, sec = divmod(int(round(seconds)), 60)
    return f"{minutes} min {sec:02d} s" if minutes else f"{sec} s"


def run_group(
    group_name: str,
    budget: Budget,
    *,
    out_dir: Path,
    data_root: Path,
    quick: bool,
    seeds: Sequence[int],
    threads: int | None,
    isolate: bool,
    only: Sequence[str] | None = None,
    report: bool = False,
    log=print,
) -> dict[str, list[dict[str, Any]]]:
    """Run (or resume) every run of one group (or its rows in ``only``); return records by
    row name. With ``report`` nothing is trained: the saved records alone are returned."""
    group = GROUPS[group_name]
    rows = plan(group_name, quick, only)
    tasks = [
        Task(
            variant=row,
            seed=seed,
            dataset_key=group.dataset,
            budget=budget.name,
            data_root=str(data_root),
            out_dir=str(out_dir),
            threads=threads,
        )
        for row in rows
        for seed in seeds
    ]
    records: dict[str, list[dict[str, Any]]] = {row: [] for row in rows}
    pending = []
    for task in tasks:
        saved = load_result(task)
        if saved is not None:
            records[task.variant].append(saved)
        else:
            pending.append(task)
    head = (
        f"== group {group_name}: {len(rows)} rows x {len(seeds)} seed(s) = {len(tasks)} runs, "
        f"{len(tasks) - len(pending)} already done"
    )
    if report:
        log(head)
        if pending:
            log(f"   not run (--report): {', '.join(task.key for task in pending)}")
        return records
    done = saved_records(out_dir, budget.name)
    log(f"{head}; estimated {_fmt_duration(estimate_seconds(pending, done))} for the rest")
    _prepare_data(budget.data[group.dataset], data_root)
    failures = []
    for i, task in enumerate(pending, 1):
        t0 = time.perf_counter()
        try:
            record = execute(task, isolate=isolate)
        except (RuntimeError, SvqcastError) as exc:
            failures.append(task.key)
            log(f"[{group_name} {i}/{len(pending)}] {task.key}: FAILED {exc}")
            continue
        records[task.variant].append(record)
        log(_progress_line(group_name, i, len(pending), task, record, time.perf_counter() - t0))
    if failures:
        log(f"!! {len(failures)} run(s) failed and are left out: {', '.join(failures)}")
    return records


def _progress_line(group: str, i: int, n: int, task: Task, rec: dict, wall: float) -> str:
    head = f"[{group} {i}/{n}] {task.key}: "
    if rec.get("status") != "ok":
        return head + f"{rec.get('status')} after {rec.get('steps')} steps ({wall:.0f} s)"
    metrics = rec["metrics"]
    shown = ", ".join(f"{k} {metrics[k]:.4g}" for k in ("mae", "rmse", "wrmse") if k in metrics)
    return head + f"{shown}; step {1000 * rec['step_seconds']:.0f} ms; {wall:.0f} s"


def _prepare_data(choice: DataChoice, data_root: Path) -> None:
    """Generate the embedded dataset once, before the runs (each run would otherwise race)."""
    from svqcast.data.datamodule import load_splits

    load_splits(choice.dataset, data_root, "standard", dict(choice.options))


def run_benchmark(
    groups: Sequence[str],
    *,
    quick: bool = False,
    out_dir: str | Path = "runs/accuracy",
    data_root: str | Path = "data",
    seeds: Sequence[int] | None = None,
    threads: int | None = None,
    isolate: bool = True,
    rows: Sequence[str] | None = None,
    report: bool = False,
    report_name: str = "accuracy",
    log=print,
) -> Path:
    """Run the groups (only their ``rows``, if given), write ``<report_name>.json``
    and ``<report_name>.md`` (default ``accuracy``) into ``out_dir``; return the Markdown path.
    Finished runs are reused (resume); with ``report`` nothing is trained and the tables
    show the saved runs."""
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ConfigError(
            f"unknown benchmark group(s) {', '.join(unknown)}; choose from "
            f"{', '.join(GROUPS)} or all"
        )
    if rows is not None:
        known = {row for name in groups for row in GROUPS[name].rows}
        missing = [row for row in rows if row not in known]
        if missing or not rows:
            raise ConfigError(
                f"--rows {','.join(missing) or '(empty)'}: not a row of group(s) "
                f"{', '.join(groups)}; see the rows with {RUN_COMMAND} --list"
            )
    budgets = {name: BUDGETS["quick" if quick else GROUPS[name].budget] for name in groups}
    seeds = tuple(BUDGETS["quick" if quick else "full"].seeds if seeds is None else seeds)
    if not seeds:
        raise ConfigError("--seeds needs at least one seed")
    out_dir, data_root = Path(out_dir), Path(data_root)
    if quick and threads is None:
        threads = 1  # tiny tensors: a second thread only adds synchronisation (and load)
    for budget in {b.name: b for b in budgets.values()}.values():  # once each, in group order
        log(describe_budget(budget))
    sections, raw = [], {}
    for name in groups:
        records = run_group(
            name,
            budgets[name],
            out_dir=out_dir,
            data_root=data_root,
            quick=quick,
            seeds=seeds,
            threads=threads,
            isolate=isolate,
            only=rows,
            report=report,
            log=log,
        )
        raw[name] = records
        sections.append(group_section(name, budgets[name], quick, records))
        log("\n" + sections[-1])
    if {"param", "param_long"} <= set(raw) and not quick:
        from .variants import PARAMETRISATIONS

        candidates = [f"svq_p_{n}" for n in PARAMETRISATIONS]
        sections.append(decision_section(raw["param"], raw["param_long"], candidates))
        log("\n" + sections[-1])
    return write_report(
        out_dir,
        quick=quick,
        budgets=budgets,
        seeds=seeds,
        threads=threads,
        sections=sections,
        raw=raw,
        name=report_name,
        log=log,
    )
