"""HorNet translator: recursive gated convolution (Rao et al. 2022, "HorNet: Efficient
High-Order Spatial Interactions with Recursive Gated Convolutions").

As in OpenSTL's ``HorNetSubBlock`` (its ``HorBlock`` with the default order 4, 7x7 depth-wise
kernel, scale 1): channels-first LayerNorm -> g^n conv -> layer scale -> residual, LayerNorm
-> MLP -> layer scale -> residual. Layer scales start at 1e-6. No dropout (OpenSTL passes
none). Convolutional only: no constraint on the latent size; the width must be a multiple of
2^(order-1) = 8.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from svqcast.errors import ConfigError
from svqcast.models.layers import DropPath, LayerNorm2d, init_metaformer_weights
from svqcast.models.translators.metaformer import BlockContext

ORDER = 4
KERNEL_SIZE = 7
LAYER_SCALE_INIT = 1e-6


class GnConv(nn.Module):
    """Recursive gated convolution of order n on (B, dim, H, W).

    Widths dim/2^(n-1), ..., dim/2, dim. A 1x1 conv makes a seed p0 (narrowest width) and
    n gates from one depth-wise conv; then p_{k+1} = pw_k(p_k) * gate_{k+1}, each step
    doubling the width and raising the order of spatial interaction by one.
    """

    def __init__(self, dim: int, order: int = ORDER, kernel_size: int = KERNEL_SIZE) -> None:
        super().__init__()
        if dim % 2 ** (order - 1):
            raise ConfigError(
                f"hornet translator: width {dim} is not divisible by 2^(order-1) = "
                f"{2 ** (order - 1)}; choose hid_T and T*hid_S as multiples of {2 ** (order - 1)}"
            )
        self.dims = [dim // 2**i for i in reversed(range(order))]  # narrow -> wide
        self.proj_in = nn.Conv2d(dim, 2 * dim, 1)
        gates = sum(self.dims)
        self.dwconv = nn.Conv2d(gates, gates, kernel_size, padding=kernel_size // 2, groups=gates)
        self.pws = nn.ModuleList(nn.Conv2d(a, b, 1) for a, b in zip(self.dims, self.dims[1:]))
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seed, gates = torch.split(self.proj_in(x), (self.dims[0], sum(self.dims)), dim=1)
        gates = torch.split(self.dwconv(gates), self.dims, dim=1)
        x = seed * gates[0]  # (B, dim/2^(n-1), H, W)
        for pw, gate in zip(self.pws, gates[1:]):
            x = pw(x) * gate  # width doubles each step
        return self.proj_out(x)  # (B, dim, H, W)


class HorNetSubBlock(nn.Module):
    """One HorNet block on a (B, dim, H, W) map."""

    def __init__(
        self,
        dim: int,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        order: int = ORDER,
        layer_scale_init: float = LAYER_SCALE_INIT,
    ) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim, eps=1e-6)
        self.gnconv = GnConv(dim, order)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, int(mlp_ratio * dim))
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(int(mlp_ratio * dim), dim)
        self.gamma1 = nn.Parameter(torch.full((dim,), layer_scale_init))
        self.gamma2 = nn.Parameter(torch.full((dim,), layer_scale_init))
        self.drop_path = DropPath(drop_path)
        self.apply(init_metaformer_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.gamma1[:, None, None] * self.gnconv(self.norm1(x)))
        y = rearrange(x, "b c h w -> b h w c")
        y = self.pwconv2(self.act(self.pwconv1(self.norm2(y)))) * self.gamma2
        return x + self.drop_path(rearrange(y, "b h w c -> b c h w"))


def make_block(ctx: BlockContext) -> nn.Module:
    return HorNetSubBlock(ctx.dim, mlp_ratio=ctx.mlp_ratio, drop_path=ctx.drop_path)
