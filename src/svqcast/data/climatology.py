"""The climatology: what defines it, how it is phased and how it is fitted.

A :class:`Climatology` is the TRAIN-split mean per phase and position, in normalised units;
test batches carry it as their third element (:class:`WithClimatology`), where the
climatology baseline forecast (:func:`svqcast.evaluation.baselines.climatology`) and the
ACC metric read it. Phases are calendar phases of each frame: (month, hour of day)
(:func:`month_hour_phase`, :data:`MONTH_HOUR_PHASES`), month (:func:`month_phase`) or one
phase; :func:`climatology_phases` picks them from the data's time step.

Two fits, each holding only sums and one block of frames at a time:

- :func:`fit_climatology` over an in-memory normalised series (the user's arrays);
- :class:`ClimatologySums`, the accumulation of a streaming pass over raw blocks
  (:class:`svqcast.data.streaming.StreamingStats` feeds it beside the channel moments),
  normalised once the statistics are known.

Both fill a phase absent from the training data from the phases of the same hour of day
(when the number of phases is a multiple of 24), else from the overall mean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from svqcast.data.gridded.times import step_seconds
from svqcast.errors import DataError

#: Number of calendar phases of :func:`month_hour_phase`: 12 months x 24 hours of day.
MONTH_HOUR_PHASES = 288


@dataclass
class Climatology:
    """Training-split mean per phase and position, in normalised units.

    ``mean`` is (P, C, H, W). P == 1 is a per-position mean; for weather, phases are
    calendar phases (the weather loader documents which), computed from TRAIN data only.
    """

    mean: np.ndarray

    def lookup(self, phases: np.ndarray | None, length: int) -> np.ndarray:
        """(length, C, H, W) climatology for target frames with the given phases."""
        if phases is None:
            return np.repeat(self.mean[:1], length, axis=0)
        return self.mean[np.asarray(phases, dtype=np.int64) % self.mean.shape[0]]


class WithClimatology(Dataset):
    """Wraps a test dataset to yield ``(x, y, climatology)`` for the baselines.

    ``dataset`` is a :class:`~svqcast.data.base.ForecastDataset`: its ``target_phases(i)``
    (None for one phase) picks the climatology of each target frame.
    """

    def __init__(self, dataset: Dataset, climatology: Climatology) -> None:
        self.dataset = dataset
        self.climatology = climatology

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        x, y = self.dataset[index]
        phases = self.dataset.target_phases(index)
        clim = self.climatology.lookup(phases, y.shape[0])
        return x, y, torch.as_tensor(clim, dtype=y.dtype)


# --------------------------------------------------------------------------- phases


def _month_hour(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(month 0..11, hour of day 0..23) of datetime64 or cftime times."""
    t = np.asarray(times)
    if np.issubdtype(t.dtype, np.datetime64):
        t = t.astype("datetime64[h]")
        months = t.astype("datetime64[M]").astype(np.int64) % 12  # 0 = January
        hours = (t - t.astype("datetime64[D]")).astype(np.int64)  # 0 .. 23
        return months, hours
    months = np.fromiter((d.month - 1 for d in t), dtype=np.int64, count=len(t))
    hours = np.fromiter((d.hour for d in t), dtype=np.int64, count=len(t))
    return months, hours


def month_hour_phase(times: np.ndarray) -> np.ndarray:
    """Calendar phase (month - 1) * 24 + hour of day, in [0, 288), of datetime64 or cftime
    times."""
    months, hours = _month_hour(times)
    return (months * 24 + hours).astype(np.int64)


def month_phase(times: np.ndarray) -> np.ndarray:
    """Calendar phase month - 1, in [0, 12), of datetime64 or cftime times."""
    return _month_hour(times)[0]


def climatology_phases(
    step: str | None, over: str = "the train split"
) -> tuple[Callable[[np.ndarray], np.ndarray] | None, int, str]:
    """How the climatology baseline is phased for series of ``step`` (a frequency string,
    None without times): (phase function or None, number of phases, one-line description).

    Steps shorter than a day that divide 24 h: (month, hour of day); steps from one day to
    one month: month;
    anything else (e.g. 7-hourly, yearly, no times): the overall mean per grid point, with
    the reason in the description.
    """
    if step is None:
        return None, 1, "overall mean per grid point: the series has no time coordinate"
    day = 86400
    seconds = step_seconds(step)
    if seconds is None and step.split("-")[0] in ("W", "1W"):
        seconds = 7 * day  # weekly, anchored on a weekday
    if seconds is not None and 0 < seconds < day and day % seconds == 0:
        return month_hour_phase, MONTH_HOUR_PHASES, f"by (month, hour of day) over {over}"
    monthly = step.split("-")[0] in ("MS", "ME", "M", "1MS", "1ME")
    if (seconds is not None and seconds % day == 0 and seconds <= 31 * day) or monthly:
        return month_phase, 12, f"by month over {over}"
    if seconds is not None and seconds < day:
        why = f"{step} steps do not repeat at a fixed hour of day"
    else:
        why = f"{step} steps are longer than a month"
    return None, 1, f"overall mean per grid point: {why}"


def _same_hour(n_phases: int) -> np.ndarray:
    """The fallback group of each phase: its hour of day when ``n_phases`` is a multiple of
    24 (the (month, hour of day) phases), else one group."""
    return np.arange(n_phases) % 24 if n_phases % 24 == 0 else np.zeros(n_phases, np.int64)


# --------------------------------------------------------------------------- fits


def fit_climatology(
    series: np.ndarray | torch.Tensor,
    phases: np.ndarray | None = None,
    n_phases: int = MONTH_HOUR_PHASES,
    chunk: int = 2048,
) -> Climatology:
    """Mean per phase and position of a normalised (T, C, H, W) TRAIN series.

    Without phases: one per-position mean (P == 1). With phases (one int per frame): the
    mean of the frames of each phase; a phase absent from the training data falls back to
    the frames with the same hour of day (phase modulo 24, when P is a multiple of 24), else
    to the overall per-position mean, so every lookup is defined. Sums accumulate in
    float64 over chunks of frames, so a long series is never copied whole.
    """
    data = series.numpy() if isinstance(series, torch.Tensor) else np.asarray(series)
    n = len(data)
    if n == 0:
        raise DataError("cannot fit a climatology on an empty training series")
    n_out = 1 if phases is None else int(n_phases)
    phases = np.zeros(n, np.int64) if phases is None else np.asarray(phases, dtype=np.int64)
    if len(phases) != n:
        raise DataError(f"{len(phases)} phases for a series of {n} frames")
    if phases.min() < 0 or phases.max() >= n_out:
        raise DataError(f"phases must lie in [0, {n_out}), got {phases.min()}..{phases.max()}")
    sums = np.zeros((n_out, int(np.prod(data.shape[1:]))))
    for lo in range(0, n, chunk):
        block = data[lo : lo + chunk].reshape(min(chunk, n - lo), -1)
        ph = phases[lo : lo + chunk]
        for p in np.unique(ph):
            sums[p] += block[ph == p].sum(axis=0, dtype=np.float64)
    counts = np.bincount(phases, minlength=n_out).astype(np.float64)
    overall = sums.sum(axis=0) / n
    mean = np.empty_like(sums)
    have = counts > 0
    mean[have] = sums[have] / counts[have, None]
    by_hour = _same_hour(n_out)
    for p in np.flatnonzero(~have):
        same = have & (by_hour == by_hour[p])
        mean[p] = sums[same].sum(axis=0) / counts[same].sum() if same.any() else overall
    return Climatology(mean.reshape((n_out, *data.shape[1:])).astype(np.float32))


class ClimatologySums:
    """The climatology of a streaming pass: float64 sums of raw (C, H, W) frames per phase.

    Sums are held only for the phases the data has (allocated on a phase's first frame: 48
    of the 288 (month, hour of day) phases for 6-hourly data), so the pass costs
    K x C x H x W float64 for K phases seen. :meth:`result` normalises the means with the
    per-channel statistics found by the same pass.
    """

    def __init__(self, frame_shape: tuple[int, int, int], n_phases: int = 1) -> None:
        self.shape = tuple(int(v) for v in frame_shape)
        self.n_phases = int(n_phases)
        self.sums: dict[int, np.ndarray] = {}  # phase -> (C, H, W) float64 raw sum
        self.counts = np.zeros(self.n_phases)

    def add(self, block: np.ndarray, phases: np.ndarray) -> None:
        """Add ``block`` (n, C, H, W) float64 with ``phases`` (n ints in [0, P), checked by
        the caller)."""
        for p in np.unique(phases).tolist():
            if p not in self.sums:
                self.sums[p] = np.zeros(self.shape)
            self.sums[p] += block[phases == p].sum(axis=0)
        self.counts += np.bincount(phases, minlength=self.n_phases)

    def result(self, mean: np.ndarray, std: np.ndarray) -> Climatology:
        """The climatology in normalised units, ``(raw mean - mean) / std`` with the
        per-channel ``mean`` and ``std`` (C,), float32 (P, C, H, W).

        Computed phase by phase into the float32 result (no full-size float64 copies), with
        the float64 operations of a whole-array computation, so the values are the same."""
        offset, scale = mean[:, None, None], std[:, None, None]
        p_all, counts = self.n_phases, self.counts
        out = np.empty((p_all, *self.shape), np.float32)

        def put(p: int, raw: np.ndarray) -> None:  # raw: a float64 (C, H, W) we may modify
            raw -= offset
            raw /= scale
            out[p] = raw

        def pooled(phases: list[int]) -> np.ndarray:  # mean over phases, summed in order
            total = np.zeros(self.shape)
            for q in phases:
                total += self.sums[q]
            return total / counts[phases].sum()

        seen = sorted(self.sums)
        by_hour = _same_hour(p_all)
        fallback: dict[int, np.ndarray] = {}  # hour of day (or -1: overall) -> raw mean
        for p in range(p_all):
            if counts[p] > 0:
                put(p, self.sums[p] / counts[p])
                continue
            same = [q for q in seen if by_hour[q] == by_hour[p]]
            which = int(by_hour[p]) if same else -1
            if which not in fallback:
                fallback[which] = pooled(same if same else seen)
            put(p, fallback[which].copy())
        return Climatology(out)


__all__ = [
    "MONTH_HOUR_PHASES",
    "Climatology",
    "ClimatologySums",
    "WithClimatology",
    "climatology_phases",
    "fit_climatology",
    "month_hour_phase",
    "month_phase",
]
