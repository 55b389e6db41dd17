"""Reports: Markdown/CSV/JSON metric tables, a run's test report and plots, and the table of
``svqcast reproduce`` results. Every file is written atomically.

A run folder ``runs/<name>/`` holds::

    config.yaml          the resolved configuration (written by the CLI)
    best.ckpt last.ckpt  best on the VALIDATION loss, and the latest (for --ckpt_path last)
    metrics.csv          the fit's CSV log (train/val curves), kept across resumes
    metrics_test.csv     test scalars (metrics_validate.csv for svqcast validate)
    test_metrics.{json,csv,md}   model, persistence and climatology on the test set: the
                         headline table, the error by lead time (labelled "+6 h", "+1 d", ...),
                         per variable in physical units, the climatology's kind, the notes
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
from svqcast.evaluation.metrics import lead_name, per_lead, same_units, variable_channels
from svqcast.io import atomic_write_text

REPORT_STEM = "test_metrics"
QUANTIZER_REPORT = "quantizer.json"
PLOTS_DIR = "plots"
# the headline metrics of a test report and of the demo table, in this order (absent skipped);
# "_norm": the overall number of data whose channels have different units (normalised units);
# rmse_global: the pooled RMSE of multi-variable data, whose rmse is the mean over variables
SUMMARY_METRICS = (
    "mae", "mae_norm", "mse", "mse_norm", "rmse", "rmse_global", "rmse_norm", "wrmse",
    "wrmse_norm",
    "acc", "ssim", "ssim_openstl", "psnr",
)  # fmt: skip
CHANNEL_METRICS = ("mae", "mse", "rmse", "wrmse", "acc")  # per channel, physical units
LEAD_METRICS = ("rmse", "rmse_norm", "mse", "mse_norm")  # the first present: by lead time
NOT_RECORDED = "not recorded"


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
    extra_json: Mapping[str, Any] | None = None,
    extra_md: str = "",
) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.csv`` (every key) and ``<stem>.md`` atomically.

    The Markdown table shows ``metrics`` (default: the keys without a ``/``, i.e. no per-lead
    or per-channel breakdown); ``notes`` go below it and into the JSON, then ``extra_md``;
    ``extra_json`` adds top-level JSON keys. NaN becomes null in JSON and empty in CSV.
    Returns the three paths.
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
    if extra_md:
        md += "\n" + extra_md
    paths = {ext: stem.with_name(f"{stem.name}.{ext}") for ext in ("json", "csv", "md")}
    report = {"rows": clean, "notes": list(notes), **dict(extra_json or {})}
    atomic_write_text(paths["json"], json.dumps(report, indent=2, allow_nan=False) + "\n")
    atomic_write_text(paths["csv"], buf.getvalue())
    atomic_write_text(paths["md"], md)
    return paths


# ----------------------------------------------------------------------------- test reports


def summary_columns(rows: Mapping[str, Mapping[str, float]]) -> list[str]:
    """The headline metrics present in ``rows``, in the engine's display order."""
    present = {k for values in rows.values() for k in values}
    return [m for m in SUMMARY_METRICS if m in present]


def climatology_kind(spec: Any) -> str:
    """The one-line kind of the climatology baseline (``spec.extra["climatology"]``)."""
    extra = getattr(spec, "extra", None) or {}
    return str(extra.get("climatology") or NOT_RECORDED)


def _finite(v: Any) -> float | None:
    v = _float(v)
    return v if math.isfinite(v) else None  # JSON null, "-" in Markdown


def _squared(unit: str) -> str:
    if not unit:
        return ""
    return f"({unit})^2" if any(ch in unit for ch in " /*.") else f"{unit}^2"


def metric_unit(metric: str, unit: str) -> str:
    """The unit of a physical-unit ``metric`` of data in ``unit``: mse -> unit^2; mae, rmse,
    wrmse -> unit; "" for unitless (acc, ssim) or unknown."""
    base = metric.split("/")[0]
    if base == "mse":
        return _squared(unit)
    return unit if base in ("mae", "rmse", "rmse_global", "wrmse") else ""


def _header(metric: str, unit: str) -> str:
    return f"{metric} [{unit}]" if unit else metric


def variable_groups(spec: Any) -> dict[str, dict[str, Any]]:
    """Channels grouped by ``Channel.variable`` (the channel's name when None), in order:
    ``{variable: {"units": ..., "channels": {name: level}}}``."""
    groups: dict[str, dict[str, Any]] = {}
    for ch in spec.channels:
        key = ch.variable or ch.name
        if key in groups and groups[key]["units"] != ch.units:  # never one table, two units
            key = f"{key} in {ch.units or 'no units'}"
        groups.setdefault(key, {"units": ch.units, "channels": {}})["channels"][ch.name] = ch.level
    return groups


def per_variable(rows: Mapping[str, Mapping[str, float]], spec: Any) -> dict[str, Any]:
    """Every row's per-channel metrics (``<metric>/<channel>``), grouped by variable, in
    physical units; {} when the rows have no per-channel values (one channel, video)."""
    out: dict[str, Any] = {}
    for var, group in variable_groups(spec).items():
        channels: dict[str, Any] = {}
        for ch, level in group["channels"].items():
            found = {
                model: {m: _finite(values[f"{m}/{ch}"]) for m in CHANNEL_METRICS
                        if f"{m}/{ch}" in values}
                for model, values in rows.items()
            }  # fmt: skip
            found = {model: v for model, v in found.items() if v}
            if found:
                level = level.item() if hasattr(level, "item") else level  # numpy scalar
                channels[ch] = {"level": level, "rows": found}
        if channels:
            metrics = [m for m in CHANNEL_METRICS if any(
                m in v for c in channels.values() for v in c["rows"].values())]  # fmt: skip
            units = {m: metric_unit(m, group["units"]) for m in metrics}
            out[var] = {"units": group["units"], "metric_units": units, "channels": channels}
    return out


def _variables_markdown(variables: Mapping[str, Any]) -> str:
    parts = ["## Per variable, physical units\n"]
    for var, group in variables.items():
        metrics = list(group["metric_units"])
        head = [_header(m, u) for m, u in group["metric_units"].items()]
        parts.append(f"\n### {var}" + (f" [{group['units']}]" if group["units"] else "") + "\n\n")
        lines = ["| model | channel | " + " | ".join(head) + " |",
                 "|---|---|" + "---:|" * len(head)]  # fmt: skip
        for ch, entry in group["channels"].items():
            for model, values in entry["rows"].items():
                cells = [_fmt(values.get(m)) for m in metrics]
                lines.append(f"| {model} | {ch} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines) + "\n")
    return "".join(parts)


def _leads_markdown(
    rows: Mapping[str, Mapping[str, float]], labels: list[str], unit: str, by_variable: bool = False
) -> str:
    """The first of LEAD_METRICS present, by lead time, in columns labelled "+6 h" ...
    (``by_variable``: the rows' rmse/mse are means over variables, see the metrics)."""
    present = {k for values in rows.values() for k in values}
    for metric in LEAD_METRICS:
        if f"{metric}/{lead_name(1, len(labels))}" not in present:
            continue
        table: dict[str, dict[str, float]] = {}
        for name, values in rows.items():
            try:
                curve = per_lead(values, metric)
            except ConfigError:
                continue
            table[name] = dict(zip(labels, curve))
        if table:
            kind = "normalised units" if metric.endswith("_norm") else metric_unit(metric, unit)
            if by_variable and not metric.endswith("_norm"):
                kind = "mean over variables" + (f", {kind}" if kind else ", each in its units")
            title = f"## {metric} by lead time" + (f" [{kind}]" if kind else "")
            return f"{title}\n\n" + format_table(table, labels)
    return ""


def write_test_report(
    run_dir: Path,
    rows: Mapping[str, Mapping[str, float]],
    quantizer_stats: Mapping[str, float],
    protocol: str = "standard",
    notes: Sequence[str] = (),
    spec: Any = None,
) -> dict[str, Path]:
    """``test_metrics.{json,csv,md}`` (all rows, all keys) and ``quantizer.json``.

    ``notes`` (the metrics' caveats) are written under the table after the protocol note.
    With the data's ``spec`` (a DataSpec) the report also states the climatology's kind,
    the headline's units, the error by lead time labelled in the data's time unit and, for
    several channels, every channel's metrics in its own units grouped by variable.
    """
    units = [c.units for c in spec.channels] if spec is not None else []
    mixed = bool(units) and not same_units(units)
    unit = units[0] if units and not mixed else ""
    kind = climatology_kind(spec)
    notes = [
        f"protocol: {protocol} ("
        + (
            "checkpoint selected on the test set, as OpenSTL's published tables"
            if protocol == "openstl"
            else "checkpoint selected on a held-out validation split"
        )
        + ")",
        f"persistence repeats the last input frame; climatology: {kind}",
        *notes,
    ]
    headline: dict[str, Any] = {"metrics": summary_columns(rows)}
    by_variable = spec is not None and variable_channels(spec.channels) is not None
    if by_variable:  # the official multi-variable convention (see the metrics module)
        headline["mean_over_variables"] = [
            m for m in ("mse", "mae", "rmse") if m in headline["metrics"]
        ]
    if mixed:  # the _norm columns; mean_over_variables ones are in each variable's units
        headline.update(units="normalised" if not by_variable else "mixed", unit=None)
    elif spec is not None:
        headline.update(units="physical", unit=unit or None)
        cols = headline["metrics"]
        if unit and spec.convention == "weather" and cols:
            linear = [m for m in cols if metric_unit(m, unit) == unit]
            text = ", ".join(linear) + f" in {unit}" if linear else ""
            if "mse" in cols:
                text += (", " if text else "") + f"mse in {_squared(unit)}"
            notes.append(f"units: {text}" + ("; acc is unitless" if "acc" in cols else ""))
    extra_json: dict[str, Any] = {"climatology": kind, "headline": headline}
    extra_md = ""
    if spec is not None:
        labels = plots.lead_labels(spec)
        lead_md = _leads_markdown(rows, labels, unit, by_variable)
        extra_json.update(
            time_step=spec.time_step,
            leads={lead_name(k, len(labels)): lab for k, lab in enumerate(labels, start=1)},
        )
        extra_md += lead_md
        variables = per_variable(rows, spec)
        if variables:
            extra_json["variables"] = variables
            extra_md += ("\n" if extra_md else "") + _variables_markdown(variables)
    notes = list(dict.fromkeys(notes))
    stem = Path(run_dir) / REPORT_STEM
    paths = write_report(rows, stem, summary_columns(rows), notes, extra_json, extra_md)
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
    present = {k for values in rows.values() for k in values}
    for metric in ("mae", "rmse"):
        if metric not in present:  # channels in different units: the normalised numbers
            metric += "_norm"
        curves = {}
        for name, values in rows.items():
            try:
                curves[name] = per_lead(values, metric)
            except ConfigError:
                continue
        if curves:
            written.append(
                plots.plot_error_vs_lead(
                    curves,
                    metric,
                    out / f"{metric}_vs_lead.png",
                    time_step=getattr(spec, "time_step", None),
                )
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
    normalised = False
    for e in entries:
        ours, paper = e.get("metrics", {}), e.get("paper", {}) or {}
        cells = [str(e["preset"]), str(e.get("protocol", "standard"))]
        for c in cols:
            mine = _fmt_paper(ours.get(c))
            if c not in ours and f"{c}_norm" in ours:  # channels in different units
                mine, normalised = f"{_fmt_paper(ours[f'{c}_norm'])} (normalised)", True
            cells += [mine, _fmt_paper(paper.get(c))]
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        "\nPaper numbers: de-normalised test metrics published in the paper (OpenSTL "
        "protocol: checkpoint chosen on the test set); ours follow each row's protocol.\n"
    )
    if normalised:
        note += (
            "(normalised): data whose channels have different units; the number is in "
            "normalised units (error / train-split std of each channel). Per-variable "
            "numbers in physical units are in the run folder's test_metrics.md.\n"
        )
    return "\n".join(lines) + "\n" + note
