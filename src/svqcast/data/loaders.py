"""Resumable, rank-sharded data loading: the order of every epoch depends only on
``(seed, epoch)``, and a loader restarted mid-epoch skips exactly the batches it had served.

Exact resume (mid-epoch included) needs three things Lightning does not do by itself: a
sampler whose order depends only on ``(seed, epoch)`` (:class:`EpochSampler`), a data loader
that remembers how many batches of the epoch it has handed out and skips them after a restart
(:class:`ResumableLoader`, picked up by Lightning through ``state_dict`` /
``load_state_dict``), and the global RNG states saved in the checkpoint (done by the
training module). Evaluation loaders shard the data across DDP ranks WITHOUT padding, so
test metrics summed over ranks count every test sample exactly once; use them with
``Trainer(use_distributed_sampler=False)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def _dist_info() -> tuple[int, int]:
    """(world size, rank) of the default process group, (1, 0) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


class EpochSampler(Sampler[int]):
    """Indices whose order depends only on ``(seed, epoch)``; sharded across DDP ranks.

    ``pad=True`` (training) repeats a few indices so that every rank gets the same number of
    samples (DDP needs equal step counts); ``pad=False`` (evaluation) gives rank r the indices
    r, r + world, ... so that every sample is seen exactly once over all ranks.
    ``resume_at(epoch, n)`` drops the first ``n`` indices of that epoch's next iteration only
    (mid-epoch resume); it is checked when iteration starts, after Lightning's set_epoch.
    """

    def __init__(
        self,
        length: int,
        *,
        shuffle: bool,
        seed: int = 0,
        pad: bool = True,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        world, this_rank = _dist_info()
        self.length = length
        self.shuffle = shuffle
        self.seed = seed
        self.pad = pad
        self.num_replicas = world if num_replicas is None else num_replicas
        self.rank = this_rank if rank is None else rank
        self.epoch = 0
        self.skipped = 0  # indices dropped by the current/last iteration
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, indices: int) -> None:
        self._resume = (epoch, indices)

    def _indices(self) -> list[int]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.length, generator=gen).tolist()
        else:
            order = list(range(self.length))
        if self.pad and self.num_replicas > 1:
            total = math.ceil(self.length / self.num_replicas) * self.num_replicas
            order = order + order[: total - self.length]
        return order[self.rank :: self.num_replicas]

    def __len__(self) -> int:
        if self.pad:
            return math.ceil(self.length / self.num_replicas)
        return len(range(self.rank, self.length, self.num_replicas))

    def __iter__(self) -> Iterator[int]:
        self.skipped = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            self.skipped = self._resume[1]
        self._resume = None
        return iter(self._indices()[self.skipped :])


class ResumableLoader(DataLoader):
    """A DataLoader over an :class:`EpochSampler` that Lightning can checkpoint mid-epoch.

    ``state_dict()`` records the epoch and how many batches of it were handed out;
    ``load_state_dict()`` makes the next iteration of that epoch skip exactly those
    batches. Lightning calls both (a loader with these two methods counts as stateful) and
    sets the epoch via ``sampler.set_epoch``. The length stays the full epoch length, as
    Lightning expects. The loader draws its worker seeds from its own generator, seeded by
    (seed, epoch), so it never consumes the global RNG (which would shift the model's random
    numbers after a resume).
    """

    def __init__(self, dataset: Dataset, sampler: EpochSampler, **kwargs: Any) -> None:
        super().__init__(dataset, sampler=sampler, generator=torch.Generator(), **kwargs)
        self._counted = 0

    def __iter__(self) -> Iterator[Any]:
        sampler: EpochSampler = self.sampler  # type: ignore[assignment]
        sampler.skipped = 0
        self._counted = 0
        self.generator.manual_seed(sampler.seed * 1_000_003 + sampler.epoch)
        # datasets that draw fresh samples every epoch (Moving MNIST's generated training
        # sequences) follow the sampler's epoch, so a resumed run sees the same samples
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(sampler.epoch)
        return _Counting(self, super().__iter__())  # the real iterator is created now

    def state_dict(self) -> dict[str, int]:
        sampler: EpochSampler = self.sampler  # type: ignore[assignment]
        served = sampler.skipped // (self.batch_size or 1) + self._counted
        return {"epoch": sampler.epoch, "batches": served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler: EpochSampler = self.sampler  # type: ignore[assignment]
        epoch, batches = int(state["epoch"]), int(state["batches"])
        if batches >= len(self):  # saved on the epoch's last batch: the next epoch is due
            sampler.set_epoch(epoch + 1)
            return
        sampler.set_epoch(epoch)
        sampler.resume_at(epoch, batches * (self.batch_size or 1))


class _Counting:
    """Iterator wrapper counting the batches a :class:`ResumableLoader` has handed out."""

    def __init__(self, loader: ResumableLoader, it: Iterator[Any]) -> None:
        self.loader, self.it = loader, it

    def __iter__(self) -> _Counting:
        return self

    def __next__(self) -> Any:
        batch = next(self.it)
        self.loader._counted += 1
        return batch


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    train: bool,
    seed: int = 0,
    num_workers: int = 0,
    **kwargs: Any,
) -> ResumableLoader:
    """A resumable loader: shuffled and padded across ranks for training, in order otherwise."""
    sampler = EpochSampler(len(dataset), shuffle=train, seed=seed, pad=train)
    return ResumableLoader(
        dataset,
        sampler,
        batch_size=batch_size,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        **kwargs,
    )
