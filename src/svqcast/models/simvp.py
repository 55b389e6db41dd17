"""SimVP forecaster with an optional quantizer: Encoder -> [Q] -> Translator -> [Q] -> Decoder.

Frames are encoded independently by a small CNN, stacked along channels and mixed over time
and space by a translator (13 families, see :mod:`svqcast.models.translators`), then decoded
frame by frame. A quantizer (SVQ or a baseline) sits on the per-frame latent before the
translator ("pre", the paper's default) or after it ("post").
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from einops import rearrange
from torch import nn

from svqcast.errors import ConfigError, DataError
from svqcast.models.layers import ConvSC
from svqcast.models.outputs import ForecastOutput
from svqcast.models.translators import build_translator, canonical_translator
from svqcast.quantizers import Quantizer, build_quantizer

QuantizerPosition = Literal["pre", "post"]


def sampling_pattern(num_layers: int) -> list[str]:
    """Encoder layers alternate stride 1 and stride 2: ["same", "down", "same", "down", ...]."""
    return ["same", "down"] * (num_layers // 2)


class Encoder(nn.Module):
    """N_S ConvSC layers; returns the latent and the output of the first layer (the skip)."""

    def __init__(self, c_in: int, c_hid: int, num_layers: int, kernel_size: int = 3) -> None:
        super().__init__()
        pattern = sampling_pattern(num_layers)
        widths = [c_in] + [c_hid] * num_layers
        self.layers = nn.ModuleList(
            ConvSC(widths[i], widths[i + 1], kernel_size, pattern[i]) for i in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.layers[0](x)  # (N, c_hid, H, W)
        latent = skip
        for layer in self.layers[1:]:
            latent = layer(latent)  # ends at (N, c_hid, H / 2^(N_S/2), W / 2^(N_S/2))
        return latent, skip


class Decoder(nn.Module):
    """Mirror of the encoder (PixelShuffle upsampling, the encoder's pattern reversed).

    The first encoder layer's output is added before the last layer; a 1x1 conv reads out
    ``c_out`` channels.
    """

    def __init__(self, c_hid: int, c_out: int, num_layers: int, kernel_size: int = 3) -> None:
        super().__init__()
        pattern = ["up" if s == "down" else "same" for s in reversed(sampling_pattern(num_layers))]
        self.layers = nn.ModuleList(ConvSC(c_hid, c_hid, kernel_size, s) for s in pattern)
        self.readout = nn.Conv2d(c_hid, c_out, 1)

    def forward(self, z: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            z = layer(z)  # ends at (N, c_hid, H, W)
        return self.readout(self.layers[-1](z + skip))  # (N, c_out, H, W)


class SimVP(nn.Module):
    """SimVP (v1 with ``translator="incepu"``, v2 with "gsta") plus an optional quantizer.

    ``forward(x: (B, T_in, C, H, W)) -> ForecastOutput`` with a (B, out_len, C, H, W)
    prediction. ``out_len`` > T_in rolls the model out on its own predictions (gradients
    flow through every step); ``out_len`` < T_in keeps the first ``out_len`` frames.

    Args:
        in_shape: (T_in, C, H, W) of one input sample.
        out_len: frames to predict (default T_in).
        hid_S, N_S: width and depth of the frame encoder/decoder (N_S even; the latent is
            H / 2^(N_S/2) by W / 2^(N_S/2)).
        hid_T, N_T: width and depth of the translator.
        translator: family name (see ``svqcast.models.translators.TRANSLATORS``).
        quantizer: a registry name ("svq", "vq", ...), a built :class:`Quantizer` of dim
            ``hid_S``, or None for the plain SimVP.
        quantizer_options: keyword options for ``build_quantizer(quantizer, hid_S, ...)``.
        quantizer_position: "pre" (on the encoder latent, the paper's default) or "post"
            (on the translator output).
        noise: training-only input corruption: this fraction of the input elements (drawn
            at random over the batch) is multiplied by independent U(-2, 2) factors; applied
            to the observed input only, not to fed-back predictions (0 disables it).
        mlp_ratio, drop, drop_path: translator options (drop-path rises linearly over
            the blocks from 0.01 to ``drop_path``, as in OpenSTL).
        spatio_kernel_enc, spatio_kernel_dec: kernel sizes of the encoder/decoder convs.
    """

    def __init__(
        self,
        in_shape: tuple[int, int, int, int] | list[int],
        out_len: int | None = None,
        hid_S: int = 16,
        hid_T: int = 256,
        N_S: int = 4,
        N_T: int = 4,
        translator: str = "gsta",
        quantizer: str | Quantizer | None = None,
        quantizer_options: dict[str, Any] | None = None,
        quantizer_position: QuantizerPosition = "pre",
        noise: float = 0.0,
        mlp_ratio: float = 8.0,
        drop: float = 0.0,
        drop_path: float = 0.0,
        spatio_kernel_enc: int = 3,
        spatio_kernel_dec: int = 3,
    ) -> None:
        super().__init__()
        in_shape = tuple(int(v) for v in in_shape)
        _validate(in_shape, out_len, hid_S, hid_T, N_S, N_T, quantizer_position, noise)
        _validate_kernel("spatio_kernel_enc", spatio_kernel_enc)
        _validate_kernel("spatio_kernel_dec", spatio_kernel_dec)
        t_in, channels, height, width = in_shape
        factor = 2 ** (N_S // 2)
        self.in_shape = in_shape
        self.out_len = t_in if out_len is None else int(out_len)
        self.hid_S = hid_S
        self.noise = float(noise)
        self.quantizer_position = quantizer_position
        self.translator_name = canonical_translator(translator)
        self.latent_shape = (height // factor, width // factor)

        self.encoder = Encoder(channels, hid_S, N_S, spatio_kernel_enc)
        self.quantizer = _make_quantizer(quantizer, quantizer_options, hid_S)
        self.translator = build_translator(
            self.translator_name,
            t_in * hid_S,
            hid_T,
            N_T,
            input_resolution=self.latent_shape,
            mlp_ratio=mlp_ratio,
            drop=drop,
            drop_path=drop_path,
        )
        self.decoder = Decoder(hid_S, channels, N_S, spatio_kernel_dec)

    @property
    def rollout_steps(self) -> int:
        """How many times the model runs per forward (ceil(out_len / T_in))."""
        return math.ceil(self.out_len / self.in_shape[0])

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """The noise ablation (training only): multiply ``int(noise * x.numel())`` elements,
        drawn at random over the whole batch, by independent U(-2, 2) factors.

        This is the paper's scheme (an exact count, not a Bernoulli draw per element).
        """
        if not self.training or self.noise == 0.0:
            return x
        count = int(x.numel() * self.noise)
        hit = torch.randperm(x.numel(), device=x.device)[:count]
        factor = torch.ones(x.numel(), dtype=x.dtype, device=x.device)
        factor[hit] = torch.empty(count, dtype=x.dtype, device=x.device).uniform_(-2.0, 2.0)
        return x * factor.view_as(x)

    def _quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
        if self.quantizer is None:
            return z, None, {}
        out = self.quantizer(z)
        return out.quantized, out.loss, out.stats

    def step(self, x: torch.Tensor) -> ForecastOutput:
        """One pass of the network: (B, T_in, C, H, W) -> (B, T_in, C, H, W)."""
        batch = x.shape[0]
        frames = rearrange(x, "b t c h w -> (b t) c h w")
        latent, skip = self.encoder(frames)  # (B*T, hid_S, H', W'), (B*T, hid_S, H, W)
        loss, stats = None, {}
        if self.quantizer_position == "pre":
            latent, loss, stats = self._quantize(latent)
        z = rearrange(latent, "(b t) c h w -> b (t c) h w", b=batch)  # (B, T*hid_S, H', W')
        z = self.translator(z)
        latent = rearrange(z, "b (t c) h w -> (b t) c h w", c=self.hid_S)
        if self.quantizer_position == "post":
            latent, loss, stats = self._quantize(latent)
        y = self.decoder(latent, skip)  # (B*T, C, H, W)
        prediction = rearrange(y, "(b t) c h w -> b t c h w", b=batch)
        aux = loss if loss is not None else prediction.new_zeros((), dtype=torch.float32)
        return ForecastOutput(prediction, aux, stats)

    def forward(self, x: torch.Tensor) -> ForecastOutput:
        if x.ndim != 5 or tuple(x.shape[1:]) != self.in_shape:
            expected = ", ".join(map(str, self.in_shape))
            raise DataError(
                f"SimVP expects input (B, T_in, C, H, W) = (B, {expected}), got "
                f"{tuple(x.shape)}; check the data's in_len, channels and grid"
            )
        current = self.corrupt(x)
        first = self.step(current)
        predictions, aux = [first.prediction], first.aux_loss
        for _ in range(self.rollout_steps - 1):
            # each step sees the last T_in frames of [input, predictions]: the previous output
            out = self.step(predictions[-1])
            predictions.append(out.prediction)
            aux = aux + out.aux_loss
        prediction = torch.cat(predictions, dim=1)[:, : self.out_len]  # (B, out_len, C, H, W)
        return ForecastOutput(prediction, aux, first.stats)


def _validate(
    in_shape: tuple[int, ...],
    out_len: int | None,
    hid_S: int,
    hid_T: int,
    N_S: int,
    N_T: int,
    position: str,
    noise: float,
) -> None:
    if len(in_shape) != 4 or min(in_shape) < 1:
        raise ConfigError(f"SimVP in_shape must be 4 positive ints (T_in, C, H, W), got {in_shape}")
    if out_len is not None and int(out_len) < 1:
        raise ConfigError(f"SimVP out_len must be >= 1 (or None for T_in), got {out_len}")
    if N_S < 2 or N_S % 2:
        raise ConfigError(f"SimVP N_S must be an even number >= 2 (2, 4, 6, ...), got {N_S}")
    if hid_S < 2 or hid_S % 2:
        raise ConfigError(
            f"SimVP hid_S must be an even number >= 2 (GroupNorm with 2 groups), got {hid_S}"
        )
    if hid_T < 1:
        raise ConfigError(f"SimVP hid_T must be >= 1, got {hid_T}")
    if N_T < 2:
        raise ConfigError(f"SimVP N_T (translator depth) must be >= 2, got {N_T}")
    if position not in ("pre", "post"):
        raise ConfigError(f"quantizer_position must be 'pre' or 'post', got {position!r}")
    if not 0.0 <= noise < 1.0:
        raise ConfigError(f"SimVP noise must be a fraction in [0, 1), got {noise}")
    factor = 2 ** (N_S // 2)
    for axis, size in (("H", in_shape[2]), ("W", in_shape[3])):
        if size % factor:
            lower = size // factor * factor
            near = [v for v in (lower, lower + factor) if v > 0]
            raise ConfigError(
                f"SimVP with N_S={N_S} needs {axis} divisible by 2^(N_S/2) = {factor}, got "
                f"{axis}={size}; nearest valid sizes: {' or '.join(map(str, near))} "
                f"(pad/crop the data or change N_S)"
            )


def _validate_kernel(name: str, k: int) -> None:
    if k < 1 or k % 2 == 0:
        raise ConfigError(f"SimVP {name} must be an odd kernel size >= 1, got {k}")


def _make_quantizer(
    quantizer: str | Quantizer | None, options: dict[str, Any] | None, dim: int
) -> Quantizer | None:
    if quantizer is None:
        if options:
            raise ConfigError("quantizer_options given but quantizer is None; name a quantizer")
        return None
    if isinstance(quantizer, str):
        return build_quantizer(quantizer, dim, **(options or {}))
    if isinstance(quantizer, nn.Module):
        if options:
            raise ConfigError(
                "quantizer_options apply only to a quantizer given by name; "
                "pass the options to the quantizer you built instead"
            )
        qdim = getattr(quantizer, "dim", dim)
        if qdim != dim:
            raise ConfigError(
                f"quantizer has dim={qdim} but SimVP hid_S={dim}; build it with dim={dim}"
            )
        return quantizer
    raise ConfigError(
        f"quantizer must be a name, a Quantizer or None, got {type(quantizer).__name__}"
    )
