"""Baseline quantizers: thin adapters over ``vector-quantize-pytorch``.

The paper compares SVQ with eight quantizers of lucidrains' ``vector-quantize-pytorch``
(section "VQ baselines compared on t2m"). Each class here wraps one library module behind
the :class:`~svqcast.quantizers.base.Quantizer` contract: a latent map (N, C, H, W) becomes
N*H*W tokens of dimension C, the library quantizes them, and the result is reshaped back.
The quantizers themselves are the library's; this file only adapts shapes, validates
options, reduces the auxiliary losses to one scalar and measures code usage.

Defaults are the paper's presets (:data:`PRESETS`); every option is an explicit keyword.
The library is imported when a quantizer is built, so ``import svqcast`` stays light.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from einops import rearrange

from svqcast.errors import ConfigError
from svqcast.quantizers.base import Quantizer, QuantizerOutput

LossReduction = Literal["mean", "sum"]

# The paper's presets (its code: configs/weather/t2m_5_625/ablation_vq/*.py; all with
# dim = hid_S, MSE training loss, auxiliary loss added with weight 1). Each constructor's
# defaults equal the options of the preset of the same name (a test keeps them in step).
PRESETS: dict[str, dict[str, Any]] = {
    "vq": {
        "quantizer": "vq",
        "paper_row": "VQ",
        "options": {"codebook_size": 1024, "decay": 0.8, "commitment_weight": 1.0},
    },
    "mhvq": {
        "quantizer": "mhvq",
        "paper_row": "Multi-head VQ",
        "options": {"codebook_size": 1024, "heads": 8, "separate_codebook_per_head": False},
    },
    "rvq": {
        "quantizer": "rvq",
        "paper_row": "Residual VQ",
        "options": {"codebook_size": 1024, "num_quantizers": 8, "shared_codebook": True},
    },
    "rvq_stochastic": {
        "quantizer": "rvq",
        "paper_row": "Residual VQ + stochastic sampling",
        "options": {
            "codebook_size": 1024,
            "num_quantizers": 8,
            "shared_codebook": True,
            "stochastic_sample_codes": True,
            "sample_codebook_temp": 0.1,
        },
    },
    "grvq": {
        "quantizer": "grvq",
        "paper_row": "Grouped residual VQ",
        "options": {
            "codebook_size": 1024,
            "num_quantizers": 8,
            "groups": 2,
            "shared_codebook": True,
        },
    },
    "lfq": {
        "quantizer": "lfq",
        "paper_row": "LFQ",
        "options": {"codebook_size": 8192, "entropy_loss_weight": 0.1, "diversity_gamma": 1.0},
    },
    "rlfq": {
        "quantizer": "rlfq",
        "paper_row": "Residual LFQ",
        "options": {"codebook_size": 256, "num_quantizers": 8},
    },
    "rfsq": {
        "quantizer": "rfsq",
        "paper_row": "Residual FSQ",
        "options": {"levels": (8, 5, 5, 3), "num_quantizers": 8},
    },
    "fsq": {
        "quantizer": "fsq",
        "paper_row": "(not a paper row: FSQ with the levels of the residual FSQ row)",
        "options": {"levels": (8, 5, 5, 3)},
    },
}


# ---------------------------------------------------------------------------------------
# option checks: each raises ConfigError naming the quantizer, the option and the fix


def _require(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"quantizer {where}: {message}")


def _positive_int(where: str, name: str, value: object) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    _require(ok, where, f"{name} must be a positive integer, got {value!r}")


def _non_negative(where: str, name: str, value: object) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
    _require(ok, where, f"{name} must be a number >= 0, got {value!r}")


def _loss_reduction(where: str, value: object) -> None:
    _require(
        value in ("mean", "sum"), where, f"loss_reduction must be 'mean' or 'sum', got {value!r}"
    )


def _levels(where: str, levels: object, minimum: int) -> list[int]:
    ok = (
        isinstance(levels, Sequence)
        and not isinstance(levels, str)
        and len(levels) > 0
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in levels)
    )
    _require(
        ok,
        where,
        f"levels must be a non-empty list of integers >= {minimum} (e.g. [8, 5, 5, 3]), "
        f"got {levels!r}",
    )
    return list(levels)  # type: ignore[arg-type]


def _power_of_two(where: str, codebook_size: object) -> None:
    _positive_int(where, "codebook_size", codebook_size)
    ok = codebook_size >= 2 and math.log2(codebook_size).is_integer()  # type: ignore[operator]
    suggestion = 2 ** max(1, round(math.log2(max(codebook_size, 1))))  # type: ignore[arg-type]
    _require(
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


class _LibraryQuantizer(Quantizer):
    """Token reshape, dtype, loss reduction and statistics shared by every adapter.

    Subclasses build ``self.inner`` (the library module) and implement ``_quantize`` on
    tokens (B, L, C), returning the quantized tokens, the code indices (B*L, S) and the
    library's loss (any shape; reduced with ``self.loss_reduction``).
    """

    codebook_size: int
    loss_reduction: LossReduction = "mean"

    def __init__(self, dim: int) -> None:
        super().__init__()
        _positive_int(type(self).__name__, "dim", dim)
        self.dim = dim

    def _quantize(
        self, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        self.check_input(z, self.dim)
        height, width = z.shape[-2:]
        tokens = rearrange(z, "n c h w -> n (h w) c")  # (N, H*W, C)
        quantized, indices, loss = self._quantize(tokens)
        quantized = rearrange(quantized, "n (h w) c -> n c h w", h=height, w=width)
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
        return f"dim={self.dim}, codebook_size={self.codebook_size}"


def _vq_library_options(
    where: str,
    *,
    codebook_size: int,
    codebook_dim: int | None,
    decay: float,
    commitment_weight: float,
    kmeans_init: bool,
    threshold_ema_dead_code: int,
    rotation_trick: bool,
) -> dict[str, Any]:
    """Check and collect the options every VectorQuantize-based adapter passes on."""
    _positive_int(where, "codebook_size", codebook_size)
    if codebook_dim is not None:
        _positive_int(where, "codebook_dim", codebook_dim)
    ok_decay = isinstance(decay, (int, float)) and 0.0 <= decay < 1.0
    _require(ok_decay, where, f"decay (EMA) must be in [0, 1), got {decay!r}")
    _non_negative(where, "commitment_weight", commitment_weight)
    _non_negative(where, "threshold_ema_dead_code", threshold_ema_dead_code)
    return {
        "codebook_size": codebook_size,
        "codebook_dim": codebook_dim,
        "decay": float(decay),
        "commitment_weight": float(commitment_weight),
        "kmeans_init": bool(kmeans_init),
        "threshold_ema_dead_code": threshold_ema_dead_code,
        # False = the plain straight-through estimator the paper's library version used;
        # recent versions default to the rotation trick (arXiv 2410.06424) instead.
        "rotation_trick": bool(rotation_trick),
    }


def _residual_vq_options(
    where: str,
    *,
    num_quantizers: int,
    shared_codebook: bool,
    stochastic_sample_codes: bool,
    sample_codebook_temp: float,
    loss_reduction: str,
    vq_options: dict[str, Any],
) -> dict[str, Any]:
    """Check and collect the options of the ResidualVQ-based adapters."""
    _positive_int(where, "num_quantizers", num_quantizers)
    _loss_reduction(where, loss_reduction)
    ok_temp = isinstance(sample_codebook_temp, (int, float)) and sample_codebook_temp > 0
    _require(ok_temp, where, f"sample_codebook_temp must be > 0, got {sample_codebook_temp!r}")
    return {
        **vq_options,
        "num_quantizers": num_quantizers,
        "shared_codebook": bool(shared_codebook),
        "stochastic_sample_codes": bool(stochastic_sample_codes),
        "sample_codebook_temp": float(sample_codebook_temp),
    }


# ---------------------------------------------------------------------------------------
# VectorQuantize family


class VQ(_LibraryQuantizer):
    """``vq``: one EMA codebook of K codes, nearest-neighbour lookup, straight-through
    gradients and a commitment loss (library ``VectorQuantize``)."""

    def __init__(
        self,
        dim: int,
        *,
        codebook_size: int = 1024,
        decay: float = 0.8,
        commitment_weight: float = 1.0,
        codebook_dim: int | None = None,
        kmeans_init: bool = False,
        threshold_ema_dead_code: int = 0,
        rotation_trick: bool = False,
    ) -> None:
        super().__init__(dim)
        from vector_quantize_pytorch import VectorQuantize

        opts = _vq_library_options(
            "vq",
            codebook_size=codebook_size,
            codebook_dim=codebook_dim,
            decay=decay,
            commitment_weight=commitment_weight,
            kmeans_init=kmeans_init,
            threshold_ema_dead_code=threshold_ema_dead_code,
            rotation_trick=rotation_trick,
        )
        self.codebook_size = codebook_size
        self.inner = VectorQuantize(dim=dim, **opts)

    def _quantize(self, tokens):
        quantized, indices, loss = self.inner(tokens)  # (B, L, C), (B, L), ()
        return quantized, rearrange(indices, "b l -> (b l) 1"), loss


class MultiHeadVQ(_LibraryQuantizer):
    """``mhvq``: each token is projected to ``heads`` x ``codebook_dim`` and every head is
    quantized against one shared codebook (library ``VectorQuantize(heads=...)``).

    ``codebook_dim`` defaults to ``dim`` (the paper: 32 = hid_S), so no divisibility of
    ``dim`` by ``heads`` is needed; statistics are averaged over heads.
    """

    def __init__(
        self,
        dim: int,
        *,
        codebook_size: int = 1024,
        heads: int = 8,
        separate_codebook_per_head: bool = False,
        codebook_dim: int | None = None,
        decay: float = 0.8,
        commitment_weight: float = 1.0,
        kmeans_init: bool = False,
        threshold_ema_dead_code: int = 0,
        rotation_trick: bool = False,
    ) -> None:
        super().__init__(dim)
        from vector_quantize_pytorch import VectorQuantize

        _positive_int("mhvq", "heads", heads)
        opts = _vq_library_options(
            "mhvq",
            codebook_size=codebook_size,
            codebook_dim=codebook_dim,
            decay=decay,
            commitment_weight=commitment_weight,
            kmeans_init=kmeans_init,
            threshold_ema_dead_code=threshold_ema_dead_code,
            rotation_trick=rotation_trick,
        )
        self.codebook_size = codebook_size
        self.heads = heads
        self.inner = VectorQuantize(
            dim=dim,
            heads=heads,
            separate_codebook_per_head=bool(separate_codebook_per_head),
            **opts,
        )

    def _quantize(self, tokens):
        quantized, indices, loss = self.inner(tokens)  # (B, L, C), (B, L, heads), ()
        if indices.ndim == 2:  # heads == 1: the library drops the head axis
            indices = rearrange(indices, "b l -> b l 1")
        return quantized, rearrange(indices, "b l h -> (b l) h"), loss


class ResidualVQ(_LibraryQuantizer):
    """``rvq``: ``num_quantizers`` VQ stages, each quantizing the residual of the previous
    ones (library ``ResidualVQ``). ``stochastic_sample_codes`` with ``sample_codebook_temp``
    draws codes by Gumbel sampling during training (the paper's "stochastic sampling" row,
    temperature 0.1). Loss: the per-stage commitment losses reduced by ``loss_reduction``
    (the paper's code takes the mean); statistics are averaged over stages.
    """

    def __init__(
        self,
        dim: int,
        *,
        codebook_size: int = 1024,
        num_quantizers: int = 8,
        shared_codebook: bool = True,
        stochastic_sample_codes: bool = False,
        sample_codebook_temp: float = 1.0,
        decay: float = 0.8,
        commitment_weight: float = 1.0,
        codebook_dim: int | None = None,
        kmeans_init: bool = False,
        threshold_ema_dead_code: int = 0,
        rotation_trick: bool = False,
        loss_reduction: LossReduction = "mean",
    ) -> None:
        super().__init__(dim)
        from vector_quantize_pytorch import ResidualVQ as LibraryResidualVQ

        opts = _residual_vq_options(
            "rvq",
            num_quantizers=num_quantizers,
            shared_codebook=shared_codebook,
            stochastic_sample_codes=stochastic_sample_codes,
            sample_codebook_temp=sample_codebook_temp,
            loss_reduction=loss_reduction,
            vq_options=_vq_library_options(
                "rvq",
                codebook_size=codebook_size,
                codebook_dim=codebook_dim,
                decay=decay,
                commitment_weight=commitment_weight,
                kmeans_init=kmeans_init,
                threshold_ema_dead_code=threshold_ema_dead_code,
                rotation_trick=rotation_trick,
            ),
        )
        self.codebook_size = codebook_size
        self.loss_reduction = loss_reduction
        self.inner = LibraryResidualVQ(dim=dim, **opts)

    def _quantize(self, tokens):
        quantized, indices, losses = self.inner(tokens)  # (B, L, C), (B, L, Q), (Q,)
        return quantized, rearrange(indices, "b l q -> (b l) q"), losses


class GroupedResidualVQ(_LibraryQuantizer):
    """``grvq``: the channels are split into ``groups`` equal parts, each quantized by its
    own residual VQ (library ``GroupedResidualVQ``); ``dim`` must be divisible by
    ``groups``. Loss and statistics are reduced over groups x stages.
    """

    def __init__(
        self,
        dim: int,
        *,
        codebook_size: int = 1024,
        num_quantizers: int = 8,
        groups: int = 2,
        shared_codebook: bool = True,
        stochastic_sample_codes: bool = False,
        sample_codebook_temp: float = 1.0,
        decay: float = 0.8,
        commitment_weight: float = 1.0,
        codebook_dim: int | None = None,
        kmeans_init: bool = False,
        threshold_ema_dead_code: int = 0,
        rotation_trick: bool = False,
        loss_reduction: LossReduction = "mean",
    ) -> None:
        super().__init__(dim)
        from vector_quantize_pytorch import GroupedResidualVQ as LibraryGroupedResidualVQ

        _positive_int("grvq", "groups", groups)
        _require(
            dim % groups == 0,
            "grvq",
            f"dim={dim} is not divisible by groups={groups}; choose groups dividing the "
            "latent channels (hid_S)",
        )
        opts = _residual_vq_options(
            "grvq",
            num_quantizers=num_quantizers,
            shared_codebook=shared_codebook,
            stochastic_sample_codes=stochastic_sample_codes,
            sample_codebook_temp=sample_codebook_temp,
            loss_reduction=loss_reduction,
            vq_options=_vq_library_options(
                "grvq",
                codebook_size=codebook_size,
                codebook_dim=codebook_dim,
                decay=decay,
                commitment_weight=commitment_weight,
                kmeans_init=kmeans_init,
                threshold_ema_dead_code=threshold_ema_dead_code,
                rotation_trick=rotation_trick,
            ),
        )
        self.codebook_size = codebook_size
        self.groups = groups
        self.loss_reduction = loss_reduction
        self.inner = LibraryGroupedResidualVQ(dim=dim, groups=groups, **opts)

    def _quantize(self, tokens):
        quantized, indices, losses = self.inner(tokens)  # (B, L, C), (G, B, L, Q), (G, Q)
        return quantized, rearrange(indices, "g b l q -> (b l) (g q)"), losses


# ---------------------------------------------------------------------------------------
# finite scalar quantization


class FSQ(_LibraryQuantizer):
    """``fsq``: a linear projection to ``len(levels)`` scalars, each bounded and rounded to
    one of ``levels[i]`` values (library ``FSQ``); K = prod(levels), no auxiliary loss."""

    def __init__(self, dim: int, *, levels: Sequence[int] = (8, 5, 5, 3)) -> None:
        super().__init__(dim)
        from vector_quantize_pytorch import FSQ as LibraryFSQ

        # a level of 2 needs the library's symmetry-preserving variant; keep the plain one
        levels = _levels("fsq", levels, minimum=3)
        self.levels = tuple(levels)
        self.codebook_size = math.prod(levels)
        self.inner = LibraryFSQ(levels=levels, dim=dim)

    def _quantize(self, tokens):
        quantized, indices = self.inner(tokens)  # (B, L, C), (B, L)
        return quantized, rearrange(indices, "b l -> (b l) 1"), None


class ResidualFSQ(_LibraryQuantizer):
    """``rfsq``: ``num_quantizers`` FSQ stages on a shared projection, each quantizing the
    (rescaled) residual of the previous ones (library ``ResidualFSQ``); no auxiliary loss;
    statistics averaged over stages."""

    def __init__(
        self, dim: int, *, levels: Sequence[int] = (8, 5, 5, 3), num_quantizers: int = 8
    ) -> None:
        super().__init__(dim)
        from vector_quantize_pytorch import ResidualFSQ as LibraryResidualFSQ

        levels = _levels("rfsq", levels, minimum=2)
        _positive_int("rfsq", "num_quantizers", num_quantizers)
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
    _non_negative(where, "entropy_loss_weight", entropy_loss_weight)
    _non_negative(where, "diversity_gamma", diversity_gamma)
    _non_negative(where, "commitment_loss_weight", commitment_loss_weight)
    return {
        "entropy_loss_weight": float(entropy_loss_weight),
        "diversity_gamma": float(diversity_gamma),
        "commitment_loss_weight": float(commitment_loss_weight),
    }


class LFQ(_LibraryQuantizer):
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
    ) -> None:
        super().__init__(dim)
        from vector_quantize_pytorch import LFQ as LibraryLFQ

        _power_of_two("lfq", codebook_size)
        opts = _lfq_options("lfq", entropy_loss_weight, diversity_gamma, commitment_loss_weight)
        self.codebook_size = codebook_size
        self.inner = LibraryLFQ(dim=dim, codebook_size=codebook_size, **opts)

    def _quantize(self, tokens):
        quantized, indices, loss = self.inner(tokens)  # (B, L, C), (B, L), ()
        return quantized, rearrange(indices, "b l -> (b l) 1"), loss


class ResidualLFQ(_LibraryQuantizer):
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
    ) -> None:
        super().__init__(dim)
        from vector_quantize_pytorch import ResidualLFQ as LibraryResidualLFQ

        _power_of_two("rlfq", codebook_size)
        _positive_int("rlfq", "num_quantizers", num_quantizers)
        _loss_reduction("rlfq", loss_reduction)
        opts = _lfq_options("rlfq", entropy_loss_weight, diversity_gamma, commitment_loss_weight)
        self.codebook_size = codebook_size
        self.loss_reduction = loss_reduction
        self.inner = LibraryResidualLFQ(
            dim=dim, codebook_size=codebook_size, num_quantizers=num_quantizers, **opts
        )

    def _quantize(self, tokens):
        quantized, indices, losses = self.inner(tokens)  # (B, L, C), (B, L, Q), (Q,)
        return quantized, rearrange(indices, "b l q -> (b l) q"), losses


__all__ = [
    "FSQ",
    "LFQ",
    "PRESETS",
    "VQ",
    "GroupedResidualVQ",
    "MultiHeadVQ",
    "ResidualFSQ",
    "ResidualLFQ",
    "ResidualVQ",
    "code_usage",
]
