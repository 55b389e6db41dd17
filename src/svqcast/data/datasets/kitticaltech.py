"""KittiCaltech: train on KITTI driving videos, test on Caltech Pedestrian, RGB 128x160, 10 -> 1.

On disk (OpenSTL layout) under ``<root>/kitticaltech_npy/``: ``train_data.npy`` and
``test_data.npy``, uint8 frames (N, 128, 160, 3) of all clips one after another, and
``train_idx.npy`` / ``test_idx.npy``, the first frame of every window. OpenSTL built the idx
files for windows of 11 frames (10 -> 1) that never cross a clip boundary; the files do not
record the clips themselves, so other lengths reuse the same starts and a window longer
than 11 frames may run into the next clip. Frames are read lazily (memory-mapped) and
scaled to [0, 1].

Splits. ``protocol="standard"`` (default): the training windows with the last
``val_fraction`` of start indices (the tail of the KITTI frame sequence, i.e. the last
drives) are validation; training keeps only windows that end before the first validation
frame. ``protocol="openstl"``: all training windows train and validation IS the test set.

Climatology: the per-position mean of every frame covered by a training window.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from svqcast.data.base import ForecastDataset, Splits, check_protocol
from svqcast.data.climatology import Climatology
from svqcast.data.video import check_lengths, video_spec
from svqcast.data.windows import tail_split
from svqcast.errors import DataError, DataNotFoundError

FOLDER = "kitticaltech_npy"
FILES = ("train_data.npy", "train_idx.npy", "test_data.npy", "test_idx.npy")
IN_LEN, OUT_LEN = 10, 1
HEIGHT, WIDTH = 128, 160
CHANNELS = ("red", "green", "blue")


class FrameWindows(ForecastDataset):
    """Windows of ``in_len + out_len`` consecutive frames of a uint8 (N, H, W, C) array.

    Item ``i`` starts at frame ``starts[i]``; frames are scaled to [0, 1] and returned
    channels-first. The array may be memory-mapped: only the frames of an item are read.
    """

    def __init__(self, frames: np.ndarray, starts: np.ndarray, in_len: int, out_len: int):
        self.frames = frames
        self.starts = np.asarray(starts, dtype=np.int64)
        self.in_len, self.out_len = int(in_len), int(out_len)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        s = int(self.starts[index])
        clip = np.array(self.frames[s : s + self.in_len + self.out_len])  # (T, H, W, C), a copy
        frames = torch.from_numpy(clip).permute(0, 3, 1, 2).float().div_(255.0)  # (T, C, H, W)
        return frames[: self.in_len], frames[self.in_len :]


def describe(name: str) -> str:
    return "KittiCaltech: KITTI (train) / Caltech Pedestrian (test) RGB 128x160, 10 -> 1"


def layout(name: str) -> str:
    return (
        f"{FOLDER}/{{train,test}}_data.npy (uint8 (N, {HEIGHT}, {WIDTH}, 3)) and "
        f"{FOLDER}/{{train,test}}_idx.npy (window start indices)"
    )


def is_present(name: str, root: str | Path) -> bool:
    return all((Path(root) / FOLDER / f).is_file() for f in FILES)


def _open(root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(frames memory-mapped, starts) of one split; raises on missing or malformed files."""
    folder = Path(root) / FOLDER
    paths = folder / f"{split}_data.npy", folder / f"{split}_idx.npy"
    for path in paths:
        if not path.is_file():
            raise DataNotFoundError(f"no {path}; expected {layout('kitticaltech')}")
    try:
        data = np.load(paths[0], mmap_mode="r")
        idx = np.load(paths[1])
    except (OSError, ValueError) as exc:
        raise DataError(f"{folder}: unreadable {split} .npy file ({exc})") from exc
    if len(idx) == 0:
        raise DataError(f"{paths[1]} holds no window starts")
    if data.dtype != np.uint8 or data.ndim != 4 or data.shape[-1] != len(CHANNELS):
        raise DataError(f"{paths[0]}: {data.dtype} {data.shape}, need uint8 (N, H, W, 3)")
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise DataError(f"{paths[1]}: {idx.dtype} {idx.shape}, need a 1-D integer array")
    return data, idx.astype(np.int64)


def _check_starts(data: np.ndarray, idx: np.ndarray, span: int, split: str) -> None:
    if idx.min() < 0 or idx.max() + span > len(data):
        raise DataError(
            f"{FOLDER}/{split}_idx.npy has starts outside [0, {len(data) - span}] for windows "
            f"of {span} frames over {len(data)} frames; use shorter windows or rebuild the idx"
        )


def check(name: str, root: str | Path) -> list[str]:
    problems = []
    shapes = {}
    for split in ("train", "test"):
        try:
            data, idx = _open(root, split)
            _check_starts(data, idx, IN_LEN + OUT_LEN, split)
            shapes[split] = data.shape[1:]
        except DataError as exc:
            problems.append(str(exc))
    if len(set(shapes.values())) > 1:
        problems.append(f"train and test frames differ in shape: {shapes}")
    return problems


def load(
    name: str,
    root: str | Path,
    *,
    in_len: int = IN_LEN,
    out_len: int = OUT_LEN,
    protocol: str = "standard",
    val_fraction: float = 0.05,
) -> Splits:
    """KittiCaltech splits in [0, 1]; see the module docstring for the split rules."""
    protocol = check_protocol(protocol)
    check_lengths(in_len, out_len)
    span = in_len + out_len
    train_data, train_idx = _open(root, "train")
    test_data, test_idx = _open(root, "test")
    if train_data.shape[1:] != test_data.shape[1:]:
        raise DataError(
            f"{FOLDER}: train frames {train_data.shape[1:]} and test frames "
            f"{test_data.shape[1:]} differ in shape"
        )
    _check_starts(train_data, train_idx, span, "train")
    _check_starts(test_data, test_idx, span, "test")
    test = FrameWindows(test_data, test_idx, in_len, out_len)
    if protocol == "openstl":
        train_starts, val = np.sort(train_idx), test
    else:
        train_starts, val_starts = tail_split(np.sort(train_idx), span, val_fraction)
        val = FrameWindows(train_data, val_starts, in_len, out_len)
    train = FrameWindows(train_data, train_starts, in_len, out_len)
    climatology = covered_mean(train_data, train_starts, span)
    height, width = train_data.shape[1:3]
    spec = video_spec(name, in_len, out_len, CHANNELS, height, width, protocol)
    spec.extra["climatology"] = "overall mean per pixel over every frame of the training windows"
    return Splits(train, val, test, spec, climatology)


def covered_mean(frames: np.ndarray, starts: np.ndarray, span: int, chunk: int = 2048):
    """(1, C, H, W) mean in [0, 1] of every frame of (N, H, W, C) covered by a window."""
    covered = np.zeros(len(frames), dtype=bool)
    for s in starts:
        covered[s : s + span] = True
    total = np.zeros(frames.shape[1:], dtype=np.float64)  # (H, W, C)
    for a in range(0, len(frames), chunk):
        mask = covered[a : a + chunk]
        if mask.any():
            total += np.asarray(frames[a : a + chunk])[mask].sum(axis=0, dtype=np.float64)
    mean = total / (covered.sum() * 255.0)
    return Climatology(np.moveaxis(mean, -1, 0)[None].astype(np.float32))
