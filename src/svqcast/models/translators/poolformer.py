"""PoolFormer translator: average pooling as the token mixer (Yu et al. 2022, "MetaFormer Is
Actually What You Need for Vision").

As in OpenSTL's ``PoolFormerSubBlock``: GroupNorm(1 group) -> (3x3 average pool - identity)
-> layer scale -> residual, GroupNorm -> 1x1-conv MLP -> layer scale -> residual. Layer
scales start at 1e-5. No attention, no constraint on the latent size.
"""

from __future__ import annotations

import torch
from torch import nn

from svqcast.models.layers import DropPath
from svqcast.models.translators._attention import ConvMlp, init_trunc_normal
from svqcast.models.translators.metaformer import BlockContext

POOL_SIZE = 3
LAYER_SCALE_INIT = 1e-5


class Pooling(nn.Module):
    """pool(x) - x: the pooled neighbourhood minus the pixel itself (the residual adds it back)."""

    def __init__(self, pool_size: int = POOL_SIZE) -> None:
        super().__init__()
        # count_include_pad=False: border pixels average over their real neighbours only
        self.pool = nn.AvgPool2d(
            pool_size, stride=1, padding=pool_size // 2, count_include_pad=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) - x


class PoolFormerSubBlock(nn.Module):
    """One PoolFormer block on a (B, dim, H, W) map."""

    def __init__(
        self,
        dim: int,
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        drop_path: float = 0.0,
        pool_size: int = POOL_SIZE,
        layer_scale_init: float = LAYER_SCALE_INIT,
    ) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(1, dim)
        self.token_mixer = Pooling(pool_size)
        self.norm2 = nn.GroupNorm(1, dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), drop)
        self.layer_scale_1 = nn.Parameter(torch.full((dim, 1, 1), layer_scale_init))
        self.layer_scale_2 = nn.Parameter(torch.full((dim, 1, 1), layer_scale_init))
        self.drop_path = DropPath(drop_path)
        # OpenSTL: the 1x1 convs of the MLP ~ truncated N(0, 0.02), zero bias
        for conv in (self.mlp.fc1, self.mlp.fc2):
            nn.init.trunc_normal_(conv.weight, std=0.02)
            nn.init.zeros_(conv.bias)
        self.apply(init_trunc_normal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale_1 * self.token_mixer(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2 * self.mlp(self.norm2(x)))


def make_block(ctx: BlockContext) -> nn.Module:
    return PoolFormerSubBlock(
        ctx.dim, mlp_ratio=ctx.mlp_ratio, drop=ctx.drop, drop_path=ctx.drop_path
    )
