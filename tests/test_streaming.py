""":class:`svqcast.data.streaming.StreamingStats`: sums held only for the phases the data
has, a result computed phase by phase, the same values as the whole-array computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from svqcast.data.climatology import month_hour_phase
from svqcast.data.streaming import StreamingStats
from svqcast.errors import DataError


def reference(blocks, phases, n_phases, shape):
    """The previous whole-array implementation: (P, C, H, W) float64 sums for every phase,
    then full-size float64 arrays for the raw means and the normalised climatology."""
    c, h, w = shape
    count, mean, m2 = 0, np.zeros(c), np.zeros(c)
    sums, counts = np.zeros((n_phases, c, h, w)), np.zeros(n_phases)
    for block, ph in zip(blocks, phases):
        block = np.asarray(block, dtype=np.float64)
        b_mean = block.mean(axis=(0, 2, 3))
        b_m2 = ((block - b_mean[None, :, None, None]) ** 2).sum(axis=(0, 2, 3))
        k = len(block) * h * w
        delta = b_mean - mean
        total = count + k
        mean = mean + delta * k / total
        m2 = m2 + b_m2 + delta**2 * count * k / total
        count = total
        for p in np.unique(ph):
            sums[p] += block[ph == p].sum(axis=0)
        counts += np.bincount(ph, minlength=n_phases)
    std = np.sqrt(m2 / count)
    std = np.where(std > 0, std, 1.0)
    have = counts > 0
    raw = np.empty_like(sums)
    raw[have] = sums[have] / counts[have, None, None, None]
    overall = sums.sum(axis=0) / counts.sum()
    by_hour = np.arange(n_phases) % 24 if n_phases % 24 == 0 else np.zeros(n_phases, np.int64)
    for p in np.flatnonzero(~have):
        same = have & (by_hour == by_hour[p])
        raw[p] = sums[same].sum(axis=0) / counts[same].sum() if same.any() else overall
    clim = (raw - mean[None, :, None, None]) / std[None, :, None, None]
    return mean, std, clim.astype(np.float32)


@pytest.mark.parametrize(
    ("freq", "periods", "n_phases", "shape", "chunk"),
    [
        ("6h", 4 * 400, 288, (2, 5, 7), 97),  # 48 phases filled, 240 fall back
        ("h", 24 * 40, 288, (1, 3, 4), 50),  # two months of hours: same-hour fallbacks
        ("3h", 8 * 70, 288, (3, 8, 16), 33),
        ("D", 500, 12, (2, 4, 4), 64),  # monthly phases
        ("6h", 300, 1, (2, 6, 6), 40),  # one phase (no calendar)
    ],
)
def test_same_values_as_the_whole_array_computation(freq, periods, n_phases, shape, chunk):
    times = pd.date_range("2001-03-01", periods=periods, freq=freq).values
    phases = month_hour_phase(times) if n_phases == 288 else np.zeros(periods, np.int64)
    if n_phases == 12:
        phases = times.astype("datetime64[M]").astype(np.int64) % 12
    rng = np.random.default_rng(periods)
    data = (250 + 30 * rng.standard_normal((periods, *shape))).astype(np.float32)
    blocks = [data[lo : lo + chunk] for lo in range(0, periods, chunk)]
    ph = [phases[lo : lo + chunk] for lo in range(0, periods, chunk)]
    stats = StreamingStats(shape, n_phases)
    for b, p in zip(blocks, ph):
        stats.add(b, p)
    assert len(stats.climatology.sums) == len(np.unique(phases))  # only the phases the data has
    norm, clim = stats.result()
    mean, std, ref = reference(blocks, ph, n_phases, shape)
    assert clim.mean.dtype == np.float32 and clim.mean.shape == (n_phases, *shape)
    assert np.array_equal(norm.mean, mean) and np.array_equal(norm.std, std)
    assert np.array_equal(clim.mean.view(np.uint32), ref.view(np.uint32))  # to the bit


def test_nothing_counted_is_an_error_not_mean_0_std_1():
    stats = StreamingStats((1, 2, 2), 288)
    stats.add(np.empty((0, 1, 2, 2)))
    with pytest.raises(DataError, match="counted no training frame"):
        stats.result()


def test_a_phase_out_of_range_is_refused():
    stats = StreamingStats((1, 2, 2), 12)
    with pytest.raises(ValueError, match=r"in \[0, 12\)"):
        stats.add(np.ones((2, 1, 2, 2)), np.array([3, 12]))
