"""Pieces shared by the transformer-style translator families (ViT, Swin, Uniformer, ...).

Token MLPs, multi-head self-attention with an optional additive bias, the (B, C, H, W) <->
(B, H*W, C) token reshapes, the initialisation OpenSTL gives its token-based blocks (the
convolutional one is :func:`svqcast.models.layers.init_metaformer_weights`), and the checks
that turn bad sizes into ConfigErrors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from svqcast.errors import ConfigError

# ----------------------------------------------------------------------------- checks


def check_resolution(family: str, input_resolution: tuple[int, int]) -> tuple[int, int]:
    """``input_resolution`` as two positive ints, or a ConfigError naming ``family``."""
    try:
        if isinstance(input_resolution, (str, bytes)):
            raise TypeError
        h, w = (int(s) for s in input_resolution)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{family} translator: input_resolution must be a pair (H, W) of latent sizes, "
            f"got {input_resolution!r}"
        ) from None
    if h < 1 or w < 1:
        raise ConfigError(
            f"{family} translator: latent size (H, W) must be positive, got {(h, w)}; "
            "check the image size and N_S (the encoder halves H and W every second layer)"
        )
    return h, w


def check_heads(family: str, dim: int, num_heads: int) -> None:
    """Attention splits ``dim`` channels over ``num_heads`` heads: they must divide evenly."""
    if dim % num_heads:
        raise ConfigError(
            f"{family} translator: width {dim} is not divisible by its {num_heads} attention "
            f"heads; choose hid_T and T*hid_S as multiples of {num_heads}"
        )


# ----------------------------------------------------------------------------- shapes


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C), row-major over (H, W)."""
    return rearrange(x, "b c h w -> b (h w) c")


def from_tokens(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W), the inverse of :func:`to_tokens`."""
    return rearrange(x, "b (h w) c -> b c h w", h=h, w=w)


# ----------------------------------------------------------------------------- init


def init_trunc_normal(m: nn.Module) -> None:
    """OpenSTL's init for token-based blocks: Linear ~ truncated N(0, 0.02), zero bias, unit norms.

    Use with ``module.apply``; convolutions keep whatever init they have (unlike
    :func:`svqcast.models.layers.init_metaformer_weights`, which also re-draws them).
    """
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d)) and m.weight is not None:
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------- layers


class Mlp(nn.Module):
    """Two-layer feed-forward: Linear -> GELU -> dropout -> Linear -> dropout, on (..., dim)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class ConvMlp(nn.Module):
    """:class:`Mlp` with 1x1 convolutions, on (B, dim, H, W) maps."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention over tokens (B, N, dim) with an optional additive bias.

    softmax(q k^T / sqrt(head_dim) + bias) v per head, then an output projection. ``bias``
    (heads, N, N) carries Swin's relative positions. Computed by PyTorch's fused
    ``scaled_dot_product_attention``; attention dropout is 0 as in every OpenSTL config.
    """

    def __init__(
        self, dim: int, num_heads: int = 8, qkv_bias: bool = True, proj_drop: float = 0.0
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        qkv = rearrange(self.qkv(x), "b n (k h d) -> k b h n d", k=3, h=self.num_heads)
        q, k, v = qkv.unbind(0)  # each (B, heads, N, head_dim)
        if bias is not None:
            bias = bias.to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        out = rearrange(out, "b h n d -> b n (h d)")
        return self.proj_drop(self.proj(out))
