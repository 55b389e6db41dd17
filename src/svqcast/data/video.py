"""Helpers shared by the video and traffic datasets (taxibj, mmnist, kth, kitticaltech, human)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from svqcast.data.base import ForecastDataset
from svqcast.data.climatology import Climatology
from svqcast.data.spec import Channel, DataSpec, Normalizer
from svqcast.errors import ConfigError, DataError


def check_lengths(in_len: int, out_len: int) -> None:
    for key, value in (("in_len", in_len), ("out_len", out_len)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{key} must be an integer >= 1, got {value!r}")


def held_out_count(n: int, val_fraction: float, what: str) -> int:
    """How many of ``n`` items a validation fraction holds out (at least one, not all)."""
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_val = max(1, int(round(n * val_fraction)))
    if n_val >= n:
        raise DataError(
            f"{n} {what} are too few to hold out {val_fraction:.0%} for validation; "
            "use more data or protocol='openstl'"
        )
    return n_val


def video_spec(
    name: str,
    in_len: int,
    out_len: int,
    channels: Sequence[str],
    height: int,
    width: int,
    protocol: str,
    **extra,
) -> DataSpec:
    """The spec of a video dataset: frames in [0, 1], identity normaliser, per-frame sums."""
    return DataSpec(
        name=name,
        in_len=int(in_len),
        out_len=int(out_len),
        channels=tuple(Channel(c) for c in channels),
        height=int(height),
        width=int(width),
        convention="video",
        normalizer=Normalizer.identity(len(channels)),
        data_range=(0.0, 1.0),
        extra={"protocol": protocol, "val_is_test": protocol == "openstl", **extra},
    )


def window_mean(dataset: ForecastDataset, indices) -> Climatology:
    """Per-position mean (P = 1) of every input and target frame of the given items."""
    total, count = None, 0
    for i in indices:
        x, y = dataset[int(i)]
        frames = torch.cat([x, y]).double()  # (T, C, H, W)
        part = frames.sum(0)
        total = part if total is None else total + part
        count += frames.shape[0]
    if total is None:
        raise DataError("no training windows to compute the climatology from")
    return Climatology((total / count).unsqueeze(0).float().numpy())  # (1, C, H, W)


def spread(n: int, k: int) -> np.ndarray:
    """Up to ``k`` evenly spaced indices in [0, n) (all of them when n <= k)."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))
