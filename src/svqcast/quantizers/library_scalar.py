"""Scalar and lookup-free baselines: adapters over ``vector-quantize-pytorch``'s ``FSQ``,
``ResidualFSQ``, ``LFQ`` and ``ResidualLFQ`` (codes are rounded scalars or sign patterns)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from einops import rearrange

from svqcast.quantizers.library_common import (
    LibraryQuantizer,
    LossReduction,
    check_levels,
    check_loss_reduction,
    check_power_of_two,
    non_negative,
    positive_int,
)

# ---------------------------------------------------------------------------------------
# finite scalar quantization


class FSQ(LibraryQuantizer):
    """``fsq``: a linear projection to ``len(levels)`` scalars, each bounded and rounded to
    one of ``levels[i]`` values (library ``FSQ``); K = prod(levels), no auxiliary loss."""

    def __init__(
        self,
        dim: int,
        *,
        levels: Sequence[int] = (8, 5, 5, 3),
        channel_first: bool | None = None,
    ) -> None:
        super().__init__(dim, channel_first)
        from vector_quantize_pytorch import FSQ as LibraryFSQ

        # a level of 2 needs the library's symmetry-preserving variant; keep the plain one
        levels = check_levels("fsq", levels, minimum=3)
        self.levels = tuple(levels)
        self.codebook_size = math.prod(levels)
        self.inner = LibraryFSQ(levels=levels, dim=dim)

    def _quantize(self, tokens):
        quantized, indices = self.inner(tokens)  # (B, L, C), (B, L)
        return quantized, rearrange(indices, "b l -> (b l) 1"), None


class ResidualFSQ(LibraryQuantizer):
    """``rfsq``: ``num_quantizers`` FSQ stages on a shared projection, each quantizing the
    (rescaled) residual of the previous ones (library ``ResidualFSQ``); no auxiliary loss;
    statistics averaged over stages."""

    def __init__(
        self,
        dim: int,
        *,
        levels: Sequence[int] = (8, 5, 5, 3),
        num_quantizers: int = 8,
        channel_first: bool | None = None,
    ) -> None:
        super().__init__(dim, channel_first)
        from vector_quantize_pytorch import ResidualFSQ as LibraryResidualFSQ

        levels = check_levels("rfsq", levels, minimum=2)
        positive_int("rfsq", "num_quantizers", num_quantizers)
        self.levels = tuple(levels)
        self.codebook_size = math.prod(levels)
        self.inner = LibraryResidualFSQ(levels=levels, num_quantizers=num_quantizers, dim=dim)

    def _quantize(self, tokens):
        quantized, indices = self.inner(tokens)  # (B, L, C), (B, L, Q)
        return quantized, rearrange(indices, "b l q -> (b l) q"), None


# ---------------------------------------------------------------------------------------
# lookup-free quantization


def _lfq_options(
    where: str, entropy_loss_weight: float, diversity_gamma: float, commitment_loss_weight: float
) -> dict[str, float]:
    non_negative(where, "entropy_loss_weight", entropy_loss_weight)
    non_negative(where, "diversity_gamma", diversity_gamma)
    non_negative(where, "commitment_loss_weight", commitment_loss_weight)
    return {
        "entropy_loss_weight": float(entropy_loss_weight),
        "diversity_gamma": float(diversity_gamma),
        "commitment_loss_weight": float(commitment_loss_weight),
    }


class LFQ(LibraryQuantizer):
    """``lfq``: a linear projection to log2(K) scalars quantized to their signs (library
    ``LFQ``). Loss: the library's entropy penalty (per-token entropy minus
    ``diversity_gamma`` x batch code entropy, times ``entropy_loss_weight``; it can be
    negative) plus an optional commitment loss; zero in eval mode."""

    def __init__(
        self,
        dim: int,
        *,
        codebook_size: int = 8192,
        entropy_loss_weight: float = 0.1,
        diversity_gamma: float = 1.0,
        commitment_loss_weight: float = 0.0,
        channel_first: bool | None = None,
    ) -> None:
        super().__init__(dim, channel_first)
        from vector_quantize_pytorch import LFQ as LibraryLFQ

        check_power_of_two("lfq", codebook_size)
        opts = _lfq_options("lfq", entropy_loss_weight, diversity_gamma, commitment_loss_weight)
        self.codebook_size = codebook_size
        self.inner = LibraryLFQ(dim=dim, codebook_size=codebook_size, **opts)

    def _quantize(self, tokens):
        quantized, indices, loss = self.inner(tokens)  # (B, L, C), (B, L), ()
        return quantized, rearrange(indices, "b l -> (b l) 1"), loss


class ResidualLFQ(LibraryQuantizer):
    """``rlfq``: ``num_quantizers`` LFQ stages of K codes on a shared projection, the
    codebook scale halving at every stage (library ``ResidualLFQ``). Loss: the per-stage
    LFQ losses reduced by ``loss_reduction`` (mean in the paper's code); statistics
    averaged over stages."""

    def __init__(
        self,
        dim: int,
        *,
        codebook_size: int = 256,
        num_quantizers: int = 8,
        entropy_loss_weight: float = 0.1,
        diversity_gamma: float = 1.0,
        commitment_loss_weight: float = 0.0,
        loss_reduction: LossReduction = "mean",
        channel_first: bool | None = None,
    ) -> None:
        super().__init__(dim, channel_first)
        from vector_quantize_pytorch import ResidualLFQ as LibraryResidualLFQ

        check_power_of_two("rlfq", codebook_size)
        positive_int("rlfq", "num_quantizers", num_quantizers)
        check_loss_reduction("rlfq", loss_reduction)
        opts = _lfq_options("rlfq", entropy_loss_weight, diversity_gamma, commitment_loss_weight)
        self.codebook_size = codebook_size
        self.loss_reduction = loss_reduction
        self.inner = LibraryResidualLFQ(
            dim=dim, codebook_size=codebook_size, num_quantizers=num_quantizers, **opts
        )

    def _quantize(self, tokens):
        quantized, indices, losses = self.inner(tokens)  # (B, L, C), (B, L, Q), (Q,)
        return quantized, rearrange(indices, "b l q -> (b l) q"), losses


__all__ = ["FSQ", "LFQ", "ResidualFSQ", "ResidualLFQ"]
