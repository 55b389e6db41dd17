"""The shared part of the ``vector-quantize-pytorch`` adapters: option checks, code usage
and :class:`LibraryQuantizer`, which hands the library sequences ``(B, L, C)`` in every input
layout of the contract (tokens ``(..., C)`` or maps ``(N, C, *spatial)``, see
:mod:`svqcast.quantizers.base`) and restores the input's shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from einops import rearrange

from svqcast.errors import ConfigError
from svqcast.quantizers.base import Quantizer, QuantizerOutput

LossReduction = Literal["mean", "sum"]

# ---------------------------------------------------------------------------------------
# option checks: each raises ConfigError naming the quantizer, the option and the fix


def require(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"quantizer {where}: {message}")


def positive_int(where: str, name: str, value: object) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    require(ok, where, f"{name} must be a positive integer, got {value!r}")


def non_negative(where: str, name: str, value: object) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
    require(ok, where, f"{name} must be a number >= 0, got {value!r}")


def check_loss_reduction(where: str, value: object) -> None:
    require(
        value in ("mean", "sum"), where, f"loss_reduction must be 'mean' or 'sum', got {value!r}"
    )


def check_levels(where: str, levels: object, minimum: int) -> list[int]:
    ok = (
        isinstance(levels, Sequence)
        and not isinstance(levels, str)
        and len(levels) > 0
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in levels)
    )
    require(
        ok,
        where,
        f"levels must be a non-empty list of integers >= {minimum} (e.g. [8, 5, 5, 3]), "
        f"got {levels!r}",
    )
    return list(levels)  # type: ignore[arg-type]


def check_power_of_two(where: str, codebook_size: object) -> None:
    positive_int(where, "codebook_size", codebook_size)
    ok = codebook_size >= 2 and math.log2(codebook_size).is_integer()  # type: ignore[operator]
    suggestion = 2 ** max(1, round(math.log2(max(codebook_size, 1))))  # type: ignore[arg-type]
    require(
        ok,
        where,
        f"codebook_size must be a power of 2 (lookup-free codes are bit patterns), got "
        f"{codebook_size}; use e.g. {suggestion}",
    )


# ---------------------------------------------------------------------------------------
# code-usage statistics


def code_usage(indices: torch.Tensor, codebook_size: int) -> dict[str, torch.Tensor]:
    """Code usage of integer code indices (M tokens, S code streams), each in [0, K).

    Per stream s (a quantizer of a residual stack, a head, a group's quantizer):
    ``usage_s`` = fraction of the K codes used at least once in the batch, and
    ``perplexity_s`` = exp(entropy of the empirical code distribution), in [1, K]. Returns
    the means over streams as ``code_usage`` and ``perplexity``. Negative indices (codes
    dropped by the library) are ignored.
    """
    indices = indices.detach().long()  # (M, S)
    streams = indices.shape[1]
    valid = indices >= 0
    offsets = torch.arange(streams, device=indices.device) * codebook_size  # (S,)
    flat = (indices.clamp(min=0) + offsets)[valid]
    counts = torch.bincount(flat, minlength=streams * codebook_size)
    counts = rearrange(counts.float(), "(s k) -> s k", s=streams)  # (S, K)
    totals = counts.sum(dim=1, keepdim=True).clamp(min=1)
    p = counts / totals
    entropy = -(p * torch.log(p.clamp(min=1e-12))).sum(dim=1)  # (S,)
    usage = (counts > 0).float().mean(dim=1)  # (S,)
    return {"code_usage": usage.mean(), "perplexity": entropy.exp().mean()}


# ---------------------------------------------------------------------------------------
# the shared adapter


class LibraryQuantizer(Quantizer):
    """Layout, dtype, loss reduction and statistics shared by every adapter.

    Subclasses build ``self.inner`` (the library module) and implement ``_quantize`` on
    sequences (B, L, C), returning the quantized sequences, the code indices (B*L, S) and
    the library's loss (any shape; reduced with ``self.loss_reduction``). Every input layout
    reaches the library as (B, L, C) (see :meth:`TokenLayout.sequences`), so the library
    never has to guess where the channels are; a map's output is the zero-copy view of the
    library's output (channels-last strides).
    """

    codebook_size: int
    loss_reduction: LossReduction = "mean"

    def __init__(self, dim: int, channel_first: bool | None = None) -> None:
        super().__init__(channel_first)
        positive_int(type(self).__name__, "dim", dim)
        self.dim = dim

    def _quantize(
        self, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        layout = self.token_layout(z)
        quantized, indices, loss = self._quantize(layout.sequences(z))  # (B, L, C) in and out
        quantized = layout.restore(quantized, match_memory=False)
        quantized = quantized.to(z.dtype)  # autocast may hand back bf16 from the projections
        if loss is None:
            loss = self.zero_loss(z).float()
        else:
            loss = loss.float()
            loss = loss.mean() if self.loss_reduction == "mean" else loss.sum()
        stats: dict[str, torch.Tensor] = {}
        if self.collect_stats:
            with torch.no_grad():
                stats = code_usage(indices, self.codebook_size)
        return QuantizerOutput(quantized, loss, stats)

    def extra_repr(self) -> str:
        extra = "" if self.channel_first is None else f", channel_first={self.channel_first}"
        return f"dim={self.dim}, codebook_size={self.codebook_size}{extra}"
