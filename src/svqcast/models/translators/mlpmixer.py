"""MLP-Mixer translator: token-mixing MLPs across all latent pixels (Tolstikhin et al. 2021,
"MLP-Mixer: An all-MLP Architecture for Vision").

As in OpenSTL's ``MLPMixerSubBlock`` (timm's MixerBlock with mlp_ratio (0.5, mlp_ratio)):
LayerNorm -> MLP over the H*W tokens (hidden dim/2) -> residual, LayerNorm -> MLP over the
channels (hidden dim*mlp_ratio) -> residual. The token MLP's weights are sized H*W, so a
translator only accepts the latent size it was built for.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from svqcast.errors import ConfigError
from svqcast.models.layers import DropPath
from svqcast.models.translators._attention import (
    Mlp,
    check_resolution,
    from_tokens,
    init_trunc_normal,
    to_tokens,
)
from svqcast.models.translators.metaformer import BlockContext

TOKEN_MLP_RATIO = 0.5  # hidden width of the token-mixing MLP, as a fraction of the channels


class MLPMixerSubBlock(nn.Module):
    """One Mixer block on a (B, dim, H, W) map with H, W fixed at ``input_resolution``."""

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_resolution = check_resolution("mlpmixer", input_resolution)
        seq_len = self.input_resolution[0] * self.input_resolution[1]
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp_tokens = Mlp(seq_len, int(TOKEN_MLP_RATIO * dim), drop)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp_channels = Mlp(dim, int(mlp_ratio * dim), drop)
        self.drop_path = DropPath(drop_path)
        self.apply(init_trunc_normal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if (h, w) != self.input_resolution:
            raise ConfigError(
                f"mlpmixer translator was built for latent size {self.input_resolution} "
                f"(its token MLP has H*W = {self.input_resolution[0] * self.input_resolution[1]}"
                f" inputs) but got {(h, w)}; build it with input_resolution={(h, w)}"
            )
        x = to_tokens(x)  # (B, H*W, C)
        mixed = self.mlp_tokens(rearrange(self.norm1(x), "b n c -> b c n"))  # mixes over N
        x = x + self.drop_path(rearrange(mixed, "b c n -> b n c"))
        x = x + self.drop_path(self.mlp_channels(self.norm2(x)))
        return from_tokens(x, h, w)  # (B, C, H, W)


def make_block(ctx: BlockContext) -> nn.Module:
    return MLPMixerSubBlock(
        ctx.dim,
        ctx.input_resolution,
        mlp_ratio=ctx.mlp_ratio,
        drop=ctx.drop,
        drop_path=ctx.drop_path,
    )
