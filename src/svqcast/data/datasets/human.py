"""Human3.6M: RGB videos of people moving, 256x256, every 5th frame, 4 -> 4.

On disk (OpenSTL layout) under ``<root>/human/``: ``train.txt`` and ``test.txt`` list one
window per line as ``<prefix>,<first frame>`` (e.g. ``images/S11_Walking.60457274_,1621``),
and the frames are ``<prefix><frame:06d>.jpg`` (``images/S11_Walking.60457274_001621.jpg``).
A window takes frames first, first + 5, ... (``step``); frames are read lazily with
Pillow as RGB (OpenSTL reads BGR with OpenCV; the order only matters to channel-wise
numbers), resized bicubically to ``size`` if needed and scaled to [0, 1]. OpenSTL's random
crop/rotation training augmentation is off by default (``augment=True`` turns it on).

Splits. ``protocol="standard"`` (default): a seeded ``val_fraction`` of the training VIDEOS
(lines grouped by prefix, so overlapping windows of one video never straddle the split) is
validation. ``protocol="openstl"``: every training line trains and validation IS the test set.

Climatology: the per-position mean of all frames of ``climatology_samples`` evenly spaced
training windows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from svqcast.data.base import ForecastDataset, Splits, check_protocol
from svqcast.data.video import check_lengths, held_out_count, spread, video_spec, window_mean
from svqcast.errors import ConfigError, DataError, DataNotFoundError

FOLDER = "human"
LISTS = ("train.txt", "test.txt")
IN_LEN, OUT_LEN, SIZE, STEP = 4, 4, 256, 5
CHANNELS = ("red", "green", "blue")
AUGMENT_CROP = 0.875  # OpenSTL crops size x size out of frames resized to size / 0.875


def read_rgb(path: Path, size: int) -> np.ndarray:
    """(3, size, size) float32 in [0, 1] from a jpg, resized bicubically if needed."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.BICUBIC)
            return np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
    except OSError as exc:
        raise DataError(f"cannot read frame {path}: {exc}") from exc


class ListedWindows(ForecastDataset):
    """Windows given as (prefix, first frame): frames ``folder/prefix + f'{j:06d}.jpg'``.

    ``augment`` applies OpenSTL's training augmentation, the same for every frame of a
    window: resize to size / 0.875, a random size x size crop, then a rotation by 90
    degrees clockwise (probability 1/2), else 180 (1/4), else 90 counter-clockwise (1/8).
    It draws from torch's global generator, which DataLoader seeds per worker.
    """

    def __init__(
        self,
        folder: Path,
        entries: list[tuple[str, int]],
        in_len: int,
        out_len: int,
        size: int,
        step: int,
        augment: bool = False,
    ) -> None:
        self.folder, self.entries = Path(folder), entries
        self.in_len, self.out_len = int(in_len), int(out_len)
        self.size, self.step, self.augment = int(size), int(step), bool(augment)

    def __len__(self) -> int:
        return len(self.entries)

    def frame_paths(self, index: int) -> list[Path]:
        prefix, first = self.entries[index]
        last = first + (self.in_len + self.out_len) * self.step
        return [self.folder / f"{prefix}{j:06d}.jpg" for j in range(first, last, self.step)]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        read = int(self.size / AUGMENT_CROP) if self.augment else self.size
        frames = np.stack([read_rgb(p, read) for p in self.frame_paths(index)])
        frames = torch.from_numpy(frames)  # (T, 3, read, read)
        if self.augment:
            frames = self._augment(frames)  # (T, 3, S, S)
        return frames[: self.in_len], frames[self.in_len :]

    def _augment(self, frames: torch.Tensor) -> torch.Tensor:
        top, left = (int(torch.randint(0, frames.shape[-1] - self.size + 1, ())) for _ in "yx")
        frames = frames[..., top : top + self.size, left : left + self.size]
        coins = torch.rand(3) < 0.5
        turns = -1 if coins[0] else 2 if coins[1] else 1 if coins[2] else 0  # -1: clockwise
        return torch.rot90(frames, turns, dims=(-2, -1)).contiguous() if turns else frames


def describe(name: str) -> str:
    return "Human3.6M: RGB 256x256 videos of human motion, every 5th frame, 4 -> 4"


def layout(name: str) -> str:
    return (
        f"{FOLDER}/train.txt and {FOLDER}/test.txt (lines '<prefix>,<first frame>') and "
        f"{FOLDER}/images/*.jpg named <prefix><frame:06d>.jpg"
    )


def is_present(name: str, root: str | Path) -> bool:
    return all((Path(root) / FOLDER / f).is_file() for f in LISTS)


def read_list(path: Path) -> list[tuple[str, int]]:
    """(prefix, first frame) of each non-empty line of a Human3.6M list file."""
    if not path.is_file():
        raise DataNotFoundError(f"no {path}; expected {layout('human')}")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        try:
            entries.append((fields[0], int(fields[1])))
        except (IndexError, ValueError):
            raise DataError(
                f"{path}:{number}: expected '<prefix>,<first frame>', got {line.strip()!r}"
            ) from None
    if not entries:
        raise DataError(f"{path} lists no windows")
    return entries


def _missing(dataset: ListedWindows, every_frame: bool) -> list[Path]:
    missing = []
    for i in range(len(dataset)):
        paths = dataset.frame_paths(i)
        for p in paths if every_frame else (paths[0], paths[-1]):
            if not p.is_file():
                missing.append(p)
    return missing


def check(name: str, root: str | Path) -> list[str]:
    folder = Path(root) / FOLDER
    problems = []
    for list_name in LISTS:
        try:
            entries = read_list(folder / list_name)
        except DataError as exc:
            problems.append(str(exc))
            continue
        missing = _missing(ListedWindows(folder, entries, IN_LEN, OUT_LEN, SIZE, STEP), True)
        if missing:
            problems.append(f"{list_name}: {len(missing)} frames missing, e.g. {missing[0]}")
    return problems


def load(
    name: str,
    root: str | Path,
    *,
    in_len: int = IN_LEN,
    out_len: int = OUT_LEN,
    size: int = SIZE,
    step: int = STEP,
    protocol: str = "standard",
    val_fraction: float = 0.05,
    seed: int = 0,
    climatology_samples: int = 128,
    augment: bool = False,
) -> Splits:
    """Human3.6M splits in [0, 1]; see the module docstring for the split rules.

    ``augment=True`` applies OpenSTL's random crop and rotation to TRAINING windows only
    (OpenSTL trains Human3.6M with it); validation, test and the climatology are unaugmented.
    """
    protocol = check_protocol(protocol)
    check_lengths(in_len, out_len)
    if size < 1 or step < 1:
        raise ConfigError(f"size and step must be >= 1, got size={size}, step={step}")
    folder = Path(root) / FOLDER
    entries = {split: read_list(folder / f"{split}.txt") for split in ("train", "test")}

    def windows(items: list[tuple[str, int]], augment: bool = False) -> ListedWindows:
        return ListedWindows(folder, items, in_len, out_len, size, step, augment)

    for split, items in entries.items():
        missing = _missing(windows(items), every_frame=False)
        if missing:
            raise DataNotFoundError(
                f"{split}.txt names {len(missing)} missing frames, e.g. {missing[0]}; "
                f"expected {layout(name)}"
            )
    test = windows(entries["test"])
    if protocol == "openstl":
        train_entries, val = entries["train"], test
    else:
        videos = sorted({prefix for prefix, _ in entries["train"]})
        n_val = held_out_count(len(videos), val_fraction, "training videos")
        order = np.random.default_rng(seed).permutation(len(videos))
        held = {videos[i] for i in order[:n_val]}
        train_entries = [e for e in entries["train"] if e[0] not in held]
        val = windows([e for e in entries["train"] if e[0] in held])
    train = windows(train_entries, augment)
    plain = windows(train_entries)
    chosen = spread(len(plain), climatology_samples)
    climatology = window_mean(plain, chosen)
    spec = video_spec(
        name, in_len, out_len, CHANNELS, size, size, protocol, step=step, augment=augment
    )
    spec.extra["climatology"] = (
        f"overall mean per pixel over {len(chosen)} evenly spaced training windows (unaugmented)"
    )
    return Splits(train, val, test, spec, climatology)
