"""Every quantizer as a drop-in layer: channel-last tokens (..., C), channel-first maps
(N, C, *spatial) of any rank, the ``channel_first`` override, equivalence across layouts,
SVQ's fold in every layout, memory formats, errors and the package's lazy exports."""

import copy
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from einops import rearrange

from svqcast.errors import ConfigError
from svqcast.quantizers import QUANTIZERS, SVQ, build_quantizer, quantizer_class
from svqcast.quantizers.base import TokenLayout

DIM = 8
SMALL: dict[str, dict] = {
    "none": {},
    "svq": {"codebook_size": 32, "middim": 8},
    "svq_raw": {"codebook_size": 16, "iterations": 5},
    "mlp": {"middim": 8},
    "vq": {"codebook_size": 16},
    "mhvq": {"codebook_size": 16, "heads": 2},
    "rvq": {"codebook_size": 16, "num_quantizers": 3},
    "grvq": {"codebook_size": 16, "num_quantizers": 2, "groups": 2},
    "lfq": {"codebook_size": 16},
    "rlfq": {"codebook_size": 16, "num_quantizers": 3},
    "fsq": {"levels": (5, 3)},
    "rfsq": {"levels": (5, 3), "num_quantizers": 3},
}
LIBRARY = ("vq", "mhvq", "rvq", "grvq", "lfq", "rlfq", "fsq", "rfsq")

# (input shape, channel_first option) per layout; every one holds DIM-channel tokens
LAYOUTS = {
    "tokens_TD": ((12, DIM), None),
    "seq_BND": ((2, 6, DIM), None),
    "map_NCL": ((2, DIM, 5), True),
    "map_NCHW": ((2, DIM, 3, 2), None),
    "video_NCTHW": ((2, DIM, 2, 3, 2), None),
    "grid_BHWC": ((2, 3, 2, DIM), False),
}


def small(name: str, **extra) -> torch.nn.Module:
    return build_quantizer(name, DIM, **{**SMALL[name], **extra})


def test_registry_is_covered_and_every_constructor_has_channel_first():
    assert set(SMALL) == set(QUANTIZERS)
    for name in QUANTIZERS:
        params = inspect.signature(quantizer_class(name).__init__).parameters
        assert params["channel_first"].default is None, name


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", QUANTIZERS)
def test_shape_scalar_loss_and_gradient_in_every_layout(name, layout):
    shape, channel_first = LAYOUTS[layout]
    q = small(name, channel_first=channel_first).train()  # library STE needs training mode
    z = torch.randn(shape, requires_grad=True)
    out = q(z)
    assert out.quantized.shape == z.shape and out.quantized.dtype == z.dtype
    assert out.loss.shape == () and torch.isfinite(out.loss)
    (out.quantized * torch.randn_like(out.quantized)).sum().add(out.loss).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def _same_tokens(seed: int = 0) -> dict[str, torch.Tensor]:
    """One set of 2*2*3*2 tokens arranged as a video, a 4-D map, sequences and tokens."""
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(2, DIM, 2, 3, 2, generator=g, dtype=torch.float64)
    return {
        "video": video,
        "map": rearrange(video, "n c t h w -> (n t) c h w"),
        "seq": rearrange(video, "n c t h w -> n (t h w) c"),
        "tokens": rearrange(video, "n c t h w -> (n t h w) c"),
    }


def _as_video(name: str, out: torch.Tensor) -> torch.Tensor:
    """Any arrangement of :func:`_same_tokens`'s output back to (N, C, T, H, W)."""
    pattern = {
        "video": "n c t h w -> n c t h w",
        "map": "(n t) c h w -> n c t h w",
        "seq": "n (t h w) c -> n c t h w",
        "tokens": "(n t h w) c -> n c t h w",
    }[name]
    return rearrange(out, pattern, n=2, t=2, h=3, w=2)


@pytest.mark.parametrize("name", QUANTIZERS)
def test_same_tokens_give_the_same_result_in_every_layout(name):
    """Eval mode (library codebooks do not move; every quantizer is deterministic there,
    the stochastic residual sampling included), one module for all layouts."""
    q = small(name).eval()
    q.collect_stats = True
    as_float = name in LIBRARY  # the library modules stay in float32
    if not as_float:
        q = q.double()
    inputs = {k: (v.float() if as_float else v) for k, v in _same_tokens().items()}
    outs = {k: q(v) for k, v in inputs.items()}
    ref = outs["video"]
    for key, out in outs.items():
        assert out.quantized.shape == inputs[key].shape
        torch.testing.assert_close(_as_video(key, out.quantized), ref.quantized)
        torch.testing.assert_close(out.loss, ref.loss)
        assert out.stats.keys() == ref.stats.keys()
        for stat, value in out.stats.items():
            torch.testing.assert_close(value, ref.stats[stat], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", LIBRARY)
def test_training_step_is_the_same_in_every_layout(name):
    """Training mode: the library's batch statistics (EMA codebook updates, entropy and
    commitment losses) pool all tokens of the call, however they are arranged."""
    q = small(name).train()
    inputs = {k: v.float() for k, v in _same_tokens().items() if k != "tokens"}
    results = {}
    for key, z in inputs.items():
        twin = copy.deepcopy(q)
        out = twin(z)
        results[key] = (_as_video(key, out.quantized), out.loss, twin.state_dict())
    ref = results["video"]
    for quantized, loss, state in results.values():
        torch.testing.assert_close(quantized, ref[0])
        torch.testing.assert_close(loss, ref[1])
        for key, value in state.items():
            torch.testing.assert_close(value, ref[2][key])


def test_channel_first_override_on_1d_maps():
    q = small("svq", channel_first=True).double()
    z = torch.randn(3, DIM, 7, dtype=torch.float64)
    out = q(z).quantized
    assert out.shape == z.shape
    as_tokens = small("svq").double()
    as_tokens.load_state_dict(q.state_dict())
    ref = as_tokens(z.transpose(1, 2)).quantized.transpose(1, 2)  # (N, L, C) inferred
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ SVQ's fold in every layout
def _path_result(q: SVQ, z: torch.Tensor, path: str):
    z = z.detach().clone().requires_grad_(True)
    out = q.quantize(z, path)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    (out * g).sum().backward()
    grads = [z.grad] + [p.grad.clone() for p in q.parameters()]
    q.zero_grad(set_to_none=True)
    return out.detach(), grads


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


@pytest.mark.parametrize("shape", [(2, 5, DIM), (2, DIM, 2, 3, 2)])
@pytest.mark.parametrize("out_relu", [False, True])
def test_svq_fast_path_equals_direct_formula_in_float64(shape, out_relu):
    q = SVQ(DIM, codebook_size=200, middim=16, out_relu=out_relu, chunk_size=7).double()
    assert q.path == ("chunked" if out_relu else "folded")
    z = torch.randn(shape, dtype=torch.float64)
    fast, fast_grads = _path_result(q, z, q.path)
    ref, ref_grads = _path_result(q, z, "direct")
    assert fast.shape == z.shape and _rel(fast, ref) <= 1e-12
    assert len(fast_grads) == 1 + len(list(q.parameters()))
    for a, b in zip(fast_grads, ref_grads):
        assert _rel(a, b) <= 1e-10


@pytest.mark.parametrize("shape", [(2, 5, DIM), (2, DIM, 2, 3, 2), (7, DIM)])
def test_svq_fold_never_builds_token_by_code_weights(monkeypatch, shape):
    q = SVQ(DIM, codebook_size=64, middim=8)

    def forbidden(tokens):
        raise AssertionError("the folded path must not compute the (tokens, K) weights")

    monkeypatch.setattr(q, "_weights", forbidden)
    z = torch.randn(shape, requires_grad=True)
    q(z).quantized.sum().backward()
    assert z.grad.shape == z.shape


# ------------------------------------------------------------------ code weights, diagnostics
@pytest.mark.parametrize("name", ["svq", "svq_raw"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_code_weights_shape_and_reconstruction(name, layout):
    shape, channel_first = LAYOUTS[layout]
    q = small(name, channel_first=channel_first).double()
    z = torch.randn(shape, dtype=torch.float64)
    w = q.code_weights(z)
    first = len(shape) >= 4 if channel_first is None else channel_first
    positions = (shape[0], *shape[2:]) if first else shape[:-1]
    k = q.codebook_size
    assert w.shape == (*positions, k)
    recon = w @ q.codebook  # (..., K) @ (K, C): channels last
    out = q(z).quantized
    torch.testing.assert_close(recon, out.movedim(1, -1) if first else out, atol=1e-6, rtol=0)
    sample = q.weight_sample(z, max_tokens=4)
    assert sample.shape == (4 * k,)


@pytest.mark.parametrize("name", ["svq", "svq_raw"])
def test_code_weights_and_weight_sample_agree_across_layouts(name):
    q = small(name).double()
    same = _same_tokens()
    ref = q.code_weights(same["tokens"])  # (T, K)
    k = q.codebook_size
    torch.testing.assert_close(q.code_weights(same["seq"]).reshape(-1, k), ref)
    torch.testing.assert_close(q.code_weights(same["video"]).reshape(-1, k), ref)
    samples = [q.weight_sample(same[key], max_tokens=5) for key in ("tokens", "seq", "video")]
    for sample in samples[1:]:
        torch.testing.assert_close(sample, samples[0])


@pytest.mark.parametrize("out_relu", [False, True])
def test_svq_diagnostics_equal_across_layouts(out_relu):
    q = small("svq", out_relu=out_relu, chunk_size=5).double()
    same = _same_tokens()
    stats = {key: q.diagnostics(z) for key, z in same.items()}
    for value in stats.values():
        assert value.keys() == stats["video"].keys()
        for stat, x in value.items():
            torch.testing.assert_close(x, stats["video"][stat], rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------ memory format, views
@pytest.mark.parametrize("name", QUANTIZERS)
def test_channels_last_map_gives_channels_last_output(name):
    q = small(name).eval()
    z = torch.randn(2, DIM, 3, 4)
    out = q(z.contiguous(memory_format=torch.channels_last)).quantized
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, q(z).quantized, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["svq", "svq_raw", "mlp"])
def test_memory_format_follows_the_input(name):
    q = small(name)
    for z, fmt in [
        (torch.randn(2, DIM, 3, 4), torch.contiguous_format),
        (torch.randn(2, DIM, 2, 3, 4), torch.contiguous_format),
        (torch.randn(2, DIM, 2, 3, 4).contiguous(memory_format=torch.channels_last_3d), None),
    ]:
        out = q(z).quantized
        assert out.is_contiguous(memory_format=fmt or torch.channels_last_3d)


def test_layout_flattening_is_a_view_where_the_channels_are_innermost():
    seq = torch.randn(2, 5, DIM)
    layout = TokenLayout.of(seq, DIM)
    assert layout.tokens(seq).data_ptr() == seq.data_ptr()
    assert layout.sequences(seq).data_ptr() == seq.data_ptr()
    cl_map = torch.randn(2, DIM, 3, 4).contiguous(memory_format=torch.channels_last)
    layout = TokenLayout.of(cl_map, DIM)
    assert layout.tokens(cl_map)._base is not None  # a view, no copy
    assert layout.tokens(cl_map).data_ptr() == cl_map.data_ptr()
    plain = torch.randn(2, DIM, 3, 4)
    seq_view = TokenLayout.of(plain, DIM).sequences(plain)
    assert seq_view.data_ptr() == plain.data_ptr() and seq_view.shape == (2, 12, DIM)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("name", QUANTIZERS)
@pytest.mark.parametrize(
    ("shape", "channel_first"),
    [((2, 5, DIM + 1), None), ((2, DIM + 1, 2, 3, 2), None), ((2, DIM, 5), None), ((DIM,), True)],
)
def test_wrong_channel_size_names_the_layouts(name, shape, channel_first):
    q = small(name, channel_first=channel_first)
    match = rf"expects a latent map \(N, C={DIM}, \*spatial\).*tokens \(\.\.\., C={DIM}\)"
    with pytest.raises(ValueError, match=match):
        q(torch.randn(shape))


def test_error_says_how_the_layout_was_read():
    with pytest.raises(ValueError, match=r"read as channel-last \(inferred from ndim\)"):
        small("svq")(torch.randn(2, DIM, 5))
    with pytest.raises(ValueError, match=r"read as channel-first \(channel_first set\)"):
        small("svq", channel_first=True)(torch.randn(2, 5, DIM))


@pytest.mark.parametrize("name", ["none", "svq", "vq", "fsq"])
def test_bad_channel_first_option_is_a_config_error(name):
    with pytest.raises(ConfigError, match="channel_first must be True, False or None"):
        small(name, channel_first="yes")


# ------------------------------------------------------------------ package exports
def test_importing_the_package_imports_no_quantizer_module():
    code = (
        "import sys\n"
        "import svqcast.quantizers\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('svqcast.quantizers.'))\n"
        "assert loaded == ['svqcast.quantizers.base'], loaded\n"
        "assert 'vector_quantize_pytorch' not in sys.modules\n"
        "from svqcast.quantizers import SVQ, Identity\n"
        "assert 'vector_quantize_pytorch' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_class_is_exported_once_and_lazily_loaded():
    import svqcast.quantizers as package
    from svqcast.quantizers import (  # noqa: F401 - the documented import line works
        FSQ,
        LFQ,
        QUANTIZERS,
        SVQ,
        VQ,
        BottleneckMLP,
        GroupedResidualVQ,
        Identity,
        MultiHeadVQ,
        Quantizer,
        QuantizerOutput,
        ResidualFSQ,
        ResidualLFQ,
        ResidualVQ,
        SparseRegressionQuantizer,
        build_quantizer,
        library,
        quantizer_class,
    )

    names = package.__all__
    assert len(names) == len(set(names)) and set(names) <= set(dir(package))
    assert {quantizer_class(n).__name__ for n in QUANTIZERS} <= set(names)
    for name in QUANTIZERS:
        cls = quantizer_class(name)
        assert getattr(package, cls.__name__) is cls
    assert library.VQ is VQ and library.ResidualLFQ is ResidualLFQ and library.FSQ is FSQ
    with pytest.raises(AttributeError, match="NoSuchQuantizer"):
        package.NoSuchQuantizer  # noqa: B018


def test_no_quantizer_module_exceeds_600_lines():
    import svqcast.quantizers as package

    for path in Path(package.__file__).parent.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 600, path.name
