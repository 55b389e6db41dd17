"""Moving MNIST: two handwritten digits bouncing in a 64x64 frame (OpenSTL's benchmark).

On disk (OpenSTL layout) under ``<root>/moving_mnist/``:

- ``train-images-idx3-ubyte.gz`` (or uncompressed): MNIST digits in the idx format, from
  which TRAINING sequences are generated on the fly;
- ``mnist_test_seq.npy``: the fixed test set, uint8 (20, N, 64, 64) with N = 10,000.

A generated sequence places ``num_digits`` 28x28 digits at random positions of the 64x64
canvas, moves each along a random direction by a tenth of the free range per frame,
reflects it at the edges and composites the digits by pixel-wise maximum (as OpenSTL does).
Generation is seeded: item ``i`` of epoch ``e`` always gives the same sequence, so runs are
reproducible, and :meth:`GeneratedSequences.set_epoch` draws fresh sequences per epoch.

Splits. ``protocol="standard"`` (default): a seeded ``val_fraction`` of the digit images is
held out, validation is ``val_size`` fixed sequences generated from those digits only and
training uses the rest; the test set is the fixed file. ``protocol="openstl"``: training
uses all digits and validation IS the test set, as in OpenSTL's published numbers.

The climatology (per-position mean, P = 1) averages ``climatology_samples`` generated
training sequences (a fixed seed) since the training set has no fixed extent.

The idx reader/writer and the shared video helpers at the end of this file are also used by
``moving_digits``, ``kth``, ``kitticaltech`` and ``human``.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from svqcast.data.base import ForecastDataset, Splits, check_protocol
from svqcast.data.video import check_lengths, held_out_count, video_spec, window_mean
from svqcast.errors import ConfigError, DataError, DataNotFoundError

FOLDER = "moving_mnist"
DIGITS_FILE = "train-images-idx3-ubyte"
TEST_FILE = "mnist_test_seq.npy"
CANVAS = 64
DIGIT = 28
STEP = 0.1  # fraction of the free range (canvas - digit) moved per frame
IN_LEN, OUT_LEN = 10, 10

# ---------------------------------------------------------------------------- idx format
# A big-endian header: two zero bytes, a type code (0x08 = unsigned byte), the number of
# dimensions, then one int32 per dimension; the data follow in C order.
_IDX_UBYTE = 0x08


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file of unsigned bytes (gzip-compressed if the name ends in .gz)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read idx file {path}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _IDX_UBYTE:
        raise DataError(f"{path} is not an idx file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated inside its idx header")
    dims = struct.unpack(f">{ndim}i", raw[4:header])
    if len(raw) - header != int(np.prod(dims)):
        raise DataError(f"{path} holds {len(raw) - header} data bytes but its header says {dims}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array as an idx file (gzip-compressed if the name ends in .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _IDX_UBYTE, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


# ------------------------------------------------------------------------ sequences


def trajectory(n_frames: int, rng: np.random.Generator, free: int) -> np.ndarray:
    """(n_frames, 2) integer top-left corners (row, col) of one bouncing digit.

    The position lives in [0, 1]^2 and moves by STEP per frame; crossing an edge clamps it
    to the edge and reverses that velocity component (OpenSTL's rule). Plain floats: this
    loop runs for every generated sequence.
    """
    y, x = (float(v) for v in rng.random(2))
    theta = float(rng.random()) * 2 * np.pi
    vy, vx = np.sin(theta) * STEP, np.cos(theta) * STEP
    out = np.empty((n_frames, 2))
    for t in range(n_frames):
        y, x = y + vy, x + vx
        if y <= 0.0 or y >= 1.0:
            y, vy = min(max(y, 0.0), 1.0), -vy
        if x <= 0.0 or x >= 1.0:
            x, vx = min(max(x, 0.0), 1.0), -vx
        out[t] = y, x
    return (out * free).astype(np.int64)


def bouncing_digits(
    digits: np.ndarray,
    n_frames: int,
    rng: np.random.Generator,
    num_digits: int = 2,
    canvas: int = CANVAS,
) -> np.ndarray:
    """One uint8 (n_frames, canvas, canvas) sequence of ``num_digits`` random digits."""
    size = digits.shape[-1]
    frames = np.zeros((n_frames, canvas, canvas), dtype=np.uint8)
    for _ in range(num_digits):
        digit = digits[rng.integers(len(digits))]
        for t, (top, left) in enumerate(trajectory(n_frames, rng, canvas - size)):
            patch = frames[t, top : top + size, left : left + size]
            np.maximum(patch, digit, out=patch)
    return frames


class GeneratedSequences(ForecastDataset):
    """Moving-digit sequences generated on the fly from ``digits`` (n, 28, 28) uint8.

    Item ``i`` is drawn from a generator seeded by (seed, epoch, i): reproducible, and new
    for each epoch once :meth:`set_epoch` is called (``fixed=True`` ignores the epoch, for a
    validation set that must not change). Without set_epoch every epoch sees the same
    ``length`` sequences.
    """

    def __init__(
        self,
        digits: np.ndarray,
        in_len: int,
        out_len: int,
        length: int,
        seed: int = 0,
        num_digits: int = 2,
        fixed: bool = False,
    ) -> None:
        if len(digits) == 0:
            raise DataError("no digit images to generate Moving MNIST sequences from")
        self.digits = digits
        self.in_len, self.out_len = int(in_len), int(out_len)
        self.length, self.seed, self.num_digits = int(length), int(seed), int(num_digits)
        self.fixed = fixed
        # In shared memory, so that DataLoader workers (persistent ones too) see set_epoch.
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    def set_epoch(self, epoch: int) -> None:
        """Draw the sequences of another epoch (no effect when ``fixed``).

        Call it before the epoch's DataLoader iterator is created (e.g. in
        ``on_train_epoch_start``); running workers read the new epoch from shared memory.
        """
        self._epoch.fill_(int(epoch))

    def __len__(self) -> int:
        return self.length

    def sequence(self, index: int) -> np.ndarray:
        """uint8 (in_len + out_len, 64, 64) frames of item ``index``."""
        if not 0 <= index < self.length:
            raise IndexError(index)
        epoch = 0 if self.fixed else self.epoch
        rng = np.random.default_rng([self.seed, epoch, index])
        return bouncing_digits(self.digits, self.in_len + self.out_len, rng, self.num_digits)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        frames = torch.from_numpy(self.sequence(index)).float().div_(255.0)
        frames = frames.unsqueeze(1)  # (T, 1, 64, 64)
        return frames[: self.in_len], frames[self.in_len :]


class FixedSequences(ForecastDataset):
    """The fixed test file: uint8 (T, N, H, W) sequences, time first as in OpenSTL."""

    def __init__(self, array: np.ndarray, in_len: int, out_len: int) -> None:
        self.array = array
        self.in_len, self.out_len = int(in_len), int(out_len)

    def __len__(self) -> int:
        return self.array.shape[1]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        clip = np.asarray(self.array[: self.in_len + self.out_len, index])  # (T, H, W)
        frames = torch.from_numpy(clip.astype(np.float32) / 255.0).unsqueeze(1)
        return frames[: self.in_len], frames[self.in_len :]


# ------------------------------------------------------------------------- contract


def digits_path(folder: Path) -> Path | None:
    """The digits file of a Moving MNIST folder, compressed or not, if present."""
    for name in (DIGITS_FILE + ".gz", DIGITS_FILE):
        if (folder / name).is_file():
            return folder / name
    return None


def describe(name: str) -> str:
    return "Moving MNIST: 2 bouncing digits, 64x64 grey, 10 -> 10 (train generated on the fly)"


def layout(name: str) -> str:
    return (
        f"{FOLDER}/{DIGITS_FILE}.gz (MNIST training digits, idx format; .gz optional) and "
        f"{FOLDER}/{TEST_FILE} (uint8 (20, 10000, 64, 64), time first)"
    )


def is_present(name: str, root: str | Path) -> bool:
    folder = Path(root) / FOLDER
    return digits_path(folder) is not None and (folder / TEST_FILE).is_file()


def check_folder(folder: Path, layout_text: str) -> list[str]:
    """Problems with the digits and test files of a Moving MNIST-format folder."""
    problems: list[str] = []
    path = digits_path(folder)
    if path is None:
        problems.append(f"missing {folder / DIGITS_FILE}[.gz]; expected {layout_text}")
    else:
        try:
            digits = read_idx(path)
            if digits.ndim != 3 or digits.shape[1:] != (DIGIT, DIGIT) or len(digits) < 2:
                problems.append(f"{path}: digits of shape {digits.shape}, need (n>=2, 28, 28)")
        except DataError as exc:
            problems.append(str(exc))
    test = folder / TEST_FILE
    if not test.is_file():
        problems.append(f"missing {test}; expected {layout_text}")
    else:
        try:
            arr = np.load(test, mmap_mode="r")
            if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[2:] != (CANVAS, CANVAS):
                problems.append(
                    f"{test}: {arr.dtype} {arr.shape}, need uint8 (T, N, {CANVAS}, {CANVAS})"
                )
        except (OSError, ValueError) as exc:
            problems.append(f"{test}: unreadable .npy ({exc})")
    return problems


def check(name: str, root: str | Path) -> list[str]:
    return check_folder(Path(root) / FOLDER, layout(name))


def load(
    name: str,
    root: str | Path,
    *,
    in_len: int = IN_LEN,
    out_len: int = OUT_LEN,
    protocol: str = "standard",
    val_fraction: float = 0.1,
    val_size: int = 1000,
    train_size: int = 10000,
    num_digits: int = 2,
    climatology_samples: int = 256,
    seed: int = 0,
) -> Splits:
    """Moving MNIST splits; see the module docstring for the generation and split rules."""
    return load_folder(
        name,
        Path(root) / FOLDER,
        layout(name),
        in_len=in_len,
        out_len=out_len,
        protocol=protocol,
        val_fraction=val_fraction,
        val_size=val_size,
        train_size=train_size,
        num_digits=num_digits,
        climatology_samples=climatology_samples,
        seed=seed,
    )


def load_folder(
    name: str,
    folder: Path,
    layout_text: str,
    *,
    in_len: int,
    out_len: int,
    protocol: str,
    val_fraction: float,
    val_size: int,
    train_size: int,
    num_digits: int,
    climatology_samples: int,
    seed: int,
) -> Splits:
    """Splits from a folder in the Moving MNIST format (shared with ``moving_digits``)."""
    protocol = check_protocol(protocol)
    check_lengths(in_len, out_len)
    for key, value in (("train_size", train_size), ("val_size", val_size)):
        if value < 1:
            raise ConfigError(f"{key} must be >= 1, got {value}")
    if num_digits < 1:
        raise ConfigError(f"num_digits must be >= 1, got {num_digits}")
    path = digits_path(folder)
    if path is None:
        raise DataNotFoundError(f"no {folder / DIGITS_FILE}[.gz]; expected {layout_text}")
    test_path = folder / TEST_FILE
    if not test_path.is_file():
        raise DataNotFoundError(f"no {test_path}; expected {layout_text}")
    digits = read_idx(path)
    if digits.ndim != 3 or digits.shape[1:] != (DIGIT, DIGIT):
        raise DataError(f"{path}: digits of shape {digits.shape}, need (n, 28, 28)")
    try:
        test_array = np.load(test_path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise DataError(f"{test_path}: unreadable .npy ({exc})") from exc
    if test_array.ndim != 4 or test_array.shape[2:] != (CANVAS, CANVAS):
        raise DataError(f"{test_path}: shape {test_array.shape}, need (T, N, 64, 64) uint8")
    if test_array.dtype != np.uint8:
        raise DataError(f"{test_path}: dtype {test_array.dtype}, need uint8")
    if test_array.shape[0] < in_len + out_len:
        raise DataError(
            f"{test_path} has {test_array.shape[0]} frames per sequence but {in_len} -> "
            f"{out_len} needs {in_len + out_len}; use shorter lengths"
        )
    test = FixedSequences(test_array, in_len, out_len)
    if protocol == "openstl":
        train_digits = digits
        val = test
    else:
        n_val = held_out_count(len(digits), val_fraction, "digit images")
        order = np.random.default_rng(seed).permutation(len(digits))
        val_digits, train_digits = digits[np.sort(order[:n_val])], digits[np.sort(order[n_val:])]
        val = GeneratedSequences(
            val_digits, in_len, out_len, val_size, seed + 1, num_digits, fixed=True
        )
    train = GeneratedSequences(train_digits, in_len, out_len, train_size, seed, num_digits)
    sample = GeneratedSequences(
        train_digits, in_len, out_len, climatology_samples, seed + 2, num_digits, fixed=True
    )
    climatology = window_mean(sample, range(len(sample)))
    spec = video_spec(name, in_len, out_len, ("intensity",), CANVAS, CANVAS, protocol)
    spec.extra["climatology"] = (
        f"overall mean per pixel over {len(sample)} generated training sequences"
    )
    return Splits(train, val, test, spec, climatology)
