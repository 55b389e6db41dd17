"""Translator families, one file each, selected by name.

A MetaFormer-style family's file defines ``make_block(ctx: BlockContext) -> nn.Module`` (its
sub-block) and the registry stacks those blocks in :class:`~.metaformer.MetaTranslator`. A
family with a stack of its own (IncepU's U-Net) defines ``build(channel_in, channel_hid,
depth, *, input_resolution, mlp_ratio, drop, drop_path) -> nn.Module`` instead. Either way
the translator maps (B, channel_in, H, W) to the same shape.
"""

from __future__ import annotations

import importlib

from torch import nn

from svqcast.errors import choices_error
from svqcast.models.translators._attention import check_resolution
from svqcast.models.translators.metaformer import MetaTranslator

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
    key = canonical_translator(name)
    module = importlib.import_module(f"{__name__}.{_REGISTRY[key]}")
    options = dict(
        input_resolution=check_resolution(key, input_resolution),
        mlp_ratio=mlp_ratio,
        drop=drop,
        drop_path=drop_path,
    )
    if hasattr(module, "build"):
        return module.build(channel_in, channel_hid, depth, **options)
    return MetaTranslator(module.make_block, channel_in, channel_hid, depth, **options)


__all__ = ["TRANSLATORS", "build_translator", "canonical_translator"]
