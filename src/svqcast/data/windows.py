"""Generic windowing over arrays: the building blocks every dataset file reuses.

Two kinds of data:

- one long series (weather, the user's arrays): a (T, C, H, W) array cut into overlapping
  windows by :func:`window_starts` (frame counts) or :func:`contiguous_starts` (timed
  frames: windows without a gap in time, by :func:`gapless_starts`, the rule forecasts use
  too) and served by :class:`ArrayWindows`;
- independent samples (TaxiBJ, Moving MNIST test clips, video clips): an (N, T, C, H, W)
  array (or separate inputs and targets) served by :class:`SampleWindows`.

Validation splits are carved out of training data with :func:`tail_split` (time series:
a chronological tail, with windows that would straddle the cut dropped) or
:func:`random_split` (independent samples: a seeded random subset). Calendar phases for the
climatology baseline (``phase_fn``) and its fit come from :mod:`svqcast.data.climatology`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from svqcast.data.base import ForecastDataset
from svqcast.data.gridded.times import step_index, times_to_seconds
from svqcast.errors import ConfigError, DataError


def window_span(in_len: int, out_len: int, step: int = 1) -> int:
    """Frames of the underlying series covered by one window of in_len + out_len frames."""
    return (in_len + out_len - 1) * step + 1


def window_starts(
    n_frames: int,
    in_len: int,
    out_len: int,
    stride: int = 1,
    step: int = 1,
    *,
    where: str = "series",
) -> np.ndarray:
    """Valid first-frame indices of windows over a series of ``n_frames`` frames.

    A window takes frames ``s, s + step, ..., s + (in_len + out_len - 1) * step``; windows
    start every ``stride`` frames. ``where`` names the series in the error message.
    """
    for key, value in (("in_len", in_len), ("out_len", out_len), ("stride", stride)):
        if int(value) < 1:
            raise ConfigError(f"{key} must be >= 1, got {value}")
    if int(step) < 1:
        raise ConfigError(f"step must be >= 1, got {step}")
    span = window_span(in_len, out_len, step)
    if n_frames < span:
        raise DataError(
            f"{where} has {n_frames} frames but one window of {in_len} -> {out_len} frames "
            f"(step {step}) needs {span}; use more data or shorter windows"
        )
    return np.arange(0, n_frames - span + 1, stride, dtype=np.int64)


def window_offsets(in_len: int, out_len: int, step: int = 1) -> np.ndarray:
    """Frame offsets, relative to a window's start, of its in_len inputs then out_len targets."""
    return np.arange(int(in_len) + int(out_len), dtype=np.int64) * int(step)


def gapless_starts(
    times: np.ndarray,
    span: int,
    frame_step: np.timedelta64 | str | None = None,
    *,
    where: str = "series",
) -> tuple[np.ndarray, np.ndarray]:
    """The one rule for windows without a gap in time, for training and forecasts alike.

    Frames ``i`` and ``i + 1`` are consecutive when ``times[i + 1]`` is the next position
    after ``times[i]`` on the regular grid of ``frame_step``: a frequency string ("6h",
    "D", "MS": calendar steps such as months count grid positions, see
    :func:`svqcast.data.gridded.times.step_index`), a timedelta64, or None for the smallest
    spacing found. Returns ``(starts, runs)``: every start ``s`` whose ``span`` frames
    ``s .. s + span - 1`` are consecutive, and the (T,) id of the run without a gap each
    frame belongs to. ``times`` (datetime64 or cftime dates) must be strictly increasing.
    """
    times = np.asarray(times)
    gaps = np.diff(times_to_seconds(times))
    if np.any(gaps <= 0):
        raise DataError(f"{where}: time coordinate is not strictly increasing")
    if isinstance(frame_step, str):
        broken = np.diff(step_index(times, frame_step)) != 1
    else:
        dt = (
            gaps.min()
            if frame_step is None
            else int(np.timedelta64(frame_step) / np.timedelta64(1, "s"))
        )
        broken = gaps != dt
    runs = np.concatenate([[0], np.cumsum(broken)])  # (T,) id of each regular run
    candidates = np.arange(0, max(len(times) - int(span) + 1, 0), dtype=np.int64)
    starts = candidates[runs[candidates] == runs[candidates + int(span) - 1]]
    return starts, runs


def contiguous_starts(
    times: np.ndarray,
    offsets: np.ndarray,
    stride: int = 1,
    frame_step: np.timedelta64 | str | None = None,
    *,
    where: str = "series",
) -> np.ndarray:
    """Window starts over a timed series whose windows never straddle a gap in time.

    ``times`` (datetime64 or cftime dates, increasing) may have gaps (e.g. split years); a
    window is valid when every frame between its first and last lies on the regular grid of
    ``frame_step`` (:func:`gapless_starts`): a timedelta64, a frequency string ("6h", "D",
    "MS": calendar steps such as months count grid positions), or None for the smallest
    spacing found. Starts advance by ``stride``.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    span = int(offsets.max()) + 1
    n = len(times)
    if int(stride) < 1:
        raise ConfigError(f"stride must be >= 1, got {stride}")
    if n < span:
        raise DataError(
            f"{where} has {n} frames but one window needs {span} consecutive frames; "
            "use more data (e.g. more years) or shorter windows"
        )
    starts, segment = gapless_starts(times, span, frame_step, where=where)
    if stride > 1:
        # stride counts frames from the start of each regular run
        first = np.searchsorted(segment, segment[starts])
        starts = starts[(starts - first) % stride == 0]
    if len(starts) == 0:
        longest = int(np.bincount(segment).max())
        raise DataError(
            f"{where}: one window needs {span} consecutive frames but the longest run "
            f"without a gap in time has {longest}; use more data or shorter windows"
        )
    return starts


class ArrayWindows(ForecastDataset):
    """Windows over one normalised (T, C, H, W) series.

    Item ``i`` starts at frame ``s = starts[i]``; input frames are ``s + k * step`` for
    ``k < in_len`` and targets follow on the same grid (or ``s + offsets`` when explicit
    offsets are given; default starts: every ``stride`` frames where a window fits).
    ``times`` (datetime64 or cftime, one per frame) and ``phase_fn`` (times -> int phases) give
    :meth:`target_phases` for the climatology.
    The array is shared, not copied: train/val/test windows over one series cost one array.
    """

    def __init__(
        self,
        array: np.ndarray | torch.Tensor,
        in_len: int,
        out_len: int,
        starts: Sequence[int] | np.ndarray | None = None,
        step: int = 1,
        times: np.ndarray | None = None,
        phase_fn: Callable[[np.ndarray], np.ndarray] | None = None,
        stride: int = 1,
        offsets: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        data = torch.as_tensor(array)
        if data.ndim != 4:
            raise DataError(f"a series must be (T, C, H, W), got shape {tuple(data.shape)}")
        self.data = data.float()  # (T, C, H, W)
        self.in_len, self.out_len, self.step = int(in_len), int(out_len), int(step)
        if offsets is None:
            offsets = window_offsets(in_len, out_len, step)
        self.offsets = np.asarray(offsets, dtype=np.int64).reshape(-1)
        if len(self.offsets) != self.in_len + self.out_len or self.offsets.min() < 0:
            raise ConfigError(
                f"offsets must be {self.in_len + self.out_len} non-negative frame offsets, "
                f"got {self.offsets.tolist()}"
            )
        span = int(self.offsets.max()) + 1
        if starts is None:
            starts = window_starts(len(self.data), 1, span - 1, stride)
        self.starts = np.asarray(starts, dtype=np.int64).reshape(-1)
        if len(self.starts) and (
            self.starts.min() < 0 or self.starts.max() + span > len(self.data)
        ):
            raise DataError(
                f"window starts reach outside the series of {len(self.data)} frames "
                f"(window span {span})"
            )
        if times is not None and len(times) != len(self.data):
            raise DataError(f"times has {len(times)} entries for {len(self.data)} frames")
        self.times = None if times is None else np.asarray(times)
        self.phase_fn = phase_fn

    def __len__(self) -> int:
        return len(self.starts)

    def frame_indices(self, index: int) -> np.ndarray:
        """Series indices of the in_len + out_len frames of item ``index``."""
        return self.starts[index] + self.offsets

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        frames = self.data[torch.from_numpy(self.frame_indices(index))]  # (T_in+T_out, C, H, W)
        return frames[: self.in_len], frames[self.in_len :]

    def target_times(self, index: int) -> np.ndarray | None:
        """datetime64 of each target frame, when the series has times."""
        if self.times is None:
            return None
        return self.times[self.frame_indices(index)[self.in_len :]]

    def target_phases(self, index: int) -> np.ndarray | None:
        times = self.target_times(index)
        if times is None or self.phase_fn is None:
            return None
        return self.phase_fn(times)


class SampleWindows(ForecastDataset):
    """Independent samples: (N, T, C, H, W) clips split into the first in_len frames and
    the next out_len, or separate ``inputs`` (N, T_in, C, H, W) and ``targets``.

    ``indices`` selects a subset of the N samples (e.g. from :func:`random_split`).
    Arrays may be uint8 or float; ``scale`` multiplies after conversion to float32 (e.g.
    1/255), and the optional ``normalizer`` then maps to normalised units.
    """

    def __init__(
        self,
        inputs: np.ndarray | torch.Tensor,
        in_len: int,
        out_len: int,
        targets: np.ndarray | torch.Tensor | None = None,
        indices: Sequence[int] | np.ndarray | None = None,
        scale: float = 1.0,
        normalizer=None,
    ) -> None:
        self.inputs = torch.as_tensor(inputs)
        self.targets = None if targets is None else torch.as_tensor(targets)
        self.in_len, self.out_len = int(in_len), int(out_len)
        if self.inputs.ndim != 5:
            raise DataError(
                f"samples must be (N, T, C, H, W), got shape {tuple(self.inputs.shape)}"
            )
        if self.targets is None:
            if self.inputs.shape[1] < self.in_len + self.out_len:
                raise DataError(
                    f"clips have {self.inputs.shape[1]} frames but {self.in_len} -> "
                    f"{self.out_len} needs {self.in_len + self.out_len}"
                )
        else:
            if self.targets.ndim != 5 or len(self.targets) != len(self.inputs):
                raise DataError(
                    f"targets {tuple(self.targets.shape)} do not match inputs "
                    f"{tuple(self.inputs.shape)}"
                )
            if self.inputs.shape[1] < self.in_len or self.targets.shape[1] < self.out_len:
                raise DataError(
                    f"inputs/targets have {self.inputs.shape[1]}/{self.targets.shape[1]} "
                    f"frames, fewer than {self.in_len}/{self.out_len}"
                )
        n = len(self.inputs)
        self.indices = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
        self.scale = float(scale)
        self.normalizer = normalizer

    def __len__(self) -> int:
        return len(self.indices)

    def _prepare(self, frames: torch.Tensor) -> torch.Tensor:
        out = frames.float() * self.scale if self.scale != 1.0 else frames.float()
        return out if self.normalizer is None else self.normalizer.normalize(out)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = int(self.indices[index])
        if self.targets is None:
            clip = self.inputs[i]  # (T, C, H, W)
            x = clip[: self.in_len]
            y = clip[self.in_len : self.in_len + self.out_len]
        else:
            x = self.inputs[i, -self.in_len :]
            y = self.targets[i, : self.out_len]
        return self._prepare(x), self._prepare(y)


class SubsetWindows(ForecastDataset):
    """A subset of another ForecastDataset that keeps its :meth:`target_phases`."""

    def __init__(self, dataset: ForecastDataset, indices: Sequence[int] | np.ndarray) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        return self.dataset[int(self.indices[index])]

    def target_phases(self, index: int) -> np.ndarray | None:
        return self.dataset.target_phases(int(self.indices[index]))


def tail_split(starts: np.ndarray, span: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Chronological validation tail of a time series' window starts.

    The last ``val_fraction`` of the windows become validation; training keeps only the
    windows that end before the first validation frame, so no frame is shared.
    Returns (train_starts, val_starts).
    """
    starts = np.asarray(starts, dtype=np.int64)
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_val = max(1, int(round(len(starts) * val_fraction)))
    val = starts[len(starts) - n_val :]
    train = starts[starts + span <= val[0]] if len(val) else starts
    if len(train) == 0:
        raise DataError(
            f"{len(starts)} training windows of span {span} are too few to hold out a "
            f"validation tail of {val_fraction:.0%}; use more data or a smaller val_fraction"
        )
    return train, val


def random_split(n: int, val_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random validation subset of ``n`` independent samples: (train_idx, val_idx)."""
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_val = max(1, int(round(n * val_fraction)))
    if n_val >= n:
        raise DataError(f"{n} samples are too few to hold out {val_fraction:.0%} for validation")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


__all__ = [
    "ArrayWindows",
    "contiguous_starts",
    "gapless_starts",
    "SampleWindows",
    "SubsetWindows",
    "random_split",
    "tail_split",
    "window_span",
    "window_offsets",
    "window_starts",
]
