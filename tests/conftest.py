import os

import numpy as np
import pytest
import torch

from svqcast.data.spec import Channel, DataSpec, Normalizer

# Two pytest-xdist workers share 2 cores: one thread each keeps them from fighting.
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 - seeds legacy global RNG users too


# weather channels of make_tiny_spec in order: (name, units, normaliser mean, std)
TINY_WEATHER_CHANNELS = (("t2m", "K", 280.0, 5.0), ("u10", "m s-1", 0.0, 3.0))


def make_tiny_spec(
    convention: str = "weather",
    *,
    in_len: int = 4,
    out_len: int = 4,
    height: int = 8,
    width: int = 16,
    channels: int = 1,
    **changes,
) -> DataSpec:
    """A small DataSpec for tests; keywords replace any other DataSpec field.

    ``weather``: t2m in K (normaliser mean 280, std 5), then u10 in m s-1 (mean 0, std 3), on
    latitudes -80..80 and longitudes every 360 / width degrees, hourly. ``video``: channels
    c0, c1 ..., identity normaliser, data range (0, 1), no coordinates.
    """
    if convention == "weather":
        rows = TINY_WEATHER_CHANNELS[:channels]
        assert len(rows) == channels, f"at most {len(TINY_WEATHER_CHANNELS)} weather channels"
        fields = dict(
            channels=tuple(Channel(name, units) for name, units, _, _ in rows),
            normalizer=Normalizer(np.array([r[2] for r in rows]), np.array([r[3] for r in rows])),
            lat=np.linspace(-80, 80, height),
            lon=np.linspace(0, 360, width, endpoint=False),
            time_step="h",
        )
    else:
        fields = dict(
            channels=tuple(Channel(f"c{i}") for i in range(channels)),
            normalizer=Normalizer.identity(channels),
            data_range=(0.0, 1.0),
        )
    fields.update(changes)
    return DataSpec(
        name=fields.pop("name", "tiny"),
        in_len=in_len,
        out_len=out_len,
        height=height,
        width=width,
        convention=convention,
        **fields,
    )


@pytest.fixture
def tiny_spec():
    """:func:`make_tiny_spec`, the tests' one small DataSpec: ``tiny_spec()``,
    ``tiny_spec("video", out_len=6)``, ``tiny_spec(channels=2, lat=None)`` ..."""
    return make_tiny_spec
