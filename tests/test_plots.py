"""Plots: valid, non-empty PNGs written atomically, clear errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from svqcast.data.spec import Channel, DataSpec, Normalizer
from svqcast.errors import ConfigError, DataError
from svqcast.evaluation import plots

T_IN, T_OUT = 2, 6


def spec(convention: str, lat_ascending: bool = True) -> DataSpec:
    h, w = 8, 16
    lat = np.linspace(-78.75, 78.75, h)
    return DataSpec(
        name=f"tiny_{convention}",
        in_len=T_IN,
        out_len=T_OUT,
        channels=(Channel("t2m", "K"), Channel("u10", "m/s")),
        height=h,
        width=w,
        convention=convention,
        normalizer=Normalizer(np.array([280.0, 0.0]), np.array([5.0, 3.0])),
        lat=(lat if lat_ascending else lat[::-1]) if convention == "weather" else None,
        lon=np.linspace(0, 354.375, w) if convention == "weather" else None,
        time_step_hours=1.0 if convention == "weather" else None,
    )


def assert_png(path, min_size=(100, 100)):
    assert path.is_file() and path.stat().st_size > 1000
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size[0] >= min_size[0] and im.size[1] >= min_size[1]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp files


def batch(b=2):
    x = torch.randn(b, T_IN, 2, 8, 16)
    y = torch.randn(b, T_OUT, 2, 8, 16)
    return (
        x,
        y,
        {
            "simvp+svq": y + 0.1 * torch.randn_like(y),
            "persistence": x[:, -1:].repeat(1, T_OUT, 1, 1, 1),
        },
    )


@pytest.mark.parametrize(
    "convention, lat_ascending, leads, channel",
    [("weather", True, [2], 0), ("weather", False, [1, 6], 1), ("video", True, [3], 0)],
)
def test_forecast_panels_png(tmp_path, convention, lat_ascending, leads, channel):
    x, y, preds = batch()
    out = plots.plot_forecast_panels(
        x,
        y,
        {"simvp+svq": preds["simvp+svq"]},
        spec(convention, lat_ascending),
        tmp_path / "p" / "panels.png",
        sample=1,
        channel=channel,
        leads=leads,
    )
    assert out == tmp_path / "p" / "panels.png"
    assert_png(out)


@pytest.mark.slow
def test_forecast_panels_full_grid_is_larger(tmp_path):
    """Default leads (4 of 6) and two forecasts: 5 rows x 5 columns, bigger than 1 x 2."""
    x, y, preds = batch()
    s = spec("weather")
    small = plots.plot_forecast_panels(x, y, {}, s, tmp_path / "a.png", leads=[1])
    big = plots.plot_forecast_panels(x, y, preds, s, tmp_path / "b.png")
    assert_png(big)
    with Image.open(small) as a, Image.open(big) as b:
        assert b.size[0] > a.size[0] and b.size[1] > a.size[1]


def test_default_leads():
    assert plots.default_leads(1) == [1]
    assert plots.default_leads(3) == [1, 2, 3]
    assert plots.default_leads(12) == [1, 5, 8, 12]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sample": 5}, "sample"),
        ({"channel": 2}, "channel"),
        ({"leads": [0]}, "leads"),
        ({"leads": [T_OUT + 1]}, "leads"),
        ({"preds": {"bad": torch.zeros(2, T_OUT - 1, 2, 8, 16)}}, "shape"),
        ({"y": torch.zeros(T_OUT, 2, 8, 16)}, "B, T, C, H, W"),
    ],
)
def test_forecast_panels_bad_input(tmp_path, kwargs, match):
    x, y, preds = batch()
    args = {"x": x, "y": y, "preds": preds, "spec": spec("weather"), "path": tmp_path / "f.png"}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        plots.plot_forecast_panels(**args)
    assert not (tmp_path / "f.png").exists()


@pytest.mark.parametrize("hours", [None, 6.0])
def test_error_vs_lead_png(tmp_path, hours):
    curves = {
        "simvp+svq": [0.5, 0.7, 0.9],
        "persistence": [0.9, 1.4, 1.8],
        "climatology": [2.0] * 3,
    }
    assert_png(plots.plot_error_vs_lead(curves, "rmse", tmp_path / "rmse.png", hours))


@pytest.mark.parametrize("curves", [{}, {"model": []}])
def test_error_vs_lead_bad_input(tmp_path, curves):
    with pytest.raises(ConfigError):
        plots.plot_error_vs_lead(curves, "mae", tmp_path / "x.png")


@pytest.mark.parametrize(
    "weights", [np.random.default_rng(0).standard_normal(5000), torch.rand(300), np.zeros(10)]
)
def test_weight_histogram_png(tmp_path, weights):
    assert_png(plots.plot_weight_histogram(weights, tmp_path / "w.png"))


def test_weight_histogram_overwrites_atomically(tmp_path):
    path = tmp_path / "w.png"
    path.write_bytes(b"old")
    plots.plot_weight_histogram(np.arange(100.0), path)
    assert_png(path)


@pytest.mark.parametrize(
    "weights, error", [(np.zeros((3, 3)), ConfigError), (np.array([np.nan, np.inf]), DataError)]
)
def test_weight_histogram_bad_input(tmp_path, weights, error):
    with pytest.raises(error):
        plots.plot_weight_histogram(weights, tmp_path / "w.png")


@pytest.mark.parametrize(
    "time_step, hours, title",
    [("6h", 6.0, "lead 2 (+12 h)"), ("MS", None, "lead 2 (+2 months)"), (None, None, "lead 2")],
)
def test_panel_titles_name_the_lead_time(time_step, hours, title):
    s = spec("weather")
    s.time_step, s.time_step_hours = time_step, hours
    assert plots._lead_label(2, s) == title
