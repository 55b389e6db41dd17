"""MogaNet blocks (Li et al., ICLR 2024) as a SimVP translator.

Spatial branch: multi-order gated aggregation (a gate and a value from three depth-wise
convs with dilations 1/2/3 over channel splits 1:3:4, SiLU-gated) after a feature
decomposition that re-weights each map against its global mean. Channel branch: a conv
MLP with a 3x3 depth-wise conv and channel aggregation. Layer scale init 1e-5. The block
width must be divisible by 8 (the 1:3:4 split).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from svqcast.errors import ConfigError
from svqcast.models.layers import DropPath, init_metaformer_weights
from svqcast.models.translators.metaformer import BlockContext

DILATIONS = (1, 2, 3)
CHANNEL_SPLIT = (1, 3, 4)
LAYER_SCALE_INIT = 1e-5
DECOMPOSE_INIT = 1e-5


def _dwconv(dim: int, kernel_size: int, dilation: int) -> nn.Conv2d:
    pad = dilation * (kernel_size - 1) // 2
    return nn.Conv2d(dim, dim, kernel_size, padding=pad, groups=dim, dilation=dilation)


class MultiOrderDWConv(nn.Module):
    """A 5x5 depth-wise conv on all channels, then dilated 5x5 / 7x7 ones on two splits."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        total = sum(CHANNEL_SPLIT)
        self.dim_1 = int(CHANNEL_SPLIT[1] / total * dim)
        self.dim_2 = int(CHANNEL_SPLIT[2] / total * dim)
        self.dim_0 = dim - self.dim_1 - self.dim_2
        self.DW_conv0 = _dwconv(dim, 5, DILATIONS[0])
        self.DW_conv1 = _dwconv(self.dim_1, 5, DILATIONS[1])
        self.DW_conv2 = _dwconv(self.dim_2, 7, DILATIONS[2])
        self.PW_conv = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.DW_conv0(x)
        d0, d1 = self.dim_0, self.dim_1
        x1 = self.DW_conv1(x0[:, d0 : d0 + d1])
        x2 = self.DW_conv2(x0[:, x0.shape[1] - self.dim_2 :])
        return self.PW_conv(torch.cat([x0[:, :d0], x1, x2], dim=1))


class MultiOrderGatedAggregation(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.gate = nn.Conv2d(dim, dim, 1)
        self.value = MultiOrderDWConv(dim)
        self.proj_2 = nn.Conv2d(dim, dim, 1)
        self.act_value = nn.SiLU()
        self.act_gate = nn.SiLU()
        self.sigma = nn.Parameter(torch.full((1, dim, 1, 1), DECOMPOSE_INIT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.proj_1(x)
        x = x + self.sigma * (x - F.adaptive_avg_pool2d(x, 1))  # feature decomposition
        x = self.act_value(x)
        x = self.proj_2(self.act_gate(self.gate(x)) * self.act_gate(self.value(x)))
        return x + shortcut


class ChannelAggregationFFN(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop = nn.Dropout(drop)
        self.decompose = nn.Conv2d(hidden, 1, 1)
        self.sigma = nn.Parameter(torch.full((1, hidden, 1, 1), DECOMPOSE_INIT))
        self.decompose_act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.act(self.dwconv(self.fc1(x))))  # (B, hidden, H, W)
        x = x + self.sigma * (x - self.decompose_act(self.decompose(x)))  # channel aggregation
        return self.drop(self.fc2(x))


class MogaSubBlock(nn.Module):
    def __init__(
        self, dim: int, mlp_ratio: float = 4.0, drop: float = 0.0, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        if dim % sum(CHANNEL_SPLIT):
            raise ConfigError(
                f"MogaNet translator needs widths divisible by {sum(CHANNEL_SPLIT)}, got {dim}; "
                f"choose hid_T and T_in * hid_S as multiples of {sum(CHANNEL_SPLIT)}"
            )
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = MultiOrderGatedAggregation(dim)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ChannelAggregationFFN(dim, int(dim * mlp_ratio), drop)
        self.layer_scale_1 = nn.Parameter(torch.full((1, dim, 1, 1), LAYER_SCALE_INIT))
        self.layer_scale_2 = nn.Parameter(torch.full((1, dim, 1, 1), LAYER_SCALE_INIT))
        self.apply(init_metaformer_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale_1 * self.attn(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2 * self.mlp(self.norm2(x)))


def make_block(ctx: BlockContext) -> nn.Module:
    return MogaSubBlock(ctx.dim, mlp_ratio=ctx.mlp_ratio, drop=ctx.drop, drop_path=ctx.drop_path)
