"""SVQ's parametrisations: the fold stays exact, each form is the function it claims to be,
the optimiser groups and the engine's per-group warm-up do what they say."""

from __future__ import annotations

import pytest
import torch
from test_module import TINY, TinyData, trainer
from test_svq import rel_err, run_path

from svqcast.errors import ConfigError
from svqcast.quantizers import (
    apply_group_warmup,
    build_quantizer,
    optimizer_param_groups,
)
from svqcast.quantizers.parametrisations import MLP_PARAMETRISATIONS, PARAMETRISATIONS, RMS_EPS
from svqcast.quantizers.svq import SVQ

K, C, MID = 300, 6, 16


def make(parametrisation: str, seed: int = 0, **options) -> SVQ:
    torch.manual_seed(seed)
    q = SVQ(C, codebook_size=K, middim=MID, parametrisation=parametrisation, **options).double()
    if q.residual_scale is not None:  # a = 0 at init would hide the SVQ branch from the test
        with torch.no_grad():
            q.residual_scale.fill_(0.7)
    if q.gain is not None:
        with torch.no_grad():
            q.gain.uniform_(0.5, 1.5)
    return q


@pytest.mark.parametrize("layout", ["map", "tokens", "video"])
@pytest.mark.parametrize("parametrisation", PARAMETRISATIONS)
def test_fold_equals_direct_formula_in_float64(parametrisation, layout):
    """Outputs to 1e-12 and gradients (input and every parameter) to 1e-10, relative."""
    q = make(parametrisation)
    shape = {"map": (3, C, 5, 4), "tokens": (2, 7, C), "video": (2, C, 3, 4, 2)}[layout]
    z = torch.randn(shape, dtype=torch.float64)
    assert q.path == "folded"
    fast_out, fast_grads = run_path(q, z, "folded")
    ref_out, ref_grads = run_path(q, z, "direct")
    assert rel_err(fast_out, ref_out) <= 1e-12
    for fast_g, ref_g in zip(fast_grads, ref_grads):
        assert fast_g is not None and rel_err(fast_g, ref_g) <= 1e-10


@pytest.mark.parametrize("parametrisation", ["lr_scaled", "warmup"])
def test_optimiser_only_forms_compute_the_papers_function(parametrisation):
    z = torch.randn(4, C, 3, 3, dtype=torch.float64)
    paper, other = make("paper"), make(parametrisation)
    assert torch.equal(paper(z).quantized, other(z).quantized)


@pytest.mark.parametrize("power", [0.5, 1.0, 2.0])
def test_readout_keeps_the_output_at_the_papers_over_sqrt_k(power):
    """alpha = K^-power with W2, b2 initialised K^(power - 1/2) larger: at init the output is
    the paper's divided by sqrt(K), for every power; the code weights too."""
    z = torch.randn(4, C, 3, 3, dtype=torch.float64)
    paper, readout = make("paper"), make("readout", readout_power=power)
    assert readout.readout == pytest.approx(K**-power)
    expected = paper(z).quantized / K**0.5
    # the init's rescaling happens in float32 (the module is cast to float64 afterwards)
    assert rel_err(readout(z).quantized, expected) <= 1e-6
    assert rel_err(readout.code_weights(z), paper.code_weights(z) / K**0.5) <= 1e-6
    # the z-scored diagnostics do not depend on a common scale of the weights
    d_paper, d_readout = paper.diagnostics(z), readout.diagnostics(z)
    for key in ("perplexity_z3", "perplexity_z2", "active_frac_z3", "usage_z3"):
        assert d_readout[key].item() == pytest.approx(d_paper[key].item(), rel=1e-6)
    assert d_readout["weight_std"].item() == pytest.approx(
        d_paper["weight_std"].item() / K**0.5, rel=1e-6
    )


@pytest.mark.parametrize("parametrisation", [p for p in PARAMETRISATIONS if p != "readout"])
def test_diagnostics_of_forms_that_keep_the_weights_equal_the_papers(parametrisation):
    """Every form but readout leaves the code weights as the paper's (same init): the
    weight diagnostics are the paper's exactly; the output ones follow the form's output."""
    z = torch.randn(4, C, 3, 3, dtype=torch.float64)
    paper, form = make("paper"), make(parametrisation)
    d_paper, d_form = paper.diagnostics(z), form.diagnostics(z)
    assert set(d_form) == set(d_paper)
    for key in ("perplexity_z3", "perplexity_z2", "active_frac_z3", "usage_z3",
                "near_zero_frac", "weight_mean", "weight_std"):  # fmt: skip
        assert d_form[key].item() == pytest.approx(d_paper[key].item(), rel=1e-12), key
    q = form(z).quantized
    assert d_form["out_std"].item() == pytest.approx(q.std().item(), rel=1e-5)
    assert d_form["out_in_std_ratio"].item() == pytest.approx(
        q.std().item() / z.std().item(), rel=1e-5
    )


def test_rmsnorm_output_has_the_gain_as_its_rms_and_the_papers_direction():
    z = torch.randn(4, C, 3, 3, dtype=torch.float64)
    paper, normed = make("paper"), make("rmsnorm")
    y = paper.quantize_tokens(paper.token_layout(z).tokens(z))
    q = normed.quantize_tokens(normed.token_layout(z).tokens(z))
    unit = q / normed.gain
    assert torch.allclose(unit.square().mean(-1), torch.ones(len(q), dtype=q.dtype), atol=1e-9)
    cos = torch.nn.functional.cosine_similarity(unit, y, dim=-1)
    assert torch.allclose(cos, torch.ones_like(cos), atol=1e-12)


@pytest.mark.parametrize("name", ["svq", "mlp"])
def test_residual_starts_as_the_identity_and_then_adds_the_branch(name):
    torch.manual_seed(0)
    q = build_quantizer(name, C, parametrisation="residual").double()
    z = torch.randn(4, C, 3, 3, dtype=torch.float64, requires_grad=True)
    out = q(z).quantized
    assert torch.equal(out, z)
    out.square().sum().backward()
    assert q.residual_scale.grad is not None and q.residual_scale.grad.abs() > 0
    with torch.no_grad():
        q.residual_scale.fill_(0.5)
    plain = build_quantizer(name, C).double()
    plain.load_state_dict(q.state_dict(), strict=False)
    expected = z + 0.5 * plain(z).quantized
    assert rel_err(q(z).quantized, expected) <= 1e-12


def test_optimizer_groups_claim_each_parameter_once_with_their_lr():
    model = torch.nn.Sequential(torch.nn.Linear(C, C), make("lr_scaled"))
    groups = optimizer_param_groups(model, 1e-2)
    assert [g["name"] for g in groups] == ["model", "svq.codes"]
    assert groups[1]["lr"] == pytest.approx(1e-2 / K)
    codes = {id(p) for p in groups[1]["params"]}
    svq = model[1]
    assert codes == {id(svq.to_weights.weight), id(svq.to_weights.bias), id(svq.codebook)}
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # all, once each
    # the paper's SVQ and the other forms: one group, as Adam(model.parameters()) builds it
    for name in ("paper", "readout", "rmsnorm", "residual"):
        assert len(optimizer_param_groups(make(name), 1e-2)) == 1
    frozen = make("lr_scaled", freeze_codebook=True)
    assert id(frozen.codebook) not in {
        id(p) for g in optimizer_param_groups(frozen, 1.0) for p in g["params"]
    }
    assert make("lr_scaled", lr_scale=0.25).optimizer_groups()[0].lr_scale == 0.25


def test_apply_group_warmup_scales_for_one_step_and_restores():
    q = make("warmup", warmup_steps=4)
    opt = torch.optim.SGD(optimizer_param_groups(torch.nn.ModuleList([q]), 0.1), lr=0.1)
    assert [g["warmup_steps"] for g in opt.param_groups] == [0, 4]
    seen = []
    for step in range(6):
        with apply_group_warmup(opt, step):
            seen.append(opt.param_groups[1]["lr"])
    assert seen == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])
    assert opt.param_groups[1]["lr"] == 0.1


@pytest.mark.parametrize(
    "options,match",
    [
        ({"parametrisation": "muP"}, "parametrisation"),
        ({"parametrisation": "paper", "lr_scale": 0.1}, "lr_scaled"),
        ({"parametrisation": "readout", "warmup_steps": 10}, "warmup"),
        ({"parametrisation": "lr_scaled", "lr_scale": -1.0}, "positive"),
        ({"parametrisation": "readout", "readout_power": float("nan")}, "positive"),
        ({"parametrisation": "warmup", "warmup_steps": 2.5}, "integer"),
    ],
)
def test_bad_parametrisation_options_raise_config_error(options, match):
    with pytest.raises(ConfigError, match=match):
        build_quantizer("svq", C, codebook_size=K, **options)


def test_mlp_takes_the_forms_that_apply_without_codes():
    assert set(MLP_PARAMETRISATIONS) < set(PARAMETRISATIONS)
    with pytest.raises(ConfigError, match="parametrisation"):
        build_quantizer("mlp", C, parametrisation="readout")
    torch.manual_seed(0)
    mlp = build_quantizer("mlp", C, parametrisation="rmsnorm").double()
    plain = build_quantizer("mlp", C).double()
    plain.load_state_dict(mlp.state_dict(), strict=False)
    x = torch.randn(5, C, dtype=torch.float64)
    y = plain(x).quantized
    expected = y / torch.sqrt(y.square().mean(-1, keepdim=True) + RMS_EPS)
    assert rel_err(mlp(x).quantized, expected) <= 1e-12
    assert mlp.optimizer_groups() == []
    assert build_quantizer("mlp", C, parametrisation="warmup").optimizer_groups()[0].warmup_steps


@pytest.mark.slow
def test_engine_trains_svq_groups_at_their_own_learning_rates(tmp_path):
    """In a fit, SVQ's code group steps at lr / K (lr_scaled) and its warm-up ramps the SVQ
    group alone (warmup) on top of the schedule, step by step; the rest of the model at lr."""
    seen: dict[str, list[list[float]]] = {}

    import lightning as L

    from svqcast.training.module import ForecastModule

    class Record(L.Callback):
        def __init__(self, key):
            self.key = key

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            seen.setdefault(self.key, []).append([g["lr"] for g in optimizer.param_groups])

    for name, extra in (("lr_scaled", {}), ("warmup", {"warmup_steps": 3})):
        module = ForecastModule(
            **TINY,
            lr=1e-2,
            scheduler="none",
            quantizer="svq",
            quantizer_options={"codebook_size": 64, "parametrisation": name, **extra},
        )
        data = TinyData(n_train=8, batch_size=4)  # 2 steps an epoch
        trainer(tmp_path / name, callbacks=[Record(name)], max_epochs=2, limit_val_batches=0).fit(
            module, data
        )
    assert seen["lr_scaled"] == [pytest.approx([1e-2, 1e-2 / 64])] * 4
    assert seen["warmup"] == [pytest.approx([1e-2, 1e-2 * f]) for f in (1 / 3, 2 / 3, 1.0, 1.0)]
