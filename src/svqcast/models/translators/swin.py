"""Swin translator: self-attention inside local windows, shifted on every second block
(Liu et al. 2021, "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows").

As in OpenSTL's ``SwinSubBlock`` (timm's SwinTransformerBlock, 8 heads, qkv bias, learned
relative position bias per window offset): LayerNorm -> window attention -> residual,
LayerNorm -> MLP -> residual. The window size is chosen from the latent height as OpenSTL
does (see :func:`window_and_shift`); odd blocks shift the windows by half a window with a
cyclic roll. Like OpenSTL (which calls the attention with ``mask=None``) the shifted windows
are NOT masked: windows at the border attend across the wrap-around, which treats the latent
as periodic (natural in longitude, not in latitude).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from svqcast.errors import ConfigError
from svqcast.models.layers import DropPath
from svqcast.models.translators._attention import (
    Mlp,
    MultiHeadAttention,
    check_heads,
    check_resolution,
    init_trunc_normal,
)
from svqcast.models.translators.metaformer import BlockContext

NUM_HEADS = 8


def window_and_shift(input_resolution: tuple[int, int], index: int) -> tuple[int, int]:
    """(window size, shift) of block ``index`` for a latent of size (H, W), as OpenSTL picks them.

    Window 7 if H is a multiple of 7, else max(4, H // 16), capped at 8; a window at least as
    large as the smaller side becomes that side, unshifted (timm's rule). Odd blocks shift
    by half a window. H and W must then be multiples of the window: a ConfigError otherwise.
    """
    h, w = check_resolution("swin", input_resolution)
    window = 7 if h % 7 == 0 else max(4, h // 16)
    window = min(8, window)
    shift = window // 2 if index % 2 else 0
    if min(h, w) <= window:
        window, shift = min(h, w), 0
    if h % window or w % window:
        raise ConfigError(
            f"swin translator: latent size {(h, w)} is not divisible by the window size "
            f"{window} chosen from H (7 if H % 7 == 0, else max(4, H // 16) capped at 8); "
            "use a latent whose H and W are multiples of that window (e.g. both multiples of 4 "
            "for H < 128, or of 7)"
        )
    return window, shift


def relative_position_index(window: int) -> torch.Tensor:
    """(window^2, window^2) index into the (2*window-1)^2 table of relative offsets."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    ).flatten(1)  # (2, window^2): (row, col) of each position in the window
    rel = coords[:, :, None] - coords[:, None, :] + (window - 1)  # offsets shifted to >= 0
    return rel[0] * (2 * window - 1) + rel[1]


class WindowAttention(nn.Module):
    """Multi-head attention within each window, plus a learned bias per relative offset."""

    def __init__(self, dim: int, window: int, num_heads: int = NUM_HEADS, drop: float = 0.0):
        super().__init__()
        self.window = window
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window - 1) ** 2, num_heads)
        )
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer(
            "relative_position_index", relative_position_index(window), persistent=False
        )
        self.attn = MultiHeadAttention(dim, num_heads, qkv_bias=True, proj_drop=drop)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:  # (B*nW, window^2, C) -> same
        bias = self.relative_position_bias_table[self.relative_position_index]  # (N, N, heads)
        return self.attn(windows, bias=rearrange(bias, "n m h -> h n m"))


class SwinSubBlock(nn.Module):
    """One Swin block on a (B, dim, H, W) map."""

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        index: int = 0,
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        check_heads("swin", dim, NUM_HEADS)
        self.window, self.shift = window_and_shift(input_resolution, index)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, self.window, NUM_HEADS, drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path)
        self.apply(init_trunc_normal)

    def _window_attention(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C) -> same
        h, w = x.shape[1:3]
        s, ws = self.shift, self.window
        if h % ws or w % ws:
            raise ConfigError(
                f"swin translator with window {ws} got a latent of size {(h, w)}; "
                f"H and W must be multiples of {ws} (build it for this latent size)"
            )
        if s:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        windows = rearrange(x, "b (nh wh) (nw ww) c -> (b nh nw) (wh ww) c", wh=ws, ww=ws)
        windows = self.attn(windows)
        x = rearrange(
            windows, "(b nh nw) (wh ww) c -> b (nh wh) (nw ww) c", nh=h // ws, nw=w // ws, wh=ws
        )
        if s:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = rearrange(x, "b c h w -> b h w c")
        x = x + self.drop_path(self._window_attention(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return rearrange(x, "b h w c -> b c h w")


def make_block(ctx: BlockContext) -> nn.Module:
    return SwinSubBlock(
        ctx.dim,
        ctx.input_resolution,
        index=ctx.index,
        mlp_ratio=ctx.mlp_ratio,
        drop=ctx.drop,
        drop_path=ctx.drop_path,
    )
