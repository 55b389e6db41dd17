"""Baseline quantizers: thin adapters over ``vector-quantize-pytorch``.

The paper compares SVQ with eight quantizers of lucidrains' ``vector-quantize-pytorch``
(section "VQ baselines compared on t2m"). Each adapter wraps one library module behind the
:class:`~svqcast.quantizers.base.Quantizer` contract: the input (tokens ``(..., C)`` or a
map ``(N, C, *spatial)``) becomes sequences ``(B, L, C)``, the library quantizes them, and
the result takes the input's shape back. The quantizers themselves are the library's; the
adapters only adapt shapes, validate options, reduce the auxiliary losses to one scalar and
measure code usage.

The adapters live by family: :mod:`~svqcast.quantizers.library_codebook` (VQ, multi-head,
residual and grouped residual VQ), :mod:`~svqcast.quantizers.library_scalar` (FSQ, residual
FSQ, LFQ, residual LFQ) and the shared part :mod:`~svqcast.quantizers.library_common`; this
module re-exports them all and holds the paper's presets (:data:`PRESETS`).

Defaults are the paper's presets; every option is an explicit keyword. The library is
imported when a quantizer is built, so ``import svqcast`` stays light.
"""

from __future__ import annotations

from typing import Any

from svqcast.quantizers.library_codebook import VQ, GroupedResidualVQ, MultiHeadVQ, ResidualVQ
from svqcast.quantizers.library_common import LibraryQuantizer, LossReduction, code_usage
from svqcast.quantizers.library_scalar import FSQ, LFQ, ResidualFSQ, ResidualLFQ

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


__all__ = [
    "FSQ",
    "LFQ",
    "PRESETS",
    "VQ",
    "GroupedResidualVQ",
    "LibraryQuantizer",
    "LossReduction",
    "MultiHeadVQ",
    "ResidualFSQ",
    "ResidualLFQ",
    "ResidualVQ",
    "code_usage",
]
