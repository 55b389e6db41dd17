"""Run one task of the accuracy benchmark and keep its record.

A :class:`~.task.Task` is one training run (a variant, a seed, a budget). :func:`execute`
runs it in a fresh Python process (``run.py --worker TASK_FILE``, whose entry is
:func:`worker`) so that its peak resident memory (``ru_maxrss``) is its own; the record is a
JSON file under ``OUT/results/<budget>/<dataset>-<variant>-seed<seed>.json``, and
:func:`load_result` finds it again, so an interrupted benchmark continues where it stopped.
:func:`estimate_seconds` says how long the pending runs should take.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import svqcast
from svqcast.io import atomic_write_text

from .task import Task
from .variants import BUDGETS, Budget, variants

RUN_SCRIPT = Path(__file__).resolve().with_name("run.py")  # the worker's entry (--worker)


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return float(value)


def worker(task_file: str) -> int:
    """Entry point of the per-run subprocess: read the task, run it, write its JSON."""
    task = Task(**json.loads(Path(task_file).read_text()))
    from .train import run_task  # torch and Lightning load only when a run starts

    record = run_task(task)
    write_json(task.result_path(), record)
    return 0


def execute(task: Task, isolate: bool = True) -> dict[str, Any]:
    """Run ``task`` (in a fresh Python process when ``isolate``) and return its record."""
    path = task.result_path()
    if not isolate:
        from .train import run_task

        record = run_task(task)
        # a shared process: its peak memory is not this run's own
        record["peak_rss_mib"] = record["train_rss_mib"] = record["final_rss_mib"] = None
        write_json(path, record)
        return record
    path.parent.mkdir(parents=True, exist_ok=True)
    task_file = path.with_suffix(".task.json")
    task_file.write_text(json.dumps(asdict(task)))
    env = dict(os.environ)
    # the worker imports the same svqcast as this process, installed or not
    src = str(Path(svqcast.__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("PYTHONWARNINGS", "ignore")
    proc = subprocess.run(
        [sys.executable, str(RUN_SCRIPT), "--worker", str(task_file)],
        env=env,
        capture_output=True,
        text=True,
    )
    task_file.unlink(missing_ok=True)
    if proc.returncode != 0 or not path.is_file():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
        raise RuntimeError(f"run {task.key} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(path.read_text())


def load_result(task: Task) -> dict[str, Any] | None:
    """The saved record of ``task`` if it exists and was made with the same budget."""
    path = task.result_path()
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("fingerprint") != BUDGETS[task.budget].fingerprint():
        return None
    return record


def saved_records(out_dir: Path, budget: str) -> list[dict[str, Any]]:
    """Every readable result record of ``budget`` under ``out_dir`` (for time estimates)."""
    out = []
    for path in sorted((out_dir / "results" / budget).glob("*.json")):
        if path.name.endswith(".task.json"):
            continue
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return out


# Seconds per training step at 4,096 quantizer tokens per step (the full weather budget),
# measured with ONE torch thread on this project's 2-core machine while other jobs kept it
# busy; FREE_MACHINE_SPEEDUP (an assumption, not a measurement) converts them to two idle
# cores with two threads. Only used for the estimate printed before a group, scaled by
# tokens per step; finished runs of a variant replace it with their own median step time.
STEP_SECONDS = {
    "none": 0.114,
    "svq": 0.133,
    "mlp": 0.102,
    "fsq": 0.099,
    "vq": 0.155,
    "mhvq": 0.93,
    "rvq": 0.61,
    "grvq": 1.15,
    "lfq": 2.58,
    "svq_raw": 0.58,
}
FREE_MACHINE_SPEEDUP = 2.5
REFERENCE_TOKENS = 4096
GRIDS = {"synthetic_weather": (32, 64), "moving_digits": (64, 64)}  # (H, W) of a frame
RUN_OVERHEAD_SECONDS = 8.0  # process start-up, data loading, the test epoch


def tokens_per_step(budget: Budget, dataset_key: str) -> int:
    """Latent tokens reaching the quantizer per training step (batch x frames x H' x W')."""
    choice = budget.data[dataset_key]
    in_len = int(choice.options.get("in_len", 4))
    shape = GRIDS[choice.dataset]
    factor = 2 ** (budget.N_S // 2)
    return budget.batch_size * in_len * (shape[0] // factor) * (shape[1] // factor)


def estimate_seconds(tasks: Sequence[Task], done: Iterable[dict[str, Any]]) -> float:
    """Time the pending ``tasks`` should take: steps x the median step time of finished runs
    of the same variant, else :data:`STEP_SECONDS` scaled by tokens per step; plus
    :data:`RUN_OVERHEAD_SECONDS` per run."""
    seen: dict[tuple[str, str], list[float]] = {}
    for rec in done:
        step = rec.get("step_seconds")
        if step is not None and math.isfinite(step):
            seen.setdefault((rec.get("dataset", ""), rec.get("variant", "")), []).append(step)
    total = 0.0
    for task in tasks:
        budget = BUDGETS[task.budget]
        dataset = budget.data[task.dataset_key].dataset
        measured = seen.get((dataset, task.variant))
        if measured:
            step = statistics.median(measured)
        else:
            quantizer = variants()[task.variant].quantizer
            scale = tokens_per_step(budget, task.dataset_key) / REFERENCE_TOKENS
            guess = STEP_SECONDS.get(quantizer, STEP_SECONDS["none"]) / FREE_MACHINE_SPEEDUP
            step = guess * max(scale, 0.05)
        total += budget.steps * step + RUN_OVERHEAD_SECONDS
    return total
