"""SVQ: differentiable sparse soft vector quantization, and its codebook-free twin ``mlp``.

Every token x (a C-vector of the latent map) is replaced by a soft mixture of K codes::

    h = act_hid(x W1^T + b1)      W1: (middim, C)
    w = act_out(h W2^T + b2)      W2: (K, middim)      the K code weights
    q = w M                       M:  (K, C)           the codebook

With ``act_out`` the identity (the default) the two last factors fold into one small matrix,
``q = h (W2^T M) + b2 M``: the same function and, by the chain rule, the same gradients for
every parameter, without ever building the (tokens, K) weight tensor. That fold is the fast
path; the direct formula stays available (``fast=False``, :meth:`SVQ.direct`) as the
reference. With ``out_relu=True`` the fold does not apply and the direct formula runs in
token chunks with activation checkpointing, so memory stays bounded by one chunk.

``parametrisation`` chooses how the same function is parametrised and trained (the paper's
is ``"paper"``; the others exist because a fresh SVQ's first Adam steps move its output
thousands of times as far as a plain MLP's, see docs/svq.md):

- ``lr_scaled``: the code-weight layer (W2, b2) and the codebook train at ``lr_scale``
  times the model's learning rate (an optimiser parameter group; default 1/K);
- ``readout``: q = alpha (h W2^T M + b2 M) with alpha = K^-readout_power, W2 and b2
  initialised K^(readout_power - 1/2) times larger, so the output at init is the paper's
  divided by sqrt(K) whatever the power;
- ``rmsnorm``: q = g * y / rms(y) per token, y the paper's output, g a learnable gain (1);
- ``residual``: q = x + a * y, a learnable scalar that starts at 0;
- ``warmup``: the paper's function, SVQ's parameters alone ramped from 1/warmup_steps to
  the full learning rate over ``warmup_steps`` optimiser steps.

Every one keeps the fold (the extra scale, norm or residual acts on the folded output).

Both work on any layout of the contract (:mod:`svqcast.quantizers.base`): tokens
``(..., C)`` or maps ``(N, C, *spatial)`` are flattened to ``(T, C)`` and restored.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from svqcast.errors import ConfigError, choices_error
from svqcast.quantizers.base import ParamGroup, Quantizer, QuantizerOutput
from svqcast.quantizers.parametrisations import (
    MLP_PARAMETRISATIONS,
    PARAMETRISATIONS,
    check_parametrisation,
    finish_output,
)

CODEBOOK_INITS: tuple[str, ...] = (
    "normal",
    "random",
    "kaiming",
    "xavier",
    "sparse",
    "trunc",
    "orthogonal",
)
SPARSE_INIT_SPARSITY = 0.9  # fraction of zeros per column for init="sparse"
NEAR_ZERO_REL = 0.01  # a weight is "near zero" when |w| < NEAR_ZERO_REL * std(all weights)


# ---------------------------------------------------------------- helpers shared with svq_raw


def check_positive(name: str, value: int, where: str) -> None:
    """Raise ConfigError unless ``value`` is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: {name} must be a positive integer, got {value!r}")


@torch.no_grad()
def init_codebook_(codebook: torch.Tensor, init: str) -> torch.Tensor:
    """Fill a (K, C) codebook in place with one of :data:`CODEBOOK_INITS`.

    normal/random: N(0, 1); kaiming: U(+-sqrt(6/C)) (kaiming-uniform, fan-in, a=0); xavier:
    xavier-uniform with the ReLU gain; sparse: torch's sparse init (90% zeros per column,
    the rest N(0, 0.01)); trunc: N(0, 1) truncated to [-2, 2]; orthogonal: orthonormal
    columns (rows if K < C).
    """
    if init in ("normal", "random"):
        return nn.init.normal_(codebook)
    if init == "kaiming":
        return nn.init.kaiming_uniform_(codebook, a=0.0)
    if init == "xavier":
        return nn.init.xavier_uniform_(codebook, gain=nn.init.calculate_gain("relu"))
    if init == "sparse":
        return nn.init.sparse_(codebook, sparsity=SPARSE_INIT_SPARSITY)
    if init == "trunc":
        return nn.init.trunc_normal_(codebook)
    if init == "orthogonal":
        return nn.init.orthogonal_(codebook)
    raise choices_error("codebook init", init, CODEBOOK_INITS)


class _ChunkedRecompute(torch.autograd.Function):
    """Apply a token-wise function chunk by chunk, keeping nothing but its inputs.

    Backward recomputes each chunk under the forward's autocast state and back-propagates
    it at once, so peak memory is one chunk's intermediates whatever the number of tokens.
    (Hand-written rather than torch.utils.checkpoint, whose first call imports torch._dynamo
    and costs seconds.)
    """

    @staticmethod
    def forward(ctx, fn, chunk_size, tokens, *params):
        device = tokens.device.type
        ctx.fn, ctx.chunk_size, ctx.params = fn, chunk_size, params
        ctx.autocast = (torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
        ctx.save_for_backward(tokens)
        return torch.cat(
            [fn(tokens[s : s + chunk_size]) for s in range(0, len(tokens), chunk_size)]
        )

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        (tokens,) = ctx.saved_tensors
        params = [p for p in ctx.params if p.requires_grad]
        grad_tokens = torch.zeros_like(tokens) if ctx.needs_input_grad[2] else None
        grad_params = [torch.zeros_like(p) for p in params]
        enabled, dtype = ctx.autocast
        for s in range(0, len(tokens), ctx.chunk_size):
            part = tokens[s : s + ctx.chunk_size].detach().requires_grad_(grad_tokens is not None)
            with torch.enable_grad(), torch.autocast(tokens.device.type, dtype, enabled):
                # the scalar (out * grad).sum() has the gradients of grad_outputs=grad and
                # avoids the symbolic-shape import an explicit grad_outputs costs in torch
                target = (ctx.fn(part) * grad_out[s : s + ctx.chunk_size]).sum()
            inputs = ([part] if grad_tokens is not None else []) + params
            grads = torch.autograd.grad(target, inputs, allow_unused=True)
            if grad_tokens is not None:
                if grads[0] is not None:
                    grad_tokens[s : s + ctx.chunk_size] = grads[0]
                grads = grads[1:]
            for total, g in zip(grad_params, grads):
                if g is not None:
                    total += g
        by_param = dict(zip(map(id, params), grad_params))
        return (None, None, grad_tokens, *(by_param.get(id(p)) for p in ctx.params))


def chunked_map(
    fn: Callable[[torch.Tensor], torch.Tensor],
    tokens: torch.Tensor,
    chunk_size: int,
    params: list[nn.Parameter],
) -> torch.Tensor:
    """Apply a token-wise ``fn`` (which may use ``params``) to ``tokens`` in chunks of rows.

    When a gradient is needed only the chunk inputs are kept; each chunk is recomputed in
    backward, so peak memory is bounded by one chunk, whatever the number of tokens.
    """
    params = [p for p in params if p.requires_grad]
    if torch.is_grad_enabled() and (tokens.requires_grad or params):
        return _ChunkedRecompute.apply(fn, chunk_size, tokens, *params)
    outs = [fn(tokens[s : s + chunk_size]) for s in range(0, len(tokens), chunk_size)]
    return torch.cat(outs) if len(outs) != 1 else outs[0]


def perplexity_from_counts(counts: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of how ``counts`` (one per code) spread over the codes; 0 if all zero."""
    counts = counts.double()
    total = counts.sum()
    if total <= 0:
        return counts.new_zeros(())
    p = counts[counts > 0] / total
    return torch.exp(-(p * p.log()).sum())


def output_scale_stats(z: torch.Tensor, quantized: torch.Tensor) -> dict[str, torch.Tensor]:
    """std of the output and its ratio to the std of the input (global, all elements)."""
    out_std = quantized.detach().float().std()
    in_std = z.detach().float().std()
    return {"out_std": out_std, "out_in_std_ratio": out_std / in_std.clamp_min(1e-12)}


def _no_autocast(device: torch.device):
    return torch.autocast(device_type=device.type, enabled=False)


@torch.no_grad()
def sample_code_weights(quantizer: Quantizer, z: torch.Tensor, max_tokens: int) -> torch.Tensor:
    """All code weights of at most ``max_tokens`` evenly spaced tokens of ``z``, flattened.

    ``quantizer`` needs ``code_weights((T, C)) -> (T, K)`` and a ``codebook``; ``z`` may
    have any layout of the contract (tokens in the order of ``TokenLayout.tokens``).
    """
    check_positive("max_tokens", max_tokens, f"{type(quantizer).__name__}.weight_sample")
    tokens = quantizer.token_layout(z).tokens(z)
    if tokens.shape[0] > max_tokens:
        idx = torch.linspace(0, tokens.shape[0] - 1, max_tokens, device=z.device).long()
        tokens = tokens[idx]
    with _no_autocast(z.device):
        return quantizer.code_weights(tokens.to(quantizer.codebook.dtype)).flatten()


# ---------------------------------------------------------------------------------- SVQ


class SVQ(Quantizer):
    """Sparse soft vector quantization: each token becomes ``w M``, ``w`` from a small MLP.

    Args:
        dim: token dimension C (the encoder's hid_S).
        codebook_size: K, the number of codes (paper: 10,000 or 6,000).
        middim: hidden width of the MLP (clamped to K when K is smaller).
        nonlinear: two-layer MLP (True) or a single Linear C -> K (False).
        hid_relu / out_relu: ReLU after the hidden / the weight layer. With
            ``nonlinear=False`` both are ignored, as in the official code (which builds the
            ReLUs only for the two-layer MLP).
        freeze_codebook: keep the random codebook fixed (no gradient; still saved).
        init: codebook init, one of :data:`CODEBOOK_INITS`.
        fast: use the exact fold when ``out_relu`` is off (chunked direct formula when on);
            ``fast=False`` always runs the plain direct formula (the reference, memory-heavy).
        freeze_mlp: keep the MLP fixed at its random init (the paper's "frozen MLP" ablation).
        chunk_size: tokens per chunk for the chunked direct path and the diagnostics.
        collect_stats: compute the code-usage diagnostics in every forward (costly).
        channel_first: where the channels of the input sit (None = infer from ``ndim``:
            channel-first maps (N, C, ...) when >= 4, channel-last tokens (..., C) when <= 3).
        parametrisation: one of :data:`PARAMETRISATIONS` (see the module docstring);
            ``"paper"`` is the paper's code exactly.
        lr_scale: with ``lr_scaled``, the learning-rate factor of W2, b2 and the codebook
            (None = 1/K).
        readout_power: with ``readout``, alpha = K^-readout_power (None = 1).
        warmup_steps: with ``warmup``, optimiser steps of SVQ's own warm-up (None = 100).
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int = 10000,
        middim: int = 128,
        nonlinear: bool = True,
        hid_relu: bool = True,
        out_relu: bool = False,
        freeze_codebook: bool = False,
        init: str = "normal",
        fast: bool = True,
        freeze_mlp: bool = False,
        chunk_size: int = 4096,
        collect_stats: bool = False,
        channel_first: bool | None = None,
        parametrisation: str = "paper",
        lr_scale: float | None = None,
        readout_power: float | None = None,
        warmup_steps: int | None = None,
    ) -> None:
        super().__init__(channel_first)
        check_parametrisation(parametrisation, lr_scale, readout_power, warmup_steps)
        for name, value in (
            ("dim", dim),
            ("codebook_size", codebook_size),
            ("middim", middim),
            ("chunk_size", chunk_size),
        ):
            check_positive(name, value, "quantizer 'svq'")
        if init not in CODEBOOK_INITS:
            raise choices_error("codebook init", init, CODEBOOK_INITS)
        self.dim = dim
        self.codebook_size = codebook_size
        self.middim = min(middim, codebook_size) if nonlinear else None
        self.nonlinear = nonlinear
        self.hid_relu = hid_relu
        # the official MLP has no output ReLU without its hidden layer: out_relu is ignored
        # there (the effective value is stored)
        self.out_relu = bool(out_relu) and nonlinear
        self.init = init
        self.fast = fast
        self.chunk_size = chunk_size
        self.collect_stats = collect_stats

        self.hidden = nn.Linear(dim, self.middim) if nonlinear else None
        self.to_weights = nn.Linear(self.middim if nonlinear else dim, codebook_size)
        self.codebook = nn.Parameter(torch.empty(codebook_size, dim))  # (K, C)
        init_codebook_(self.codebook, init)
        self.codebook.requires_grad_(not freeze_codebook)

        self.parametrisation = parametrisation
        self.lr_scale = float(lr_scale) if lr_scale is not None else 1.0 / codebook_size
        self.readout_power = 1.0 if readout_power is None else float(readout_power)
        self.warmup_steps = 100 if warmup_steps is None else int(warmup_steps)
        # alpha: a fixed multiplier of the code weights (1 unless parametrisation="readout")
        self.readout = codebook_size**-self.readout_power if parametrisation == "readout" else 1.0
        if parametrisation == "readout":
            with torch.no_grad():  # output at init = the paper's / sqrt(K), for any power
                grow = codebook_size ** (self.readout_power - 0.5)
                self.to_weights.weight.mul_(grow)
                self.to_weights.bias.mul_(grow)
        self.gain = nn.Parameter(torch.ones(dim)) if parametrisation == "rmsnorm" else None
        self.residual_scale = (
            nn.Parameter(torch.zeros(())) if parametrisation == "residual" else None
        )
        if freeze_mlp:
            for p in self.mlp_parameters():
                p.requires_grad_(False)

    # ------------------------------------------------------------------ pieces
    @property
    def freeze_codebook(self) -> bool:
        return not self.codebook.requires_grad

    @property
    def path(self) -> str:
        """Which formula :meth:`forward` uses: ``folded``, ``chunked`` or ``direct``."""
        if not self.fast:
            return "direct"
        return "chunked" if self.out_relu else "folded"

    def mlp_parameters(self) -> list[nn.Parameter]:
        layers = [self.hidden, self.to_weights] if self.hidden is not None else [self.to_weights]
        return [p for layer in layers for p in layer.parameters()]

    def _hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """(T, C) -> (T, middim), or the tokens themselves when ``nonlinear=False``."""
        if self.hidden is None:
            return tokens
        h = self.hidden(tokens)
        return F.relu(h) if self.hid_relu else h

    def _weights(self, tokens: torch.Tensor) -> torch.Tensor:
        """(T, C) -> (T, K): the code weights w (times the readout multiplier alpha)."""
        w = self.to_weights(self._hidden(tokens))
        w = F.relu(w) if self.out_relu else w
        return w * self.readout if self.readout != 1.0 else w

    def _output(self, tokens: torch.Tensor, mixed: torch.Tensor) -> torch.Tensor:
        """The parametrisation's last step on the code mixture ``w M`` (T, C)."""
        return finish_output(tokens, mixed, self.gain, self.residual_scale)

    def optimizer_groups(self) -> list[ParamGroup]:
        """``lr_scaled``: W2, b2 and the codebook at ``lr_scale``; ``warmup``: all of SVQ's
        parameters with their own warm-up; otherwise none (one learning rate)."""
        if self.parametrisation == "lr_scaled":
            params = [*self.to_weights.parameters(), self.codebook]
            return [ParamGroup("svq.codes", params, lr_scale=self.lr_scale)]
        if self.parametrisation == "warmup":
            return [ParamGroup("svq", list(self.parameters()), warmup_steps=self.warmup_steps)]
        return []

    def _direct(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._weights(tokens) @ self.codebook  # (T, K) @ (K, C) -> (T, C)

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The fold (W2^T M)^T = M^T W2 of shape (C, middim) and b2 M of shape (C,).

        Computed in the parameters' dtype even under autocast (it is cheap, and summing K
        products in bf16 would lose precision); autocast then casts it for the token matmul.
        Only valid when ``out_relu`` is off.
        """
        if self.out_relu:
            raise ConfigError("SVQ with out_relu=True has no fold; use the direct formula")
        with _no_autocast(self.codebook.device):
            weight = self.codebook.t() @ self.to_weights.weight  # (C, K) @ (K, middim)
            bias = self.to_weights.bias @ self.codebook  # (K,) @ (K, C) -> (C,)
            if self.readout != 1.0:
                weight, bias = weight * self.readout, bias * self.readout
        return weight, bias

    def _folded(self, tokens: torch.Tensor) -> torch.Tensor:
        weight, bias = self.folded()
        return F.linear(self._hidden(tokens), weight, bias)  # (T, middim) -> (T, C)

    def quantize_tokens(self, tokens: torch.Tensor, path: str | None = None) -> torch.Tensor:
        """(T, C) -> (T, C) by ``path`` (``folded``/``chunked``/``direct``; default self.path)."""
        path = path or self.path
        if path == "folded":
            mixed = self._folded(tokens)
        elif path == "chunked":
            mixed = chunked_map(self._direct, tokens, self.chunk_size, list(self.parameters()))
        elif path == "direct":
            mixed = self._direct(tokens)
        else:
            raise choices_error("SVQ path", path, ("folded", "chunked", "direct"))
        return self._output(tokens, mixed)

    def quantize(self, z: torch.Tensor, path: str | None = None) -> torch.Tensor:
        """``z`` -> same shape by ``path`` (default: the one ``forward`` uses); any layout."""
        layout = self.token_layout(z)
        return layout.restore(self.quantize_tokens(layout.tokens(z), path))

    def direct(self, z: torch.Tensor) -> torch.Tensor:
        """The reference direct formula ``w M`` in one piece: builds the (tokens, K) weights."""
        return self.quantize(z, "direct")

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        quantized = self.quantize(z)
        stats = self.diagnostics(z, quantized) if self.collect_stats else {}
        return QuantizerOutput(quantized, self.zero_loss(z), stats)

    # ------------------------------------------------------------------ inspection
    def code_weights(self, z: torch.Tensor) -> torch.Tensor:
        """The K code weights of every token, K last: (..., C) -> (..., K) for channel-last
        tokens (so (T, C) -> (T, K)), (N, C, *S) -> (N, *S, K) for channel-first maps.

        Computed chunk by chunk (the hidden activations never exist for all tokens at once);
        differentiable when grad mode is on.
        """
        layout = self.token_layout(z)
        tokens = layout.tokens(z)
        parts = [
            self._weights(tokens[s : s + self.chunk_size])
            for s in range(0, tokens.shape[0], self.chunk_size)
        ]
        return layout.unflatten(torch.cat(parts) if len(parts) != 1 else parts[0])

    def weight_sample(self, z: torch.Tensor, max_tokens: int = 1024) -> torch.Tensor:
        """A 1-D sample of code weights (for histograms): all K weights of at most
        ``max_tokens`` evenly spaced tokens. Deterministic; consumes no random numbers."""
        return sample_code_weights(self, z, max_tokens)

    def _weight_moments(self, tokens: torch.Tensor) -> tuple[float, float]:
        """Global mean and std of all T*K weights, in float64.

        Without ``out_relu`` the weights are affine in h (w = A h + b), so the moments follow
        from sum(h) and sum(h h^T) alone: cheap and exact. Otherwise a chunked pass.
        """
        t, k = tokens.shape[0], self.codebook_size
        if not self.out_relu:
            d = self.to_weights.in_features
            sum_h = torch.zeros(d, dtype=torch.float64, device=tokens.device)
            gram_h = torch.zeros(d, d, dtype=torch.float64, device=tokens.device)
            for s in range(0, t, self.chunk_size):
                h = self._hidden(tokens[s : s + self.chunk_size]).double()
                sum_h += h.sum(0)
                gram_h += h.t() @ h
            a = self.to_weights.weight.double() * self.readout  # (K, d)
            b = self.to_weights.bias.double() * self.readout  # (K,)
            total = a.sum(0) @ sum_h + t * b.sum()
            total_sq = ((a.t() @ a) * gram_h).sum() + 2 * (b @ a) @ sum_h + t * (b @ b)
        else:
            total = total_sq = torch.zeros((), dtype=torch.float64, device=tokens.device)
            for s in range(0, t, self.chunk_size):
                w = self._weights(tokens[s : s + self.chunk_size]).double()
                total = total + w.sum()
                total_sq = total_sq + (w * w).sum()
        n = t * k
        mean = total.item() / n
        var = max(total_sq.item() / n - mean * mean, 0.0)
        return mean, math.sqrt(var)

    @torch.no_grad()
    def diagnostics(
        self, z: torch.Tensor, quantized: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Code-usage diagnostics of the paper, as scalar float32 tensors.

        All T*K weights are z-scored with one global mean/std; a weight is *active* when
        |z| > 3 (or > 2). ``perplexity_z3`` / ``perplexity_z2`` = exp(entropy) of the active
        counts over the K codes (0 when nothing is active), ``active_frac_z*`` = active
        weights / all weights, ``usage_z3`` = fraction of codes with at least one active
        weight, ``near_zero_frac`` = fraction with |w| < 0.01 * std(w), ``weight_mean`` /
        ``weight_std`` the global moments, ``out_std`` = std of the quantized map and
        ``out_in_std_ratio`` = std(q) / std(z). Two chunked passes; nothing is kept. The
        same tokens give the same diagnostics in every layout.
        """
        layout = self.token_layout(z)
        with _no_autocast(z.device):
            tokens = layout.tokens(z).to(self.codebook.dtype)
            mean, std = self._weight_moments(tokens)
            k = self.codebook_size
            counts3 = torch.zeros(k, dtype=torch.float64, device=z.device)
            counts2 = torch.zeros(k, dtype=torch.float64, device=z.device)
            near_zero = 0
            inv_std = 1.0 / std if std > 0 else math.inf
            for s in range(0, tokens.shape[0], self.chunk_size):
                w = self._weights(tokens[s : s + self.chunk_size])
                score = ((w - mean) * inv_std).abs()
                counts3 += (score > 3).sum(0)
                counts2 += (score > 2).sum(0)
                near_zero += int((w.abs() < NEAR_ZERO_REL * std).sum())
            if quantized is None:
                quantized = self.quantize(z)
        n = tokens.shape[0] * k
        f32 = dict(dtype=torch.float32, device=z.device)
        stats = {
            "perplexity_z3": perplexity_from_counts(counts3).float(),
            "perplexity_z2": perplexity_from_counts(counts2).float(),
            "active_frac_z3": torch.tensor(counts3.sum().item() / n, **f32),
            "active_frac_z2": torch.tensor(counts2.sum().item() / n, **f32),
            "usage_z3": (counts3 > 0).float().mean(),
            "near_zero_frac": torch.tensor(near_zero / n, **f32),
            "weight_mean": torch.tensor(mean, **f32),
            "weight_std": torch.tensor(std, **f32),
        }
        stats.update(output_scale_stats(z, quantized))
        return stats

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, codebook_size={self.codebook_size}, middim={self.middim}, "
            f"hid_relu={self.hid_relu}, out_relu={self.out_relu}, init={self.init!r}, "
            f"freeze_codebook={self.freeze_codebook}, path={self.path!r}"
            + ("" if self.channel_first is None else f", channel_first={self.channel_first}")
            + (
                ""
                if self.parametrisation == "paper"
                else f", parametrisation={self.parametrisation!r}"
            )
        )


# ---------------------------------------------------------------------------------- mlp


class BottleneckMLP(Quantizer):
    """``mlp``: dim -> middim -> dim with no codebook, the control for SVQ.

    It computes exactly the function of an SVQ with ``out_relu=False`` whose last weight is
    the fold ``W2^T M`` (and bias ``b2 M``): same capacity, no codes. ``parametrisation``
    takes SVQ's forms that apply without codes (:data:`MLP_PARAMETRISATIONS`: ``paper`` =
    the plain MLP, ``rmsnorm``, ``residual``, ``warmup`` with ``warmup_steps``), so that SVQ
    under a parametrisation can be compared with its codebook-free twin under the same one.
    (``lr_scaled`` and ``readout`` only rescale the K-code sum: their control is the plain
    MLP.)
    """

    def __init__(
        self,
        dim: int,
        middim: int = 128,
        hid_relu: bool = True,
        channel_first: bool | None = None,
        parametrisation: str = "paper",
        warmup_steps: int | None = None,
    ) -> None:
        super().__init__(channel_first)
        check_positive("dim", dim, "quantizer 'mlp'")
        check_positive("middim", middim, "quantizer 'mlp'")
        if parametrisation not in MLP_PARAMETRISATIONS:
            raise choices_error("mlp parametrisation", parametrisation, MLP_PARAMETRISATIONS)
        check_parametrisation(parametrisation, None, None, warmup_steps)
        self.dim = dim
        self.middim = middim
        self.hid_relu = hid_relu
        self.parametrisation = parametrisation
        self.warmup_steps = 100 if warmup_steps is None else int(warmup_steps)
        self.hidden = nn.Linear(dim, middim)
        self.out = nn.Linear(middim, dim)
        self.gain = nn.Parameter(torch.ones(dim)) if parametrisation == "rmsnorm" else None
        self.residual_scale = (
            nn.Parameter(torch.zeros(())) if parametrisation == "residual" else None
        )

    def optimizer_groups(self) -> list[ParamGroup]:
        if self.parametrisation == "warmup":
            return [ParamGroup("mlp", list(self.parameters()), warmup_steps=self.warmup_steps)]
        return []

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        layout = self.token_layout(z)
        tokens = layout.tokens(z)
        h = self.hidden(tokens)  # (T, middim)
        if self.hid_relu:
            h = F.relu(h)
        out = finish_output(tokens, self.out(h), self.gain, self.residual_scale)
        return QuantizerOutput(layout.restore(out), self.zero_loss(z), {})


__all__ = [
    "CODEBOOK_INITS",
    "MLP_PARAMETRISATIONS",
    "PARAMETRISATIONS",
    "SVQ",
    "BottleneckMLP",
    "init_codebook_",
]
