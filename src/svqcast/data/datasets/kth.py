"""KTH Action: grey videos of 25 people doing 6 actions, resized to 128x128, 10 -> 20.

On disk (OpenSTL layout): ``<root>/kth/<action>/personNN_<action>_dK_uncomp/image_NNNN.jpg``
for the actions boxing, handclapping, handwaving, jogging, running and walking. Persons 1-16
are training, 17-25 test. Frames are read lazily with Pillow: the first band (the frames are
grey stored as RGB), resized bilinearly in floating point to ``size`` x ``size`` and scaled
to [0, 1].

Windows stay inside one clip and inside a run of consecutive frame numbers, and are placed
as in OpenSTL: counted back from the end of the run, one every ``in_len + out_len`` frames
(no overlap) for boxing, handclapping, handwaving and walking, and one every 3 frames for
jogging and running, whose people leave the frame quickly. ``stride`` overrides both.

Splits. ``protocol="standard"`` (default): the clips of ``val_persons`` (default person 16)
are validation and never train. ``protocol="openstl"``: persons 1-16 all train and
validation IS the test set.

Climatology: the per-position mean of all frames of ``climatology_samples`` evenly spaced
training windows (reading every training frame would take minutes).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from svqcast.data.base import ForecastDataset, Splits, check_protocol
from svqcast.data.video import check_lengths, spread, video_spec, window_mean
from svqcast.errors import ConfigError, DataError, DataNotFoundError

FOLDER = "kth"
ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
FAST_ACTIONS = ("jogging", "running")  # OpenSTL: windows every 3 frames
FAST_STRIDE = 3
TRAIN_PERSONS = tuple(range(1, 17))
TEST_PERSONS = tuple(range(17, 26))
IN_LEN, OUT_LEN, SIZE = 10, 20, 128
_CLIP = re.compile(r"person(\d+)_([a-z]+)_d(\d+)")
_FRAME = re.compile(r"image_(\d+)\.jpg$")


def read_grey(path: Path, size: int) -> np.ndarray:
    """(size, size) float32 in [0, 1]: first band of a jpg, resized bilinearly in float."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            band = img.getchannel(0).convert("F")
            if band.size != (size, size):
                band = band.resize((size, size), Image.BILINEAR)
            return np.asarray(band, dtype=np.float32) / 255.0
    except OSError as exc:
        raise DataError(f"cannot read frame {path}: {exc}") from exc


class ClipWindows(ForecastDataset):
    """Windows over clips of jpg frames, read on demand.

    ``clips[k]`` lists the frame files of clip k in time order; ``windows`` is (M, 2):
    (clip, first frame) of each item.
    """

    def __init__(
        self,
        clips: Sequence[Sequence[Path]],
        windows: np.ndarray,
        in_len: int,
        out_len: int,
        size: int,
    ) -> None:
        self.clips = clips
        self.windows = np.asarray(windows, dtype=np.int64).reshape(-1, 2)
        self.in_len, self.out_len, self.size = int(in_len), int(out_len), int(size)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        clip, start = self.windows[index]
        paths = self.clips[clip][start : start + self.in_len + self.out_len]
        frames = np.stack([read_grey(p, self.size) for p in paths])[:, None]  # (T, 1, S, S)
        frames = torch.from_numpy(frames)
        return frames[: self.in_len], frames[self.in_len :]


def describe(name: str) -> str:
    return "KTH Action: grey 128x128 videos of 6 actions, persons 1-16 train / 17-25 test, 10 -> 20"


def layout(name: str) -> str:
    return (
        f"{FOLDER}/<action>/personNN_<action>_dK_uncomp/image_NNNN.jpg for the actions "
        f"{', '.join(ACTIONS)}"
    )


def is_present(name: str, root: str | Path) -> bool:
    return all((Path(root) / FOLDER / a).is_dir() for a in ACTIONS)


def scan(root: str | Path) -> list[tuple[int, str, list[Path]]]:
    """(person, action, frame files in order) for every clip folder with frames."""
    folder = Path(root) / FOLDER
    missing = [a for a in ACTIONS if not (folder / a).is_dir()]
    if missing:
        raise DataNotFoundError(
            f"no {', '.join(str(folder / a) for a in missing)}; expected {layout('kth')}"
        )
    clips = []
    for action in ACTIONS:
        for clip_dir in sorted((folder / action).iterdir()):
            match = _CLIP.match(clip_dir.name)
            if not clip_dir.is_dir() or match is None:
                continue
            numbered = []
            for f in clip_dir.iterdir():
                m = _FRAME.match(f.name)
                if m:
                    numbered.append((int(m.group(1)), f))
            if numbered:
                numbered.sort()
                clips.append((int(match.group(1)), action, numbered))
    return clips


def clip_starts(numbers: Sequence[int], span: int, stride: int) -> list[int]:
    """Window starts inside runs of consecutive frame numbers, counted back from run ends."""
    numbers = np.asarray(numbers)
    breaks = np.flatnonzero(np.diff(numbers) != 1) + 1
    starts: list[int] = []
    for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(numbers)]):
        starts.extend(range(int(hi) - span, int(lo) - 1, -stride))
    return sorted(starts)


def check(name: str, root: str | Path) -> list[str]:
    try:
        clips = scan(root)
    except DataError as exc:
        return [str(exc)]
    problems = []
    persons = {p for p, _, _ in clips}
    for group, wanted in (("training", TRAIN_PERSONS), ("test", TEST_PERSONS)):
        if not persons & set(wanted):
            problems.append(f"no clips of {group} persons {wanted[0]}-{wanted[-1]} under kth/")
    short = [frames[0][1].parent.name for _, _, frames in clips if len(frames) < IN_LEN + OUT_LEN]
    if short:
        problems.append(
            f"{len(short)} clips have fewer than {IN_LEN + OUT_LEN} frames, e.g. {short[0]}"
        )
    return problems


def load(
    name: str,
    root: str | Path,
    *,
    in_len: int = IN_LEN,
    out_len: int = OUT_LEN,
    size: int = SIZE,
    protocol: str = "standard",
    val_persons: Sequence[int] = (16,),
    stride: int | None = None,
    climatology_samples: int = 128,
) -> Splits:
    """KTH splits in [0, 1]; see the module docstring for windows and splits."""
    protocol = check_protocol(protocol)
    check_lengths(in_len, out_len)
    if size < 1 or (stride is not None and stride < 1):
        raise ConfigError(f"size and stride must be >= 1, got size={size}, stride={stride}")
    val_persons = tuple(int(p) for p in val_persons)
    if protocol == "standard" and not set(val_persons) <= set(TRAIN_PERSONS):
        raise ConfigError(f"val_persons must be training persons 1-16, got {val_persons}")
    span = in_len + out_len
    paths: list[list[Path]] = []
    groups: dict[str, list[tuple[int, int]]] = {"train": [], "val": [], "test": []}
    for person, action, numbered in scan(root):
        if person in TEST_PERSONS:
            group = "test"
        elif person in TRAIN_PERSONS:
            group = "val" if protocol == "standard" and person in val_persons else "train"
        else:
            continue
        step = stride or (FAST_STRIDE if action in FAST_ACTIONS else span)
        starts = clip_starts([n for n, _ in numbered], span, step)
        groups[group].extend((len(paths), s) for s in starts)
        paths.append([f for _, f in numbered])
    wanted = ("train", "test") if protocol == "openstl" else ("train", "val", "test")
    for group in wanted:
        if not groups[group]:
            raise DataError(
                f"no {group} window of {span} consecutive frames under {Path(root) / FOLDER}; "
                "check the person numbers and clip lengths, or use shorter windows"
            )
    train, test = (ClipWindows(paths, groups[g], in_len, out_len, size) for g in ("train", "test"))
    val = (
        test if protocol == "openstl" else ClipWindows(paths, groups["val"], in_len, out_len, size)
    )
    chosen = spread(len(train), climatology_samples)
    climatology = window_mean(train, chosen)
    spec = video_spec(name, in_len, out_len, ("grey",), size, size, protocol)
    spec.extra["climatology"] = (
        f"overall mean per pixel over {len(chosen)} evenly spaced training windows"
    )
    return Splits(train, val, test, spec, climatology)
