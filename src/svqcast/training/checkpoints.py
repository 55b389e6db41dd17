"""Checkpoint plumbing: atomic checkpoint writes, the RNG states of an exact resume, and the
check that a checkpoint's weights fit a model (one line naming the first difference)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn

from svqcast.errors import CheckpointError
from svqcast.io import atomic_write_with


def has_checkpoints(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds any ``*.ckpt`` file."""
    return Path(folder).is_dir() and any(Path(folder).glob("*.ckpt"))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temp file, flushed to disk, then ``os.replace``-d.

    Lightning's own TorchCheckpointIO writes through an fsspec transaction (a temp file
    moved on commit) for local paths; this makes the guarantee explicit and local: a
    reader (or a resume after a crash) sees either the old file or the complete new one.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options=None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options")
        atomic_write_with(path, lambda f: torch.save(checkpoint, f), fsync=True)


def rng_states() -> dict[str, Any]:
    """Global RNG states of torch, CUDA, NumPy and Python, as tensors and plain types only
    (loadable with ``torch.load(weights_only=True)``, which Lightning uses to resume)."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    version, state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": [version, torch.tensor(state, dtype=torch.int64), gauss],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` saved."""
    import random

    import numpy as np

    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    version, state, gauss = states["python"]
    random.setstate((version, tuple(int(v) for v in state.tolist()), gauss))


def check_state_dict(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Raise CheckpointError naming the first missing/unexpected/mis-shaped weight."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = [
            f"{what} {keys[0]!r} (+{len(keys) - 1} more)"
            for what, keys in (("missing", missing), ("unexpected", unexpected))
            if keys
        ]
        raise CheckpointError(
            f"checkpoint does not match the model: {', '.join(parts)}; build the model with "
            "the checkpoint's model options (its config.yaml)"
        )
    for key, value in state.items():
        if tuple(own[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"checkpoint does not match the model: {key!r} has shape {tuple(value.shape)} "
                f"in the checkpoint but {tuple(own[key].shape)} in the model; use the "
                "checkpoint's model and data options (its config.yaml)"
            )
