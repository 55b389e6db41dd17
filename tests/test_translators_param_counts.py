"""Faithfulness to OpenSTL: parameter counts of SimVP with each translator family.

OpenSTL's published WeatherBench 5.625 deg table (in_shape (12, 1, 32, 64), hid_S 32,
hid_T 256, N_S 2, N_T 8, mlp_ratio 8, no quantizer). Every family must match within 1%.
"""

import pytest

from svqcast.models import SimVP, count_parameters
from svqcast.models.translators import TRANSLATORS

# millions of parameters, as published by OpenSTL for WeatherBench 5.625 deg
PUBLISHED_MILLIONS = {
    "incepu": 14.67,
    "gsta": 12.76,
    "vit": 12.41,
    "swin": 12.42,
    "uniformer": 12.02,
    "mlpmixer": 11.10,
    "convmixer": 1.13,
    "poolformer": 9.98,
    "convnext": 10.09,
    "van": 12.15,
    "hornet": 12.42,
    "moganet": 12.76,
    "tau": 12.22,
}


def test_table_covers_every_registered_translator():
    assert set(PUBLISHED_MILLIONS) == set(TRANSLATORS)


@pytest.mark.parametrize("translator", sorted(PUBLISHED_MILLIONS))
def test_parameter_count_matches_openstl(translator):
    model = SimVP(
        (12, 1, 32, 64), hid_S=32, hid_T=256, N_S=2, N_T=8, mlp_ratio=8.0, translator=translator
    )
    millions = count_parameters(model) / 1e6
    expected = PUBLISHED_MILLIONS[translator]
    assert millions == pytest.approx(expected, rel=0.01), (
        f"{translator}: {millions:.3f}M parameters, OpenSTL publishes {expected}M"
    )
