"""TaxiBJ: taxi inflow and outflow over a 32x32 grid of Beijing, half-hourly, 4 -> 4.

On disk (OpenSTL layout): ``<root>/taxibj/dataset.npz`` with ``X_train``, ``Y_train``,
``X_test``, ``Y_test``, each (N, 4, 2, 32, 32) in [-1, 1]: X holds the 4 input frames and Y
the 4 frames that follow. Values are mapped to [0, 1] by (v + 1) / 2, as OpenSTL does, and
the video metric convention applies (per-frame sums over C*H*W), so numbers compare with
OpenSTL's TaxiBJ tables.

Splits. ``protocol="standard"`` (default): the last ``val_fraction`` of the training samples
(the file is chronological) is validation; the ``gap`` samples before it are dropped so
that no validation frame also appears in a training window (consecutive samples overlap by
up to 7 frames). ``protocol="openstl"``: all training samples train and validation IS the
test set. Shorter lengths take the LAST ``in_len`` frames of X and the FIRST ``out_len`` of Y.

Climatology: the per-position mean of every X and Y frame of the training samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from svqcast.data.base import Splits, check_protocol
from svqcast.data.climatology import Climatology
from svqcast.data.spec import Normalizer
from svqcast.data.video import check_lengths, held_out_count, video_spec
from svqcast.data.windows import SampleWindows
from svqcast.errors import ConfigError, DataError, DataNotFoundError

FILE = "taxibj/dataset.npz"
KEYS = ("X_train", "Y_train", "X_test", "Y_test")
FRAMES, CHANNELS, SIZE = 4, ("inflow", "outflow"), 32
TIME_STEP = "30min"  # frames every half hour
# SampleWindows applies normalize(v) = (v - (-1)) / 2, which maps OpenSTL's [-1, 1] to [0, 1].
TO_UNIT = Normalizer(np.full(len(CHANNELS), -1.0), np.full(len(CHANNELS), 2.0))


def describe(name: str) -> str:
    return "TaxiBJ: taxi in/out flow in Beijing, 2x32x32, half-hourly, 4 -> 4"


def layout(name: str) -> str:
    return f"{FILE} with {', '.join(KEYS)}, each (N, 4, 2, 32, 32) in [-1, 1]"


def is_present(name: str, root: str | Path) -> bool:
    return (Path(root) / FILE).is_file()


def _read(root: str | Path) -> dict[str, np.ndarray]:
    path = Path(root) / FILE
    if not path.is_file():
        raise DataNotFoundError(f"no {path}; expected {layout('taxibj')}")
    try:
        with np.load(path) as npz:
            missing = [k for k in KEYS if k not in npz.files]
            if missing:
                raise DataError(f"{path} lacks {', '.join(missing)}; it has {', '.join(npz.files)}")
            return {k: npz[k] for k in KEYS}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable .npz ({exc})") from exc


def _problems(arrays: dict[str, np.ndarray]) -> list[str]:
    problems = []
    for key, arr in arrays.items():
        if arr.ndim != 5 or arr.shape[2:] != (len(CHANNELS), SIZE, SIZE):
            problems.append(f"{key} has shape {arr.shape}, need (N, T, 2, 32, 32)")
        elif not np.issubdtype(arr.dtype, np.floating):
            problems.append(f"{key} has dtype {arr.dtype}, need a float dtype in [-1, 1]")
        elif arr.size and (np.nanmin(arr) < -1.0001 or np.nanmax(arr) > 1.0001):
            problems.append(f"{key} has values outside [-1, 1]; expected OpenSTL's scaling")
        elif not np.isfinite(arr).all():
            problems.append(f"{key} has non-finite values")
    for split in ("train", "test"):
        x, y = arrays[f"X_{split}"], arrays[f"Y_{split}"]
        if len(x) != len(y):
            problems.append(f"X_{split} has {len(x)} samples but Y_{split} has {len(y)}")
    return problems


def check(name: str, root: str | Path) -> list[str]:
    try:
        return _problems(_read(root))
    except DataError as exc:
        return [str(exc)]


def load(
    name: str,
    root: str | Path,
    *,
    in_len: int = FRAMES,
    out_len: int = FRAMES,
    protocol: str = "standard",
    val_fraction: float = 0.1,
    gap: int | None = None,
) -> Splits:
    """TaxiBJ splits in [0, 1]; see the module docstring for the split rules."""
    protocol = check_protocol(protocol)
    check_lengths(in_len, out_len)
    arrays = _read(root)
    problems = _problems(arrays)
    if problems:
        raise DataError(f"{Path(root) / FILE}: {problems[0]}")
    x_train, y_train = arrays["X_train"], arrays["Y_train"]
    if x_train.shape[1] < in_len or y_train.shape[1] < out_len:
        raise DataError(
            f"{Path(root) / FILE} has {x_train.shape[1]} input and {y_train.shape[1]} target "
            f"frames per sample, fewer than the requested {in_len} -> {out_len}"
        )
    n = len(x_train)
    if protocol == "openstl":
        train_idx = np.arange(n)
    else:
        gap = x_train.shape[1] + y_train.shape[1] - 1 if gap is None else int(gap)
        if gap < 0:
            raise ConfigError(f"gap must be >= 0, got {gap}")
        n_val = held_out_count(n, val_fraction, "TaxiBJ training samples")
        if n - n_val - gap < 1:
            raise DataError(f"{n} training samples are too few for validation plus a gap of {gap}")
        train_idx, val_idx = np.arange(n - n_val - gap), np.arange(n - n_val, n)

    def windows(x: np.ndarray, y: np.ndarray, idx: np.ndarray | None = None) -> SampleWindows:
        return SampleWindows(x, in_len, out_len, targets=y, indices=idx, normalizer=TO_UNIT)

    train = windows(x_train, y_train, train_idx)
    test = windows(arrays["X_test"], arrays["Y_test"])
    val = test if protocol == "openstl" else windows(x_train, y_train, val_idx)
    climatology = _train_mean(x_train, y_train, train_idx)
    spec = video_spec(name, in_len, out_len, CHANNELS, SIZE, SIZE, protocol)
    spec.time_step = TIME_STEP
    spec.extra["climatology"] = (
        "overall mean per grid cell over every input and target frame of the training samples"
    )
    return Splits(train, val, test, spec, climatology)


def _train_mean(x: np.ndarray, y: np.ndarray, idx: np.ndarray, chunk: int = 1024) -> Climatology:
    """(1, C, H, W) mean in [0, 1] units over every X and Y frame of the samples ``idx``."""
    total = np.zeros(x.shape[2:])
    for start in range(0, len(idx), chunk):
        part = idx[start : start + chunk]
        total += x[part].sum(axis=(0, 1), dtype=np.float64)
        total += y[part].sum(axis=(0, 1), dtype=np.float64)
    mean = (total / (len(idx) * (x.shape[1] + y.shape[1])) + 1.0) / 2.0
    return Climatology(mean[None].astype(np.float32))
