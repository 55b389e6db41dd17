"""The MetaFormer translator stack shared by every family except IncepU.

``depth`` blocks: the first maps channel_in -> channel_hid, the last channel_hid ->
channel_in, the ones between keep channel_hid. Each block is a family-specific sub-block at
its input width followed, when the width changes, by a 1x1 convolution. Drop-path rises
linearly from 1e-2 to ``drop_path`` over the blocks (as in SimVP v2 / OpenSTL).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn


@dataclass(frozen=True)
class BlockContext:
    """What a family's ``make_block`` may need to know about a block's place in the stack."""

    dim: int  # the block's input width
    changes_width: bool  # a 1x1 reduction follows (first and last block)
    index: int  # position in the stack, 0-based
    input_resolution: tuple[int, int]  # latent (H, W)
    mlp_ratio: float
    drop: float
    drop_path: float


class MakeBlock(Protocol):
    def __call__(self, ctx: BlockContext) -> nn.Module: ...


class MetaBlock(nn.Module):
    def __init__(self, block: nn.Module, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.block = block
        self.reduction = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1)
            if in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduction(self.block(x))


class MetaTranslator(nn.Module):
    def __init__(
        self,
        make_block: MakeBlock,
        channel_in: int,
        channel_hid: int,
        depth: int,
        *,
        input_resolution: tuple[int, int],
        mlp_ratio: float = 8.0,
        drop: float = 0.0,
        drop_path: float = 0.1,
    ) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"translator depth N_T must be >= 2, got {depth}")
        # plain Python (not torch.linspace) so models also build on the meta device
        rates = [1e-2 + (drop_path - 1e-2) * i / (depth - 1) for i in range(depth)]
        widths = [channel_in] + [channel_hid] * (depth - 1) + [channel_in]
        blocks = []
        for i in range(depth):
            c_in, c_out = widths[i], widths[i + 1]
            ctx = BlockContext(
                dim=c_in,
                changes_width=c_in != c_out,
                index=i,
                input_resolution=tuple(input_resolution),
                mlp_ratio=mlp_ratio,
                drop=drop,
                drop_path=rates[i],
            )
            blocks.append(MetaBlock(make_block(ctx), c_in, c_out))
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T*C, H, W) -> same
        return self.blocks(x)
