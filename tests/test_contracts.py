import numpy as np
import pytest
import torch

from svqcast.data.spec import Channel, DataSpec, Normalizer
from svqcast.errors import ConfigError
from svqcast.quantizers import build_quantizer


def test_identity_quantizer_passes_through():
    z = torch.randn(2, 4, 3, 5)
    out = build_quantizer("none", 4)(z)
    assert torch.equal(out.quantized, z)
    assert out.loss.shape == () and out.loss.item() == 0.0


def test_unknown_quantizer_names_choices():
    with pytest.raises(ConfigError, match="valid choices: .*svq"):
        build_quantizer("nope", 4)


def test_bad_quantizer_option_names_valid_options():
    with pytest.raises(ConfigError, match="bad option"):
        build_quantizer("none", 4, bogus=1)


def test_normalizer_round_trip_numpy_and_torch():
    data = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 2, 4, 4))
    norm = Normalizer.fit(data)
    z = norm.normalize(data)
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1.0, atol=1e-12)
    t = torch.as_tensor(z, dtype=torch.float64)
    np.testing.assert_allclose(norm.denormalize(t).numpy(), data, atol=1e-10)


def test_dataspec_dict_round_trip():
    spec = DataSpec(
        name="x",
        in_len=3,
        out_len=2,
        channels=(Channel("t2m", "K"),),
        height=4,
        width=8,
        convention="weather",
        normalizer=Normalizer([280.0], [10.0]),
        lat=np.linspace(-80, 80, 4),
        lon=np.linspace(0, 315, 8),
        time_step_hours=1.0,
    )
    back = DataSpec.from_dict(spec.to_dict())
    assert back.in_shape == (3, 1, 4, 8)
    np.testing.assert_array_equal(back.lat, spec.lat)
    assert back.normalizer.to_dict() == spec.normalizer.to_dict()
