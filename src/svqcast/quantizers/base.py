"""The quantizer contract shared by SVQ, SVQ-raw, the library baselines and the identity.

Every quantizer is a drop-in layer for any tensor of C-vectors (C = ``dim``):

- channel-last tokens ``(..., C)``: ``(T, C)``, ``(B, N, C)`` from a transformer, ...;
- channel-first maps ``(N, C, *spatial)``: ``(N, C, L)``, ``(N, C, H, W)`` (SimVP's latent),
  video latents ``(N, C, T, H, W)``, ...

The layout is inferred from the rank as in vector-quantize-pytorch: channel-first when
``z.ndim >= 4``, channel-last when ``z.ndim <= 3``. The constructor option
``channel_first`` (None = infer) overrides it, e.g. ``channel_first=True`` for 1-D maps
``(N, C, L)`` or ``channel_first=False`` for ``(B, H, W, C)``. Every token is quantized
independently of how the tokens are arranged (the library quantizers' batch statistics,
e.g. EMA updates and entropy losses, pool all tokens of the call).

``forward(z)`` returns a :class:`QuantizerOutput` whose ``quantized`` has exactly the shape
and dtype of ``z``, a scalar auxiliary loss (zero if the method has none) and a dict of
scalar diagnostics. A 4-D channels-last input gives a channels-last output.

:class:`TokenLayout` holds the layout logic: it flattens any input to tokens ``(T, C)``
(or sequences ``(B, L, C)`` for the library adapters) and restores the input's shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from svqcast.errors import ConfigError

# torch's channels-last memory formats by rank; other ranks use the same strides by hand
_CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}


@dataclass
class ParamGroup:
    """Optimiser settings a quantizer asks for some of its parameters.

    ``lr_scale`` multiplies the base learning rate of these parameters (a per-group base
    lr, so every schedule scales them alike); ``warmup_steps`` > 0 ramps their learning rate
    linearly from 1/warmup_steps to 1 times its scheduled value over that many optimiser
    steps, while the rest of the model trains at the full rate. The engine
    (``svqcast.training.ForecastModule``) builds these groups; in your own loop use
    :func:`optimizer_param_groups` and :func:`apply_group_warmup`.
    """

    name: str
    params: list[nn.Parameter]
    lr_scale: float = 1.0
    warmup_steps: int = 0


def optimizer_param_groups(model: nn.Module, lr: float) -> list[dict]:
    """torch optimiser parameter groups for ``model``: one default group at ``lr`` with
    every trainable parameter that no quantizer claims, then one group per
    :class:`ParamGroup` a quantizer of ``model`` declares (``lr * lr_scale``, and the keys
    ``name`` and ``warmup_steps``). Without such declarations: one group, as plain
    ``Adam(model.parameters())`` builds it."""
    claimed: dict[int, ParamGroup] = {}
    groups: list[ParamGroup] = []
    for module in model.modules():
        if isinstance(module, Quantizer):
            for group in module.optimizer_groups():
                params = [p for p in group.params if p.requires_grad and id(p) not in claimed]
                if params:
                    group = ParamGroup(group.name, params, group.lr_scale, group.warmup_steps)
                    claimed.update((id(p), group) for p in params)
                    groups.append(group)
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in claimed]
    out: list[dict] = [{"params": rest, "lr": lr, "name": "model", "warmup_steps": 0}]
    for g in groups:
        out.append(
            {
                "params": g.params,
                "lr": lr * g.lr_scale,
                "name": g.name,
                "warmup_steps": g.warmup_steps,
            }
        )
    return out


def group_warmup_factors(optimizer: torch.optim.Optimizer, step: int) -> list[float]:
    """The warm-up factor of each parameter group at optimiser step ``step`` (0-based):
    ``min(1, (step + 1) / warmup_steps)`` for groups with ``warmup_steps`` > 0, else 1."""
    factors = []
    for group in optimizer.param_groups:
        n = int(group.get("warmup_steps", 0) or 0)
        factors.append(min(1.0, (step + 1) / n) if n > 0 else 1.0)
    return factors


class apply_group_warmup:  # noqa: N801 - used as a context manager, like torch.no_grad
    """``with apply_group_warmup(optimizer, step): optimizer.step()``: the groups' learning
    rates scaled by :func:`group_warmup_factors` for this one step, then restored (so any
    learning-rate scheduler keeps owning the scheduled values)."""

    def __init__(self, optimizer: torch.optim.Optimizer, step: int) -> None:
        self.optimizer = optimizer
        self.factors = group_warmup_factors(optimizer, step)
        self.saved: list[float] = []

    def __enter__(self) -> None:
        self.saved = [g["lr"] for g in self.optimizer.param_groups]
        for group, factor in zip(self.optimizer.param_groups, self.factors):
            group["lr"] = group["lr"] * factor

    def __exit__(self, *exc: object) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.saved):
            group["lr"] = lr


@dataclass
class QuantizerOutput:
    quantized: torch.Tensor  # exactly the input's shape and dtype
    loss: torch.Tensor  # scalar; zero when the method has no auxiliary loss
    stats: dict[str, torch.Tensor] = field(default_factory=dict)  # scalar diagnostics


def check_channel_first(value: object, where: str = "quantizer") -> bool | None:
    """Validate the ``channel_first`` option: True, False or None (infer from ``ndim``)."""
    if value is not None and not isinstance(value, bool):
        raise ConfigError(
            f"{where}: channel_first must be True, False or None (infer from ndim), got {value!r}"
        )
    return value


@dataclass(frozen=True)
class TokenLayout:
    """Where the channels of an input sit, and how to flatten it to tokens and back.

    Tokens are ordered like the input's positions: ``(..., C) -> (prod(...), C)`` for
    channel-last inputs and ``(N, C, *S) -> (N * prod(S), C)`` (row-major over ``(N, *S)``)
    for channel-first ones. Flattening is a view whenever the channels are the innermost
    memory axis (channel-last tensors, channels-last maps).
    """

    shape: tuple[int, ...]  # the input's shape
    channel_first: bool
    memory: str = "contiguous"  # channel-first inputs: contiguous | channels_last | other

    @classmethod
    def of(
        cls, z: torch.Tensor, dim: int, channel_first: bool | None = None, owner: str = "quantizer"
    ) -> TokenLayout:
        """The layout of ``z`` for ``dim`` channels; ValueError when the channels mismatch."""
        first = z.ndim >= 4 if channel_first is None else channel_first
        if z.ndim < (2 if first else 1) or z.shape[1 if first else -1] != dim:
            read = "channel-first" if first else "channel-last"
            how = "inferred from ndim" if channel_first is None else "channel_first set"
            raise ValueError(
                f"{owner} expects a latent map (N, C={dim}, *spatial) channel-first or tokens "
                f"(..., C={dim}) channel-last (inferred: channel-first iff ndim >= 4; override "
                f"with channel_first=True/False), got shape {tuple(z.shape)} read as {read} "
                f"({how})"
            )
        memory = "contiguous"
        if first and not z.is_contiguous():
            fmt = _CHANNELS_LAST.get(z.ndim)
            cl = z.is_contiguous(memory_format=fmt) if fmt else z.movedim(1, -1).is_contiguous()
            memory = "channels_last" if cl else "other"
        return cls(tuple(z.shape), first, memory)

    @property
    def channels(self) -> int:
        return self.shape[1] if self.channel_first else self.shape[-1]

    @property
    def token_shape(self) -> tuple[int, ...]:
        """The input's shape without the channel axis: ``(...)`` or ``(N, *S)``."""
        if self.channel_first:
            return (self.shape[0], *self.shape[2:])
        return self.shape[:-1]

    @property
    def num_tokens(self) -> int:
        return math.prod(self.token_shape)

    def tokens(self, z: torch.Tensor) -> torch.Tensor:
        """The input as tokens ``(T, C)``."""
        if self.channel_first:
            z = z.movedim(1, -1)
        return z.reshape(self.num_tokens, self.channels)

    def sequences(self, z: torch.Tensor) -> torch.Tensor:
        """The input as sequences ``(B, L, C)``: ``(N, C, *S) -> (N, prod(S), C)``,
        ``(B, ..., C) -> (B, prod(...), C)`` and tokens ``(T, C) -> (1, T, C)``.

        A view whenever possible (a contiguous map gives a transposed view, as einops'
        ``"n c h w -> n (h w) c"`` does).
        """
        lead = self.token_shape
        if len(lead) < 2:  # plain tokens: one sequence
            return self.tokens(z).reshape(1, self.num_tokens, self.channels)
        batch, length = lead[0], math.prod(lead[1:])
        if self.channel_first:
            return z.reshape(batch, self.channels, length).transpose(1, 2)
        return z.reshape(batch, length, self.channels)

    def unflatten(self, values: torch.Tensor) -> torch.Tensor:
        """Per-token values ``(T, X)`` (or ``(B, L, X)``) -> ``(*token_shape, X)``, X last:
        ``(..., X)`` for channel-last inputs, ``(N, *S, X)`` for channel-first ones."""
        return values.reshape(*self.token_shape, values.shape[-1])

    def restore(self, values: torch.Tensor, match_memory: bool = True) -> torch.Tensor:
        """Tokens ``(T, X)`` or sequences ``(B, L, X)`` -> the input's layout with X channels.

        With ``match_memory`` a channel-first output takes the input's memory format
        (contiguous in, contiguous out; channels-last in, channels-last out); without it
        the output is the zero-copy view with channels-last strides.
        """
        out = self.unflatten(values)
        if not self.channel_first:
            return out
        out = out.movedim(-1, 1)  # the zero-copy view
        if not match_memory:
            return out
        if self.memory != "channels_last":
            return out.contiguous()
        fmt = _CHANNELS_LAST.get(out.ndim)
        if fmt is not None:
            return out.contiguous(memory_format=fmt)
        return out.movedim(1, -1).contiguous().movedim(-1, 1)


class Quantizer(nn.Module):
    """Base class: subclasses implement ``forward(z) -> QuantizerOutput``.

    ``channel_first`` (None = infer from ``z.ndim``: channel-first when >= 4) says where
    the channels of the input sit; :meth:`token_layout` resolves and checks it.
    ``collect_stats`` switches the (possibly costly) diagnostics on or off; it is off by
    default so that training pays nothing for them.
    """

    dim: int
    collect_stats: bool = False
    channel_first: bool | None = None

    def __init__(self, channel_first: bool | None = None) -> None:
        super().__init__()
        self.channel_first = check_channel_first(channel_first, f"quantizer {type(self).__name__}")

    def token_layout(self, z: torch.Tensor) -> TokenLayout:
        """The :class:`TokenLayout` of ``z``; ValueError when its channels are not ``dim``."""
        return TokenLayout.of(z, self.dim, self.channel_first, type(self).__name__)

    @staticmethod
    def zero_loss(z: torch.Tensor) -> torch.Tensor:
        return z.new_zeros(())

    def optimizer_groups(self) -> list[ParamGroup]:
        """Parameters that need their own optimiser settings (:class:`ParamGroup`); none by
        default: everything trains at the model's learning rate."""
        return []


class Identity(Quantizer):
    """``none``: the latent passes unchanged (the plain SimVP baseline)."""

    def __init__(self, dim: int, channel_first: bool | None = None) -> None:
        super().__init__(channel_first)
        self.dim = dim

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        self.token_layout(z)
        return QuantizerOutput(z, self.zero_loss(z), {})
