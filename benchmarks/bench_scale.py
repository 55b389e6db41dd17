"""One SimVP-gSTA training step at every WeatherBench resolution: no quantizer, SVQ's fold and
SVQ's direct formula, side by side.

The model is bench_step.py's WeatherBench-S t2m configuration (hid_S 32, hid_T 256, N_S 2,
N_T 8, mlp_ratio 8, gSTA, SVQ K = 10,000; 12 -> 12 frames, one channel), built by its code;
one step = forward, L1 loss, backward, Adam step (fp32). Grids: 5.625 deg (32 x 64), 2.8125
deg (64 x 128), 1.40625 deg (128 x 256). Variants:

    none    plain SimVP
    fold    SVQ, the folded fast path q = h (W2^T M) + b2 M (never builds the tokens x K weights)
    direct  SVQ(fast=False): w = MLP(x), q = w M, with the (tokens x K) weights

Per (resolution, variant), each in its own subprocess: the median time of ``--reps`` steps
after ``--warmup`` untimed ones, and the peak resident memory of one step (the RSS
high-water mark, VmHWM, reset through /proc/self/clear_refs after glibc's malloc_trim; the
same probes as bench_svq.py), as the absolute peak and as the extra over the RSS just
before the step (model, Adam state, batch). The direct formula's (tokens x K) fp32 weights
and their gradient take 2 x tokens x K x 4 bytes, tokens = batch x 12 frames x H/2 x W/2
(N_S 2 halves the grid once). That number is computed for every row, and the direct
variant is not run where it exceeds ``--max-gib``: its row then shows the computed number,
marked "computed". The computed numbers at the paper's batch (16) are printed beside.

``--device cuda`` runs the steps on the GPU (default ``cpu``): the device is synchronised
before and after each timed step, and the memory is CUDA's instead of the RSS:
``torch.cuda.max_memory_allocated`` of the measured step (reset just before it, in each
variant's own process), and its extra over ``torch.cuda.memory_allocated`` before the step.
The steps are fp32 on both devices (``bench_step.py``'s bf16 variants use CUDA's autocast
there). Without a CUDA device ``--device cuda`` stops with a one-line error.

    python benchmarks/bench_scale.py                               # batch 16, all grids
    python benchmarks/bench_scale.py --batch 1 --reps 2 --warmup 1 # what fits a small CPU
    python benchmarks/bench_scale.py --quick                       # a smoke test (seconds)
    python benchmarks/bench_scale.py --device cuda                 # on the GPU, CUDA memory
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys

from bench_step import FULL, QUICK, check_device, make_variant, sync, train_step
from bench_svq import _reset_peak, _rss_kib, _status_kib, _trim_heap, run_worker

RESOLUTIONS = {"5.625": (32, 64), "2.8125": (64, 128), "1.40625": (128, 256)}
VARIANTS = {"none": "none", "fold": "fast", "direct": "direct"}  # -> bench_step's names
FRAMES = 12
PAPER_BATCH = 16
DEFAULT_MAX_GIB = 12.0  # the direct weights + gradient on a 24 GiB machine, with headroom


def direct_tokens(batch: int, height: int, width: int) -> int:
    """Latent tokens the quantizer sees: batch x frames x (H/2) x (W/2) at N_S 2."""
    return batch * FRAMES * (height // 2) * (width // 2)


def direct_gib(batch: int, height: int, width: int, codebook_size: int) -> float:
    """GiB of the direct formula's (tokens x K) fp32 weights plus their gradient."""
    return 2 * direct_tokens(batch, height, width) * codebook_size * 4 / 2**30


# ---------------------------------------------------------------- one variant (worker)
def measure(variant: str, resolution: str, args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    height, width = RESOLUTIONS[resolution]
    size = {**(QUICK if args.quick else FULL), "batch": args.batch}
    cuda = args.device == "cuda"
    rss_start = _rss_kib()
    v = make_variant(VARIANTS[variant], "fp32", size, 0, (FRAMES, 1, height, width), args.device)
    torch.manual_seed(0)
    x = torch.randn(args.batch, FRAMES, 1, height, width)
    y = torch.randn(args.batch, FRAMES, 1, height, width)
    if cuda:
        x, y = x.to(args.device), y.to(args.device)
    for _ in range(args.warmup):  # thread pools, Adam's state
        train_step(v, x, y)
    if cuda:  # CUDA's allocator: bytes held by tensors, peak reset for this step
        sync(args.device)
        before = torch.cuda.memory_allocated() / 1024
        torch.cuda.reset_peak_memory_stats()
        exact = True
        first = train_step(v, x, y)  # the step whose memory is measured (synchronised)
        peak = torch.cuda.max_memory_allocated() / 1024
    else:
        _trim_heap()
        before = _rss_kib()
        exact = _reset_peak()
        first = train_step(v, x, y)  # the step whose memory is measured
        if exact:
            peak = _status_kib("VmHWM")
        else:  # ru_maxrss (KiB on Linux): the process's peak since start, fresh process
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            before = rss_start
    times = [train_step(v, x, y) for _ in range(args.reps)] or [first]
    return {
        "variant": variant,
        "resolution": resolution,
        "grid": [height, width],
        "batch": args.batch,
        "tokens": direct_tokens(args.batch, height, width),
        "params": sum(p.numel() for p in v.model.parameters()),
        "time_ms": 1000 * statistics.median(times),
        "min_ms": 1000 * min(times),
        "peak_mib": peak / 1024 if peak is not None else None,
        "extra_mib": (peak - before) / 1024 if None not in (peak, before) else None,
        "exact_memory": exact,
        "device": args.device,
        "memory": "cuda_max_allocated" if cuda else "rss",
    }


# ---------------------------------------------------------------- driver
def run_variant(variant: str, resolution: str, args: argparse.Namespace) -> dict | str:
    """The worker's measurement, or a one-line reason why it is missing."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", variant]
    cmd += ["--resolutions", resolution, "--batch", str(args.batch)]
    cmd += ["--threads", str(args.threads), "--reps", str(args.reps)]
    cmd += ["--warmup", str(args.warmup), "--device", args.device]
    cmd += ["--quick"] if args.quick else []
    return run_worker(cmd, args.timeout)


def _mib(value: float | None, exact: bool = True) -> str:
    return "n/a" if value is None else f"{value:,.0f}" + ("" if exact else "*")


def format_table(rows: list[dict], codebook_size: int, device: str = "cpu") -> str:
    peak = "peak CUDA alloc" if device == "cuda" else "peak RSS"
    head = (
        f"| resolution | variant | tokens | step ms | {peak} MiB | peak extra MiB "
        f"| time / none | {peak} / none | direct weights + grad GiB (batch {{b}}) "
        f"| same at batch {PAPER_BATCH} |"
    )
    batch = rows[0]["batch"] if rows else PAPER_BATCH
    lines = [head.format(b=batch), "|" + "---|" * 10]
    none = {r["resolution"]: r for r in rows if r["variant"] == "none" and "time_ms" in r}
    for r in rows:
        h, w = r["grid"]
        res = f"{r['resolution']} ({h}x{w})"
        computed = f"{direct_gib(r['batch'], h, w, codebook_size):,.2f} computed"
        paper = f"{direct_gib(PAPER_BATCH, h, w, codebook_size):,.1f} computed"
        if r["variant"] != "direct":
            computed = paper = "-"
        if "time_ms" not in r:  # skipped: only the computed memory
            lines.append(
                f"| {res} | {r['variant']} | {r['tokens']:,} | skipped ({r['why']}) | - | - "
                f"| - | - | {computed} | {paper} |"
            )
            continue
        ref = none.get(r["resolution"])
        t_ratio = m_ratio = "-"
        if ref is not None:
            t_ratio = f"{r['time_ms'] / ref['time_ms']:.3f}"
            if r["peak_mib"] and ref["peak_mib"]:
                m_ratio = f"{r['peak_mib'] / ref['peak_mib']:.3f}"
        lines.append(
            f"| {res} | {r['variant']} | {r['tokens']:,} | {r['time_ms']:,.0f} "
            f"| {_mib(r['peak_mib'], r['exact_memory'])} "
            f"| {_mib(r['extra_mib'], r['exact_memory'])} | {t_ratio} | {m_ratio} "
            f"| {computed} | {paper} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=None, help="samples per step (default 16)")
    parser.add_argument(
        "--resolutions",
        default=None,
        help=f"comma-separated subset of {', '.join(RESOLUTIONS)} (degrees; default all, "
        "quick 5.625)",
    )
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated subset of none,fold,direct"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--reps", type=int, default=None, help="timed steps (default 3; quick 1)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default 1)")
    parser.add_argument(
        "--max-gib",
        type=float,
        default=DEFAULT_MAX_GIB,
        help="skip the direct formula where its weights + gradient exceed this many GiB "
        f"(default {DEFAULT_MAX_GIB:g}, for a 24 GiB machine)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny model, batch 1: a smoke test")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per variant")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where the steps run (default cpu); cuda reports CUDA's peak allocated memory",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch is None:
        args.batch = 1 if args.quick else PAPER_BATCH
    if args.reps is None:
        args.reps = 1 if args.quick else 3
    if args.warmup is None:
        args.warmup = 0 if args.quick else 1
    if args.resolutions is None:
        args.resolutions = "5.625" if args.quick else ",".join(RESOLUTIONS)
    resolutions = [r.strip() for r in args.resolutions.split(",") if r.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for r in resolutions:
        if r not in RESOLUTIONS:
            parser.error(f"unknown resolution {r!r}; choose from {', '.join(RESOLUTIONS)}")
    for v in variants:
        if v not in VARIANTS:
            parser.error(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
    if min(args.batch, args.threads) < 1 or min(args.reps, args.warmup) < 0:
        parser.error("--batch and --threads must be >= 1, --reps and --warmup >= 0")
    problem = check_device(args.device)
    if problem:  # one line, before any worker starts
        raise SystemExit(f"bench_scale.py: error: {problem}")

    if args.worker:  # child process: one (variant, resolution), one JSON line
        print(json.dumps(measure(args.worker, resolutions[0], args)))
        return 0

    size = QUICK if args.quick else FULL
    k = size["codebook_size"]
    note = " (QUICK: tiny model, numbers mean nothing)" if args.quick else ""
    print(
        f"bench_scale: SimVP-gSTA step, {FRAMES} -> {FRAMES} frames, batch {args.batch}, "
        f"hid_S 32, hid_T {size['hid_T']}, N_S 2, N_T {size['N_T']}, "
        f"mlp_ratio {size['mlp_ratio']:g}, K {k}; {args.threads} thread(s), "
        f"{args.warmup} warm-up + {args.reps} timed steps, each variant in its own process; "
        f"device {args.device}; "
        f"direct skipped above {args.max_gib:g} GiB{note}"
    )
    rows: list[dict] = []
    peak = "peak CUDA alloc" if args.device == "cuda" else "peak RSS"
    for r in resolutions:
        h, w = RESOLUTIONS[r]
        for v in variants:
            base = {"variant": v, "resolution": r, "grid": [h, w], "batch": args.batch}
            base["tokens"] = direct_tokens(args.batch, h, w)
            need = direct_gib(args.batch, h, w, k)
            if v == "direct" and need > args.max_gib:
                why = f"{need:,.1f} GiB > --max-gib {args.max_gib:g}"
                rows.append({**base, "why": why})
                print(f"  {r} {v}: skipped, computed {why}", flush=True)
                continue
            result = run_variant(v, r, args)
            if isinstance(result, str):
                rows.append({**base, "why": result})
                print(f"  {r} {v}: failed: {result}", flush=True)
                continue
            rows.append(result)
            print(
                f"  {r} {v}: {result['time_ms']:,.0f} ms, {peak} "
                f"{_mib(result['peak_mib'])} MiB (+{_mib(result['extra_mib'])})",
                flush=True,
            )
    print()
    print(format_table(rows, k, args.device))
    if any(not r.get("exact_memory", True) for r in rows):
        print("* peak from ru_maxrss (the RSS high-water mark could not be reset)")
    if args.json:
        from svqcast.io import atomic_write_text

        atomic_write_text(args.json, json.dumps({"args": vars(args), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
