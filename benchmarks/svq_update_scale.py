"""How far SVQ's output moves under the first Adam steps, against the codebook-free MLP.

A diagnostic for the accuracy benchmark (docs/results/update_scale.md): why a freshly
initialised SVQ before the translator costs accuracy at a short budget. For each variant it
builds the quantizer alone at the benchmark's width (hid_S 16), feeds unit-variance latent
tokens, and takes Adam steps at the benchmark's learning rate on an L1 loss to a random
unit-variance target. It prints the standard deviation of the output at initialisation and
of the change of the output after the first step and after ``--steps`` steps, side by side
with the bottleneck MLP (`mlp`, the same dim -> 128 -> dim network without codes).

Adam moves every parameter by about the learning rate whatever its gradient's size, and
SVQ's effective last weight W2^T M sums over K codes, so its first update grows with K.

    python benchmarks/svq_update_scale.py               # K 256 .. 10,000, inits, frozen parts
    python benchmarks/svq_update_scale.py --lr 1e-3 --steps 20
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from svqcast.quantizers import apply_group_warmup, build_quantizer, optimizer_param_groups

DIM = 16  # hid_S of the accuracy benchmark's budget
TOKENS = (32, DIM, 8, 16)  # batch x frames = 32 latent maps of 8 x 16: 4,096 tokens

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "mlp": ("mlp", {"middim": 128}),
    "svq K 256": ("svq", {"codebook_size": 256}),
    "svq K 1024": ("svq", {"codebook_size": 1024}),
    "svq K 4096": ("svq", {"codebook_size": 4096}),
    "svq K 10k": ("svq", {"codebook_size": 10_000}),
    "svq K 10k, kaiming": ("svq", {"codebook_size": 10_000, "init": "kaiming"}),
    "svq K 10k, xavier": ("svq", {"codebook_size": 10_000, "init": "xavier"}),
    "svq K 10k, orthogonal": ("svq", {"codebook_size": 10_000, "init": "orthogonal"}),
    "svq K 10k, sparse": ("svq", {"codebook_size": 10_000, "init": "sparse"}),
    "svq K 10k, frozen codebook": ("svq", {"codebook_size": 10_000, "freeze_codebook": True}),
    "svq K 10k, frozen MLP": ("svq", {"codebook_size": 10_000, "freeze_mlp": True}),
}
# the parametrisations of SVQ (docs/svq.md), each at its default knob and K 10,000
PARAMETRISATION_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    f"svq K 10k, {name}": ("svq", {"codebook_size": 10_000, "parametrisation": name, **extra})
    for name, extra in (
        ("lr_scaled", {}),
        ("lr_scaled, lr_scale middim/K", {"lr_scale": 128 / 10_000}),
        ("readout", {}),
        ("readout, power 1/2", {"readout_power": 0.5}),
        ("rmsnorm", {}),
        ("residual", {}),
        ("warmup", {}),
    )
}
for _label in list(PARAMETRISATION_VARIANTS):  # "lr_scaled, lr_scale ..." -> the name alone
    _name, _opts = PARAMETRISATION_VARIANTS[_label]
    _opts["parametrisation"] = _opts["parametrisation"].split(",")[0]
VARIANTS.update(PARAMETRISATION_VARIANTS)


def update_scale(
    quantizer: str,
    options: dict[str, Any],
    *,
    lr: float = 5e-3,
    steps: int = 10,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(std of the output at init, std of its change after 1 step, after ``steps`` steps)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(TOKENS, generator=gen)
    target = torch.randn(TOKENS, generator=gen)
    torch.manual_seed(seed)
    q = build_quantizer(quantizer, DIM, **options)
    # the quantizer's own parameter groups (lr_scaled, warmup), as the engine builds them
    opt = torch.optim.Adam(optimizer_param_groups(q, lr), lr=lr)
    with torch.no_grad():
        start = q(x).quantized.clone()
    changes = []
    for step in range(steps):
        opt.zero_grad()
        (q(x).quantized - target).abs().mean().backward()
        with apply_group_warmup(opt, step):
            opt.step()
        with torch.no_grad():
            changes.append(float((q(x).quantized - start).std()))
    return float(start.std()), changes[0], changes[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=5e-3, help="Adam learning rate (5e-3)")
    parser.add_argument("--steps", type=int, default=10, help="Adam steps (10)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.lr <= 0:
        parser.error("--steps must be >= 1 and --lr > 0")
    torch.set_num_threads(args.threads)
    print(
        f"quantizer alone, dim {DIM}, {TOKENS[0] * TOKENS[2] * TOKENS[3]} tokens, Adam lr {args.lr}"
    )
    print(
        f"| variant | output std at init | change after 1 step | after {args.steps} steps | "
        "1-step change / mlp's |"
    )
    print("|---|---|---|---|---|")
    reference = None
    for label, (name, options) in VARIANTS.items():
        init, one, last = update_scale(name, options, lr=args.lr, steps=args.steps)
        reference = one if reference is None else reference
        print(f"| {label} | {init:.3g} | {one:.3g} | {last:.3g} | {one / reference:.3g} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
