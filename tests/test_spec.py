"""DataSpec and Normalizer: round trips, old specs, and how two specs differ."""

import numpy as np
import pytest
import torch

from svqcast.data.spec import Channel, DataSpec, Normalizer


def test_normalizer_round_trip_numpy_and_torch():
    data = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 2, 4, 4))
    norm = Normalizer.fit(data)
    z = norm.normalize(data)
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1.0, atol=1e-12)
    t = torch.as_tensor(z, dtype=torch.float64)
    np.testing.assert_allclose(norm.denormalize(t).numpy(), data, atol=1e-10)


def small_spec(**changes) -> DataSpec:
    fields = dict(
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
        calendar="standard",
    )
    return DataSpec(**{**fields, **changes})


def test_dataspec_dict_round_trip():
    spec = small_spec(time_step="h")
    back = DataSpec.from_dict(spec.to_dict())
    assert back.in_shape == (3, 1, 4, 8)
    np.testing.assert_array_equal(back.lat, spec.lat)
    assert back.normalizer.to_dict() == spec.normalizer.to_dict()


@pytest.mark.parametrize(
    "hours, step", [(1.0, "h"), (6.0, "6h"), (24.0, "D"), (0.5, "30min"), (6, "6h")]
)
def test_an_old_spec_with_time_step_hours_loads_as_time_step(hours, step):
    """A spec saved before time_step existed holds time_step_hours alone; one saved in
    between holds both: either loads as the spec of today, with time_step only."""
    new = small_spec(time_step=step)
    alone = new.to_dict()
    del alone["time_step"]
    alone["time_step_hours"] = hours
    both = {**new.to_dict(), "time_step_hours": hours}
    for old in (alone, both):
        back = DataSpec.from_dict(old)
        assert back.time_step == step and not hasattr(back, "time_step_hours")
        assert back.to_dict() == new.to_dict()
        assert back.first_difference(new) is None and new.first_difference(back) is None


def test_first_difference_compares_steps_and_calendars_by_meaning():
    daily = small_spec(time_step="D")
    assert daily.first_difference(small_spec(time_step="24h")) is None
    assert daily.first_difference(small_spec(time_step="6h")) == "time_step: D vs 6h"
    assert daily.first_difference(small_spec(time_step="D", calendar="gregorian")) is None
    assert (
        daily.first_difference(small_spec(time_step="D", calendar="noleap"))
        == "calendar: standard vs noleap"
    )
    assert daily.first_difference(small_spec(time_step=None, calendar=None)) is None
