"""Forecasts from Python: :func:`forecast` turns a checkpoint and an xarray Dataset (or a
file) into an xarray Dataset in WeatherBench2's forecast layout.

The data is read by :func:`svqcast.data.gridded.reader.read_fields` in its own layout and mapped to
the checkpoint's grid, channels and units by :func:`svqcast.data.gridded.identity.match` (or refused
with both values named); the model sees exactly the tensor it would see on data in the
checkpoint's own layout, and the forecast is mapped back to the input's layout and units.

Output: dims ``time`` (the initialisation time: the last input frame's time) and
``prediction_timedelta`` (k steps, k = 1..out_len), then the input's own level/lat/lon dims,
names, order and values; one variable per source variable (the level dim restored for
channels read from levels) with the input's attributes; a ``valid_time`` coordinate
(time, prediction_timedelta). ``prediction_timedelta`` is timedelta64 when the step has one
length in the data's calendar ("6h", "D"; months and years of the 360_day calendar, years of
noleap), else the integer number of steps (e.g. "MS" on the standard calendar: months differ
in length; ``valid_time`` then carries the dates).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from svqcast.data.gridded.identity import Mapping, match
from svqcast.data.gridded.reader import Fields, open_dataset, read_fields
from svqcast.data.gridded.times import advance, fixed_step, fmt_time
from svqcast.data.spec import DataSpec
from svqcast.data.windows import gapless_starts
from svqcast.errors import CheckpointError, ConfigError, DataError
from svqcast.training.checkpoints import check_state_dict
from svqcast.training.module import ForecastModule

WINDOWS = ("last", "all")


def load_module(path: str | Path, map_location: str = "cpu") -> ForecastModule:
    """Rebuild a trained ForecastModule (model, EMA, DataSpec) from a checkpoint alone."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass a run's best.ckpt")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error here
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} is not an svqcast checkpoint (no DataSpec / state_dict)")
    # keys with a leading underscore are Lightning's (e.g. the CLI's "_instantiator")
    hp = {k: v for k, v in (ckpt.get("hyper_parameters") or {}).items() if not k.startswith("_")}
    if hp.get("spec") is None or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not an svqcast checkpoint (no DataSpec / state_dict)")
    module = ForecastModule(**hp)
    check_state_dict(module, ckpt["state_dict"])
    module.load_state_dict(ckpt["state_dict"])
    module.eval()
    return module


def forecast(
    checkpoint_or_module: str | Path | ForecastModule,
    data: Any,
    *,
    windows: str = "last",
    batch_size: int = 16,
    variables: str | list[str] | None = None,
    levels: list | None = None,
    time_tolerance: float = 0.0,
    progress: bool = False,
    time_dim: str | None = None,
    lat_dim: str | None = None,
    lon_dim: str | None = None,
):
    """Forecast ``data`` (an ``xarray.Dataset`` or a path the reader opens: .nc, .zarr,
    .npy/.npz) with a checkpoint (path) or a built :class:`ForecastModule`.

    ``windows="last"`` forecasts from the last ``in_len`` frames (reading only the last
    ``in_len + 2`` of a file whose times are sorted); ``"all"`` from every window
    of consecutive frames (windows that straddle a gap in time are skipped). ``variables``
    and ``levels`` default to the checkpoint's; variables with other names (e.g.
    ``"2m_temperature"`` for a checkpoint's ``t2m``) are paired with the checkpoint's
    channels in order, their units still checked. ``time_tolerance`` (a fraction of the step)
    accepts times off the step by at most that much. ``time_dim``/``lat_dim``/``lon_dim``
    name dims the reader does not recognise by name or CF attributes. Returns an
    ``xarray.Dataset`` (see the module docstring); a DataError names what differs from the
    checkpoint otherwise.
    """
    if windows not in WINDOWS:
        raise ConfigError(f"windows={windows!r}: choose one of {', '.join(WINDOWS)}")
    if int(batch_size) < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(checkpoint_or_module, ForecastModule):
        module, ckpt_name = checkpoint_or_module, "(in-memory module)"
    else:
        module, ckpt_name = load_module(checkpoint_or_module), str(checkpoint_or_module)
    spec = module.spec
    if spec is None:
        raise ConfigError("the module is not built: pass a checkpoint or a module built for data")
    import xarray as xr

    owned = not isinstance(data, xr.Dataset)
    ds = open_dataset(data) if owned else data
    try:
        source = str(data) if owned else str(ds.encoding.get("source", "(dataset)"))
        # windows="last": 2 more steps than the window, enough to infer the step
        dims = {"time_dim": time_dim, "lat_dim": lat_dim, "lon_dim": lon_dim}
        tail = _tail(ds, spec.in_len + 2, time_dim) if windows == "last" else ds
        try:
            fields = _read(tail, spec, variables, levels, time_tolerance, source, dims)
        except DataError:
            if tail is ds:
                raise
            _read(ds, spec, variables, levels, time_tolerance, source, dims)  # the file's indices
            raise
        # variables named explicitly and none of the checkpoint's: paired in order
        names = {c.variable or c.name for c in fields.channels}
        renamed = variables is not None and not names & set(checkpoint_variables(spec)[0])
        mapping = match(spec, fields, time_tolerance=time_tolerance, by_position=renamed)
        starts = forecast_starts(fields, spec, windows)
        _check_finite(fields, mapping, starts, spec.in_len)
        pred = _run(module, mapping.to_model(fields.data), starts, batch_size, progress)
        skipped = ds.sizes[fields.dims["time"]] - tail.sizes[fields.dims["time"]]
        out = _dataset(ds, fields, spec, mapping, mapping.to_source(pred), starts, skipped)
        out.attrs.update(source=source, checkpoint=ckpt_name)
        return out
    finally:
        if owned:
            ds.close()


# --------------------------------------------------------------------------- reading


def checkpoint_variables(spec: DataSpec) -> tuple[list[str], list | None]:
    """The source variables and levels of a checkpoint's channels, in channel order."""
    names: list[str] = []
    levels: list = []
    for ch in spec.channels:
        name = ch.variable or ch.name
        if name not in names:
            names.append(name)
        if ch.level is not None and ch.level not in levels:
            levels.append(ch.level)
    return names, (levels or None)


def _tail(ds, frames: int, time_dim: str | None):
    """``ds`` cut to its last ``frames`` time steps when its times are strictly increasing
    (a forecast from the last window reads no more of a long file); else ``ds`` whole, for
    the reader to refuse its unsorted or duplicated times."""
    from svqcast.data.gridded.reader import find_dims

    t = time_dim or find_dims(ds)["time"]
    if ds.sizes[t] <= frames:
        return ds
    if t in ds.variables:
        import pandas as pd

        index = ds.indexes[t] if t in ds.indexes else pd.Index(np.asarray(ds[t].values))
        if not (index.is_monotonic_increasing and index.is_unique):
            return ds
    return ds.isel({t: slice(ds.sizes[t] - frames, None)})


def _read(ds, spec: DataSpec, variables, levels, time_tolerance, source, dims) -> Fields:
    if variables is None:
        names, default_levels = checkpoint_variables(spec)
        present = [n for n in names if n in ds.data_vars]
        # missing ones are named by identity.match; no named variable at all (.npy): all
        variables = present or None
        levels = default_levels if levels is None else levels
    fields = read_fields(
        ds, variables=variables, levels=levels, time_tolerance=time_tolerance, **dims
    )
    if not fields.source:
        fields.source = source
    return fields


def forecast_starts(fields: Fields, spec: DataSpec, windows: str) -> list[int]:
    """Start indices of the windows to forecast from (see :func:`forecast`): the last
    window, or every window without a gap in time
    (:func:`svqcast.data.windows.gapless_starts`, the rule training windows follow; the
    reader has put the times on the step's grid, within ``time_tolerance``)."""
    n, t_total = spec.in_len, fields.data.shape[0]
    if t_total < n:
        raise DataError(
            f"input {fields.source}: {t_total} frames; the checkpoint needs {n} input frames"
        )
    step = fields.time_step or spec.time_step
    if fields.times is None or len(fields.times) == 0 or step is None or t_total < 2:
        starts = np.arange(t_total - n + 1)
        runs = np.zeros(t_total, dtype=np.int64)
    else:
        starts, runs = gapless_starts(fields.times, n, step, where=f"input {fields.source}")
    starts = [int(s) for s in starts]
    if windows == "last":  # (only the file's last frames may have been read: say just that)
        last = t_total - n
        if last not in starts:
            i = last + int(np.flatnonzero(np.diff(runs)[last:])[0])
            raise DataError(
                f"input {fields.source}: the last {n} frames are not consecutive steps of "
                f"{step} (gap after {fmt_time(fields.times[i])}); pass windows='all' "
                "(--windows all) or give data without the gap"
            )
        return [last]
    if not starts:
        raise DataError(
            f"input {fields.source}: no {n} consecutive steps of {step} (gaps everywhere); the "
            f"checkpoint needs {n} consecutive input frames"
        )
    return starts


def _check_finite(fields: Fields, mapping: Mapping, starts: list[int], n: int) -> None:
    used = np.zeros(fields.data.shape[0], dtype=bool)
    for s in starts:
        used[s : s + n] = True
    frames = np.flatnonzero(used)
    sub = fields.data[frames][:, mapping.channel_index]
    finite = np.isfinite(sub)
    if finite.all():
        return
    t, c, y, x = np.argwhere(~finite)[0]
    t = int(frames[t])
    when = fmt_time(fields.times[t]) if fields.times is not None else f"frame {t}"
    lat = f"{fields.lat[y]:g}" if fields.lat is not None else str(y)
    lon = f"{fields.lon[x]:g}" if fields.lon is not None else str(x)
    ch = mapping.input_channels[c]
    raise DataError(
        f"input {fields.source}: {int((~finite).sum())} NaN/inf value(s) in the frames to "
        f"forecast from, first in {ch.variable or ch.name} at time {when}, lat {lat}, lon {lon}; "
        "fill them or forecast from other windows"
    )


# --------------------------------------------------------------------------- the model


def _run(module: ForecastModule, x: np.ndarray, starts, batch_size: int, progress: bool):
    """(N, T_out, C, H, W) float32 physical forecasts from the checkpoint-layout input."""
    from tqdm.auto import tqdm

    spec = module.spec
    n = spec.in_len
    xn = torch.from_numpy(np.ascontiguousarray(spec.normalizer.normalize(x), dtype=np.float32))
    device = next(module.parameters()).device
    was_training = module.training
    module.eval()
    outs = []
    try:
        with torch.no_grad():
            batches = range(0, len(starts), batch_size)
            for i in tqdm(batches, desc="forecast", unit="batch", disable=not progress):
                chunk = torch.stack([xn[s : s + n] for s in starts[i : i + batch_size]])
                outs.append(module.predict_step(chunk.to(device), 0).float().cpu().numpy())
    finally:
        module.train(was_training)
    return np.concatenate(outs)


# --------------------------------------------------------------------------- the output


def _json_safe(attrs: dict) -> dict:
    """Attributes netCDF and zarr can both store (numpy values as Python, None dropped)."""
    out = {}
    for k, v in attrs.items():
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, bool):
            v = int(v)
        if isinstance(v, (str, int, float)) or (
            isinstance(v, list) and all(isinstance(e, (str, int, float)) for e in v)
        ):
            out[str(k)] = v
    return out


def _attrs(ds, name: str | None) -> dict:
    if name is None or name not in ds.variables:
        return {}
    return _json_safe(dict(ds[name].attrs))


def _dataset(ds, fields: Fields, spec: DataSpec, mapping: Mapping, pred, starts, skipped: int):
    """The forecast Dataset; ``skipped``: the file's steps before those read."""
    import xarray as xr

    from svqcast.version import __version__

    n, k = spec.in_len, np.arange(1, spec.out_len + 1)
    init_idx = np.asarray(starts, dtype=np.int64) + n - 1
    step = fields.time_step or spec.time_step
    dims = dict(fields.dims or {})
    coords: dict[str, Any] = {}
    fixed = fixed_step(step, fields.calendar)
    if fixed is not None:
        ptd = (k * np.timedelta64(int(fixed.total_seconds() * 1e9), "ns")).astype("timedelta64[ns]")
        coords["prediction_timedelta"] = ("prediction_timedelta", ptd)
    else:
        coords["prediction_timedelta"] = (
            "prediction_timedelta",
            k,
            {"long_name": "forecast step", "units": f"steps of {step or 'the input'}"},
        )
    if fields.times is not None:
        init = np.asarray(fields.times)[init_idx]
        time_attrs = _attrs(ds, dims.get("time"))
        for key in ("units", "calendar"):
            time_attrs.pop(key, None)
        coords["time"] = ("time", init, time_attrs)
        if step is not None:
            valid = np.stack([advance(init, int(j), step, fields.calendar) for j in k], axis=1)
            coords["valid_time"] = (("time", "prediction_timedelta"), valid)
    else:
        coords["time"] = (
            "time",
            init_idx + skipped,
            {"long_name": "index of the last input frame in the input"},
        )
    lat_dim, lon_dim = dims.get("lat", "lat"), dims.get("lon", "lon")
    if mapping.shape_only:  # no coordinates: the checkpoint's grid
        lat_dim, lon_dim = "lat", "lon"
        if spec.lat is not None and spec.lon is not None:
            coords["lat"] = ("lat", np.asarray(spec.lat))
            coords["lon"] = ("lon", np.asarray(spec.lon))
    else:
        for dim, values in ((lat_dim, fields.lat), (lon_dim, fields.lon)):
            if dim in ds.variables and ds[dim].ndim == 1:
                coords[dim] = (dim, np.asarray(ds[dim].values), _attrs(ds, dim))
            elif values is not None:
                coords[dim] = (dim, np.asarray(values), _attrs(ds, dim))
    level_dim = dims.get("level", "level")
    variables: dict[str, Any] = {}
    groups: dict[str, list[int]] = {}
    # coordinate-free input (.npy): the checkpoint's channels name the variables
    named = spec.channels if mapping.shape_only else mapping.input_channels
    for c, ch in enumerate(named):
        groups.setdefault(ch.variable or ch.name, []).append(c)
    for name, cs in groups.items():
        cs = sorted(cs, key=lambda c: _level_rank(ds, level_dim, named[c].level))
        chans = [named[c] for c in cs]
        attrs = _attrs(ds, name) if name in ds.data_vars else {}
        units = chans[0].units or spec.channels[cs[0]].units
        if units and "units" not in attrs:
            attrs["units"] = units
        order = _spatial_order(ds, name, lat_dim, lon_dim, level_dim)
        if chans[0].level is None:
            values = pred[:, :, cs[0]]  # (N, T_out, H, W)
            src_dims = [lat_dim, lon_dim]
        else:
            values = pred[:, :, cs]  # (N, T_out, L, H, W)
            src_dims = [level_dim, lat_dim, lon_dim]
            lv = np.asarray([ch.level for ch in chans])
            if level_dim in ds.variables and ds[level_dim].ndim == 1:
                lv = lv.astype(ds[level_dim].dtype, copy=False)
            coords[level_dim] = (level_dim, lv, _attrs(ds, level_dim))
        want = [d for d in order if d in src_dims]
        perm = [0, 1, *(2 + src_dims.index(d) for d in want)]
        variables[name] = (("time", "prediction_timedelta", *want), values.transpose(perm), attrs)
    attrs = {"source": "", "checkpoint": "", "svqcast_version": __version__, "windows": len(starts)}
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def _level_rank(ds, level_dim: str, level) -> int:
    """Position of ``level`` in the input's level coordinate (its order comes back)."""
    if level is None or level_dim not in ds.variables or ds[level_dim].ndim != 1:
        return 0
    values = list(np.asarray(ds[level_dim].values).tolist())
    for i, v in enumerate(values):
        if str(v) == str(level) or (
            isinstance(v, (int, float)) and isinstance(level, (int, float)) and v == level
        ):
            return i
    return len(values)


def _spatial_order(ds, name: str, lat_dim: str, lon_dim: str, level_dim: str) -> list[str]:
    """The input variable's non-time dims (level/lat/lon) in its own order."""
    if name in ds.data_vars:
        order = [d for d in ds[name].dims if d in (lat_dim, lon_dim, level_dim)]
        if lat_dim in order and lon_dim in order:
            return order if level_dim in order else [level_dim, *order]
    return [level_dim, lat_dim, lon_dim]
