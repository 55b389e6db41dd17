"""SVQ-raw: the sparse regression that SVQ approximates in one step, solved with FISTA.

Per token x (a C-vector) it solves the lasso over a codebook M (K, C)::

    min_w  0.5 ||x - w M||^2 + lam ||w||_1          w: (K,)

and returns q = w M. FISTA (accelerated proximal gradient) runs batched over tokens with
step 1/L, L = the largest eigenvalue of M M^T (taken from the small C x C Gram M^T M, which
has the same nonzero eigenvalues). Gradients flow through the unrolled iterations. This is
the slow reference of the paper's motivation, not a method meant to be fast. Like every
quantizer it takes tokens ``(..., C)`` or maps ``(N, C, *spatial)`` (see
:mod:`svqcast.quantizers.base`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from svqcast.errors import ConfigError, choices_error
from svqcast.quantizers.base import Quantizer, QuantizerOutput
from svqcast.quantizers.svq import (
    CODEBOOK_INITS,
    check_positive,
    chunked_map,
    init_codebook_,
    output_scale_stats,
    sample_code_weights,
)


class SparseRegressionQuantizer(Quantizer):
    """``svq_raw``: lasso code weights by FISTA, q = w M.

    Args:
        dim: token dimension C.
        codebook_size: K, the number of codes.
        lam: the L1 weight lambda (>= 0).
        iterations: FISTA iterations (the maximum when ``tol`` is set).
        tol: stop early once max_token ||w_k - w_{k-1}|| / max(||w_{k-1}||, 1e-12) < tol
            (checked per chunk of tokens); None runs all ``iterations``.
        learn_codebook: let the codebook learn (default: a fixed random codebook).
        init: codebook init, one of :data:`svqcast.quantizers.svq.CODEBOOK_INITS`.
        chunk_size: tokens solved at once; with gradients each chunk is checkpointed, so
            the unrolled iterations are stored for one chunk at a time.
        collect_stats: add ``zero_frac`` (exact zeros in w), ``objective`` (mean lasso
            objective per token), ``out_std`` and ``out_in_std_ratio`` to every output.
        channel_first: where the channels of the input sit (None = infer from ``ndim``:
            channel-first maps (N, C, ...) when >= 4, channel-last tokens (..., C) when <= 3).
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int = 1024,
        lam: float = 0.1,
        iterations: int = 20,
        tol: float | None = None,
        learn_codebook: bool = False,
        init: str = "normal",
        chunk_size: int = 4096,
        collect_stats: bool = False,
        channel_first: bool | None = None,
    ) -> None:
        super().__init__(channel_first)
        where = "quantizer 'svq_raw'"
        for name, value in (
            ("dim", dim),
            ("codebook_size", codebook_size),
            ("iterations", iterations),
            ("chunk_size", chunk_size),
        ):
            check_positive(name, value, where)
        if not lam >= 0:
            raise ConfigError(f"{where}: lam must be >= 0, got {lam!r}")
        if tol is not None and not tol > 0:
            raise ConfigError(f"{where}: tol must be > 0 or None, got {tol!r}")
        if init not in CODEBOOK_INITS:
            raise choices_error("codebook init", init, CODEBOOK_INITS)
        self.dim = dim
        self.codebook_size = codebook_size
        self.lam = float(lam)
        self.iterations = iterations
        self.tol = tol
        self.init = init
        self.chunk_size = chunk_size
        self.collect_stats = collect_stats
        self.codebook = nn.Parameter(torch.empty(codebook_size, dim))  # (K, C)
        init_codebook_(self.codebook, init)
        self.codebook.requires_grad_(learn_codebook)

    @torch.no_grad()
    def lipschitz(self) -> float:
        """L = largest eigenvalue of M M^T (= of the C x C Gram M^T M), the step is 1/L."""
        m = self.codebook.double()
        return float(torch.linalg.eigvalsh(m.t() @ m)[-1])

    def solve(self, tokens: torch.Tensor) -> torch.Tensor:
        """FISTA on a batch of tokens: (T, C) -> lasso weights (T, K)."""
        m = self.codebook
        lip = self.lipschitz()
        if lip <= 0:  # an all-zero codebook: w = 0 is the solution
            return tokens.new_zeros(tokens.shape[0], self.codebook_size)
        step, threshold = 1.0 / lip, self.lam / lip
        w = y = tokens.new_zeros(tokens.shape[0], self.codebook_size)  # (T, K)
        t = 1.0
        for _ in range(self.iterations):
            grad = (y @ m - tokens) @ m.t()  # (T, K): the gradient of 0.5||x - y M||^2
            w_next = F.softshrink(y - step * grad, threshold)
            t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
            y = w_next + ((t - 1.0) / t_next) * (w_next - w)
            if self.tol is not None:
                with torch.no_grad():
                    change = (w_next - w).norm(dim=1) / w.norm(dim=1).clamp_min(1e-12)
                    done = bool(change.max() < self.tol)
                w, t = w_next, t_next
                if done:
                    break
            else:
                w, t = w_next, t_next
        return w

    def objective(self, tokens: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Per-token lasso objective 0.5||x - w M||^2 + lam ||w||_1: (T, C), (T, K) -> (T,)."""
        residual = tokens - weights @ self.codebook
        return 0.5 * (residual * residual).sum(1) + self.lam * weights.abs().sum(1)

    def code_weights(self, z: torch.Tensor) -> torch.Tensor:
        """Lasso weights, K last: (..., C) -> (..., K) for channel-last tokens (so (T, C) ->
        (T, K)), (N, C, *S) -> (N, *S, K) for channel-first maps."""
        layout = self.token_layout(z)
        return layout.unflatten(self._solve_chunks(layout.tokens(z)))

    def _solve_chunks(self, tokens: torch.Tensor) -> torch.Tensor:
        """(T, C) -> (T, K), ``chunk_size`` tokens at a time."""
        parts = [
            self.solve(tokens[s : s + self.chunk_size])
            for s in range(0, len(tokens), self.chunk_size)
        ]
        return torch.cat(parts)

    def weight_sample(self, z: torch.Tensor, max_tokens: int = 1024) -> torch.Tensor:
        """All K lasso weights of at most ``max_tokens`` evenly spaced tokens, as 1-D."""
        return sample_code_weights(self, z, max_tokens)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        layout = self.token_layout(z)
        # FISTA in bf16 would not converge: solve in the codebook's dtype, autocast or not.
        with torch.autocast(device_type=z.device.type, enabled=False):
            tokens = layout.tokens(z).to(self.codebook.dtype)  # (T, C)
            q = chunked_map(
                lambda part: self.solve(part) @ self.codebook,
                tokens,
                self.chunk_size,
                [self.codebook],
            )
        quantized = layout.restore(q)
        stats: dict[str, torch.Tensor] = {}
        if self.collect_stats:
            with torch.no_grad(), torch.autocast(device_type=z.device.type, enabled=False):
                w = self._solve_chunks(tokens)
                stats = {
                    "zero_frac": (w == 0).float().mean(),
                    "objective": self.objective(tokens, w).mean().float(),
                    **output_scale_stats(z, quantized),
                }
        return QuantizerOutput(quantized, self.zero_loss(z), stats)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, codebook_size={self.codebook_size}, lam={self.lam}, "
            f"iterations={self.iterations}, tol={self.tol}, init={self.init!r}, "
            f"learn_codebook={self.codebook.requires_grad}"
            + ("" if self.channel_first is None else f", channel_first={self.channel_first}")
        )


__all__ = ["SparseRegressionQuantizer"]
