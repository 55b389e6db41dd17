"""Run folders: atomic checkpoints, test reports and plots, and the reproduce results table.

A run folder ``runs/<name>/`` holds::

    config.yaml          the resolved configuration (written by the CLI)
    best.ckpt last.ckpt  best on the VALIDATION loss, and the latest (for --ckpt_path last)
    metrics.csv          the CSV logger (train/val curves, test scalars)
    test_metrics.{json,csv,md}   model, persistence and climatology on the test set
    quantizer.json       code usage / sparsity diagnostics (quantized models)
    plots/               forecast panels, error vs lead time, SVQ weight histogram

Every file is written to a temporary name in the same folder and moved into place with
``os.replace``, so an interrupted run never leaves a half-written checkpoint or report.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from svqcast.errors import ConfigError

REPORT_STEM = "test_metrics"
QUANTIZER_REPORT = "quantizer.json"
PLOTS_DIR = "plots"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _checkpoint_io_class() -> type:
    from lightning.pytorch.plugins.io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        """Checkpoints written to a temp file, flushed to disk, then ``os.replace``-d.

        Lightning's own TorchCheckpointIO writes through an fsspec transaction (a temp file
        moved on commit) for local paths; this makes the guarantee explicit and local: a
        reader (or a resume after a crash) sees either the old file or the complete new one.
        """

        def save_checkpoint(
            self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options=None
        ) -> None:
            if storage_options is not None:
                raise TypeError("AtomicCheckpointIO does not take storage_options")
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    torch.save(checkpoint, f)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    return AtomicCheckpointIO


def __getattr__(name: str) -> Any:
    if name == "AtomicCheckpointIO":  # built lazily: importing Lightning is slow
        cls = _checkpoint_io_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


def ensure_writable(folder: Path) -> Path:
    """Create ``folder`` (and parents) and prove it is writable, else a one-line ConfigError."""
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


def has_checkpoints(folder: Path) -> bool:
    return Path(folder).is_dir() and any(Path(folder).glob("*.ckpt"))


# ----------------------------------------------------------------------------- test reports


def summary_columns(rows: Mapping[str, Mapping[str, float]]) -> list[str]:
    """The headline metrics present in ``rows``, in the engine's display order."""
    from svqcast.training import SUMMARY_METRICS

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
    from svqcast.metrics import write_report

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
    from svqcast import plots
    from svqcast.metrics import per_lead

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


def _fmt(v: Any) -> str:
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
            cells += [_fmt(ours.get(c)), _fmt(paper.get(c))]
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        "\nPaper numbers: de-normalised test metrics published in the paper (OpenSTL "
        "protocol: checkpoint chosen on the test set); ours follow each row's protocol.\n"
    )
    return "\n".join(lines) + "\n" + note


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
