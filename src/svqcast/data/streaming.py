"""Training statistics in one streaming float64 pass, and their cache under the data root.

Lazy datasets (``weatherbench2``, ``weather_*`` with ``lazy``) never hold a split in memory:
they feed the TRAIN frames to :class:`StreamingStats` block by block (``chunk_frames``
frames at a time) and get the per-channel normaliser and the per-phase climatology at the
end. The eager ``weather_*`` path feeds its in-memory series through the same blocks, so
both modes give the same statistics to the bit. Peak memory is one block plus the
climatology sums (K x C x H x W float64 for the K phases the data has) and, at the end, the
climatology (P x C x H x W float32), whatever the number of years.

:func:`cached_stats` keeps the result under ``<root>/.svqcast/<kind>/<key hash>.json``
(mean and std) and ``.climatology.npy``, written atomically through :mod:`svqcast.io`.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.data.climatology import Climatology, ClimatologySums
from svqcast.data.spec import Normalizer
from svqcast.errors import DataError
from svqcast.io import atomic_write_bytes, atomic_write_text

#: Bytes of float64 data per block of the statistics pass.
CHUNK_BYTES = 64 * 2**20
CACHE_ROOT = ".svqcast"


def chunk_frames(frame_shape: tuple[int, ...], chunk_bytes: int | None = None) -> int:
    """Frames per block so that one float64 block holds about ``chunk_bytes`` (default
    :data:`CHUNK_BYTES`)."""
    size = CHUNK_BYTES if chunk_bytes is None else int(chunk_bytes)
    return max(1, size // (8 * int(np.prod(frame_shape))))


def rechunk(blocks: Iterable[np.ndarray], chunk: int) -> Iterator[np.ndarray]:
    """The frames of ``blocks`` (arrays concatenated along axis 0) regrouped into blocks of
    exactly ``chunk`` frames (the last may be shorter): the block boundaries then do not
    depend on how the frames were stored (one array, or one file per year)."""
    held: list[np.ndarray] = []
    count = 0
    for block in blocks:
        while len(block):
            take = block[: chunk - count]
            held.append(take)
            count += len(take)
            block = block[len(take) :]
            if count == chunk:
                yield held[0] if len(held) == 1 else np.concatenate(held)
                held, count = [], 0
    if count:
        yield held[0] if len(held) == 1 else np.concatenate(held)


def first_nonfinite(block: np.ndarray) -> tuple[int, tuple[int, ...]] | None:
    """(count, index of the first) non-finite values of ``block``; None when all finite."""
    bad = ~np.isfinite(block)
    if not bad.any():
        return None
    return int(bad.sum()), tuple(int(i) for i in np.argwhere(bad)[0])


class StreamingStats:
    """Per-channel mean / std and per-(phase, position) mean of (n, C, H, W) blocks.

    Channel moments are merged block by block (Chan et al.'s parallel update) in float64;
    the climatology sums raw values in float64 (:class:`~svqcast.data.climatology.
    ClimatologySums`, K x C x H x W float64 for the K phases seen) and is normalised in
    :meth:`result`. A phase absent from the data falls back to the phases of the same hour
    of day (when P is a multiple of 24), else to the overall mean.
    """

    def __init__(self, frame_shape: tuple[int, int, int], n_phases: int = 1) -> None:
        c, h, w = (int(v) for v in frame_shape)
        self.shape, self.n_phases = (c, h, w), int(n_phases)
        self.count, self.mean, self.m2 = 0, np.zeros(c), np.zeros(c)
        self.climatology = ClimatologySums(self.shape, self.n_phases)

    def add(self, block: np.ndarray, phases: np.ndarray | None = None) -> None:
        """Merge ``block`` (n, C, H, W), any float dtype, with one phase per frame."""
        block = np.asarray(block, dtype=np.float64)
        n, (_, h, w) = len(block), self.shape
        if n == 0:
            return
        ph = np.zeros(n, np.int64) if phases is None else np.asarray(phases, dtype=np.int64)
        if len(ph) != n or ph.min() < 0 or ph.max() >= self.n_phases:
            raise ValueError(f"need {n} phases in [0, {self.n_phases}), got {ph.tolist()[:8]}")
        b_mean = block.mean(axis=(0, 2, 3))
        b_m2 = ((block - b_mean[None, :, None, None]) ** 2).sum(axis=(0, 2, 3))
        k = n * h * w
        delta = b_mean - self.mean
        total = self.count + k
        self.mean = self.mean + delta * k / total
        self.m2 = self.m2 + b_m2 + delta**2 * self.count * k / total
        self.count = total
        self.climatology.add(block, ph)

    def result(self) -> tuple[Normalizer, Climatology]:
        """(Normalizer, Climatology in normalised units, float32 (P, C, H, W))."""
        if self.count == 0:
            raise DataError(
                "the statistics pass counted no training frame; check the train years "
                "(and chunk >= 1)"
            )
        std = np.sqrt(self.m2 / self.count)
        norm = Normalizer(self.mean, np.where(std > 0, std, 1.0))
        return norm, self.climatology.result(self.mean, norm.std)


def cache_paths(root: str | Path, kind: str, key: dict[str, Any]) -> tuple[Path, Path]:
    """Where the statistics of ``key`` are kept: (``.json``, ``.climatology.npy``)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    base = Path(root) / CACHE_ROOT / kind / digest
    return base.with_suffix(".json"), base.with_suffix(".climatology.npy")


def _read_cache(meta_path: Path, clim_path: Path, key: dict[str, Any]):
    """(Normalizer, Climatology, meta path) of a complete cache entry for ``key``, else None
    (missing, for another key, or broken: recomputed)."""
    if not (meta_path.is_file() and clim_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("key") != key:
            return None
        norm = Normalizer.from_dict(meta["normalizer"])
        return norm, Climatology(np.load(clim_path)), str(meta_path)
    except (OSError, ValueError, KeyError, EOFError):
        return None


def cached_stats(
    root: str | Path,
    kind: str,
    key: dict[str, Any],
    compute: Callable[[], tuple[Normalizer, Climatology]],
) -> tuple[Normalizer, Climatology, str | None]:
    """(Normalizer, Climatology, cache file) for ``key``: read from the cache under
    ``<root>/.svqcast/<kind>/``, else ``compute()`` and saved there (an unwritable root only
    skips the saving, and the file is then None). A broken or mismatching entry is
    recomputed.

    Several processes (DDP ranks, nodes on a shared filesystem) may load at once: the first
    takes an OS lock on ``<key>.lock`` and computes; the others wait for it, then read its
    files. Both files are written atomically (:mod:`svqcast.io`), the climatology first, so
    a reader sees a complete entry or none (also where the filesystem has no file locks and
    every process computes)."""
    meta_path, clim_path = cache_paths(root, kind, key)
    found = _read_cache(meta_path, clim_path, key)
    if found is not None:
        return found
    from filelock import FileLock

    lock = FileLock(meta_path.with_suffix(".lock"))
    try:
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
        locked = True
    except (OSError, NotImplementedError):  # unwritable root, or no file locks there
        locked = False  # every process computes; the atomic writes keep the files whole
    try:
        found = _read_cache(meta_path, clim_path, key) if locked else None
        if found is not None:  # written while this process waited for the lock
            return found
        norm, clim = compute()
        try:
            buffer = io.BytesIO()
            np.save(buffer, clim.mean)
            atomic_write_bytes(clim_path, buffer.getvalue())
            atomic_write_text(meta_path, json.dumps({"key": key, "normalizer": norm.to_dict()}))
        except OSError:
            return norm, clim, None
        return norm, clim, str(meta_path)
    finally:
        if locked:
            lock.release()


__all__ = [
    "CHUNK_BYTES",
    "StreamingStats",
    "cache_paths",
    "cached_stats",
    "chunk_frames",
    "first_nonfinite",
    "rechunk",
]
