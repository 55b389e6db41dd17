import copy
import io
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from svqcast.errors import ConfigError
from svqcast.quantizers import build_quantizer
from svqcast.quantizers.svq import CODEBOOK_INITS, SVQ, BottleneckMLP, perplexity_from_counts

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}

CONFIGS = {
    "default": {},
    "linear": {"nonlinear": False},
    "no_hid_relu": {"hid_relu": False},
    "frozen": {"freeze_codebook": True},
    "out_relu_chunked": {"out_relu": True, "chunk_size": 7},
}


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def run_path(q: SVQ, z: torch.Tensor, path: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Output of ``path`` and the gradients of a fixed random loss w.r.t. z and parameters."""
    z = z.detach().clone().requires_grad_(True)
    out = q.quantize(z, path)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    (out * g).sum().backward()
    grads = [z.grad] + [p.grad.clone() if p.grad is not None else None for p in q.parameters()]
    q.zero_grad(set_to_none=True)
    return out.detach(), grads


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_fast_path_matches_direct_formula_outputs_and_gradients(dtype, config):
    q = SVQ(6, codebook_size=200, middim=16, **CONFIGS[config]).to(dtype)
    z = torch.randn(3, 6, 5, 4, dtype=dtype)
    assert q.path == ("chunked" if config == "out_relu_chunked" else "folded")
    fast_out, fast_grads = run_path(q, z, q.path)
    ref_out, ref_grads = run_path(q, z, "direct")
    assert rel_err(fast_out, ref_out) <= TOL[dtype]
    for fast_g, ref_g in zip(fast_grads, ref_grads):
        if ref_g is None:  # frozen codebook: no gradient on either path
            assert fast_g is None
            continue
        assert rel_err(fast_g, ref_g) <= TOL[dtype]


def test_forward_uses_fast_path_and_fast_false_uses_direct():
    torch.manual_seed(3)
    fast = SVQ(4, codebook_size=64, middim=8)
    slow = SVQ(4, codebook_size=64, middim=8, fast=False)
    slow.load_state_dict(fast.state_dict())
    z = torch.randn(2, 4, 3, 3)
    assert slow.path == "direct"
    a, b = fast(z), slow(z)
    assert rel_err(a.quantized, b.quantized) <= 1e-5
    assert a.loss.shape == () and a.loss.item() == 0.0 and a.stats == {}


def test_middim_clamped_to_codebook_size():
    q = SVQ(4, codebook_size=10, middim=128)
    assert q.middim == 10 and q.hidden.out_features == 10 and q.to_weights.in_features == 10


@pytest.mark.parametrize("config", list(CONFIGS))
def test_code_weights_reproduce_the_output(config):
    q = SVQ(5, codebook_size=50, middim=8, **CONFIGS[config]).double()
    z = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    w = q.code_weights(z)
    assert w.shape == (2, 3, 4, 50)
    recon = torch.einsum("nhwk,kc->nchw", w, q.codebook)
    assert rel_err(recon, q(z).quantized) <= 1e-10
    if q.out_relu:
        assert (w >= 0).all()
    flat = q.code_weights(z.permute(0, 2, 3, 1).reshape(-1, 5))
    assert torch.equal(flat, w.reshape(-1, 50))


def test_bottleneck_mlp_equals_svq_with_folded_weight():
    svq = SVQ(6, codebook_size=300, middim=12).double()
    mlp = BottleneckMLP(6, middim=12).double()
    with torch.no_grad():
        mlp.hidden.load_state_dict(svq.hidden.state_dict())
        mlp.out.weight.copy_((svq.to_weights.weight.t() @ svq.codebook).t())
        mlp.out.bias.copy_(svq.to_weights.bias @ svq.codebook)
    z = torch.randn(2, 6, 4, 3, dtype=torch.float64)
    assert rel_err(mlp(z).quantized, svq.direct(z)) <= 1e-10


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("svq", {"codebook_size": 64, "middim": 16}),
        ("svq", {"codebook_size": 64, "out_relu": True, "chunk_size": 5}),
        ("svq_raw", {"codebook_size": 64, "iterations": 5}),
        ("mlp", {"middim": 16}),
        ("none", {}),
    ],
)
def test_gradients_reach_the_input(name, options):
    q = build_quantizer(name, 4, **options)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = q(z)
    assert out.quantized.shape == z.shape and out.quantized.dtype == z.dtype
    (out.quantized.square().sum() + out.loss).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (1, 1, 3, 2), (3, 1, 1, 1)])
@pytest.mark.parametrize("name", ["svq", "svq_raw", "mlp"])
def test_odd_shapes(shape, name):
    options = {"codebook_size": 16} if name.startswith("svq") else {}
    q = build_quantizer(name, shape[1], **options).double()
    z = torch.randn(shape, dtype=torch.float64)
    out = q(z).quantized
    assert out.shape == shape and torch.isfinite(out).all()
    if name == "svq":
        assert rel_err(out, q.direct(z)) <= 1e-10


# ------------------------------------------------------------------ codebook init
def _sem(std: float, n: int) -> float:
    return 6 * std / math.sqrt(n)  # six standard errors: fails with negligible probability


@pytest.mark.parametrize("init", CODEBOOK_INITS)
def test_codebook_init_statistics(init):
    k, c = 4000, 16
    m = SVQ(c, codebook_size=k, middim=8, init=init).codebook.detach().double()
    n = m.numel()
    if init in ("normal", "random"):
        assert abs(m.mean()) < _sem(1, n) and abs(m.std() - 1) < _sem(1 / math.sqrt(2), n)
    elif init in ("kaiming", "xavier"):
        bound = math.sqrt(6 / c) if init == "kaiming" else math.sqrt(2) * math.sqrt(6 / (k + c))
        assert m.abs().max() <= bound and m.abs().max() > 0.99 * bound
        assert abs(m.mean()) < _sem(bound / math.sqrt(3), n)
        assert abs(m.std() - bound / math.sqrt(3)) < _sem(bound * 0.3, n)
    elif init == "sparse":
        zeros_per_column = (m == 0).sum(0)
        assert (zeros_per_column == math.ceil(0.9 * k)).all()
        nz = m[m != 0]
        assert abs(nz.std() - 0.01) < _sem(0.01 / math.sqrt(2), nz.numel())
    elif init == "trunc":
        # N(0, 1) truncated to [-2, 2]: var = 1 - 2 * 2 phi(2) / (Phi(2) - Phi(-2))
        phi2 = math.exp(-2) / math.sqrt(2 * math.pi)
        mass = math.erf(2 / math.sqrt(2))
        std = math.sqrt(1 - 4 * phi2 / mass)
        assert m.abs().max() <= 2 and abs(m.mean()) < _sem(std, n)
        assert abs(m.std() - std) < _sem(0.7, n)
    elif init == "orthogonal":
        assert (m.t() @ m - torch.eye(c, dtype=m.dtype)).abs().max() < 1e-5


def test_linear_layers_keep_pytorch_default_init():
    q = SVQ(16, codebook_size=64, middim=32)
    bound = 1 / math.sqrt(16)  # kaiming-uniform with a=sqrt(5) on fan-in 16
    assert q.hidden.weight.abs().max() <= bound and q.hidden.bias.abs().max() <= bound


@pytest.mark.parametrize(
    "options",
    [
        {"init": "uniform"},
        {"codebook_size": 0},
        {"middim": -1},
        {"chunk_size": 0},
        {"codebook_size": 2.5},
    ],
)
def test_bad_options_raise_config_error(options):
    with pytest.raises(ConfigError, match="svq|codebook init"):
        build_quantizer("svq", 4, **options)


def test_unknown_init_lists_choices():
    with pytest.raises(ConfigError, match="valid choices: .*kaiming.*orthogonal"):
        SVQ(4, codebook_size=8, init="he")


# ------------------------------------------------------------------ freezing
def test_frozen_codebook_gets_no_update_but_is_saved_and_restored_bit_exactly():
    q = SVQ(4, codebook_size=32, middim=8, freeze_codebook=True)
    before = q.codebook.detach().clone()
    opt = torch.optim.SGD(q.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    z = torch.randn(2, 4, 3, 3)
    q(z).quantized.abs().mean().backward()
    assert q.codebook.grad is None and q.to_weights.weight.grad is not None
    opt.step()
    assert torch.equal(q.codebook, before)
    assert "codebook" in q.state_dict()

    buffer = io.BytesIO()
    torch.save(q.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(123)  # a fresh model with a different random codebook
    fresh = SVQ(4, codebook_size=32, middim=8, freeze_codebook=True)
    assert not torch.equal(fresh.codebook, q.codebook)
    fresh.load_state_dict(torch.load(buffer))
    assert torch.equal(fresh.codebook, q.codebook) and not fresh.codebook.requires_grad
    assert torch.equal(fresh(z).quantized, q(z).quantized)


def test_learnable_codebook_is_updated():
    q = SVQ(4, codebook_size=32, middim=8)
    before = q.codebook.detach().clone()
    opt = torch.optim.SGD(q.parameters(), lr=0.1)
    q(torch.randn(2, 4, 3, 3)).quantized.abs().mean().backward()
    opt.step()
    assert not torch.equal(q.codebook, before)


def test_freeze_mlp_freezes_only_the_mlp():
    q = SVQ(4, codebook_size=32, middim=8, freeze_mlp=True)
    assert [n for n, p in q.named_parameters() if p.requires_grad] == ["codebook"]
    both = SVQ(4, codebook_size=32, middim=8, freeze_mlp=True, freeze_codebook=True)
    z = torch.randn(1, 4, 2, 2, requires_grad=True)
    both(z).quantized.sum().backward()  # only the input gets a gradient
    assert z.grad is not None and all(p.grad is None for p in both.parameters())


# ------------------------------------------------------------------ layouts, precision
@pytest.mark.parametrize("config", ["default", "out_relu_chunked"])
def test_channels_last_input(config):
    q = SVQ(8, codebook_size=64, middim=16, **CONFIGS[config])
    z = torch.randn(2, 8, 5, 6)
    zc = z.contiguous(memory_format=torch.channels_last)
    out, out_cl = q(z).quantized, q(zc).quantized
    assert out.is_contiguous()
    assert out_cl.is_contiguous(memory_format=torch.channels_last)
    assert rel_err(out_cl, out) <= 1e-6


@pytest.mark.parametrize("config", ["default", "out_relu_chunked", "linear"])
def test_bf16_autocast_runs_and_stays_close(config):
    q = SVQ(8, codebook_size=128, middim=16, **CONFIGS[config])
    z = torch.randn(2, 8, 4, 4, requires_grad=True)
    ref = q(z).quantized.detach()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = q(z).quantized
    assert out.dtype in (torch.bfloat16, torch.float32)
    assert rel_err(out.float().detach(), ref) < 0.05
    out.float().sum().backward()
    assert torch.isfinite(z.grad).all() and q.to_weights.weight.grad is not None


def test_model_cast_to_bf16():
    q = SVQ(8, codebook_size=64, middim=16).to(torch.bfloat16)
    z = torch.randn(2, 8, 3, 3, dtype=torch.bfloat16)
    out = q(z).quantized
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 6),
    h=st.integers(1, 4),
    w=st.integers(1, 4),
    k=st.integers(1, 40),
    middim=st.integers(1, 20),
    nonlinear=st.booleans(),
    hid_relu=st.booleans(),
    double=st.booleans(),
    cl=st.booleans(),
)
def test_property_fast_equals_direct(n, c, h, w, k, middim, nonlinear, hid_relu, double, cl):
    dtype = torch.float64 if double else torch.float32
    q = SVQ(c, codebook_size=k, middim=middim, nonlinear=nonlinear, hid_relu=hid_relu).to(dtype)
    z = torch.randn(n, c, h, w, dtype=dtype)
    if cl:
        z = z.contiguous(memory_format=torch.channels_last)
    out = q(z).quantized
    assert out.shape == z.shape and out.dtype == dtype
    ref = q.direct(z)
    assert ((out - ref).abs().max() <= 10 * TOL[dtype] * ref.abs().max().clamp_min(1.0)).item()


# ------------------------------------------------------------------ diagnostics
def _brute_force_stats(q: SVQ, z: torch.Tensor) -> dict[str, float]:
    w = q.code_weights(z.double()).reshape(-1, q.codebook_size)
    mean, std = w.mean(), w.std(unbiased=False)
    score = ((w - mean) / std).abs()

    def perplexity(active):
        p = active.sum(0).double()
        p = p[p > 0] / p.sum()
        return math.exp(-(p * p.log()).sum().item())

    return {
        "perplexity_z3": perplexity(score > 3),
        "perplexity_z2": perplexity(score > 2),
        "active_frac_z3": (score > 3).double().mean().item(),
        "active_frac_z2": (score > 2).double().mean().item(),
        "usage_z3": ((score > 3).sum(0) > 0).double().mean().item(),
        "near_zero_frac": (w.abs() < 0.01 * std).double().mean().item(),
        "weight_mean": mean.item(),
        "weight_std": std.item(),
    }


@pytest.mark.parametrize("config", ["default", "out_relu_chunked", "linear"])
def test_diagnostics_match_brute_force(config):
    q = SVQ(6, codebook_size=100, middim=12, **CONFIGS[config]).double()
    z = torch.randn(3, 6, 5, 5, dtype=torch.float64)
    stats = q.diagnostics(z)
    expected = _brute_force_stats(q, z)
    for key, value in expected.items():
        assert stats[key].shape == () and stats[key].dtype == torch.float32
        assert stats[key].item() == pytest.approx(value, rel=1e-5, abs=1e-6), key
    out = q(z).quantized
    assert stats["out_std"].item() == pytest.approx(out.std().item(), rel=1e-5)
    ratio = out.std().item() / z.std().item()
    assert stats["out_in_std_ratio"].item() == pytest.approx(ratio, rel=1e-5)


def test_collect_stats_in_forward_and_not_by_default():
    q = SVQ(4, codebook_size=64, middim=8)
    z = torch.randn(2, 4, 3, 3)
    assert q(z).stats == {}
    q.collect_stats = True
    stats = q(z).stats
    assert {"perplexity_z3", "perplexity_z2", "near_zero_frac", "out_in_std_ratio"} <= set(stats)
    assert 0 <= stats["perplexity_z3"].item() <= 64


def test_perplexity_from_counts_extremes():
    assert perplexity_from_counts(torch.ones(50)).item() == pytest.approx(50)
    assert perplexity_from_counts(torch.tensor([0.0, 7.0, 0.0])).item() == pytest.approx(1)
    assert perplexity_from_counts(torch.zeros(5)).item() == 0


def test_weight_sample_is_deterministic_subset():
    q = SVQ(4, codebook_size=16, middim=8)
    z = torch.randn(2, 4, 10, 10)
    state = torch.random.get_rng_state()
    sample = q.weight_sample(z, max_tokens=50)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert sample.ndim == 1 and sample.numel() == 50 * 16
    assert torch.equal(sample, q.weight_sample(z, max_tokens=50))
    full = q.weight_sample(z, max_tokens=10_000)
    assert full.numel() == 200 * 16
    assert torch.equal(full, q.code_weights(z).reshape(-1).detach())


def test_copy_of_module_is_independent():
    q = SVQ(4, codebook_size=16, middim=8)
    twin = copy.deepcopy(q)
    with torch.no_grad():
        twin.codebook.add_(1)
    assert not torch.equal(twin.codebook, q.codebook)


@pytest.mark.slow
def test_bench_svq_quick(capsys):
    bench = _load_benchmark("bench_svq")
    argv = ["--quick", "--inprocess", "--only", "svq,mlp", "--threads", "1", "--reps", "1"]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    assert "| svq_fast | folded |" in out and "| svq_direct | direct |" in out
    assert "direct / fast: time" in out


def test_fold_never_builds_the_token_by_code_weights(monkeypatch):
    q = SVQ(4, codebook_size=64, middim=8)

    def forbidden(tokens):
        raise AssertionError("the folded path must not compute the (tokens, K) weights")

    monkeypatch.setattr(q, "_weights", forbidden)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    q(z).quantized.sum().backward()
    with pytest.raises(AssertionError, match="must not"):
        q.direct(z)


def _saved_numel(fn) -> int:
    """Number of elements autograd keeps for backward while running ``fn``."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


@pytest.mark.parametrize("out_relu", [False, True])
def test_fast_paths_never_keep_token_by_code_tensors_for_backward(out_relu):
    t, k = 6 * 8 * 8, 512
    q = SVQ(4, codebook_size=k, middim=16, out_relu=out_relu, chunk_size=64)
    z = torch.randn(6, 4, 8, 8, requires_grad=True)
    assert _saved_numel(lambda: q.direct(z)) >= t * k
    fast = _saved_numel(lambda: q(z))
    # what the fast paths may keep: parameters and a few (T, C) / (T, middim) activations
    bound = sum(p.numel() for p in q.parameters()) + 4 * t * (4 + 16)
    assert fast <= bound < t * k / 2


def test_chunked_path_matches_direct_under_bf16_autocast():
    q = SVQ(8, codebook_size=128, middim=16, out_relu=True, chunk_size=10)
    z = torch.randn(2, 8, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        chunked, chunked_grads = run_path(q, z, "chunked")
        direct, direct_grads = run_path(q, z, "direct")
    assert chunked.dtype == direct.dtype == torch.bfloat16
    assert rel_err(chunked.float(), direct.float()) <= 1e-2
    for a, b in zip(chunked_grads, direct_grads):
        assert a.dtype == b.dtype and rel_err(a.float(), b.float()) <= 2e-2


def _load_benchmark(name: str):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_first_adam_step_moves_svq_output_in_proportion_to_k():
    """The diagnostic behind the accuracy benchmark's reading: one Adam step at lr 5e-3
    moves a fresh SVQ's output by far more than the codes-free MLP's, growing with K, and
    freezing the MLP removes most of it (the effective last weight W2^T M sums K codes)."""
    scale = _load_benchmark("svq_update_scale")
    mlp = scale.update_scale("mlp", {"middim": 128}, steps=1)[1]
    svq = {k: scale.update_scale("svq", {"codebook_size": k}, steps=1)[1] for k in (256, 4096)}
    frozen = scale.update_scale("svq", {"codebook_size": 4096, "freeze_mlp": True}, steps=1)[1]
    assert mlp < 1.0
    assert 10 * mlp < svq[256] < svq[4096] / 4  # ~linear in K
    assert frozen < svq[4096] / 10


def test_linear_svq_ignores_out_relu_as_the_official_code_does():
    torch.manual_seed(0)
    z = torch.randn(2, 8, 3, 5, dtype=torch.float64)
    tokens = z.permute(0, 2, 3, 1).reshape(-1, 8)
    official = SVQ(8, codebook_size=32, nonlinear=False, out_relu=True).double()
    assert not official.out_relu and official.path == "folded"
    layer, m = official.to_weights, official.codebook
    expected = (tokens @ layer.weight.t() + layer.bias) @ m  # single Linear, no ReLU
    got = official(z).quantized.permute(0, 2, 3, 1).reshape(-1, 8)
    assert torch.allclose(got, expected)
    # with the two-layer MLP out_relu applies
    assert SVQ(8, codebook_size=32, out_relu=True).out_relu
