"""Generic windowing helpers shared by every dataset file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from svqcast.data.climatology import Climatology, fit_climatology, month_hour_phase
from svqcast.data.windows import (
    ArrayWindows,
    SampleWindows,
    SubsetWindows,
    contiguous_starts,
    random_split,
    tail_split,
    window_offsets,
    window_span,
    window_starts,
)
from svqcast.errors import ConfigError, DataError


def series(t: int = 30) -> np.ndarray:
    return np.arange(t, dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 3, 4), np.float32)


@pytest.mark.parametrize("n, in_len, out_len, stride, step", [(30, 3, 2, 1, 1), (30, 4, 4, 3, 2)])
def test_window_starts_fit_exactly(n, in_len, out_len, stride, step):
    starts = window_starts(n, in_len, out_len, stride, step)
    span = window_span(in_len, out_len, step)
    assert starts[0] == 0 and starts[-1] + span <= n and starts[-1] + stride + span > n
    assert np.all(np.diff(starts) == stride)


def test_window_starts_too_short():
    with pytest.raises(DataError, match="has 5 frames but one window"):
        window_starts(5, 3, 3)
    with pytest.raises(ConfigError):
        window_starts(5, 0, 3)


@pytest.mark.parametrize("step", [1, 3])
def test_array_windows_contents(step):
    ds = ArrayWindows(series(), in_len=3, out_len=2, step=step)
    x, y = ds[4]
    assert x.shape == (3, 2, 3, 4) and y.shape == (2, 2, 3, 4) and x.dtype == torch.float32
    frames = torch.cat([x, y])[:, 0, 0, 0].numpy()
    np.testing.assert_array_equal(frames, 4 + np.arange(5) * step)
    assert len(ds) == 30 - window_span(3, 2, step) + 1


def test_array_windows_explicit_offsets_and_phases():
    times = np.datetime64("2020-01-31T20", "h") + np.arange(30).astype("timedelta64[h]")
    ds = ArrayWindows(series(), 2, 2, offsets=[0, 5, 6, 12], times=times, phase_fn=month_hour_phase)
    x, y = ds[1]
    np.testing.assert_array_equal(torch.cat([x, y])[:, 0, 0, 0].numpy(), [1, 6, 7, 13])
    assert len(ds) == 30 - 13 + 1
    # targets at 2020-02-01 03:00 and 09:00 -> February (month 1) hours 3 and 9
    np.testing.assert_array_equal(ds.target_phases(1), [24 + 3, 24 + 9])
    with pytest.raises(DataError, match="outside"):
        ArrayWindows(series(), 2, 2, starts=[20], offsets=[0, 5, 6, 12])


def test_month_hour_phase():
    t = np.array(["2010-01-01T00", "2010-07-15T13", "2011-12-31T23"], dtype="datetime64[h]")
    np.testing.assert_array_equal(month_hour_phase(t), [0, 6 * 24 + 13, 287])


def test_contiguous_starts_respect_gaps_and_stride():
    t = np.datetime64("2020-01-01T00", "h") + np.arange(20).astype("timedelta64[h]")
    t[10:] += np.timedelta64(3, "h")
    starts = contiguous_starts(t, window_offsets(2, 2), stride=2)
    np.testing.assert_array_equal(starts, [0, 2, 4, 6, 10, 12, 14, 16])
    with pytest.raises(DataError, match="longest run without a gap in time has 10"):
        contiguous_starts(t, window_offsets(6, 6))


def test_sample_windows_split_and_pairs():
    clips = np.arange(5 * 6, dtype=np.uint8).reshape(5, 6, 1, 1, 1)
    ds = SampleWindows(clips, 2, 3, indices=[4, 1], scale=0.5)
    x, y = ds[0]
    np.testing.assert_array_equal(x.flatten().numpy(), [12.0, 12.5])
    np.testing.assert_array_equal(y.flatten().numpy(), [13.0, 13.5, 14.0])
    paired = SampleWindows(clips[:, :4], 2, 1, targets=clips[:, 4:])
    x, y = paired[2]
    np.testing.assert_array_equal(x.flatten().numpy(), [14, 15])
    np.testing.assert_array_equal(y.flatten().numpy(), [16])
    with pytest.raises(DataError, match="needs 7"):
        SampleWindows(clips, 3, 4)


def test_subset_keeps_phases():
    times = np.datetime64("2020-01-01T00", "h") + np.arange(30).astype("timedelta64[h]")
    ds = ArrayWindows(series(), 2, 2, times=times, phase_fn=month_hour_phase)
    sub = SubsetWindows(ds, [5, 7])
    assert len(sub) == 2 and torch.equal(sub[1][0], ds[7][0])
    np.testing.assert_array_equal(sub.target_phases(1), ds.target_phases(7))


def test_tail_split_disjoint():
    starts = window_starts(100, 3, 2)
    train, val = tail_split(starts, 5, 0.2)
    assert len(val) == round(len(starts) * 0.2)
    assert train.max() + 5 <= val.min()  # no shared frame
    with pytest.raises(ConfigError):
        tail_split(starts, 5, 1.0)


def test_random_split_seeded():
    a_train, a_val = random_split(50, 0.2, seed=1)
    b_train, b_val = random_split(50, 0.2, seed=1)
    _, c_val = random_split(50, 0.2, seed=2)
    np.testing.assert_array_equal(a_val, b_val)
    assert len(a_val) == 10 and not set(a_train) & set(a_val)
    assert sorted(np.concatenate([a_train, a_val]).tolist()) == list(range(50))
    assert not np.array_equal(a_val, c_val)


def test_fit_climatology_matches_numpy_and_fills_missing_phases():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(50, 2, 3, 4)).astype(np.float32)
    phases = rng.integers(0, 24, size=50)  # January only: February phases are missing
    clim = fit_climatology(data, phases, 288, chunk=7)
    for p in np.unique(phases):
        np.testing.assert_allclose(clim.mean[p], data[phases == p].mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(clim.mean[24 + 5], clim.mean[5], atol=1e-6)  # same hour
    flat = fit_climatology(data)
    assert isinstance(flat, Climatology) and flat.mean.shape == (1, 2, 3, 4)
    np.testing.assert_allclose(flat.mean[0], data.mean(axis=0), atol=1e-6)


def test_training_and_forecast_windows_follow_one_gap_rule():
    """contiguous_starts (training) and forecast_starts (inference) both take the windows
    of gapless_starts: a 3-hour gap breaks the series into two runs."""
    from types import SimpleNamespace

    from svqcast.data.windows import gapless_starts
    from svqcast.inference.forecast import forecast_starts

    t = np.datetime64("2020-01-01T00", "h") + np.arange(12).astype("timedelta64[h]")
    t[7:] += np.timedelta64(3, "h")
    starts, runs = gapless_starts(t, 4, "h")
    np.testing.assert_array_equal(starts, [0, 1, 2, 3, 7, 8])
    np.testing.assert_array_equal(runs, [0] * 7 + [1] * 5)
    np.testing.assert_array_equal(contiguous_starts(t, window_offsets(2, 2), 1, "h"), starts)
    fields = SimpleNamespace(
        data=np.zeros((12, 1, 2, 2)), times=t, time_step="h", calendar="standard", source="x"
    )
    spec = SimpleNamespace(in_len=4, time_step="h")
    assert forecast_starts(fields, spec, "all") == starts.tolist()
    assert forecast_starts(fields, spec, "last") == [8]
    with pytest.raises(DataError, match="not consecutive steps of h"):
        forecast_starts(fields, SimpleNamespace(in_len=6, time_step="h"), "last")
