"""Codebook VQ baselines: adapters over ``vector-quantize-pytorch``'s ``VectorQuantize``,
``ResidualVQ`` and ``GroupedResidualVQ`` (nearest-neighbour lookup in EMA codebooks)."""

from __future__ import annotations

from typing import Any

from einops import rearrange

from svqcast.quantizers.library_common import (
    LibraryQuantizer,
    LossReduction,
    check_loss_reduction,
    non_negative,
    positive_int,
    require,
)


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
    positive_int(where, "codebook_size", codebook_size)
    if codebook_dim is not None:
        positive_int(where, "codebook_dim", codebook_dim)
    ok_decay = isinstance(decay, (int, float)) and 0.0 <= decay < 1.0
    require(ok_decay, where, f"decay (EMA) must be in [0, 1), got {decay!r}")
    non_negative(where, "commitment_weight", commitment_weight)
    non_negative(where, "threshold_ema_dead_code", threshold_ema_dead_code)
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
    positive_int(where, "num_quantizers", num_quantizers)
    check_loss_reduction(where, loss_reduction)
    ok_temp = isinstance(sample_codebook_temp, (int, float)) and sample_codebook_temp > 0
    require(ok_temp, where, f"sample_codebook_temp must be > 0, got {sample_codebook_temp!r}")
    return {
        **vq_options,
        "num_quantizers": num_quantizers,
        "shared_codebook": bool(shared_codebook),
        "stochastic_sample_codes": bool(stochastic_sample_codes),
        "sample_codebook_temp": float(sample_codebook_temp),
    }


# ---------------------------------------------------------------------------------------
# VectorQuantize family


class VQ(LibraryQuantizer):
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
        channel_first: bool | None = None,
    ) -> None:
        super().__init__(dim, channel_first)
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


class MultiHeadVQ(LibraryQuantizer):
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
        channel_first: bool | None = None,
    ) -> None:
        super().__init__(dim, channel_first)
        from vector_quantize_pytorch import VectorQuantize

        positive_int("mhvq", "heads", heads)
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


class ResidualVQ(LibraryQuantizer):
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
        channel_first: bool | None = None,
    ) -> None:
        super().__init__(dim, channel_first)
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


class GroupedResidualVQ(LibraryQuantizer):
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
        channel_first: bool | None = None,
    ) -> None:
        super().__init__(dim, channel_first)
        from vector_quantize_pytorch import GroupedResidualVQ as LibraryGroupedResidualVQ

        positive_int("grvq", "groups", groups)
        require(
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


__all__ = ["VQ", "GroupedResidualVQ", "MultiHeadVQ", "ResidualVQ"]
