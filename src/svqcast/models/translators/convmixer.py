"""ConvMixer blocks (Trockman and Kolter, 2022) as a SimVP translator.

Depth-wise 11x11 conv, GELU, BatchNorm with a residual; then 1x1 conv, GELU, BatchNorm
without one. As in OpenSTL the block has no MLP, dropout or drop-path: ``mlp_ratio``,
``drop`` and ``drop_path`` do not apply to this family.
"""

from __future__ import annotations

import torch
from torch import nn

from svqcast.models.layers import init_metaformer_weights
from svqcast.models.translators.metaformer import BlockContext

KERNEL_SIZE = 11


class ConvMixerSubBlock(nn.Module):
    def __init__(self, dim: int, kernel_size: int = KERNEL_SIZE) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.act_1 = nn.GELU()
        self.norm_1 = nn.BatchNorm2d(dim)
        self.conv_pw = nn.Conv2d(dim, dim, 1)
        self.act_2 = nn.GELU()
        self.norm_2 = nn.BatchNorm2d(dim)
        self.apply(init_metaformer_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.norm_1(self.act_1(self.conv_dw(x)))
        return self.norm_2(self.act_2(self.conv_pw(x)))


def make_block(ctx: BlockContext) -> nn.Module:
    return ConvMixerSubBlock(ctx.dim)
