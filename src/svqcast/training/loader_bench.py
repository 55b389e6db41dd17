"""How fast the train DataLoader of a dataset serves windows, beside a small model's step.

:func:`measure` loads a dataset as ``svqcast fit`` does (:class:`ForecastDataModule`),
times ``batches`` batches of its shuffled train DataLoader after one warm-up batch
(windows/s), then times a small SimVP's training step (forward, L1 loss, backward, Adam) on
the first of those batches, and reads the peak resident memory of this process after the
load, after the loader's batches and after the model steps (``ru_maxrss``), and of the
DataLoader's workers (their VmHWM, shared pages they touched included). ``svqcast data
bench NAME`` and ``benchmarks/bench_loader.py`` (which runs each measurement in a fresh
process) print it with :func:`table`.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

#: The small model of the step rate: SimVP (IncepU) of these sizes.
MODEL = {"hid_S": 16, "hid_T": 64, "N_S": 2, "N_T": 2}


def peak_mib() -> float:
    """Peak resident memory of this process so far, MiB (``ru_maxrss``, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def workers_peak_mib() -> float:
    """The largest VmHWM of this process's live children (the persistent DataLoader
    workers), MiB; 0 without children or without /proc."""
    peaks = [0.0]
    try:
        for task in Path("/proc/self/task").iterdir():
            for pid in (task / "children").read_text().split():
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks.append(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return max(peaks)


def measure(
    dataset: str,
    root: str | Path,
    options: dict[str, Any] | None = None,
    *,
    num_workers: int = 0,
    batch_size: int = 16,
    batches: int = 40,
    model_steps: int = 5,
    threads: int = 1,
) -> dict[str, Any]:
    """One measurement (module docstring) as a dict of numbers."""
    import torch

    from svqcast.data.datamodule import ForecastDataModule
    from svqcast.models import SimVP

    torch.set_num_threads(int(threads))
    start = time.perf_counter()
    dm = ForecastDataModule(dataset, root=str(root), batch_size=batch_size,
                            num_workers=num_workers, options=dict(options or {}))  # fmt: skip
    spec = dm.spec
    load_s, load_mib = time.perf_counter() - start, peak_mib()
    loader = dm.train_dataloader()

    def epochs():  # a short split is read again (a new epoch)
        while True:
            yield from loader

    it = epochs()
    kept = [next(it)]  # warm-up (workers start); kept for the model steps
    windows = 0
    start = time.perf_counter()
    for _ in range(int(batches)):
        batch = next(it)
        windows += len(batch[0])
        if len(kept) <= model_steps:
            kept.append(batch)
    loader_s = time.perf_counter() - start
    loader_mib, worker_mib = peak_mib(), workers_peak_mib()
    torch.manual_seed(0)
    model = SimVP(tuple(spec.in_shape), out_len=spec.out_len, **MODEL)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for i, (x, y) in enumerate(kept):
        if i == 1:
            start = time.perf_counter()  # the first step warms up
        loss = torch.nn.functional.l1_loss(model(x).prediction, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model_s = time.perf_counter() - start
    return {
        "lazy": bool(spec.extra.get("lazy", False)),
        "workers": int(num_workers),
        "train_windows": len(dm.splits.train),
        "load_s": load_s,
        "load_peak_mib": load_mib,
        "peak_mib": loader_mib,
        "model_peak_mib": peak_mib(),
        "worker_peak_mib": worker_mib,
        "loader_wps": windows / loader_s,
        "model_wps": sum(len(b[0]) for b in kept[1:]) / model_s,
    }


def table(rows: list[dict[str, Any]], first: str = "run") -> str:
    """A Markdown table of :func:`measure` rows; ``first`` names the column of each row's
    ``label`` (e.g. "train years")."""
    lines = [
        f"| {first} | mode | workers | train windows | load s | loader peak RSS MiB | worker "
        "peak MiB | + model step MiB | loader windows/s | model windows/s | loader / model |",
        "|" + "---|" * 11,
    ]
    for r in rows:
        workers = f"{r['worker_peak_mib']:,.0f}" if r["workers"] else "-"
        lines.append(
            f"| {r.get('label', '')} | {'lazy' if r['lazy'] else 'eager'} | {r['workers']} | "
            f"{r['train_windows']:,} | {r['load_s']:.1f} | {r['peak_mib']:,.0f} | {workers} | "
            f"{r['model_peak_mib']:,.0f} | {r['loader_wps']:,.0f} | {r['model_wps']:,.1f} | "
            f"{r['loader_wps'] / r['model_wps']:,.0f} |"
        )
    return "\n".join(lines)


def ratios(rows: list[dict[str, Any]], first: str = "run") -> str:
    """Lazy / eager ratios of the rows with the same label and workers."""
    by = {(r.get("label", ""), r["lazy"], r["workers"]): r for r in rows}
    lines = [
        f"| {first} | workers | loader peak RSS lazy / eager | loader windows/s lazy / eager |",
        "|---|---|---|---|",
    ]
    for (label, lazy, workers), r in by.items():
        eager = by.get((label, False, workers))
        if lazy and eager:
            lines.append(
                f"| {label} | {workers} | {r['peak_mib'] / eager['peak_mib']:.2f} | "
                f"{r['loader_wps'] / eager['loader_wps']:.2f} |"
            )
    return "\n".join(lines)


__all__ = ["MODEL", "measure", "peak_mib", "ratios", "table", "workers_peak_mib"]
