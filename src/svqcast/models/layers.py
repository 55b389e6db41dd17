"""Building blocks shared by the encoder, decoder and translators."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero whole samples of a residual branch with probability ``p``."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# --------------------------------------------------------------------------------------
# Initialisation shared by the MetaFormer translator families (as in SimVP v2 / OpenSTL)
# --------------------------------------------------------------------------------------


def init_metaformer_weights(module: nn.Module) -> None:
    """Initialise one module the way OpenSTL's translator blocks do (use with ``.apply``).

    Conv2d: N(0, sqrt(2 / fan_out)) with fan_out = k_h * k_w * out_channels / groups, zero
    bias. Linear: truncated normal (std 0.02), zero bias. Norm layers: weight 1, bias 0.
    """
    if isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
        fan_out //= module.groups
        nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d)):
        if module.weight is not None:
            nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------------------
# Encoder / decoder layer
# --------------------------------------------------------------------------------------

Sampling = Literal["same", "down", "up"]


class ConvSC(nn.Module):
    """SimVP's spatial layer: 3x3 conv, GroupNorm(2 groups), SiLU.

    ``sampling`` "down" uses stride 2; "up" convolves to 4x the channels and rearranges them
    with PixelShuffle(2), doubling H and W; "same" keeps the size. Conv weights start from a
    truncated normal (std 0.02) with zero bias, as in OpenSTL.
    """

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int = 3, sampling: Sampling = "same"
    ) -> None:
        super().__init__()
        stride = 2 if sampling == "down" else 1
        padding = (kernel_size - stride + 1) // 2
        if sampling == "up":
            self.conv: nn.Module = nn.Sequential(
                nn.Conv2d(c_in, 4 * c_out, kernel_size, padding=padding),
                nn.PixelShuffle(2),  # (N, 4C, H, W) -> (N, C, 2H, 2W)
            )
        else:
            self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding)
        self.norm = nn.GroupNorm(2, c_out)
        self.act = nn.SiLU()
        self.sampling = sampling
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))

    def extra_repr(self) -> str:
        return f"sampling={self.sampling!r}"


# --------------------------------------------------------------------------------------
# Pieces of the translator blocks
# --------------------------------------------------------------------------------------


class MixMlp(nn.Module):
    """Convolutional feed-forward net of gSTA / TAU / VAN blocks.

    1x1 conv (dim -> hidden), depth-wise 3x3 conv, activation, dropout, 1x1 conv (hidden ->
    dim), dropout. Works on (B, C, H, W) maps, so it is channels_last friendly.
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        act_layer: type[nn.Module] = nn.GELU,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = act_layer()
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop = nn.Dropout(drop)
        self.apply(init_metaformer_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.act(self.dwconv(self.fc1(x))))  # (B, hidden, H, W)
        return self.drop(self.fc2(x))


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map (ConvNeXt-style)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def channel_scale(scale: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Multiply a (B, C, H, W) map by a per-channel ``scale`` of shape (C,)."""
    return scale.view(1, -1, 1, 1) * x
