"""Reference forecasts every model must beat: persistence and the training climatology.

Both work on normalised (B, T, C, H, W) tensors, like the models, so their predictions go
through the same :class:`~svqcast.evaluation.metrics.ForecastMetrics` as a model's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from svqcast.data.spec import DataSpec
from svqcast.errors import ConfigError
from svqcast.evaluation.metrics import ForecastMetrics

BASELINES: tuple[str, ...] = ("persistence", "climatology")


def persistence(x: torch.Tensor, out_len: int) -> torch.Tensor:
    """The last input frame repeated ``out_len`` times: (B, T_in, C, H, W) -> (B, out_len, ...)."""
    if x.ndim != 5 or x.shape[1] < 1:
        raise ConfigError(f"persistence needs inputs (B, T_in, C, H, W), got {tuple(x.shape)}")
    if out_len < 1:
        raise ConfigError(f"persistence needs out_len >= 1, got {out_len}")
    return x[:, -1:].repeat(1, out_len, 1, 1, 1)  # (B, out_len, C, H, W)


def climatology(clim: torch.Tensor) -> torch.Tensor:
    """The climatology forecast: the batch's third element (training mean for each target)."""
    if clim.ndim != 5:
        raise ConfigError(f"climatology needs (B, T_out, C, H, W), got {tuple(clim.shape)}")
    return clim


class BaselineEvaluator:
    """Scores persistence (and climatology, when batches carry it) with ForecastMetrics.

    ``update(x, y, clim=None)`` per test batch, ``compute()`` -> ``{"persistence": {...},
    "climatology": {...}}`` of floats, ready for :func:`svqcast.evaluation.metrics.write_report`.
    Climatology is only reported when every batch had a climatology.
    """

    def __init__(self, spec: DataSpec, out_len: int | None = None, prefix: str = "") -> None:
        self.spec = spec
        self.metrics = {name: ForecastMetrics(spec, out_len, prefix) for name in BASELINES}
        self.out_len = self.metrics["persistence"].out_len
        self._missing_clim = False

    def to(self, device: torch.device | str) -> BaselineEvaluator:
        for m in self.metrics.values():
            m.to(device)
        return self

    @property
    def notes(self) -> list[str]:
        return self.metrics["persistence"].notes

    def update(self, x: torch.Tensor, y: torch.Tensor, clim: torch.Tensor | None = None) -> None:
        self.metrics["persistence"].update(persistence(x, self.out_len), y, clim)
        if clim is None:
            self._missing_clim = True
        else:
            self.metrics["climatology"].update(climatology(clim), y, clim)

    def compute(self) -> dict[str, dict[str, float]]:
        names = [n for n in BASELINES if n != "climatology" or not self._missing_clim]
        return {n: {k: float(v) for k, v in self.metrics[n].compute().items()} for n in names}


def evaluate_baselines(
    batches: Iterable[Sequence[torch.Tensor]],
    spec: DataSpec,
    out_len: int | None = None,
    prefix: str = "",
) -> dict[str, dict[str, float]]:
    """Score the baselines over ``(x, y)`` or ``(x, y, clim)`` batches (e.g. a test loader)."""
    evaluator = BaselineEvaluator(spec, out_len, prefix)
    seen = False
    for batch in batches:
        if len(batch) not in (2, 3):
            raise ConfigError(f"baseline batches must be (x, y) or (x, y, clim), got {len(batch)}")
        evaluator.update(*batch)
        seen = True
    if not seen:
        raise ConfigError("evaluate_baselines got no batches: is the test split empty?")
    return evaluator.compute()


__all__ = ["BASELINES", "BaselineEvaluator", "climatology", "evaluate_baselines", "persistence"]
