import numpy as np
import pytest
import torch

from svqcast.errors import ConfigError
from svqcast.quantizers import build_quantizer
from svqcast.quantizers.sparse_regression import SparseRegressionQuantizer


@pytest.mark.parametrize("lam", [0.05, 0.3])
@pytest.mark.parametrize("init", ["normal", "kaiming"])
def test_fista_matches_sklearn_lasso(lam, init):
    from sklearn.linear_model import Lasso

    c, k = 8, 32
    q = SparseRegressionQuantizer(c, codebook_size=k, lam=lam, iterations=3000, init=init)
    q = q.double()
    x = torch.randn(4, c, dtype=torch.float64)
    with torch.no_grad():
        w = q.solve(x).numpy()
    m = q.codebook.detach().numpy()  # (K, C): the design matrix is M^T (C samples, K features)
    for i in range(len(x)):
        # sklearn minimises 1/(2 n_samples) ||y - X w||^2 + alpha ||w||_1, n_samples = C
        ref = Lasso(alpha=lam / c, fit_intercept=False, tol=1e-14, max_iter=1_000_000)
        ref.fit(m.T, x[i].numpy())
        np.testing.assert_allclose(w[i], ref.coef_, atol=1e-4)
        assert ((w[i] == 0) == (np.abs(ref.coef_) < 1e-8)).mean() > 0.9  # same support


def test_objective_decreases_from_zero_and_is_sparse():
    q = SparseRegressionQuantizer(6, codebook_size=64, lam=0.5, iterations=50).double()
    x = torch.randn(20, 6, dtype=torch.float64)
    w = q.solve(x)
    zero = q.objective(x, torch.zeros_like(w))
    assert (q.objective(x, w) < zero).all()
    assert (w == 0).double().mean() > 0.5


def test_lipschitz_is_largest_eigenvalue_of_m_mt():
    q = SparseRegressionQuantizer(5, codebook_size=40)
    m = q.codebook.detach().double()
    assert q.lipschitz() == pytest.approx(torch.linalg.eigvalsh(m @ m.t())[-1].item(), rel=1e-9)


def test_tol_stops_early_near_the_solution():
    x = torch.randn(6, 8, dtype=torch.float64)
    full = SparseRegressionQuantizer(8, codebook_size=32, lam=0.1, iterations=3000).double()
    early = SparseRegressionQuantizer(8, codebook_size=32, lam=0.1, iterations=3000, tol=1e-9)
    early = early.double()
    early.load_state_dict(full.state_dict())
    with torch.no_grad():
        np.testing.assert_allclose(early.solve(x).numpy(), full.solve(x).numpy(), atol=1e-5)


def test_chunking_does_not_change_the_result():
    q = SparseRegressionQuantizer(4, codebook_size=32, iterations=15).double()
    z = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    whole = q(z).quantized
    q.chunk_size = 4
    assert (q(z).quantized - whole).abs().max() <= 1e-12


@pytest.mark.parametrize("learn_codebook", [False, True])
def test_gradients_flow_through_the_unrolled_iterations(learn_codebook):
    q = SparseRegressionQuantizer(4, codebook_size=32, iterations=10, learn_codebook=learn_codebook)
    q.chunk_size = 5  # exercise the checkpointed chunks
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    q(z).quantized.square().sum().backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    assert (q.codebook.grad is not None) == learn_codebook


def test_gradient_matches_finite_differences():
    q = SparseRegressionQuantizer(3, codebook_size=8, lam=0.05, iterations=8).double()
    z = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: q(t).quantized, (z,), eps=1e-7, atol=1e-5)


def test_stats_autocast_and_layout():
    q = SparseRegressionQuantizer(4, codebook_size=32, iterations=10, collect_stats=True)
    z = torch.randn(2, 4, 3, 3).contiguous(memory_format=torch.channels_last)
    out = q(z)
    assert out.quantized.is_contiguous(memory_format=torch.channels_last)
    assert 0 <= out.stats["zero_frac"].item() <= 1
    assert out.stats["objective"].item() <= 0.5 * z.square().sum(1).mean().item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = q(z).quantized
    assert auto.dtype == torch.float32 and (auto - out.quantized).abs().max() <= 1e-5


@pytest.mark.parametrize(
    "options",
    [{"lam": -1.0}, {"iterations": 0}, {"tol": 0.0}, {"init": "bogus"}, {"codebook_size": 0}],
)
def test_bad_options_raise_config_error(options):
    with pytest.raises(ConfigError):
        build_quantizer("svq_raw", 4, **options)


def test_weight_sample_and_code_weights():
    q = SparseRegressionQuantizer(4, codebook_size=16, lam=0.5, iterations=30)
    z = torch.randn(2, 4, 5, 5)
    w = q.code_weights(z)
    assert w.shape == (2, 5, 5, 16)
    recon = torch.einsum("nhwk,kc->nchw", w, q.codebook)
    assert (recon - q(z).quantized).abs().max() <= 1e-5
    sample = q.weight_sample(z, max_tokens=10)
    assert sample.shape == (10 * 16,) and (sample == 0).any()
