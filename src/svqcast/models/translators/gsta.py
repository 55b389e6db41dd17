"""gSTA: gated spatial attention blocks of SimVP v2 (the default translator).

Each block is two residual branches with per-channel layer scale (init 1e-2):
BatchNorm -> gated large-kernel spatial attention, and BatchNorm -> convolutional MLP
(:class:`~svqcast.models.layers.MixMlp`). The attention decomposes a 21x21 kernel into a
5x5 depth-wise conv, a 7x7 depth-wise conv with dilation 3 and a 1x1 conv that yields a
value and a sigmoid gate.
"""

from __future__ import annotations

import torch
from torch import nn

from svqcast.models.layers import DropPath, MixMlp, channel_scale, init_metaformer_weights
from svqcast.models.translators.metaformer import BlockContext

KERNEL_SIZE = 21  # receptive field of the decomposed large kernel
DILATION = 3
LAYER_SCALE_INIT = 1e-2


def decomposed_kernels(kernel_size: int, dilation: int) -> tuple[int, int]:
    """Sizes of the local depth-wise kernel and of the dilated one covering ``kernel_size``."""
    local = 2 * dilation - 1
    dilated = kernel_size // dilation
    dilated += dilated % 2 - 1  # make it odd
    return local, dilated


class GatedLargeKernel(nn.Module):
    """Depth-wise local conv, depth-wise dilated conv, 1x1 conv to value and gate."""

    def __init__(self, dim: int, kernel_size: int = KERNEL_SIZE, dilation: int = DILATION):
        super().__init__()
        local, dilated = decomposed_kernels(kernel_size, dilation)
        self.conv0 = nn.Conv2d(dim, dim, local, padding=(local - 1) // 2, groups=dim)
        self.conv_spatial = nn.Conv2d(
            dim, dim, dilated, padding=dilation * (dilated - 1) // 2, groups=dim, dilation=dilation
        )
        self.conv1 = nn.Conv2d(dim, 2 * dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.conv1(self.conv_spatial(self.conv0(x))).chunk(2, dim=1)
        return torch.sigmoid(gate) * value


class AttentionBranch(nn.Module):
    """1x1 conv, GELU, a spatial mixing unit, 1x1 conv, plus an inner shortcut."""

    def __init__(self, dim: int, unit: nn.Module) -> None:
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = unit
        self.proj_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x))))
        return y + x


class GASubBlock(nn.Module):
    """One gSTA block at constant width ``dim`` (B, dim, H, W) -> same."""

    def __init__(
        self,
        dim: int,
        kernel_size: int = KERNEL_SIZE,
        mlp_ratio: float = 8.0,
        drop: float = 0.0,
        drop_path: float = 0.0,
        init_value: float = LAYER_SCALE_INIT,
    ) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = AttentionBranch(dim, GatedLargeKernel(dim, kernel_size))
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = MixMlp(dim, int(dim * mlp_ratio), drop=drop)
        self.layer_scale_1 = nn.Parameter(torch.full((dim,), init_value))
        self.layer_scale_2 = nn.Parameter(torch.full((dim,), init_value))
        self.apply(init_metaformer_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(channel_scale(self.layer_scale_1, self.attn(self.norm1(x))))
        return x + self.drop_path(channel_scale(self.layer_scale_2, self.mlp(self.norm2(x))))


def make_block(ctx: BlockContext) -> nn.Module:
    return GASubBlock(ctx.dim, mlp_ratio=ctx.mlp_ratio, drop=ctx.drop, drop_path=ctx.drop_path)
