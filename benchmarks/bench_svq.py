"""Speed and memory of SVQ's folded fast path against its direct formula, and of every baseline
quantizer, measured side by side in one run.

What is measured, per variant, on one latent batch of N*H*W tokens of dimension C (paper size:
N=192, C=32, H=16, W=32 = 98,304 tokens, WeatherBench-S with batch 16 x 12 frames; K=10,000,
middim 128):

* time: one forward + backward (loss = mean square of the quantized map + the auxiliary
  loss), median of ``--reps`` after ``--warmup`` untimed runs, on ``--threads`` CPU threads.
* peak extra memory: the highest resident set size (RSS) reached during one forward +
  backward, minus the RSS just before it. On Linux the kernel's RSS high-water mark
  (VmHWM in /proc/self/status) is reset first by writing 5 to /proc/self/clear_refs, and
  freed heap memory is handed back with glibc's malloc_trim(0), so the baseline holds only
  the module, the input and the interpreter. This is the real memory of the process (the
  tensors, the allocator's slack and any library workspace), not an estimate. Where the
  reset is impossible the number is marked ``*``: then ru_maxrss (process-wide, monotonic)
  minus the RSS before the first run is reported, which is only honest because each variant
  runs in a fresh process (the default).

Each variant runs in its own subprocess (so one variant's freed-but-kept memory or thread
pools cannot touch another's); ``--inprocess`` runs them in this process instead (faster,
for smoke tests). A quantizer that fails to build (for instance a missing optional library)
is skipped with a note.

    python benchmarks/bench_svq.py                      # paper size, all variants, 2 threads
    python benchmarks/bench_svq.py --only svq           # SVQ fast vs direct only
    python benchmarks/bench_svq.py --only svq_params    # SVQ's parametrisations, folded
    python benchmarks/bench_svq.py --quick              # small sizes: a smoke test
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import statistics
import subprocess
import sys
import time

SVQ_VARIANTS = ("svq_fast", "svq_direct", "svq_out_relu")
# the parametrisations that change the forward pass (lr_scaled and warmup compute the paper's
# function: only the optimiser differs), each on the folded path
PARAM_VARIANTS = ("svq_readout", "svq_rmsnorm", "svq_residual")
BASELINES = ("vq", "rvq", "grvq", "mhvq", "fsq", "rfsq", "lfq", "rlfq", "svq_raw", "mlp", "none")
DEFAULT = (
    "svq_fast",
    "svq_direct",
    *PARAM_VARIANTS,
    *BASELINES,
)  # svq_out_relu only when asked (slow)
PAPER = {"batch": 192, "dim": 32, "height": 16, "width": 32, "codebook_size": 10000}
QUICK = {"batch": 4, "dim": 32, "height": 8, "width": 16, "codebook_size": 1000}


# ---------------------------------------------------------------- memory probes (Linux)
def _rss_kib() -> int | None:
    return _status_kib("VmRSS")


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's RSS high-water mark of this process (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc), so the RSS baseline is honest."""
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# ---------------------------------------------------------------- one variant
def build(name: str, dim: int, codebook_size: int, middim: int):
    """The module for a variant name: SVQ paths at the paper's K, baselines at their defaults."""
    from svqcast.quantizers import build_quantizer
    from svqcast.quantizers.svq import SVQ

    if name == "svq_fast":
        return SVQ(dim, codebook_size=codebook_size, middim=middim)
    if name == "svq_direct":
        return SVQ(dim, codebook_size=codebook_size, middim=middim, fast=False)
    if name == "svq_out_relu":
        return SVQ(dim, codebook_size=codebook_size, middim=middim, out_relu=True)
    if name in PARAM_VARIANTS:
        form = name.removeprefix("svq_")
        return SVQ(dim, codebook_size=codebook_size, middim=middim, parametrisation=form)
    return build_quantizer(name, dim)


def measure(name: str, args: argparse.Namespace) -> dict:
    """Time and peak extra memory of forward + backward for one variant (in this process)."""
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rss_start = _rss_kib()
    module = build(name, args.dim, args.codebook_size, args.middim)
    z = torch.randn(args.batch, args.dim, args.height, args.width, requires_grad=True)

    def step() -> None:
        out = module(z)
        loss = out.quantized.float().square().mean() + out.loss.float()
        loss.backward()

    def clear() -> None:
        module.zero_grad(set_to_none=True)
        z.grad = None

    for _ in range(args.warmup):  # first calls pay one-time costs (thread pools, imports)
        clear()
        step()
    # memory: one forward + backward from a trimmed heap with the high-water mark reset
    clear()
    _trim_heap()
    before = _rss_kib()
    exact = _reset_peak()
    step()
    if exact:
        peak = _status_kib("VmHWM")
    else:  # ru_maxrss is in KiB on Linux: process-wide peak since start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        before = rss_start
    extra_mib = (peak - before) / 1024 if peak is not None and before is not None else None

    times = []
    for _ in range(args.reps):
        clear()
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    params = sum(p.numel() for p in module.parameters())
    path = getattr(module, "path", "-")
    return {
        "name": name,
        "path": path,
        "params": params,
        "time_ms": 1000 * statistics.median(times),
        "extra_mib": extra_mib,
        "exact_memory": exact,
    }


# ---------------------------------------------------------------- driver
def run_variant(name: str, args: argparse.Namespace) -> dict | str:
    """The measurement dict, or a one-line reason why the variant was skipped."""
    if args.inprocess:
        try:
            return measure(name, args)
        except Exception as exc:  # noqa: BLE001 - any failure skips the variant with a note
            return f"{type(exc).__name__}: {exc}".splitlines()[0]
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name]
    for key in ("threads", "reps", "warmup", "batch", "dim", "height", "width"):
        cmd += [f"--{key}", str(getattr(args, key))]
    cmd += ["--codebook-size", str(args.codebook_size), "--middim", str(args.middim)]
    return run_worker(cmd, args.timeout)


def run_worker(cmd: list[str], timeout: float) -> dict | str:
    """Run a worker process that prints one JSON line last: that dict, or a one-line reason
    why there is none (timeout, non-zero exit: its last line of output)."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout} s"
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["no output"]
        return lines[-1]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def expand(only: str | None) -> list[str]:
    if not only:
        return list(DEFAULT)
    names: list[str] = []
    for part in only.split(","):
        part = part.strip()
        if part == "svq":
            names += ["svq_fast", "svq_direct"]
        elif part == "svq_params":
            names += ["svq_fast", *PARAM_VARIANTS]
        elif part in SVQ_VARIANTS or part in PARAM_VARIANTS or part in BASELINES:
            names.append(part)
        elif part:
            raise SystemExit(
                f"bench_svq: unknown variant {part!r}; choose from svq, svq_params, "
                f"{', '.join(SVQ_VARIANTS + PARAM_VARIANTS + BASELINES)}"
            )
    return list(dict.fromkeys(names))


def format_table(rows: list[dict], reference: dict | None) -> str:
    head = (
        "| variant | path | params | fwd+bwd ms | peak extra MiB "
        "| time / svq_fast | mem / svq_fast |"
    )
    lines = [head, "|" + "---|" * 7]
    for r in rows:
        mem = "n/a" if r["extra_mib"] is None else f"{r['extra_mib']:.1f}"
        if r["extra_mib"] is not None and not r["exact_memory"]:
            mem += "*"
        t_ratio = m_ratio = "-"
        if reference is not None:
            t_ratio = f"{r['time_ms'] / reference['time_ms']:.2f}"
            if r["extra_mib"] is not None and reference["extra_mib"]:
                m_ratio = f"{r['extra_mib'] / max(reference['extra_mib'], 1e-9):.2f}"
        lines.append(
            f"| {r['name']} | {r['path']} | {r['params']:,} | {r['time_ms']:.1f} | {mem} "
            f"| {t_ratio} | {m_ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated variants (svq = svq_fast,svq_direct)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=None, help="timed runs (default 5; quick 2)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch", type=int, default=None, help="N (frames x batch)")
    parser.add_argument("--dim", type=int, default=None, help="C (hid_S)")
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--codebook-size", type=int, default=None, help="K for SVQ")
    parser.add_argument("--middim", type=int, default=128)
    parser.add_argument("--inprocess", action="store_true", help="no subprocess per variant")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per variant")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else PAPER
    for key, value in sizes.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.reps is None:
        args.reps = 2 if args.quick else 5

    if args.worker:  # child process: one variant, one JSON line
        print(json.dumps(measure(args.worker, args)))
        return 0

    names = expand(args.only)
    tokens = args.batch * args.height * args.width
    print(
        f"bench_svq: {tokens:,} tokens (N={args.batch}, C={args.dim}, H={args.height}, "
        f"W={args.width}), SVQ K={args.codebook_size}, middim={args.middim}, "
        f"{args.threads} thread(s), median of {args.reps} after {args.warmup} warm-up"
    )
    weights_mib = tokens * args.codebook_size * 4 / 2**20
    print(f"the direct formula's (tokens, K) fp32 weight tensor alone: {weights_mib:,.0f} MiB")
    rows: list[dict] = []
    for name in names:
        result = run_variant(name, args)
        if isinstance(result, str):
            print(f"  skipped {name}: {result}")
            continue
        rows.append(result)
        print(f"  {name}: {result['time_ms']:.1f} ms", flush=True)
    by_name = {r["name"]: r for r in rows}
    print()
    print(format_table(rows, by_name.get("svq_fast")))
    if any(not r["exact_memory"] for r in rows):
        print("* peak from ru_maxrss (the RSS high-water mark could not be reset)")
    fast, direct = by_name.get("svq_fast"), by_name.get("svq_direct")
    if fast and direct:
        speed = direct["time_ms"] / fast["time_ms"]
        memory = (
            direct["extra_mib"] / max(fast["extra_mib"], 1e-9)
            if fast["extra_mib"] is not None and direct["extra_mib"] is not None
            else float("nan")
        )
        print(
            f"\ndirect / fast: time {speed:.1f}x, peak extra memory {memory:.1f}x "
            f"(goal at paper size on 2 threads: >= 80x and >= 20x)"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
