"""Translator families, one file each, selected by name.

A family's file defines ``build(channel_in, channel_hid, depth, *, input_resolution,
mlp_ratio, drop, drop_path) -> nn.Module`` mapping (B, channel_in, H, W) to the same shape.
MetaFormer-style families implement it with :class:`~.metaformer.MetaTranslator` and a
``make_block`` function; IncepU has its own U-Net.
"""

from __future__ import annotations

import importlib

from torch import nn

from svqcast.errors import choices_error

# name -> module under svqcast.models.translators (aliases point at the same module)
_REGISTRY: dict[str, str] = {
    "gsta": "gsta",
    "incepu": "incepu",
    "tau": "tau",
    "convmixer": "convmixer",
    "convnext": "convnext",
    "hornet": "hornet",
    "mlpmixer": "mlpmixer",
    "moganet": "moganet",
    "poolformer": "poolformer",
    "swin": "swin",
    "uniformer": "uniformer",
    "van": "van",
    "vit": "vit",
}
_ALIASES = {"mlp": "mlpmixer", "moga": "moganet", "simvp": "incepu"}

TRANSLATORS: tuple[str, ...] = tuple(_REGISTRY)


def canonical_translator(name: str) -> str:
    key = name.lower().replace("-", "").replace("_", "")
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise choices_error("translator", name, TRANSLATORS)
    return key


def build_translator(
    name: str,
    channel_in: int,
    channel_hid: int,
    depth: int,
    *,
    input_resolution: tuple[int, int],
    mlp_ratio: float = 8.0,
    drop: float = 0.0,
    drop_path: float = 0.0,
) -> nn.Module:
    """Build translator ``name`` for (B, channel_in, H, W) latents of size ``input_resolution``."""
    module = importlib.import_module(f"{__name__}.{_REGISTRY[canonical_translator(name)]}")
    return module.build(
        channel_in,
        channel_hid,
        depth,
        input_resolution=input_resolution,
        mlp_ratio=mlp_ratio,
        drop=drop,
        drop_path=drop_path,
    )


__all__ = ["TRANSLATORS", "build_translator", "canonical_translator"]
