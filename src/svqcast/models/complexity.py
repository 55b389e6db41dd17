"""Model size and cost: parameter counts and forward multiply-accumulates (MACs).

MACs are counted with :class:`torch.utils.flop_counter.FlopCounterMode`, which reports
FLOPs = 2 x MACs for matrix products and convolutions (the ops that dominate SimVP);
element-wise ops, normalisation and activations are not counted, as in most published
"FLOPs" tables (OpenSTL reports fvcore's count, which is MACs under the name FLOPs).

Attention counts as its two matrix products (q k^T and the weights times v), as fvcore counts
the explicit matmuls of OpenSTL's attention blocks; PyTorch's fused CPU attention kernel is
not in the counter's table, so it is added here (:data:`_ATTENTION_OPS`).
"""

from __future__ import annotations

import torch
from torch import nn


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all of them, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs (2 x MACs) of softmax(q k^T) v: both batched matrix products, nothing else."""
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _attention_ops() -> dict:
    """Fused attention kernels the counter leaves out, each mapped to :func:`_sdpa_flops`."""
    names = (
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_fused_attention_overrideable",
    )
    return {getattr(torch.ops.aten, n): _sdpa_flops for n in names if hasattr(torch.ops.aten, n)}


def forward_macs(model: nn.Module, in_shape: tuple[int, ...], batch: int = 1) -> int:
    """Multiply-accumulates of one forward pass per sample, for input (batch, *in_shape).

    Runs the model once in eval mode without gradients on zeros (its mode is restored).
    Convolutions, linear layers, matrix products and attention's two matrix products count.
    """
    from torch.utils.flop_counter import FlopCounterMode

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.zeros((batch, *in_shape), device=device)
    was_training = model.training
    model.eval()
    try:
        with (
            torch.no_grad(),
            FlopCounterMode(display=False, custom_mapping=_attention_ops()) as counter,
        ):
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2 // batch


def _human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def summary(model: nn.Module, in_shape: tuple[int, ...]) -> str:
    """One line per top-level child with its parameters, then totals and MACs per sample."""
    lines = [f"{type(model).__name__} for input (B, {', '.join(map(str, in_shape))})"]
    for name, child in model.named_children():
        lines.append(
            f"  {name:<12} {type(child).__name__:<24} {_human(count_parameters(child)):>9}"
        )
    lines.append(f"  parameters   {count_parameters(model):,} ({_human(count_parameters(model))})")
    lines.append(f"  forward MACs {_human(forward_macs(model, in_shape))} per sample")
    return "\n".join(lines)
