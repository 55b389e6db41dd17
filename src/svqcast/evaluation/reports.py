"""Reports: Markdown/CSV/JSON metric tables, a run's test report and plots, and the table of
``svqcast reproduce`` results. Every file is written atomically.

A run folder ``runs/<name>/`` holds::

    config.yaml          the resolved configuration (written by the CLI)
    best.ckpt last.ckpt  best on the VALIDATION loss, and the latest (for --ckpt_path last)
    metrics.csv          the CSV logger (train/val curves, test scalars)
    test_metrics.{json,csv,md}   model, persistence and climatology on the test set
    quantizer.json       code usage / sparsity diagnostics (quantized models)
    plots/               forecast panels, error vs lead time, SVQ weight histogram
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from svqcast.errors import ConfigError
from svqcast.evaluation import plots
from svqcast.evaluation.metrics import per_lead
from svqcast.io import atomic_write_text

REPORT_STEM = "test_metrics"
QUANTIZER_REPORT = "quantizer.json"
PLOTS_DIR = "plots"
# the headline metrics of a test report and of the demo table, in this order (absent skipped)
SUMMARY_METRICS = ("mae", "mse", "rmse", "wrmse", "acc", "ssim", "ssim_openstl", "psnr")


# ----------------------------------------------------------------------------- tables


def _float(v: Any) -> float:
    return float(v.item() if isinstance(v, torch.Tensor) else v)


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if not math.isfinite(v):
        return str(v)
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.3e}"
    return f"{v:.4g}" if abs(v) >= 1 else f"{v:.4f}"


def _columns(rows: Mapping[str, Mapping[str, Any]]) -> list[str]:
    cols: list[str] = []
    for values in rows.values():
        cols.extend(k for k in values if k not in cols)
    return cols


def format_table(rows: Mapping[str, Mapping[str, Any]], metrics: Sequence[str]) -> str:
    """Markdown table: one row per model/baseline, one column per metric ('-' if missing)."""
    if not metrics:
        raise ConfigError("format_table needs at least one metric name")
    lines = [
        "| model | " + " | ".join(metrics) + " |",
        "|---|" + "---:|" * len(metrics),
    ]
    for name, values in rows.items():
        cells = [_fmt(_float(values[m])) if m in values else "-" for m in metrics]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(
    rows: Mapping[str, Mapping[str, Any]],
    path_stem: str | os.PathLike,
    metrics: Sequence[str] | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.csv`` (every key) and ``<stem>.md`` atomically.

    The Markdown table shows ``metrics`` (default: the keys without a ``/``, i.e. no per-lead
    or per-channel breakdown); ``notes`` go below it and into the JSON. NaN becomes null in
    JSON and empty in CSV. Returns the three paths.
    """
    if not rows:
        raise ConfigError("write_report needs at least one row (model or baseline)")
    stem = Path(path_stem)
    table = {name: {k: _float(v) for k, v in values.items()} for name, values in rows.items()}
    cols = _columns(table)
    md_cols = list(metrics) if metrics is not None else [c for c in cols if "/" not in c]
    clean = {
        name: {k: (v if math.isfinite(v) else None) for k, v in values.items()}
        for name, values in table.items()
    }
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["model", *cols])
    for name, values in clean.items():
        writer.writerow([name, *("" if values.get(c) is None else repr(values[c]) for c in cols)])
    md = format_table(table, md_cols or cols)
    if notes:
        md += "\n" + "".join(f"- {n}\n" for n in notes)
    paths = {ext: stem.with_name(f"{stem.name}.{ext}") for ext in ("json", "csv", "md")}
    report = {"rows": clean, "notes": list(notes)}
    atomic_write_text(paths["json"], json.dumps(report, indent=2, allow_nan=False) + "\n")
    atomic_write_text(paths["csv"], buf.getvalue())
    atomic_write_text(paths["md"], md)
    return paths


# ----------------------------------------------------------------------------- test reports


def summary_columns(rows: Mapping[str, Mapping[str, float]]) -> list[str]:
    """The headline metrics present in ``rows``, in the engine's display order."""
    present = {k for values in rows.values() for k in values}
    return [m for m in SUMMARY_METRICS if m in present]


def write_test_report(
    run_dir: Path,
    rows: Mapping[str, Mapping[str, float]],
    quantizer_stats: Mapping[str, float],
    protocol: str = "standard",
    notes: Sequence[str] = (),
) -> dict[str, Path]:
    """``test_metrics.{json,csv,md}`` (all rows, all keys) and ``quantizer.json``.

    ``notes`` (the metrics' caveats) are written under the table after the protocol note.
    """
    notes = [
        f"protocol: {protocol} ("
        + (
            "checkpoint selected on the test set, as OpenSTL's published tables"
            if protocol == "openstl"
            else "checkpoint selected on a held-out validation split"
        )
        + ")",
        "persistence repeats the last input frame; climatology is the training-split mean",
        *notes,
    ]
    paths = write_report(rows, Path(run_dir) / REPORT_STEM, summary_columns(rows), notes)
    if quantizer_stats:
        path = Path(run_dir) / QUANTIZER_REPORT
        atomic_write_text(path, json.dumps(dict(quantizer_stats), indent=2) + "\n")
        paths["quantizer"] = path
    return paths


def write_test_plots(
    run_dir: Path,
    spec,
    rows: Mapping[str, Mapping[str, float]],
    first_batch: Mapping[str, Any] | None,
    weight_sample: torch.Tensor | None,
) -> list[Path]:
    """Forecast panels, error vs lead time (model vs baselines), SVQ weight histogram."""
    out = Path(run_dir) / PLOTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if first_batch is not None:
        preds = {k: v.numpy() for k, v in first_batch["preds"].items()}
        written.append(
            plots.plot_forecast_panels(
                first_batch["x"].numpy(),
                first_batch["y"].numpy(),
                preds,
                spec,
                out / "forecast_panels.png",
            )
        )
    for metric in ("mae", "rmse"):
        curves = {}
        for name, values in rows.items():
            try:
                curves[name] = per_lead(values, metric)
            except ConfigError:
                continue
        if curves:
            step = getattr(spec, "time_step_hours", None)
            written.append(
                plots.plot_error_vs_lead(curves, metric, out / f"{metric}_vs_lead.png", step)
            )
    if weight_sample is not None and weight_sample.numel() > 0:
        written.append(
            plots.plot_weight_histogram(weight_sample.numpy(), out / "svq_weight_histogram.png")
        )
    return written


# ----------------------------------------------------------------------------- results table


def append_result(results_stem: Path, entry: Mapping[str, Any]) -> dict[str, Path]:
    """Append one reproduce run to ``<stem>.json`` (a list) and rewrite ``<stem>.md``.

    ``entry`` has ``preset``, ``metrics`` (our test numbers), ``paper`` (the published
    numbers, possibly empty), ``run_dir`` and ``protocol``. Entries with the same preset
    replace the older one, so re-running a preset updates its row.
    """
    results_stem = Path(results_stem)
    json_path = results_stem.with_suffix(".json")
    entries: list[dict[str, Any]] = []
    if json_path.is_file():
        try:
            entries = json.loads(json_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"results table {json_path} is not valid JSON ({exc}); move it away"
            ) from None
    entries = [e for e in entries if e.get("preset") != entry["preset"]] + [dict(entry)]
    atomic_write_text(json_path, json.dumps(entries, indent=2) + "\n")
    md_path = results_stem.with_suffix(".md")
    atomic_write_text(md_path, results_markdown(entries))
    return {"json": json_path, "md": md_path}


def _fmt_paper(v: Any) -> str:
    return "-" if v is None else f"{float(v):.4g}"


def results_markdown(entries: list[Mapping[str, Any]]) -> str:
    """A Markdown table: each preset with our MSE/MAE/RMSE and the paper's beside them."""
    cols = ("mse", "mae", "rmse")
    head = ["preset", "protocol"]
    for c in cols:
        head += [c, f"paper {c}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in entries:
        ours, paper = e.get("metrics", {}), e.get("paper", {}) or {}
        cells = [str(e["preset"]), str(e.get("protocol", "standard"))]
        for c in cols:
            cells += [_fmt_paper(ours.get(c)), _fmt_paper(paper.get(c))]
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        "\nPaper numbers: de-normalised test metrics published in the paper (OpenSTL "
        "protocol: checkpoint chosen on the test set); ours follow each row's protocol.\n"
    )
    return "\n".join(lines) + "\n" + note
