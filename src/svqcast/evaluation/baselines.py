"""Reference forecasts every model must beat: persistence and the training climatology.

Both work on normalised (B, T, C, H, W) tensors, like the models, so their predictions go
through the same :class:`~svqcast.evaluation.metrics.ForecastMetrics` as a model's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

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


class BaselineEvaluator(nn.Module):
    """Scores persistence (and climatology, when batches carry it) with ForecastMetrics.

    ``update(x, y, clim=None)`` per test batch (normalised tensors) returns the baseline
    forecasts it scored, ``compute()`` -> ``{"persistence": {...}, "climatology": {...}}``
    of floats, ready for :func:`svqcast.evaluation.reports.write_report`; ``reset()`` starts
    over. Climatology is only reported when every batch had a climatology.

    The engine scores its baselines with this evaluator too: ``ForecastModule`` holds one
    as ``test_baselines`` (an ``nn.Module``, so it follows the model's device, and its
    metrics sum over DDP ranks).
    """

    def __init__(self, spec: DataSpec, out_len: int | None = None, prefix: str = "") -> None:
        super().__init__()
        self.spec = spec
        self.metrics = nn.ModuleDict(
            {name: ForecastMetrics(spec, out_len, prefix) for name in BASELINES}
        )
        self.out_len = self.metrics["persistence"].out_len
        self._missing_clim = False

    @property
    def notes(self) -> list[str]:
        return self.metrics["persistence"].notes

    def reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset()
        self._missing_clim = False

    def update(
        self, x: torch.Tensor, y: torch.Tensor, clim: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Score the baselines on one batch; returns their forecasts by name."""
        forecasts = {"persistence": persistence(x, self.out_len)}
        self.metrics["persistence"].update(forecasts["persistence"], y, clim)
        if clim is None:
            self._missing_clim = True
        else:
            forecasts["climatology"] = climatology(clim)
            self.metrics["climatology"].update(forecasts["climatology"], y, clim)
        return forecasts

    def compute(self) -> dict[str, dict[str, float]]:
        clim = self.metrics["climatology"].update_called and not self._missing_clim
        names = [n for n in BASELINES if n != "climatology" or clim]
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
