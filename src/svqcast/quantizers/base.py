"""The quantizer contract shared by SVQ, SVQ-raw, the library baselines and the identity.

Every quantizer maps a latent map ``z`` of shape (N, C, H, W) to a :class:`QuantizerOutput`
with a map of the same shape, a scalar auxiliary loss (zero if the method has none) and a
dict of scalar diagnostics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class QuantizerOutput:
    quantized: torch.Tensor  # (N, C, H, W), same shape and dtype as the input
    loss: torch.Tensor  # scalar; zero when the method has no auxiliary loss
    stats: dict[str, torch.Tensor] = field(default_factory=dict)  # scalar diagnostics


class Quantizer(nn.Module):
    """Base class: subclasses implement ``forward(z) -> QuantizerOutput``.

    ``collect_stats`` switches the (possibly costly) diagnostics on or off; it is off by
    default so that training pays nothing for them.
    """

    dim: int
    collect_stats: bool = False

    @staticmethod
    def check_input(z: torch.Tensor, dim: int) -> None:
        if z.ndim != 4 or z.shape[1] != dim:
            raise ValueError(
                f"quantizer expects a latent map (N, C={dim}, H, W), got shape {tuple(z.shape)}"
            )

    @staticmethod
    def zero_loss(z: torch.Tensor) -> torch.Tensor:
        return z.new_zeros(())


class Identity(Quantizer):
    """``none``: the latent passes unchanged (the plain SimVP baseline)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        self.check_input(z, self.dim)
        return QuantizerOutput(z, self.zero_loss(z), {})
