"""VAN translator: large-kernel attention (Guo et al. 2023, "Visual Attention Network").

As in OpenSTL's ``VANSubBlock``: BatchNorm -> [1x1 conv, GELU, LKA, 1x1 conv] + shortcut ->
layer scale -> residual, BatchNorm -> MLP with a 3x3 depth-wise conv -> layer scale ->
residual. LKA gates the input by a decomposed 21x21 kernel (a 5x5 depth-wise conv, a 7x7
depth-wise conv with dilation 3, then a 1x1 conv; receptive field 23x23). Layer scales start
at 1e-2. Convolutional only: no constraint on the latent size.
"""

from __future__ import annotations

import torch
from torch import nn

from svqcast.models.layers import DropPath, MixMlp, init_metaformer_weights
from svqcast.models.translators.metaformer import BlockContext

LAYER_SCALE_INIT = 1e-2


class LargeKernelAttention(nn.Module):
    """x * conv1x1(dwconv7x7_dil3(dwconv5x5(x))): a multiplicative gate seeing 23x23 pixels."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv_spatial = nn.Conv2d(dim, dim, 7, padding=9, groups=dim, dilation=3)
        self.conv1 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv1(self.conv_spatial(self.conv0(x)))


class SpatialAttention(nn.Module):
    """1x1 conv -> GELU -> LKA -> 1x1 conv, plus its own shortcut."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = LargeKernelAttention(dim)
        self.proj_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x))))


class VANSubBlock(nn.Module):
    """One VAN block on a (B, dim, H, W) map."""

    def __init__(
        self,
        dim: int,
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        drop_path: float = 0.0,
        layer_scale_init: float = LAYER_SCALE_INIT,
    ) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = SpatialAttention(dim)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = MixMlp(dim, int(dim * mlp_ratio), drop=drop)
        self.layer_scale_1 = nn.Parameter(torch.full((dim, 1, 1), layer_scale_init))
        self.layer_scale_2 = nn.Parameter(torch.full((dim, 1, 1), layer_scale_init))
        self.drop_path = DropPath(drop_path)
        self.apply(init_metaformer_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale_1 * self.attn(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2 * self.mlp(self.norm2(x)))


def make_block(ctx: BlockContext) -> nn.Module:
    return VANSubBlock(ctx.dim, mlp_ratio=ctx.mlp_ratio, drop=ctx.drop, drop_path=ctx.drop_path)
