"""IncepU: the U-Net of grouped inception blocks of SimVP v1 (Gao et al., CVPR 2022).

Each inception block is a 1x1 conv to ``channel_hid // 2`` channels followed by four
parallel grouped convs (kernels 3/5/7/11, 8 groups, each with GroupNorm and LeakyReLU 0.2)
whose outputs are summed. ``depth`` encoder blocks are followed by ``depth`` decoder blocks
that concatenate the matching encoder output (U-Net skips). ``mlp_ratio``, ``drop`` and
``drop_path`` do not apply to this family.
"""

from __future__ import annotations

import torch
from torch import nn

from svqcast.errors import ConfigError

KERNELS = (3, 5, 7, 11)
GROUPS = 8


class GroupConvNormAct(nn.Module):
    """Grouped conv, GroupNorm with as many groups, LeakyReLU(0.2).

    Falls back to one group when the input width is not divisible by ``groups`` (as
    OpenSTL does).
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        if c_in % groups:
            groups = 1
        if c_out % groups:
            raise ConfigError(
                f"IncepU needs block widths divisible by its {groups} groups, got {c_out}; "
                f"choose hid_T and T_in * hid_S as multiples of {groups}"
            )
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, groups=groups)
        self.norm = nn.GroupNorm(groups, c_out)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class InceptionBlock(nn.Module):
    """1x1 conv to ``c_hid`` channels, then the sum of parallel grouped convs."""

    def __init__(
        self,
        c_in: int,
        c_hid: int,
        c_out: int,
        kernels: tuple[int, ...] = KERNELS,
        groups: int = GROUPS,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_hid, 1)
        self.branches = nn.ModuleList(GroupConvNormAct(c_hid, c_out, k, groups) for k in kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)
        return out


class IncepU(nn.Module):
    """(B, channel_in, H, W) -> same, through a U-Net of ``2 * depth`` inception blocks."""

    def __init__(
        self,
        channel_in: int,
        channel_hid: int,
        depth: int,
        kernels: tuple[int, ...] = KERNELS,
        groups: int = GROUPS,
    ) -> None:
        super().__init__()
        if depth < 2:
            raise ConfigError(f"IncepU translator depth N_T must be >= 2, got {depth}")
        if channel_hid < 2:
            raise ConfigError(f"IncepU translator hid_T must be >= 2, got {channel_hid}")
        mid = channel_hid // 2
        enc_in = [channel_in] + [channel_hid] * (depth - 1)
        self.enc = nn.ModuleList(
            InceptionBlock(c, mid, channel_hid, kernels, groups) for c in enc_in
        )
        dec_in = [channel_hid] + [2 * channel_hid] * (depth - 1)
        dec_out = [channel_hid] * (depth - 1) + [channel_in]
        self.dec = nn.ModuleList(
            InceptionBlock(ci, mid, co, kernels, groups) for ci, co in zip(dec_in, dec_out)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        z = x
        for i, block in enumerate(self.enc):
            z = block(z)  # (B, channel_hid, H, W)
            if i < len(self.enc) - 1:
                skips.append(z)
        z = self.dec[0](z)
        for block, skip in zip(self.dec[1:], reversed(skips)):
            z = block(torch.cat([z, skip], dim=1))  # (B, 2 * channel_hid, H, W) in
        return z  # (B, channel_in, H, W)


def build(
    channel_in: int,
    channel_hid: int,
    depth: int,
    *,
    input_resolution: tuple[int, int],
    mlp_ratio: float = 8.0,
    drop: float = 0.0,
    drop_path: float = 0.0,
) -> nn.Module:
    """IncepU translator (``input_resolution``, ``mlp_ratio``, ``drop``, ``drop_path`` unused)."""
    return IncepU(channel_in, channel_hid, depth)
