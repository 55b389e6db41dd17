"""UniFormer translator: convolutional blocks at the ends, self-attention in the middle
(Li et al. 2022, "UniFormer: Unifying Convolution and Self-attention for Visual Recognition").

As in OpenSTL's ``UniformerSubBlock``: blocks that change the width (first, last) and the
first block are 'Conv' blocks (CBlock: local 5x5 depth-wise aggregation, BatchNorm, 1x1-conv
MLP); the blocks between are 'MHSA' blocks (SABlock: 8-head self-attention over all H*W
pixels, LayerNorm, MLP, layer scales from 1e-6). Both start with a 3x3 depth-wise conv as a
positional embedding, added without drop-path. No constraint on the latent size.
"""

from __future__ import annotations

import torch
from torch import nn

from svqcast.models.layers import DropPath, init_metaformer_weights
from svqcast.models.translators._attention import (
    ConvMlp,
    Mlp,
    MultiHeadAttention,
    check_heads,
    from_tokens,
    init_trunc_normal,
    to_tokens,
)
from svqcast.models.translators.metaformer import BlockContext

NUM_HEADS = 8
LAYER_SCALE_INIT = 1e-6


class ConvBlock(nn.Module):
    """UniFormer's CBlock on (B, dim, H, W): depth-wise 5x5 'attention' between 1x1 convs."""

    def __init__(
        self, dim: int, mlp_ratio: float = 4.0, drop: float = 0.0, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.BatchNorm2d(dim)
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.attn = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv2 = nn.Conv2d(dim, dim, 1)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path)
        self.apply(init_metaformer_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        x = x + self.drop_path(self.conv2(self.attn(self.conv1(self.norm1(x)))))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class SelfAttentionBlock(nn.Module):
    """UniFormer's SABlock on (B, dim, H, W): global multi-head self-attention with layer scale."""

    def __init__(
        self,
        dim: int,
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        drop_path: float = 0.0,
        layer_scale_init: float = LAYER_SCALE_INIT,
    ) -> None:
        super().__init__()
        check_heads("uniformer", dim, NUM_HEADS)
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, NUM_HEADS, qkv_bias=True, proj_drop=drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.gamma_1 = nn.Parameter(torch.full((dim,), layer_scale_init))
        self.gamma_2 = nn.Parameter(torch.full((dim,), layer_scale_init))
        self.drop_path = DropPath(drop_path)
        self.apply(init_trunc_normal)  # the positional conv keeps PyTorch's default (as OpenSTL)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        h, w = x.shape[-2:]
        x = to_tokens(x)  # (B, H*W, C)
        x = x + self.drop_path(self.gamma_1 * self.attn(self.norm1(x)))
        x = x + self.drop_path(self.gamma_2 * self.mlp(self.norm2(x)))
        return from_tokens(x, h, w)  # (B, C, H, W)


def block_type(ctx: BlockContext) -> str:
    """'MHSA' for the width-preserving blocks after the first, 'Conv' otherwise (as OpenSTL)."""
    return "MHSA" if not ctx.changes_width and ctx.index > 0 else "Conv"


def make_block(ctx: BlockContext) -> nn.Module:
    kind = SelfAttentionBlock if block_type(ctx) == "MHSA" else ConvBlock
    return kind(ctx.dim, mlp_ratio=ctx.mlp_ratio, drop=ctx.drop, drop_path=ctx.drop_path)
