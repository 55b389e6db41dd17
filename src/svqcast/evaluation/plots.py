"""PNG figures for reports: forecast panels, error vs lead time, SVQ code-weight histogram.

Matplotlib is imported lazily and used through ``Figure`` objects only (no pyplot, no
display, no global state), so plotting works headless and from several threads. Each
function writes its PNG atomically (temporary file + ``os.replace``) and returns the path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.data.gridded.times import step_unit
from svqcast.data.spec import DataSpec
from svqcast.errors import ConfigError, DataError
from svqcast.evaluation.baselines import BASELINES
from svqcast.io import atomic_path

MAX_DEFAULT_LEADS = 4
LAYOUT = "constrained"
LON_TICKS = (0, 90, 180, 270)
LAT_TICKS = (-60, 0, 60)


def _array(a: Any, name: str) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor, without importing torch here
        a = a.detach().cpu().float().numpy()
    return np.asarray(a, dtype=np.float64)


def _save(fig: Any, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically."""
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def _figure(**kwargs: Any):
    from matplotlib.figure import Figure  # lazy: matplotlib is slow to import

    return Figure(layout=LAYOUT, **kwargs)


def default_leads(out_len: int) -> list[int]:
    """Up to four 1-based leads spread over the horizon, always including the first and last."""
    n = min(out_len, MAX_DEFAULT_LEADS)
    return sorted({int(round(v)) for v in np.linspace(1, out_len, n)})


# ----------------------------------------------------------------------------- lead times

_WORDS = ("week", "month", "year")  # units of step_unit that get plurals


def _with_unit(value: float, unit: str) -> str:
    plural = "s" if unit in _WORDS and value != 1 else ""
    return f"{value:g} {unit}{plural}"


def lead_label(lead: int, time_step: str | None = None) -> str:
    """Lead ``lead`` (1-based frame) as a time in the data's own unit: "+6 h", "+1 d",
    "+2 months", "+360 d"; "+3 steps" without times or when the step is no known frequency
    string."""
    unit = step_unit(time_step)
    if unit is not None:
        return "+" + _with_unit(lead * unit[0], unit[1])
    return f"+{lead} step" + ("s" if lead != 1 else "")


def lead_labels(spec: Any, out_len: int | None = None) -> list[str]:
    """:func:`lead_label` of leads 1 .. ``out_len`` (default ``spec.out_len``) of a DataSpec."""
    t_out = int(out_len if out_len is not None else spec.out_len)
    step = getattr(spec, "time_step", None)
    return [lead_label(k, step) for k in range(1, t_out + 1)]


def lead_axis(out_len: int, time_step: str | None = None) -> tuple[np.ndarray, str]:
    """x values of leads 1 .. out_len and the axis label, in the unit of :func:`lead_label`."""
    k = np.arange(1, out_len + 1, dtype=np.float64)
    unit = step_unit(time_step)
    if unit is not None:
        return k * unit[0], f"lead time [{unit[1]}{'s' if unit[1] in _WORDS else ''}]"
    return k, "lead [steps]"


def _lead_label(lead: int, spec: DataSpec) -> str:
    label = lead_label(lead, getattr(spec, "time_step", None))
    return f"lead {lead}" if label.endswith(("step", "steps")) else f"lead {lead} ({label})"


def plot_forecast_panels(
    x: Any,
    y: Any,
    preds: Mapping[str, Any],
    spec: DataSpec,
    path: str | os.PathLike,
    sample: int = 0,
    channel: int = 0,
    leads: Sequence[int] | None = None,
    normalised: bool = True,
) -> Path:
    """Truth, each forecast and its error (forecast - truth) at a few lead times.

    ``x`` (B, T_in, C, H, W), ``y`` and every ``preds[name]`` (B, T_out, C, H, W), in the
    dataset's normalised units unless ``normalised=False`` (they are shown in physical units).
    ``leads`` are 1-based output frame indices (default: up to 4 spread over the horizon).
    The first column shows the last input frame. Weather maps use the lat/lon extent.
    """
    x, y = _array(x, "x"), _array(y, "y")
    p = {name: _array(v, name) for name, v in preds.items()}
    if x.ndim != 5 or y.ndim != 5:
        raise ConfigError(f"x and y must be (B, T, C, H, W), got {x.shape} and {y.shape}")
    for name, v in p.items():
        if v.shape != y.shape:
            raise ConfigError(f"prediction {name!r} has shape {v.shape}, truth has {y.shape}")
    if x.shape[0] != y.shape[0] or x.shape[2:] != y.shape[2:]:
        raise ConfigError(f"x {x.shape} and y {y.shape} disagree on batch, channels or grid")
    if not 0 <= sample < y.shape[0]:
        raise ConfigError(f"sample {sample} out of range: the batch has {y.shape[0]} samples")
    if not 0 <= channel < y.shape[2]:
        raise ConfigError(f"channel {channel} out of range: the data has {y.shape[2]} channels")
    if normalised and y.shape[2] != spec.normalizer.channels:
        raise ConfigError(
            f"data has {y.shape[2]} channels but DataSpec {spec.name!r} normalises "
            f"{spec.normalizer.channels}; pass the matching spec or normalised=False"
        )
    t_out = y.shape[1]
    leads = default_leads(t_out) if leads is None else [int(k) for k in leads]
    if not leads or any(not 1 <= k <= t_out for k in leads):
        raise ConfigError(f"leads must be 1-based frame indices in [1, {t_out}], got {leads}")
    if normalised:
        x, y = spec.normalizer.denormalize(x), spec.normalizer.denormalize(y)
        p = {name: spec.normalizer.denormalize(v) for name, v in p.items()}

    def frames(a: np.ndarray) -> list[np.ndarray]:
        return [a[sample, k - 1, channel] for k in leads]

    truth = frames(y)
    last_input = x[sample, -1, channel]
    shown = {name: frames(v) for name, v in p.items()}
    values = np.stack([last_input, *truth, *(f for fs in shown.values() for f in fs)])
    vmin, vmax = np.nanmin(values), np.nanmax(values)
    errors = {name: [f - t for f, t in zip(fs, truth)] for name, fs in shown.items()}
    emax = max([float(np.nanmax(np.abs(e))) for es in errors.values() for e in es] + [1e-12])

    ch = spec.channels[channel] if channel < len(spec.channels) else None
    units = f" [{ch.units}]" if ch is not None and ch.units else ""
    ch_name = ch.name if ch is not None else f"channel {channel}"
    imshow_kw: dict[str, Any] = {"interpolation": "nearest"}
    if spec.convention == "weather" and spec.lat is not None and spec.lon is not None:
        lat, lon = np.asarray(spec.lat), np.asarray(spec.lon)
        ascending = lat[-1] > lat[0]
        imshow_kw.update(
            origin="lower" if ascending else "upper",
            extent=(lon.min(), lon.max(), lat.min(), lat.max()),
        )

    rows = [("truth", truth, "viridis")]
    for name in shown:
        rows += [(name, shown[name], "viridis"), (f"{name} - truth", errors[name], "RdBu_r")]
    ncols = 1 + len(leads)
    fig = _figure(figsize=(2.6 * ncols + 1.2, 2.0 * len(rows) + 0.6))
    axes = np.atleast_2d(fig.subplots(len(rows), ncols, squeeze=False))
    fig.suptitle(f"{spec.name}: {ch_name}{units}, sample {sample}")
    for r, (label, maps, cmap) in enumerate(rows):
        is_error = cmap == "RdBu_r"
        lims = (-emax, emax) if is_error else (vmin, vmax)
        first = axes[r, 0]
        if r == 0:
            first.imshow(last_input, cmap=cmap, vmin=lims[0], vmax=lims[1], **imshow_kw)
            first.set_title("last input", fontsize=9)
        else:
            first.axis("off")
        for c, (lead, m) in enumerate(zip(leads, maps), start=1):
            ax = axes[r, c]
            im = ax.imshow(m, cmap=cmap, vmin=lims[0], vmax=lims[1], **imshow_kw)
            ax.set_title(f"{label}\n{_lead_label(lead, spec)}", fontsize=9)
        for c, ax in enumerate(axes[r]):
            # Few fixed ticks, labels on the outer panels only: tick layout dominates the cost.
            geo = "extent" in imshow_kw
            ax.set_xticks(LON_TICKS if geo and r == len(rows) - 1 else [])
            ax.set_yticks(LAT_TICKS if geo and (c == 1 or (r == 0 and c == 0)) else [])
            ax.tick_params(labelsize=7)
        fig.colorbar(im, ax=list(axes[r]), shrink=0.9, label=("error" if is_error else "") + units)
    return _save(fig, path)


def plot_error_vs_lead(
    per_lead: Mapping[str, Sequence[float]],
    metric: str,
    path: str | os.PathLike,
    time_step: str | None = None,
) -> Path:
    """One curve per model or baseline of ``metric`` against lead time (baselines dashed),
    in the unit of ``time_step`` (a frequency string), else steps."""
    if not per_lead:
        raise ConfigError("plot_error_vs_lead needs at least one curve (model or baseline)")
    curves = {name: np.asarray(v, dtype=np.float64).reshape(-1) for name, v in per_lead.items()}
    for name, v in curves.items():
        if v.size == 0:
            raise ConfigError(f"curve {name!r} for {metric!r} has no values")
    fig = _figure(figsize=(6.0, 4.0))
    ax = fig.add_subplot()
    xlabel = ""
    for name, v in curves.items():
        leads, xlabel = lead_axis(v.size, time_step)
        style = "--" if name in BASELINES else "-"
        ax.plot(leads, v, style, marker="o", markersize=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs lead time")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_weight_histogram(weights: Any, path: str | os.PathLike, bins: int = 100) -> Path:
    """Histogram (log counts) of SVQ code weights, with the |z| = 2 and 3 'active' thresholds."""
    w = _array(weights, "weights")
    if w.ndim != 1:
        raise ConfigError(f"weights must be a 1-D array, got shape {w.shape}; flatten it first")
    w = w[np.isfinite(w)]
    if w.size == 0:
        raise DataError("weights contain no finite values: nothing to plot")
    if bins < 1:
        raise ConfigError(f"bins must be >= 1, got {bins}")
    mean, std = float(w.mean()), float(w.std())
    fig = _figure(figsize=(6.0, 4.0))
    ax = fig.add_subplot()
    counts, edges = np.histogram(w, bins=bins)
    ax.stairs(counts, edges, fill=True, color="tab:blue")  # one artist: fast to draw
    ax.set_yscale("log")
    if std > 0:
        for z, style in ((2, ":"), (3, "--")):
            share = float(np.mean(np.abs(w - mean) > z * std))
            for sign in (-1, 1):
                ax.axvline(
                    mean + sign * z * std,
                    color="tab:red",
                    linestyle=style,
                    label=f"|z| > {z}: {share:.2%}" if sign > 0 else None,
                )
        ax.legend()
    ax.set_xlabel("code weight")
    ax.set_ylabel("count (log)")
    ax.set_title(f"SVQ code weights (n = {w.size:,}, mean {mean:.3g}, std {std:.3g})")
    return _save(fig, path)


__all__ = [
    "default_leads",
    "lead_axis",
    "lead_label",
    "lead_labels",
    "plot_error_vs_lead",
    "plot_forecast_panels",
    "plot_weight_histogram",
    "step_unit",
]
