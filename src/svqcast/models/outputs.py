"""Output of every forecaster: ``forward(x: (B, T_in, C, H, W)) -> ForecastOutput``."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ForecastOutput:
    prediction: torch.Tensor  # (B, T_out, C, H, W)
    aux_loss: torch.Tensor  # scalar: the quantizer's auxiliary loss (zero if none)
    stats: dict[str, torch.Tensor] = field(default_factory=dict)  # quantizer diagnostics
