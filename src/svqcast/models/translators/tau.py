"""TAU: Temporal Attention Unit blocks (Tan et al., CVPR 2023).

A gSTA block whose attention unit multiplies three factors: the large-kernel spatial
response (5x5 depth-wise, 7x7 depth-wise dilated 3, 1x1), a squeeze-and-excitation channel
weight computed from the globally pooled input, and the input itself.
"""

from __future__ import annotations

import torch
from torch import nn

from svqcast.models.translators.gsta import (
    DILATION,
    KERNEL_SIZE,
    AttentionBranch,
    GASubBlock,
    decomposed_kernels,
)
from svqcast.models.translators.metaformer import BlockContext

SE_REDUCTION = 16


class TemporalAttentionUnit(nn.Module):
    """Statical (large-kernel) attention times dynamical (squeeze-excitation) attention."""

    def __init__(self, dim: int, kernel_size: int = KERNEL_SIZE, dilation: int = DILATION):
        super().__init__()
        local, dilated = decomposed_kernels(kernel_size, dilation)
        self.conv0 = nn.Conv2d(dim, dim, local, padding=(local - 1) // 2, groups=dim)
        self.conv_spatial = nn.Conv2d(
            dim, dim, dilated, padding=dilation * (dilated - 1) // 2, groups=dim, dilation=dilation
        )
        self.conv1 = nn.Conv2d(dim, dim, 1)
        squeezed = dim // max(dim // SE_REDUCTION, 4)
        self.fc = nn.Sequential(
            nn.Linear(dim, squeezed, bias=False),
            nn.ReLU(),
            nn.Linear(squeezed, dim, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = self.conv1(self.conv_spatial(self.conv0(x)))  # (B, C, H, W)
        channel = self.fc(x.mean(dim=(2, 3)))  # (B, C)
        return channel[:, :, None, None] * spatial * x


class TAUSubBlock(GASubBlock):
    """A gSTA block with the temporal attention unit in place of the gated spatial one.

    As in OpenSTL, the attention branch is created after the block's weight init, so it
    keeps PyTorch's default initialisation.
    """

    def __init__(
        self,
        dim: int,
        kernel_size: int = KERNEL_SIZE,
        mlp_ratio: float = 8.0,
        drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__(dim, kernel_size, mlp_ratio, drop, drop_path)
        self.attn = AttentionBranch(dim, TemporalAttentionUnit(dim, kernel_size))


def make_block(ctx: BlockContext) -> nn.Module:
    return TAUSubBlock(ctx.dim, mlp_ratio=ctx.mlp_ratio, drop=ctx.drop, drop_path=ctx.drop_path)
