"""ConvNeXt blocks (Liu et al., 2022) as a SimVP translator.

Depth-wise 7x7 conv, channel LayerNorm, 1x1 conv MLP (dim -> mlp_ratio * dim -> dim) with
GELU, per-channel layer scale (init 1e-6) and drop-path on the residual. OpenSTL builds
it from timm's block with ``conv_mlp=True``; ``drop`` here is dropout after the MLP's
activation (OpenSTL does not pass it on; at the default 0 both are the same).
"""

from __future__ import annotations

import torch
from torch import nn

from svqcast.models.layers import DropPath, LayerNorm2d, channel_scale, init_metaformer_weights
from svqcast.models.translators.metaformer import BlockContext

KERNEL_SIZE = 7
LAYER_SCALE_INIT = 1e-6


class ConvNeXtSubBlock(nn.Module):
    def __init__(
        self, dim: int, mlp_ratio: float = 4.0, drop: float = 0.0, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        hidden = int(mlp_ratio * dim)
        self.conv_dw = nn.Conv2d(dim, dim, KERNEL_SIZE, padding=KERNEL_SIZE // 2, groups=dim)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.Dropout(drop), nn.Conv2d(hidden, dim, 1)
        )
        self.gamma = nn.Parameter(torch.full((dim,), LAYER_SCALE_INIT))
        self.drop_path = DropPath(drop_path)
        self.apply(init_metaformer_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(channel_scale(self.gamma, self.mlp(self.norm(self.conv_dw(x)))))


def make_block(ctx: BlockContext) -> nn.Module:
    return ConvNeXtSubBlock(
        ctx.dim, mlp_ratio=ctx.mlp_ratio, drop=ctx.drop, drop_path=ctx.drop_path
    )
