"""What a dataset tells the rest of svqcast: :class:`DataSpec` and its :class:`Normalizer`.

Every dataset yields ``(x, y)`` float32 tensors of shapes (T_in, C, H, W) and (T_out, C, H,
W), normalised with statistics of the TRAIN split only. The spec carries everything needed
to interpret them: lengths, channels and units, grid, lat/lon for weather, the metric
convention and the normaliser that maps predictions back to physical units.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from svqcast.data.gridded.times import hours_step, same_calendar, same_step

Convention = Literal["weather", "video"]


@dataclass(frozen=True)
class Channel:
    """One input/output channel. ``variable`` and ``level`` say where it came from in a
    file (the variable's name and, for a variable with an extra dim such as pressure level,
    that dim's coordinate value); both are None for data without named variables."""

    name: str
    units: str = ""
    variable: str | None = None
    level: float | int | str | None = None


@dataclass
class Normalizer:
    """Per-channel affine map: ``normalised = (physical - mean) / std``.

    ``mean`` and ``std`` have one entry per channel and broadcast over the channel axis,
    which is axis -3 of (..., C, H, W) arrays and tensors.
    """

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(self.std, dtype=np.float64).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise ValueError("normalizer mean and std need one entry per channel each")
        if not np.all(np.isfinite(self.std)) or np.any(self.std <= 0):
            raise ValueError(f"normalizer std must be finite and > 0, got {self.std.tolist()}")

    @property
    def channels(self) -> int:
        return self.mean.shape[0]

    @classmethod
    def identity(cls, channels: int) -> Normalizer:
        return cls(np.zeros(channels), np.ones(channels))

    @classmethod
    def fit(cls, data: np.ndarray, channel_axis: int = -3) -> Normalizer:
        """Mean and std per channel over every other axis (float64 accumulation)."""
        data = np.moveaxis(np.asarray(data), channel_axis, 0)
        flat = data.reshape(data.shape[0], -1).astype(np.float64)
        std = flat.std(axis=1)
        return cls(flat.mean(axis=1), np.where(std > 0, std, 1.0))

    def _shape(self, x: np.ndarray | torch.Tensor) -> tuple[int, ...]:
        if x.ndim < 3 or x.shape[-3] != self.channels:
            raise ValueError(
                f"normalizer has {self.channels} channels but got an array of shape "
                f"{tuple(x.shape)} (channels must be axis -3)"
            )
        return (self.channels, 1, 1)

    def _params(self, x: np.ndarray | torch.Tensor):
        shape = self._shape(x)
        if isinstance(x, torch.Tensor):
            kw = dict(dtype=x.dtype if x.is_floating_point() else torch.float32, device=x.device)
            return (
                torch.as_tensor(self.mean, **kw).reshape(shape),
                torch.as_tensor(self.std, **kw).reshape(shape),
            )
        return self.mean.reshape(shape), self.std.reshape(shape)

    def normalize(self, x):
        mean, std = self._params(x)
        return (x - mean) / std

    def denormalize(self, x):
        mean, std = self._params(x)
        return x * std + mean

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalizer:
        return cls(np.asarray(d["mean"]), np.asarray(d["std"]))


@dataclass
class DataSpec:
    """Everything the model, metrics and reports need to know about a dataset."""

    name: str
    in_len: int
    out_len: int
    channels: tuple[Channel, ...]
    height: int
    width: int
    convention: Convention  # weather: per-pixel means in physical units; video: per-frame sums
    normalizer: Normalizer
    lat: np.ndarray | None = None  # (H,) degrees north, weather only
    lon: np.ndarray | None = None  # (W,) degrees east, weather only
    data_range: tuple[float, float] | None = None  # physical range (video: (0, 1))
    extra: dict[str, Any] = field(default_factory=dict)
    # The data identity (filled by the readers of files with coordinates; None otherwise):
    # time_step: the spacing of frames as a frequency string xarray understands ("h", "6h",
    # "D", "MS", "YS-JAN", "360D", ...; the one step, read by svqcast.data.gridded.times);
    # calendar: the CF calendar of the time axis;
    # dims: the source's dim names by role ({"time": "valid_time", "lat": "latitude",
    # "lon": "longitude", "level": "pressure_level"}); attrs: JSON-safe attributes to write
    # back ({"variables": {name: attrs}, "coords": {name: attrs}}).
    time_step: str | None = None
    calendar: str | None = None
    dims: dict[str, str] | None = None
    attrs: dict[str, Any] | None = None

    @property
    def in_shape(self) -> tuple[int, int, int, int]:
        """(T_in, C, H, W), the shape SimVP is built for."""
        return (self.in_len, len(self.channels), self.height, self.width)

    @property
    def channel_names(self) -> list[str]:
        return [c.name for c in self.channels]

    def first_difference(self, other: DataSpec, rtol: float = 1e-5) -> str | None:
        """The first way ``other`` (e.g. the data given to test or resume) differs from this
        spec (e.g. a checkpoint's), as ``"what: <self> here vs <other> there"`` text, or None.

        Compared: window lengths, channels (names and units), grid size and coordinates,
        time step and calendar, and the normalisation statistics (relative ``rtol``).
        Dataset name, paths and ``extra`` are not part of the identity.
        """
        pairs: list[tuple[str, Any, Any]] = [
            ("input frames", self.in_len, other.in_len),
            ("output frames", self.out_len, other.out_len),
            ("channels", self.channel_names, other.channel_names),
            ("units", [c.units for c in self.channels], [c.units for c in other.channels]),
            ("grid (H, W)", (self.height, self.width), (other.height, other.width)),
        ]
        for what, mine, theirs in pairs:
            if mine != theirs:
                return f"{what}: {mine} vs {theirs}"
        for what in ("lat", "lon"):
            mine, theirs = getattr(self, what), getattr(other, what)
            if (mine is None) != (theirs is None):
                return f"{what}: {_brief(mine)} vs {_brief(theirs)}"
            if mine is not None and not np.allclose(mine, theirs, rtol=0, atol=1e-6):
                i = int(np.argmax(~np.isclose(mine, theirs, rtol=0, atol=1e-6)))
                return f"{what}[{i}]: {mine[i]:g} vs {theirs[i]:g}"
        for what, same in (("time_step", same_step), ("calendar", same_calendar)):
            mine, theirs = getattr(self, what), getattr(other, what)
            if not same(mine, theirs):
                return f"{what}: {mine} vs {theirs}"
        for stat in ("mean", "std"):
            mine = getattr(self.normalizer, stat)
            theirs = getattr(other.normalizer, stat)
            if mine.shape != theirs.shape or not np.allclose(mine, theirs, rtol=rtol, atol=0):
                return (
                    f"normalisation {stat}: {np.round(mine, 6).tolist()} vs "
                    f"{np.round(theirs, 6).tolist()}"
                )
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-safe form, saved in checkpoints and run folders."""
        d = asdict(self)
        d["channels"] = [asdict(c) for c in self.channels]
        d["normalizer"] = self.normalizer.to_dict()
        for key in ("lat", "lon"):
            d[key] = None if d[key] is None else np.asarray(d[key]).tolist()
        d["data_range"] = None if self.data_range is None else list(self.data_range)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        d = dict(d)
        # saved by an older svqcast: the step in hours (6.0), beside or instead of time_step
        hours = d.pop("time_step_hours", None)
        if d.get("time_step") is None and hours:
            d["time_step"] = hours_step(hours)  # 6.0 -> "6h", 24.0 -> "D"
        d["channels"] = tuple(Channel(**c) for c in d["channels"])
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:  # a checkpoint of a newer svqcast: say so instead of a TypeError
            raise ValueError(f"DataSpec fields {unknown} are unknown to this svqcast version")
        d["normalizer"] = Normalizer.from_dict(d["normalizer"])
        for key in ("lat", "lon"):
            d[key] = None if d.get(key) is None else np.asarray(d[key], dtype=np.float64)
        if d.get("data_range") is not None:
            d["data_range"] = tuple(d["data_range"])
        return cls(**d)


def _brief(values: np.ndarray | None) -> str:
    if values is None:
        return "none"
    return f"{len(values)} values {values[0]:g}..{values[-1]:g}"
