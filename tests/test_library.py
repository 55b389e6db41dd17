"""The vector-quantize-pytorch adapters: contract, gradients, modes, presets and errors."""

import inspect
import math

import numpy as np
import pytest
import torch

from svqcast.errors import ConfigError
from svqcast.quantizers import build_quantizer, quantizer_class
from svqcast.quantizers.library import PRESETS, code_usage

# Small configurations that keep every test fast; one per registry name.
SMALL: dict[str, dict] = {
    "vq": {"codebook_size": 16},
    "mhvq": {"codebook_size": 16, "heads": 2},
    "rvq": {"codebook_size": 16, "num_quantizers": 3},
    "grvq": {"codebook_size": 16, "num_quantizers": 2, "groups": 2},
    "lfq": {"codebook_size": 16},
    "rlfq": {"codebook_size": 16, "num_quantizers": 3},
    "fsq": {"levels": (5, 3)},
    "rfsq": {"levels": (5, 3), "num_quantizers": 3},
}
NAMES = list(SMALL)
DIM = 8


def small(name: str, dim: int = DIM, **extra) -> torch.nn.Module:
    q = build_quantizer(name, dim, **{**SMALL[name], **extra})
    q.collect_stats = True
    return q


def latent(n: int = 2, dim: int = DIM, h: int = 3, w: int = 5, requires_grad: bool = False):
    return torch.randn(n, dim, h, w, requires_grad=requires_grad)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("training", [True, False])
def test_shape_dtype_loss_and_stats(name, training):
    q = small(name).train(training)
    z = latent()
    out = q(z)
    assert out.quantized.shape == z.shape and out.quantized.dtype == z.dtype
    assert torch.isfinite(out.quantized).all()
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    k = q.codebook_size
    assert set(out.stats) == {"code_usage", "perplexity"}
    assert 0.0 < out.stats["code_usage"].item() <= 1.0
    tokens = z.shape[0] * z.shape[2] * z.shape[3]
    assert 1.0 - 1e-5 <= out.stats["perplexity"].item() <= min(k, tokens) + 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_stats_off_by_default(name):
    q = build_quantizer(name, DIM, **SMALL[name])
    assert q(latent()).stats == {}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 1, 1)])
def test_gradients_reach_the_input(name, shape):
    n, h, w = shape
    q = small(name).train()
    z = latent(n, DIM, h, w, requires_grad=True)
    out = q(z)
    (out.quantized * torch.randn_like(out.quantized)).sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


@pytest.mark.parametrize(("name", "factor"), [("vq", 1), ("rvq", 3)])
def test_straight_through_is_identity_per_stage(name, factor):
    """Without projections the library's STE passes the upstream gradient unchanged (once
    per residual stage, since every stage's output is a straight-through copy of its input)."""
    q = small(name, commitment_weight=0.0).train()
    z = latent(requires_grad=True)
    g = torch.randn_like(z)
    (q(z).quantized * g).sum().backward()
    torch.testing.assert_close(z.grad, factor * g)


@pytest.mark.parametrize("name", NAMES)
def test_eval_is_deterministic_and_leaves_state_unchanged(name):
    q = small(name).eval()
    before = {k: v.clone() for k, v in q.state_dict().items()}
    z = latent()
    a, b = q(z), q(z)
    torch.testing.assert_close(a.quantized, b.quantized, rtol=0, atol=0)
    for key, value in q.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["vq", "mhvq", "rvq", "grvq"])
def test_ema_codebook_updates_only_in_training(name):
    q = small(name).train()
    codebooks = {k: v.clone() for k, v in q.state_dict().items() if k.endswith("_codebook.embed")}
    assert codebooks
    q(latent())
    changed = [
        not torch.equal(q.state_dict()[k], v)
        for k, v in codebooks.items()  # EMA moved every codebook
    ]
    assert all(changed)


@pytest.mark.parametrize("name", ["vq", "rvq"])
def test_ema_training_reduces_commitment_loss(name):
    """Repeated training steps on one batch pull the EMA codebook onto the data."""
    q = small(name).train()
    z = latent(4, DIM, 4, 4)
    losses = [q(z).loss.item() for _ in range(15)]
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip(name):
    q = small(name).train()
    q(latent())  # move the EMA state away from its initial value
    q.eval()
    torch.manual_seed(123)
    fresh = small(name).eval()
    fresh.load_state_dict(q.state_dict())
    z = latent()
    torch.testing.assert_close(fresh(z).quantized, q(z).quantized, rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16])
def test_bf16_autocast_on_cpu(name, training, input_dtype):
    q = small(name).train(training)
    z = latent().to(input_dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = q(z)
    assert out.quantized.dtype == input_dtype and out.quantized.shape == z.shape
    assert torch.isfinite(out.quantized.float()).all() and torch.isfinite(out.loss)


def test_stochastic_sampling_is_random_in_training_only():
    def run(stochastic: bool, seed: int, training: bool) -> torch.Tensor:
        torch.manual_seed(0)
        q = small("rvq", stochastic_sample_codes=stochastic, sample_codebook_temp=0.1)
        q.train(training)
        torch.manual_seed(seed)
        return q(z).quantized

    z = latent(2, DIM, 4, 4)
    assert not torch.equal(run(True, 1, True), run(True, 2, True))
    assert torch.equal(run(False, 1, True), run(False, 2, True))
    assert torch.equal(run(True, 1, False), run(True, 2, False))


@pytest.mark.parametrize("name", ["rvq", "grvq", "rlfq"])
def test_loss_reduction_sum_is_mean_times_number_of_losses(name):
    def loss(reduction: str) -> torch.Tensor:
        torch.manual_seed(0)
        q = small(name, loss_reduction=reduction).train()
        torch.manual_seed(1)
        return q(z).loss

    z = latent()
    streams = SMALL[name]["num_quantizers"] * SMALL[name].get("groups", 1)
    torch.testing.assert_close(loss("sum"), streams * loss("mean"))


def test_code_usage_matches_numpy():
    rng = np.random.default_rng(0)
    k = 7
    idx = rng.integers(0, k, size=(50, 3))
    idx[:, 2] = 4  # a stream that uses one code: perplexity 1, usage 1/k
    stats = code_usage(torch.as_tensor(idx), k)
    usages, perps = [], []
    for s in range(3):
        counts = np.bincount(idx[:, s], minlength=k)
        p = counts[counts > 0] / counts.sum()
        usages.append((counts > 0).mean())
        perps.append(math.exp(-(p * np.log(p)).sum()))
    assert stats["code_usage"].item() == pytest.approx(np.mean(usages), rel=1e-6)
    assert stats["perplexity"].item() == pytest.approx(np.mean(perps), rel=1e-5)


def test_code_usage_uniform_codes_reach_the_bounds():
    k = 8
    stats = code_usage(torch.arange(k).repeat(3).unsqueeze(1), k)
    assert stats["code_usage"].item() == pytest.approx(1.0)
    assert stats["perplexity"].item() == pytest.approx(k, rel=1e-5)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_build_and_run(preset):
    """Every paper preset builds at hid_S = 32 and quantizes a tiny map."""
    spec = PRESETS[preset]
    assert spec["paper_row"]
    q = build_quantizer(spec["quantizer"], 32, **spec["options"])
    q.collect_stats = True
    z = torch.randn(1, 32, 2, 3, requires_grad=True)
    out = q.train()(z)
    (out.quantized.sum() + out.loss).backward()
    assert out.quantized.shape == z.shape and torch.isfinite(out.loss)
    assert z.grad.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_constructor_defaults_equal_the_preset(name):
    params = inspect.signature(quantizer_class(name).__init__).parameters
    for option, value in PRESETS[name]["options"].items():
        assert params[option].default == value, (name, option)
    assert PRESETS[name]["quantizer"] == name


def test_paper_preset_values():
    """The numbers of the paper's VQ baselines (section "VQ baselines compared on t2m")."""
    assert PRESETS["vq"]["options"] == {"codebook_size": 1024, "decay": 0.8, "commitment_weight": 1}
    assert PRESETS["mhvq"]["options"]["heads"] == 8
    assert PRESETS["rvq"]["options"]["num_quantizers"] == 8
    stochastic = PRESETS["rvq_stochastic"]["options"]
    assert stochastic["stochastic_sample_codes"] and stochastic["sample_codebook_temp"] == 0.1
    assert PRESETS["grvq"]["options"]["groups"] == 2
    assert PRESETS["lfq"]["options"]["codebook_size"] == 8192
    assert PRESETS["rlfq"]["options"] == {"codebook_size": 256, "num_quantizers": 8}
    assert tuple(PRESETS["rfsq"]["options"]["levels"]) == (8, 5, 5, 3)
    assert build_quantizer("fsq", 32).codebook_size == 8 * 5 * 5 * 3


@pytest.mark.parametrize(
    ("name", "dim", "options", "match"),
    [
        ("vq", DIM, {"bogus": 1}, "bad option"),
        ("rvq", DIM, {"num_quantizer": 8}, "bad option"),
        ("grvq", 9, {"groups": 2}, "not divisible by groups"),
        ("lfq", DIM, {"codebook_size": 1000}, "power of 2"),
        ("rlfq", DIM, {"codebook_size": 3}, "power of 2"),
        ("fsq", DIM, {"levels": (8, 2)}, "levels"),
        ("fsq", DIM, {"levels": ()}, "levels"),
        ("rfsq", DIM, {"levels": "853"}, "levels"),
        ("vq", DIM, {"decay": 1.5}, "decay"),
        ("vq", DIM, {"codebook_size": 0}, "codebook_size"),
        ("mhvq", DIM, {"heads": 0}, "heads"),
        ("rvq", DIM, {"num_quantizers": 0}, "num_quantizers"),
        ("rvq", DIM, {"sample_codebook_temp": 0.0}, "sample_codebook_temp"),
        ("rvq", DIM, {"loss_reduction": "max"}, "loss_reduction"),
        ("lfq", DIM, {"entropy_loss_weight": -1.0}, "entropy_loss_weight"),
        ("vq", 0, {}, "dim"),
    ],
)
def test_bad_options_raise_config_error(name, dim, options, match):
    with pytest.raises(ConfigError, match=match):
        build_quantizer(name, dim, **{**SMALL[name], **options})


@pytest.mark.parametrize("name", NAMES)
def test_wrong_input_shape_is_rejected(name):
    q = small(name)
    with pytest.raises(ValueError, match="expects a latent map"):
        q(torch.randn(2, DIM + 1, 3, 3))


@pytest.mark.parametrize(("heads", "separate"), [(1, False), (2, True), (3, False)])
def test_multi_head_variants(heads, separate):
    q = small("mhvq", heads=heads, separate_codebook_per_head=separate).train()
    z = latent(requires_grad=True)
    out = q(z)
    out.quantized.sum().backward()
    assert out.quantized.shape == z.shape and z.grad.abs().sum() > 0
    assert 0.0 < out.stats["code_usage"].item() <= 1.0
