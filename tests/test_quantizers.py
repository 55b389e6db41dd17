"""The quantizer registry: names, options and the identity quantizer."""

import pytest
import torch

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
