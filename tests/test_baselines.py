"""Persistence and climatology baselines, and their scoring through ForecastMetrics."""

from __future__ import annotations

import pytest
import torch

from svqcast.errors import ConfigError
from svqcast.evaluation.baselines import (
    BaselineEvaluator,
    climatology,
    evaluate_baselines,
    persistence,
)
from svqcast.evaluation.metrics import ForecastMetrics

T_IN, T_OUT, H, W = 4, 4, 8, 16  # the shape of the tiny_spec fixture


@pytest.mark.parametrize("out_len", [1, T_IN, 5])
def test_persistence_repeats_last_input_frame(out_len):
    x = torch.randn(2, T_IN, 1, H, W)
    p = persistence(x, out_len)
    assert p.shape == (2, out_len, 1, H, W)
    for t in range(out_len):
        assert torch.equal(p[:, t], x[:, -1])
    p[:, 0] += 1  # a copy: editing the forecast leaves the inputs alone
    assert torch.equal(x[:, -1], persistence(x, 1)[:, 0])


@pytest.mark.parametrize("bad", [(T_IN, 1, H, W), (2, 0, 1, H, W)])
def test_persistence_bad_input(bad):
    with pytest.raises(ConfigError):
        persistence(torch.zeros(bad), 2)
    with pytest.raises(ConfigError, match="out_len"):
        persistence(torch.zeros(2, T_IN, 1, H, W), 0)


def test_climatology_is_the_third_element():
    clim = torch.randn(2, T_OUT, 1, H, W)
    assert climatology(clim) is clim
    with pytest.raises(ConfigError):
        climatology(clim[0])


def batches(kind: str, n: int = 3, b: int = 2):
    """kind='static': fields frozen in time (persistence is exact); 'clim': y == clim."""
    g = torch.Generator().manual_seed(1)
    for _ in range(n):
        field = torch.randn(b, 1, 1, H, W, generator=g)
        clim = torch.randn(b, T_OUT, 1, H, W, generator=g)
        if kind == "static":
            x, y = field.expand(b, T_IN, 1, H, W), field.expand(b, T_OUT, 1, H, W)
        else:
            x = torch.randn(b, T_IN, 1, H, W, generator=g)
            y = clim + 0.01 * torch.randn(b, T_OUT, 1, H, W, generator=g)
        yield x, y, clim


@pytest.mark.parametrize("kind, winner", [("static", "persistence"), ("clim", "climatology")])
def test_each_baseline_wins_where_it_should(kind, winner, tiny_spec):
    rows = evaluate_baselines(batches(kind), tiny_spec())
    loser = "climatology" if winner == "persistence" else "persistence"
    assert set(rows) == {"persistence", "climatology"}
    assert rows[winner]["rmse"] < 0.1 * rows[loser]["rmse"]
    assert rows[winner]["mae/lead_04"] < rows[loser]["mae/lead_04"]
    if kind == "static":
        assert rows["persistence"]["mse"] == 0.0


@pytest.mark.parametrize("convention", ["weather", "video"])
def test_evaluator_equals_direct_metrics(convention, tiny_spec):
    s = tiny_spec(convention)
    data = [(x.sigmoid(), y.sigmoid(), c.sigmoid()) for x, y, c in batches("clim")]
    rows = evaluate_baselines(data, s, prefix="test/")
    direct = ForecastMetrics(s, prefix="test/")
    for x, y, c in data:
        direct.update(persistence(x, T_OUT), y, c)
    ref = direct.compute()
    assert rows["persistence"].keys() == ref.keys()
    for k, v in ref.items():
        assert rows["persistence"][k] == pytest.approx(float(v), rel=1e-12)


def test_without_clim_only_persistence(tiny_spec):
    ev = BaselineEvaluator(tiny_spec())
    for x, y, _ in batches("static"):
        ev.update(x, y)
    rows = ev.compute()
    assert list(rows) == ["persistence"] and "acc" not in rows["persistence"]
    assert ev.out_len == T_OUT and isinstance(ev.notes, list)


def test_evaluate_baselines_rejects_empty_and_malformed(tiny_spec):
    with pytest.raises(ConfigError, match="no batches"):
        evaluate_baselines([], tiny_spec())
    with pytest.raises(ConfigError, match=r"\(x, y\)"):
        evaluate_baselines([(torch.zeros(1, T_IN, 1, H, W),)], tiny_spec())
