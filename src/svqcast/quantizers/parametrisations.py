"""SVQ's parametrisations: their names, the knobs' checks and the output step they share.

The option ``parametrisation`` of :class:`svqcast.quantizers.svq.SVQ` (and of the ``mlp``
control, where it applies without codes) chooses how the same layer is scaled and trained;
see that module's docstring and docs/svq.md. This module holds what SVQ and the MLP share.
"""

from __future__ import annotations

import math

import torch

from svqcast.errors import ConfigError, choices_error

PARAMETRISATIONS: tuple[str, ...] = (
    "paper",
    "lr_scaled",
    "readout",
    "rmsnorm",
    "residual",
    "warmup",
)
RMS_EPS = 1e-6  # the rmsnorm parametrisation's epsilon inside the root
MLP_PARAMETRISATIONS: tuple[str, ...] = ("paper", "rmsnorm", "residual", "warmup")


def finish_output(
    tokens: torch.Tensor,
    mixed: torch.Tensor,
    gain: torch.Tensor | None,
    residual_scale: torch.Tensor | None,
) -> torch.Tensor:
    """The last step of the ``rmsnorm`` / ``residual`` parametrisations on (T, C) outputs:
    ``gain * mixed / rms(mixed)`` per token, or ``tokens + residual_scale * mixed``; with
    neither, ``mixed`` itself."""
    if gain is not None:
        wide = mixed.float() if mixed.dtype in (torch.float16, torch.bfloat16) else mixed
        ms = wide.square().mean(-1, keepdim=True)  # in float32 at least
        return (mixed * torch.rsqrt(ms + RMS_EPS).to(mixed.dtype)) * gain.to(mixed.dtype)
    if residual_scale is not None:
        return tokens + residual_scale.to(mixed.dtype) * mixed
    return mixed


def check_parametrisation(
    name: str, lr_scale: float | None, readout_power: float | None, warmup_steps: int | None
) -> None:
    """ConfigError for an unknown parametrisation, or a knob set for another one."""
    if name not in PARAMETRISATIONS:
        raise choices_error("SVQ parametrisation", name, PARAMETRISATIONS)
    for knob, value, owner in (
        ("lr_scale", lr_scale, "lr_scaled"),
        ("readout_power", readout_power, "readout"),
        ("warmup_steps", warmup_steps, "warmup"),
    ):
        if value is None:
            continue
        if name != owner:
            raise ConfigError(
                f"quantizer 'svq': {knob} is an option of parametrisation {owner!r}, not of "
                f"{name!r}; set parametrisation: {owner} or drop {knob}"
            )
        bad = (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
            or (knob == "warmup_steps" and not isinstance(value, int))
        )
        if bad:
            kind = "a positive integer" if knob == "warmup_steps" else "a positive number"
            raise ConfigError(f"quantizer 'svq': {knob} must be {kind}, got {value!r}")


__all__ = [
    "MLP_PARAMETRISATIONS",
    "PARAMETRISATIONS",
    "RMS_EPS",
    "check_parametrisation",
    "finish_output",
]
