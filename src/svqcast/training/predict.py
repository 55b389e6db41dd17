"""Forecasts from a trained checkpoint: rebuild the module, read an input file, write the
de-normalised forecast (``svqcast predict``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from svqcast.data.spec import DataSpec
from svqcast.errors import CheckpointError, ConfigError
from svqcast.io import atomic_path, atomic_write_with
from svqcast.training.checkpoints import check_state_dict
from svqcast.training.module import ForecastModule


def load_module(path: str | Path, map_location: str = "cpu") -> ForecastModule:
    """Rebuild a trained ForecastModule (model, EMA, DataSpec) from a checkpoint alone."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass a run's best.ckpt")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error here
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    # keys with a leading underscore are Lightning's (e.g. the CLI's "_instantiator")
    hp = {k: v for k, v in (ckpt.get("hyper_parameters") or {}).items() if not k.startswith("_")}
    if hp.get("spec") is None or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not an svqcast checkpoint (no DataSpec / state_dict)")
    module = ForecastModule(**hp)
    check_state_dict(module, ckpt["state_dict"])
    module.load_state_dict(ckpt["state_dict"])
    module.eval()
    return module


def _read_input(path: Path, spec: DataSpec) -> tuple[Any, dict[str, Any] | None]:
    """(T, C, H, W) float32 physical array and, for netCDF, its time/lat/lon coordinates."""
    import numpy as np

    from svqcast.errors import DataError, DataNotFoundError

    if not path.is_file():
        raise DataNotFoundError(f"input file {path} does not exist")
    if path.suffix == ".npy":
        arr = np.load(path)
        if arr.ndim == 3 and len(spec.channels) == 1:
            arr = arr[:, None]  # (T, H, W) -> (T, 1, H, W)
        return np.asarray(arr, dtype=np.float32), None
    if path.suffix not in (".nc", ".nc4", ".netcdf"):
        raise DataError(f"input {path}: use a .npy (T, C, H, W) array or a netCDF file")
    import xarray as xr

    with xr.open_dataset(path) as ds:
        names = spec.channel_names
        missing = [n for n in names if n not in ds.data_vars]
        if missing:
            raise DataError(
                f"input {path} lacks variable(s) {', '.join(missing)} the model was trained on; "
                f"it has {', '.join(map(str, ds.data_vars))}"
            )
        fields = []
        for n in names:
            da = ds[n].squeeze(drop=True)
            if set(da.dims) != {"time", "lat", "lon"}:
                raise DataError(
                    f"variable {n} in {path} has dims {da.dims}; expected (time, lat, lon)"
                )
            fields.append(da.transpose("time", "lat", "lon").values)
        coords = {k: ds[k].values for k in ("time", "lat", "lon")}
    return np.stack(fields, axis=1).astype(np.float32), coords


def predict_file(
    ckpt: str | Path,
    input_path: str | Path,
    output: str | Path,
    windows: str = "last",
    batch_size: int = 16,
) -> Path:
    """Forecast ``input_path`` with the checkpoint and write de-normalised forecasts.

    The input is in physical units, (T, C, H, W) with T >= in_len: the last window
    (``windows="last"``) or every window (``"all"``) is forecast. ``.npy`` output is
    (N, T_out, C, H, W); ``.nc`` output has one variable per channel with dims
    (init_time, lead, lat, lon) and the valid ``time`` of every forecast frame when the
    input carried times.
    """
    import numpy as np

    from svqcast.errors import DataError

    module = load_module(ckpt)
    spec = module.spec
    input_path, output = Path(input_path), Path(output)
    if output.suffix not in (".npy", ".nc"):
        raise ConfigError(f"--output {output}: use a .npy or .nc file name")
    arr, coords = _read_input(input_path, spec)
    want = tuple(spec.in_shape[1:])
    if arr.ndim != 4 or tuple(arr.shape[1:]) != want:
        raise DataError(
            f"input {input_path} has shape {arr.shape}; the checkpoint expects (T, "
            f"{', '.join(map(str, want))}) with T >= {spec.in_len}"
        )
    if arr.shape[0] < spec.in_len:
        raise DataError(
            f"input {input_path} has {arr.shape[0]} frames; the model needs {spec.in_len}"
        )
    if not np.isfinite(arr).all():
        raise DataError(f"input {input_path} contains NaN or inf values")
    t_total = arr.shape[0]
    starts = [t_total - spec.in_len] if windows == "last" else range(t_total - spec.in_len + 1)
    x_all = torch.from_numpy(spec.normalizer.normalize(arr).astype(np.float32))
    outs = []
    with torch.no_grad():
        for i in range(0, len(starts), batch_size):
            chunk = [x_all[s : s + spec.in_len] for s in list(starts)[i : i + batch_size]]
            outs.append(module.predict_step(torch.stack(chunk), 0).numpy())
    pred = np.concatenate(outs)  # (N, T_out, C, H, W) physical units
    if output.suffix == ".npy":
        atomic_write_with(output, lambda f: np.save(f, pred))
        return output
    _write_netcdf(output, pred, spec, coords, list(starts))
    return output


def _write_netcdf(output: Path, pred, spec: DataSpec, coords, starts: list[int]) -> None:
    import numpy as np
    import xarray as xr

    step = spec.time_step_hours or 1.0
    lead = np.arange(1, spec.out_len + 1) * step
    lat = coords["lat"] if coords else spec.lat
    lon = coords["lon"] if coords else spec.lon
    data_coords: dict[str, Any] = {"lead": ("lead", lead, {"units": "hours"})}
    if lat is not None:
        data_coords["lat"] = ("lat", np.asarray(lat))
    if lon is not None:
        data_coords["lon"] = ("lon", np.asarray(lon))
    if coords is not None and np.issubdtype(np.asarray(coords["time"]).dtype, np.datetime64):
        times = np.asarray(coords["time"])
        init = times[[s + spec.in_len - 1 for s in starts]]  # the last input frame
        data_coords["init_time"] = ("init_time", init)
        valid = init[:, None] + (lead * 3600).astype("timedelta64[s]")[None, :]
        data_coords["time"] = (("init_time", "lead"), valid)
    else:
        data_coords["init_time"] = ("init_time", np.asarray(starts) + spec.in_len - 1)
    variables = {
        ch.name: (
            ("init_time", "lead", "lat", "lon"),
            pred[:, :, c],
            {"units": ch.units, "long_name": f"forecast of {ch.name}"},
        )
        for c, ch in enumerate(spec.channels)
    }
    ds = xr.Dataset(variables, coords=data_coords, attrs={"source": "svqcast predict"})
    with atomic_path(output) as tmp:
        ds.to_netcdf(tmp)
