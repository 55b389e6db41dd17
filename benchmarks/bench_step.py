"""Time one training step of SimVP-gSTA with and without SVQ, side by side in one process.

The WeatherBench-S t2m configuration of the paper: batch 16, input (12, 1, 32, 64) -> 12
frames, hid_S 32, hid_T 256, N_S 2, N_T 8, gSTA, K = 10,000 codes. One step = forward, L1
loss, backward, Adam step. Variants (each in fp32, and in bf16 autocast with a
channels_last model; ``--device cuda`` runs them on the GPU, synchronised around each timed
step, with CUDA's bf16 autocast):

    none    plain SimVP
    fast    SVQ, folded fast path (never builds the tokens x K weight tensor)
    direct  SVQ(fast=False), the direct formula w = MLP(x), q = w M

The variants are interleaved round by round so that machine load affects them alike; the
script prints the median time of each and the ratios fast / none and direct / fast.

    python benchmarks/bench_step.py                # full size (minutes, several GB for direct)
    python benchmarks/bench_step.py --quick        # tiny smoke run (seconds)
    python benchmarks/bench_step.py --threads 8 --reps 20
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from svqcast.models import SimVP

FULL = dict(batch=16, hid_T=256, N_T=8, mlp_ratio=8.0, codebook_size=10_000)
QUICK = dict(batch=2, hid_T=32, N_T=2, mlp_ratio=2.0, codebook_size=1_000)
IN_SHAPE = (12, 1, 32, 64)
QUANTIZERS = {
    "none": None,
    "fast": {"fast": True},
    "direct": {"fast": False},
}


@dataclass
class Variant:
    name: str
    precision: str  # "fp32" or "bf16"
    model: SimVP
    optimizer: torch.optim.Optimizer
    times: list[float]


def build_model(name: str, size: dict, in_shape: tuple[int, ...] = IN_SHAPE) -> SimVP:
    """SimVP-gSTA of the t2m configuration (hid_S 32, N_S 2) for variant ``name`` of
    QUANTIZERS, at ``size`` (FULL or QUICK) and input shape ``in_shape`` (T, C, H, W)."""
    options = QUANTIZERS[name]
    return SimVP(
        in_shape,
        hid_S=32,
        hid_T=size["hid_T"],
        N_S=2,
        N_T=size["N_T"],
        mlp_ratio=size["mlp_ratio"],
        translator="gsta",
        quantizer=None if options is None else "svq",
        quantizer_options=None
        if options is None
        else {"codebook_size": size["codebook_size"], **options},
    ).train()


def check_device(device: str) -> str | None:
    """None when ``device`` ("cpu" or "cuda") can run here, else a one-line reason."""
    if device == "cuda" and not torch.cuda.is_available():
        return f"--device cuda: torch {torch.__version__} sees no CUDA device"
    return None


def sync(device: str) -> None:
    """Wait for the queued kernels of ``device`` (a type: CUDA runs asynchronously; nothing
    to do on the CPU)."""
    if device == "cuda":
        torch.cuda.synchronize()


def make_variant(
    name: str,
    precision: str,
    size: dict,
    seed: int,
    in_shape: tuple[int, ...] = IN_SHAPE,
    device: str = "cpu",
) -> Variant:
    torch.manual_seed(seed)
    model = build_model(name, size, in_shape)
    if device != "cpu":
        model = model.to(device)
    if precision == "bf16":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Variant(name, precision, model, optimizer, [])


def train_step(v: Variant, x: torch.Tensor, y: torch.Tensor) -> float:
    """One step on the device of ``x`` (bf16 autocast there for the bf16 variants); its
    seconds, the device synchronised before and after on CUDA."""
    device = x.device.type  # "cpu" or "cuda"
    autocast = (
        torch.autocast(device, dtype=torch.bfloat16)
        if v.precision == "bf16"
        else contextlib.nullcontext()
    )
    sync(device)
    start = time.perf_counter()
    v.optimizer.zero_grad(set_to_none=True)
    with autocast:
        out = v.model(x)
        loss = F.l1_loss(out.prediction.float(), y) + out.aux_loss
    loss.backward()
    v.optimizer.step()
    sync(device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--reps", type=int, default=None, help="timed rounds (default 10; 1 quick)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test only")
    parser.add_argument(
        "--variants",
        default="none,fast,direct",
        help="comma-separated subset of none,fast,direct (default all)",
    )
    parser.add_argument(
        "--precisions", default="fp32,bf16", help="comma-separated subset of fp32,bf16"
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="where the steps run (cpu)"
    )
    args = parser.parse_args(argv)
    problem = check_device(args.device)
    if problem:
        raise SystemExit(f"bench_step.py: error: {problem}")
    torch.set_num_threads(args.threads)
    size = QUICK if args.quick else FULL
    reps = args.reps if args.reps is not None else (1 if args.quick else 10)
    warmup = min(args.warmup, 1) if args.quick else args.warmup
    names = [n for n in args.variants.split(",") if n]
    precisions = [p for p in args.precisions.split(",") if p]
    for n in names:
        if n not in QUANTIZERS:
            parser.error(f"unknown variant {n!r}; choose from {', '.join(QUANTIZERS)}")
    for p in precisions:
        if p not in ("fp32", "bf16"):
            parser.error(f"unknown precision {p!r}; choose from fp32, bf16")

    note = " (QUICK: not representative)" if args.quick else ""
    print(
        f"SimVP-gSTA step: batch {size['batch']}, in {IN_SHAPE}, hid_S 32, "
        f"hid_T {size['hid_T']}, N_S 2, N_T {size['N_T']}, mlp_ratio {size['mlp_ratio']:g}, "
        f"K {size['codebook_size']}; {args.device}, threads {args.threads}, "
        f"{warmup} warm-up + {reps} timed rounds{note}"
    )
    torch.manual_seed(0)
    x = torch.randn(size["batch"], *IN_SHAPE).to(args.device)
    y = torch.randn(size["batch"], *IN_SHAPE).to(args.device)
    variants = [
        make_variant(n, p, size, seed=0, device=args.device) for p in precisions for n in names
    ]
    for round_ in range(warmup + reps):
        for v in variants:  # interleaved: every round runs each variant once
            elapsed = train_step(v, x, y)
            if round_ >= warmup:
                v.times.append(elapsed)

    medians = {(v.name, v.precision): statistics.median(v.times) for v in variants}
    print(f"\n{'variant':<10}{'precision':<11}{'median ms':>11}{'min ms':>10}")
    for v in variants:
        print(
            f"{v.name:<10}{v.precision:<11}{1e3 * medians[(v.name, v.precision)]:>11.1f}"
            f"{1e3 * min(v.times):>10.1f}"
        )
    print()
    for p in precisions:
        if ("fast", p) in medians and ("none", p) in medians:
            ratio = medians[("fast", p)] / medians[("none", p)]
            print(f"{p}: SVQ fast / none   = {ratio:.3f}  (goal <= 1.05)")
        if ("direct", p) in medians and ("fast", p) in medians:
            ratio = medians[("direct", p)] / medians[("fast", p)]
            print(f"{p}: SVQ direct / fast = {ratio:.2f}")
    if "fp32" in precisions and "bf16" in precisions:
        for n in names:
            ratio = medians[(n, "bf16")] / medians[(n, "fp32")]
            print(f"{n}: bf16+channels_last / fp32 = {ratio:.3f}")


if __name__ == "__main__":
    main()
