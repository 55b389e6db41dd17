"""ViT translator: plain pre-norm transformer blocks over all H*W latent pixels.

As in OpenSTL's ``ViTSubBlock`` (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words"):
LayerNorm -> 8-head self-attention -> residual, LayerNorm -> MLP -> residual, with no
positional embedding and no layer scale, so any latent size works (cost grows as (H*W)^2).
"""

from __future__ import annotations

import torch
from torch import nn

from svqcast.models.layers import DropPath
from svqcast.models.translators._attention import (
    Mlp,
    MultiHeadAttention,
    check_heads,
    from_tokens,
    init_trunc_normal,
    to_tokens,
)
from svqcast.models.translators.metaformer import BlockContext

NUM_HEADS = 8


class ViTSubBlock(nn.Module):
    """One transformer block on a (B, dim, H, W) map, attending over all H*W positions."""

    def __init__(
        self, dim: int, mlp_ratio: float = 4.0, drop: float = 0.0, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        check_heads("vit", dim, NUM_HEADS)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, NUM_HEADS, qkv_bias=True, proj_drop=drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path)
        self.apply(init_trunc_normal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = to_tokens(x)  # (B, H*W, C)
        x = x + self.drop_path(self.attn(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return from_tokens(x, h, w)  # (B, C, H, W)


def make_block(ctx: BlockContext) -> nn.Module:
    return ViTSubBlock(ctx.dim, mlp_ratio=ctx.mlp_ratio, drop=ctx.drop, drop_path=ctx.drop_path)
