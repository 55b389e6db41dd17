"""`svqcast demo` end to end with a tiny budget: the table, the verdicts and the files."""

from __future__ import annotations

import pytest

from svqcast.commands.demo import format_demo, run_demo


@pytest.mark.slow
def test_demo_pipeline_tiny(tmp_path, capsys):
    out = run_demo(root=str(tmp_path / "data"), runs_dir=str(tmp_path / "runs"), quick=True)
    rows = out["rows"]
    assert set(rows) == {"SimVP+SVQ", "SimVP (no quantizer)", "persistence", "climatology"}
    for values in rows.values():
        assert {"mae", "rmse", "wrmse"} <= set(values)
    printed = capsys.readouterr().out
    assert "| SimVP+SVQ |" in printed and "| persistence |" in printed
    for folder in out["run_dirs"].values():
        run = tmp_path / "runs" / folder.split("/")[-1]
        assert (run / "best.ckpt").is_file() and (run / "test_metrics.md").is_file()
        assert (run / "plots" / "forecast_panels.png").stat().st_size > 0
    svq_dir = tmp_path / "runs" / out["run_dirs"]["SimVP+SVQ"].split("/")[-1]
    assert (svq_dir / "plots" / "svq_weight_histogram.png").is_file()


@pytest.mark.parametrize("svq_mae,plain_mae", [(1.0, 1.2), (1.3, 1.2), (1.19, 1.2)])
def test_demo_verdicts_follow_the_numbers(svq_mae, plain_mae):
    rows = {
        "SimVP+SVQ": {"mae": svq_mae, "rmse": 1.5, "wrmse": 1.4, "acc": 0.9},
        "SimVP (no quantizer)": {"mae": plain_mae, "rmse": 1.6, "wrmse": 1.5, "acc": 0.9},
        "persistence": {"mae": 2.0, "rmse": 2.5, "wrmse": 2.4, "acc": 0.5},
    }
    text = format_demo(rows, {"SimVP+SVQ": "runs/a"}, {})
    assert "beats persistence" in text
    assert "On RMSE, SimVP+SVQ is 6.2% lower than SimVP without a quantizer." in text
    if abs(1 - svq_mae / plain_mae) < 0.02:
        assert "tied" in text and "lower MAE than" not in text
        assert "SVQ's is 0.8% lower" in text
    elif svq_mae < plain_mae:
        assert "lower MAE than SimVP without a quantizer" in text and "NOT" not in text
    else:
        assert "does NOT beat SimVP without a quantizer" in text
    worse = {**rows, "SimVP+SVQ": {**rows["SimVP+SVQ"], "mae": 3.0}}
    assert "does NOT beat persistence" in format_demo(worse, {}, {})
