"""One run of the accuracy benchmark, as data: :class:`Task` (a variant, a seed, a budget and
where its record goes). :mod:`.runner` executes tasks and :mod:`.train` trains one; both
import it from here, so neither imports the other for the type.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Task:
    """One training run: a variant, a seed, a budget, where to put the result."""

    variant: str
    seed: int
    dataset_key: str
    budget: str
    data_root: str
    out_dir: str
    threads: int | None = None

    @property
    def key(self) -> str:
        return f"{self.dataset_key}-{self.variant}-seed{self.seed}"

    def result_path(self) -> Path:
        return Path(self.out_dir) / "results" / self.budget / f"{self.key}.json"
