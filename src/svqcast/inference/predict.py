"""Forecast files from a trained checkpoint (``svqcast predict``): a thin wrapper over
:func:`svqcast.inference.forecast.forecast` that reads any file the reader takes (.nc, .zarr,
.npy/.npz) and writes the forecast atomically as .nc, .zarr or .npy."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from svqcast.errors import ConfigError
from svqcast.inference.forecast import forecast, load_module
from svqcast.io import atomic_fill, atomic_path, atomic_write_with

__all__ = ["OUTPUT_SUFFIXES", "check_output", "load_module", "predict_file", "to_array"]

OUTPUT_SUFFIXES = (".nc", ".zarr", ".npy")


def check_output(output: str | Path) -> Path:
    """``output`` if its suffix is known and its folder exists and takes files, else a
    one-line ConfigError (checked before any work is done)."""
    output = Path(output)
    if output.suffix not in OUTPUT_SUFFIXES:
        raise ConfigError(f"--output {output}: use a {', '.join(OUTPUT_SUFFIXES)} name")
    folder = output.parent
    if not folder.is_dir():
        raise ConfigError(
            f"--output {output}: the folder {folder} does not exist; create it or pick another"
        )
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{output.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(
            f"--output {output}: cannot write in {folder} ({exc.strerror or exc}); "
            "pick a writable folder"
        ) from None
    if output.exists() and output.is_dir() != (output.suffix == ".zarr"):
        raise ConfigError(
            f"--output {output} exists and is a {'folder' if output.is_dir() else 'file'}"
        )
    return output


def to_array(ds):
    """The forecast Dataset's values as one float32 (N, T_out, C, H, W) array: variables in
    order, levels as channels, lat/lon in the dataset's order of values."""
    import numpy as np

    from svqcast.data.gridded.reader import find_dims

    roles = find_dims(ds, time_dim="time")
    lat_lon = [roles["lat"], roles["lon"]]
    parts = []
    for name in ds.data_vars:
        da = ds[name]
        extra = [d for d in da.dims if d not in ("time", "prediction_timedelta", *lat_lon)]
        da = da.transpose("time", "prediction_timedelta", *extra, *lat_lon)
        values = np.asarray(da.values, dtype=np.float32)
        parts.append(values.reshape(values.shape[0], values.shape[1], -1, *values.shape[-2:]))
    return np.concatenate(parts, axis=2)


def predict_file(
    ckpt: str | Path,
    input_path: str | Path,
    output: str | Path,
    windows: str = "last",
    batch_size: int = 16,
    *,
    variables: list[str] | None = None,
    time_tolerance: float = 0.0,
    progress: bool = False,
) -> Path:
    """Forecast ``input_path`` with the checkpoint and write the forecast to ``output``.

    ``.nc`` and ``.zarr`` hold the Dataset of :func:`svqcast.forecast` (WeatherBench2's
    layout); ``.npy`` holds its values as (N, T_out, C, H, W). The output is checked
    writable before any work and appears complete or not at all.
    """
    output = check_output(output)
    ds = forecast(
        ckpt,
        input_path,
        windows=windows,
        batch_size=batch_size,
        variables=variables,
        time_tolerance=time_tolerance,
        progress=progress,
    )
    if output.suffix == ".npy":
        import numpy as np

        pred = to_array(ds)
        atomic_write_with(output, lambda f: np.save(f, pred))
    elif output.suffix == ".nc":
        with atomic_path(output) as tmp:
            ds.to_netcdf(tmp)
    else:

        def make(tmp: Path) -> Path:
            # zarr v2 with consolidated metadata: what WeatherBench2's tools read
            ds.to_zarr(tmp / output.name, mode="w", zarr_format=2, consolidated=True)
            return tmp / output.name

        atomic_fill(output.parent, make)
    return output
