"""SimVP: encoder/decoder geometry, every translator x quantizer placement, rollout and crop,
the noise ablation, determinism, argument errors, CPU speed paths and complexity helpers."""

import math

import pytest
import torch
from torch import nn

from svqcast.errors import ConfigError, DataError
from svqcast.models import (
    Decoder,
    Encoder,
    ForecastOutput,
    SimVP,
    build_translator,
    count_parameters,
    forward_macs,
    summary,
)
from svqcast.models.layers import ConvSC
from svqcast.models.translators import TRANSLATORS
from svqcast.quantizers import Quantizer, QuantizerOutput

MINE = ("gsta", "incepu", "tau", "moganet", "convmixer", "convnext")
TINY = dict(hid_S=8, hid_T=16, N_S=2, N_T=2)
SHAPE = (4, 1, 8, 16)  # (T, C, H, W)
SVQ = dict(codebook_size=64, middim=16)


def tiny(**kw) -> SimVP:
    args = {"in_shape": SHAPE, **TINY, **kw}
    return SimVP(**args)


def batch(b: int = 2, shape=SHAPE) -> torch.Tensor:
    return torch.randn(b, *shape)


# ---------------------------------------------------------------- encoder / decoder


@pytest.mark.parametrize("n_s", [2, 4, 6])
def test_encoder_strides_alternate_and_decoder_mirrors(n_s):
    enc, dec = Encoder(3, 8, n_s), Decoder(8, 3, n_s)
    strides = [layer.conv.stride[0] for layer in enc.layers]
    assert strides == [1, 2] * (n_s // 2)
    ups = [layer.sampling == "up" for layer in dec.layers]
    assert ups == [True, False] * (n_s // 2)
    x = torch.randn(5, 3, 32, 48)
    latent, skip = enc(x)
    f = 2 ** (n_s // 2)
    assert latent.shape == (5, 8, 32 // f, 48 // f)
    assert skip.shape == (5, 8, 32, 48)
    assert dec(latent, skip).shape == (5, 3, 32, 48)


def test_skip_is_first_encoder_layer_and_enters_last_decoder_layer():
    enc, dec = Encoder(1, 4, 2), Decoder(4, 1, 2)
    x = torch.randn(3, 1, 8, 8)
    latent, skip = enc(x)
    torch.testing.assert_close(skip, enc.layers[0](x))
    manual = dec.readout(dec.layers[1](dec.layers[0](latent) + skip))
    torch.testing.assert_close(dec(latent, skip), manual)


@pytest.mark.parametrize("sampling,factor", [("same", 1), ("down", 0.5), ("up", 2)])
def test_convsc_sampling_sizes(sampling, factor):
    layer = ConvSC(4, 6, 3, sampling)
    y = layer(torch.randn(2, 4, 8, 12))
    assert y.shape == (2, 6, int(8 * factor), int(12 * factor))


# ---------------------------------------------------------------- translators


@pytest.mark.parametrize("name", MINE)
@pytest.mark.parametrize("resolution", [(4, 8), (5, 7)])
def test_translator_keeps_shape(name, resolution):
    net = build_translator(name, 32, 16, 3, input_resolution=resolution, mlp_ratio=2.0)
    x = torch.randn(2, 32, *resolution)
    assert net(x).shape == x.shape


def test_gsta_decomposes_kernel_21_into_5_and_7_dilated_3():
    net = build_translator("gsta", 16, 16, 2, input_resolution=(8, 8))
    unit = net.blocks[0].block.attn.spatial_gating_unit
    assert unit.conv0.kernel_size == (5, 5)
    assert unit.conv_spatial.kernel_size == (7, 7) and unit.conv_spatial.dilation == (3, 3)


def test_drop_path_rises_linearly_over_blocks():
    net = build_translator("gsta", 16, 16, 5, input_resolution=(4, 4), drop_path=0.2)
    rates = [b.block.drop_path.p for b in net.blocks]
    assert rates == pytest.approx(torch.linspace(0.01, 0.2, 5).tolist())


# ---------------------------------------------------------------- forward / backward


@pytest.mark.parametrize("translator", TRANSLATORS)
@pytest.mark.parametrize("quantizer,position", [(None, "pre"), ("svq", "pre"), ("svq", "post")])
def test_forward_backward_every_translator_and_placement(translator, quantizer, position):
    model = tiny(
        translator=translator,
        quantizer=quantizer,
        quantizer_options=SVQ if quantizer else None,
        quantizer_position=position,
    )
    x = batch()
    out = model(x)
    assert isinstance(out, ForecastOutput)
    assert out.prediction.shape == x.shape
    assert out.aux_loss.shape == ()
    loss = out.prediction.abs().mean() + out.aux_loss
    loss.backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"no gradient reached {name}"
            assert torch.isfinite(p.grad).all(), name
    # the encoder learns through the quantizer in both placements
    assert model.encoder.layers[-1].conv.weight.grad.abs().sum() > 0


def test_identity_quantizer_matches_plain_model_in_both_positions():
    plain = tiny().eval()
    x = batch()
    for position in ("pre", "post"):
        torch.manual_seed(0)
        model = tiny(quantizer="none", quantizer_position=position).eval()
        model.load_state_dict(plain.state_dict())
        torch.testing.assert_close(model(x).prediction, plain(x).prediction)


class _Recorder(Quantizer):
    """Doubles the latent, records input shapes, returns a fixed loss and a stat."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, z):
        self.shapes.append(tuple(z.shape))
        return QuantizerOutput(2 * z, z.new_tensor(1.5), {"calls": z.new_tensor(len(self.shapes))})


@pytest.mark.parametrize("position", ["pre", "post"])
def test_quantizer_sees_per_frame_latent_and_changes_output(position):
    q = _Recorder(8)
    model = tiny(quantizer=q, quantizer_position=position).eval()
    out = model(batch())
    assert q.shapes == [(2 * 4, 8, 4, 8)]  # (B*T, hid_S, H', W')
    model.quantizer = None
    assert not torch.allclose(out.prediction, model(batch()).prediction)


def test_aux_loss_sums_over_rollout_and_stats_come_from_first_step():
    q = _Recorder(8)
    model = tiny(quantizer=q, out_len=10)  # 3 steps of 4 frames
    out = model(batch())
    assert len(q.shapes) == 3
    assert out.aux_loss.item() == pytest.approx(4.5)
    assert out.stats["calls"].item() == 1


def test_quantizer_instance_with_wrong_dim_and_options_rejected():
    with pytest.raises(ConfigError, match="hid_S"):
        tiny(quantizer=_Recorder(6))
    with pytest.raises(ConfigError, match="quantizer_options"):
        tiny(quantizer=_Recorder(8), quantizer_options={"a": 1})
    with pytest.raises(ConfigError, match="quantizer_options"):
        tiny(quantizer=None, quantizer_options={"a": 1})
    with pytest.raises(ConfigError, match="bad option"):
        tiny(quantizer="svq", quantizer_options={"bogus": 1})


# ---------------------------------------------------------------- rollout and crop


@pytest.mark.parametrize("out_len", [1, 3, 4, 6, 8, 9])
def test_output_length(out_len):
    model = tiny(out_len=out_len)
    assert model(batch()).prediction.shape == (2, out_len, 1, 8, 16)
    assert model.rollout_steps == math.ceil(out_len / 4)


def test_rollout_feeds_predictions_back_and_crop_keeps_first_frames():
    base = tiny().eval()
    x = batch()
    one = base(x).prediction
    two = base(one).prediction
    three = base(two).prediction
    for out_len, expected in [(2, one[:, :2]), (8, torch.cat([one, two], 1))]:
        model = tiny(out_len=out_len).eval()
        model.load_state_dict(base.state_dict())
        torch.testing.assert_close(model(x).prediction, expected)
    model = tiny(out_len=10).eval()
    model.load_state_dict(base.state_dict())
    torch.testing.assert_close(model(x).prediction, torch.cat([one, two, three[:, :2]], 1))


def test_gradients_flow_through_rollout():
    model = tiny(out_len=8)
    x = batch().requires_grad_(True)
    model(x).prediction[:, 4:].sum().backward()  # only the second step's frames
    assert x.grad.abs().sum() > 0
    assert model.encoder.layers[0].conv.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------- noise, determinism


def test_noise_only_in_training_mode():
    clean, noisy = tiny(), tiny(noise=0.5)
    noisy.load_state_dict(clean.state_dict())
    x = torch.rand(2, *SHAPE) + 1.0  # never zero, so every hit element changes
    clean.eval(), noisy.eval()
    torch.testing.assert_close(noisy(x).prediction, clean(x).prediction, rtol=0, atol=0)
    seen = []
    noisy.encoder.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    noisy.train()
    noisy(x)
    frames = seen[-1].reshape(x.shape)  # what the encoder saw: (B*T, C, H, W) -> (B, T, ...)
    assert (frames != x).sum().item() == x.numel() // 2


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_noise_hits_a_fraction_p_with_factors_in_range(p):
    model = tiny(noise=p).train()
    x = torch.rand(16, *SHAPE) + 1.0  # in [1, 2): never zero
    y = model.corrupt(x)
    hit = y != x
    assert hit.sum().item() == int(p * x.numel())  # an exact count, as in the paper
    factor = y[hit] / x[hit]
    assert factor.min() >= -2 and factor.max() <= 2
    assert factor.mean().abs() < 0.1  # U(-2, 2) has mean 0


def test_same_seed_same_model_and_output():
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        model = tiny(quantizer="svq", quantizer_options=SVQ, noise=0.2)
        outs.append(model(batch()).prediction)
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


# ---------------------------------------------------------------- argument errors


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(in_shape=(4, 1, 9, 16)), r"H divisible by 2\^\(N_S/2\) = 2.*8 or 10"),
        (dict(in_shape=(4, 1, 8, 14), N_S=4), r"W divisible by .* = 4.*12 or 16"),
        (dict(in_shape=(4, 1, 8, 18), N_S=4), r"nearest valid sizes: 16 or 20"),
        (dict(N_S=3), "N_S must be an even"),
        (dict(N_S=0), "N_S must be an even"),
        (dict(hid_S=7), "hid_S must be an even"),
        (dict(N_T=1), "N_T"),
        (dict(noise=1.0), "noise"),
        (dict(noise=-0.1), "noise"),
        (dict(quantizer_position="middle"), "quantizer_position"),
        (dict(translator="nope"), "valid choices"),
        (dict(quantizer="nope"), "valid choices"),
        (dict(out_len=0), "out_len"),
        (dict(in_shape=(4, 1, 8)), "in_shape"),
        (dict(spatio_kernel_enc=4), "spatio_kernel_enc"),
    ],
)
def test_bad_arguments_raise_config_error(kw, match):
    with pytest.raises(ConfigError, match=match):
        tiny(**kw)


def test_wrong_input_shape_raises_data_error():
    with pytest.raises(DataError, match="expects input"):
        tiny()(torch.randn(2, 5, 1, 8, 16))


def test_translator_constraint_errors_surface_unchanged():
    with pytest.raises(ConfigError, match="MogaNet"):
        tiny(translator="moganet", hid_T=12)


# ---------------------------------------------------------------- CPU speed paths


@pytest.mark.parametrize("translator", TRANSLATORS)
@pytest.mark.parametrize("quantizer", [None, "svq"])
def test_channels_last_matches_and_bf16_autocast_trains(translator, quantizer):
    opts = SVQ if quantizer else None
    model = tiny(translator=translator, quantizer=quantizer, quantizer_options=opts).eval()
    x = batch()
    reference = model(x).prediction
    fast = model.to(memory_format=torch.channels_last)
    torch.testing.assert_close(fast(x).prediction, reference, rtol=1e-4, atol=1e-4)
    fast.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fast(x)
        loss = out.prediction.float().abs().mean() + out.aux_loss
    loss.backward()
    assert out.prediction.shape == x.shape
    grads = [p.grad for p in fast.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


# ---------------------------------------------------------------- complexity


def test_count_parameters_and_trainable_only():
    model = tiny()
    total = sum(p.numel() for p in model.parameters())
    assert count_parameters(model) == total
    model.encoder.requires_grad_(False)
    frozen = sum(p.numel() for p in model.encoder.parameters())
    assert count_parameters(model, trainable_only=True) == total - frozen


def test_forward_macs_of_a_conv_is_analytic_and_per_sample():
    conv = nn.Conv2d(3, 5, 3, padding=1)
    expected = 5 * 3 * 9 * 8 * 10  # out * in * k*k * H * W
    assert forward_macs(conv, (3, 8, 10)) == expected
    assert forward_macs(conv, (3, 8, 10), batch=4) == expected


def test_forward_macs_counts_every_rollout_step_and_restores_mode():
    model = tiny().train()
    one = forward_macs(model, SHAPE)
    assert model.training
    rolled = tiny(out_len=12)
    assert forward_macs(rolled, SHAPE) == 3 * one
    text = summary(model, SHAPE)
    assert "translator" in text and f"{count_parameters(model):,}" in text


# ---------------------------------------------------------------- small end-to-end run


def moving_blobs(n: int, frames: int = 8, height: int = 8, width: int = 16) -> torch.Tensor:
    """(n, frames, 1, H, W): one Gaussian blob per sample moving right 1 pixel per frame."""
    yy, xx = torch.meshgrid(torch.arange(float(height)), torch.arange(float(width)), indexing="ij")
    cy, cx = torch.rand(n, 1) * height, torch.rand(n, 1) * width
    seq = []
    for t in range(frames):
        dx = (xx.flatten() - (cx + t) % width).abs()
        dx = torch.minimum(dx, width - dx)  # periodic in x
        d2 = (yy.flatten() - cy) ** 2 + dx**2
        seq.append(torch.exp(-d2 / 4).view(n, 1, height, width))
    return torch.stack(seq, dim=1)


@pytest.mark.slow
def test_simvp_svq_learns_motion_and_beats_persistence():
    model = tiny(hid_T=32, quantizer="svq", quantizer_options=SVQ)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(30):
        seq = moving_blobs(16)
        loss = (model(seq[:, :4]).prediction - seq[:, 4:]).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test = moving_blobs(64)
    x, y = test[:, :4], test[:, 4:]
    with torch.no_grad():
        mae = (model.eval()(x).prediction - y).abs().mean()
    persistence = (x[:, -1:] - y).abs().mean()  # repeat the last observed frame
    assert mae < 0.5 * persistence


def test_forward_macs_count_fused_attention_as_its_two_matrix_products():
    class Attention(nn.Module):
        def forward(self, x):  # x (B, heads, N, d)
            return torch.nn.functional.scaled_dot_product_attention(x, x, x)

    heads, n, d = 8, 64, 32
    assert forward_macs(Attention(), (heads, n, d)) == 2 * heads * n * n * d  # q k^T and a v
