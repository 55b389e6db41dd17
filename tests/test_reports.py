"""Test reports that say what they measured: per-variable metrics in each variable's units, a
headline that never mixes units, the climatology's kind, lead times in the data's time unit."""

from __future__ import annotations

import json
import math

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from svqcast.data.spec import Channel, DataSpec, Normalizer
from svqcast.evaluation import plots
from svqcast.evaluation.baselines import persistence
from svqcast.evaluation.metrics import ForecastMetrics, lat_weights, same_units
from svqcast.evaluation.reports import (
    NOT_RECORDED,
    _fmt,
    append_result,
    write_report,
    write_test_report,
)

B, T_IN, T_OUT, H, W = 3, 2, 3, 4, 8
MEAN, STD = np.array([280.0, 2.0]), np.array([10.0, 4.0])
CLIM_KIND = "by (month, hour of day) over the train years"
REL = 1e-9  # float64 sums against numpy float64: relative tolerance


def make_spec(channels=None, time_step: str | None = "6h", **extra) -> DataSpec:
    channels = channels or (Channel("t2m", "K", "t2m"), Channel("u10", "m s-1", "u10"))
    c = len(channels)
    return DataSpec(
        name="two_vars",
        in_len=T_IN,
        out_len=T_OUT,
        channels=tuple(channels),
        height=H,
        width=W,
        convention="weather",
        normalizer=Normalizer(MEAN[:c], STD[:c]),
        lat=np.linspace(-60, 60, H),
        lon=np.linspace(0, 315, W),
        time_step=time_step,
        extra=extra,
    )


def tensors(c: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T_IN, c, H, W, generator=g, dtype=torch.float64)
    y = torch.randn(B, T_OUT, c, H, W, generator=g, dtype=torch.float64)
    pred = y + 0.3 * torch.randn(y.shape, generator=g, dtype=torch.float64)
    clim = 0.5 * torch.randn(y.shape, generator=g, dtype=torch.float64)
    return x, y, pred, clim


def score(spec: DataSpec, seed: int = 0):
    """The rows a test run writes (model, persistence, climatology) and the forecasts."""
    c = len(spec.channels)
    x, y, pred, clim = tensors(c, seed)
    forecasts = {"simvp": pred, "persistence": persistence(x, T_OUT), "climatology": clim}
    rows = {}
    for name, p in forecasts.items():
        m = ForecastMetrics(spec)
        m.update(p, y, clim)
        rows[name] = {k: float(v) for k, v in m.compute().items()}
    return rows, forecasts, y, m.notes


def physical(spec: DataSpec, a: torch.Tensor) -> np.ndarray:
    return spec.normalizer.denormalize(a.numpy())


def numpy_channel_metrics(spec, pred, y, j: int) -> dict[str, float]:
    """Direct numpy mae, mse, rmse, wrmse of channel j in physical units."""
    err = physical(spec, pred)[:, :, j] - physical(spec, y)[:, :, j]  # (B, T, H, W)
    w = np.cos(np.deg2rad(spec.lat))
    w = w / w.mean()
    return {
        "mae": np.abs(err).mean(),
        "mse": (err**2).mean(),
        "rmse": math.sqrt((err**2).mean()),
        "wrmse": np.sqrt((err**2 * w[:, None]).mean(axis=(-2, -1))).mean(),
    }


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)


# --------------------------------------------------------------------------- per variable


def test_two_variables_reported_per_variable_in_their_units(tmp_path):
    spec = make_spec(climatology=CLIM_KIND)
    rows, forecasts, y, notes = score(spec)
    write_test_report(tmp_path, rows, {}, notes=notes, spec=spec)
    report = json.loads((tmp_path / "test_metrics.json").read_text())
    md = (tmp_path / "test_metrics.md").read_text()

    variables = report["variables"]
    assert list(variables) == ["t2m", "u10"]
    assert variables["t2m"]["units"] == "K" and variables["u10"]["units"] == "m s-1"
    assert variables["t2m"]["metric_units"] == {
        "mae": "K", "mse": "K^2", "rmse": "K", "wrmse": "K", "acc": ""
    }  # fmt: skip
    assert variables["u10"]["metric_units"]["mse"] == "(m s-1)^2"
    for j, var in enumerate(("t2m", "u10")):
        entry = variables[var]["channels"][var]
        assert set(entry["rows"]) == {"simvp", "persistence", "climatology"}
        for model, pred in forecasts.items():
            want = numpy_channel_metrics(spec, pred, y, j)
            got = entry["rows"][model]
            for metric, value in want.items():
                assert close(got[metric], value), (var, model, metric, got[metric], value)
            # the Markdown row shows the same numbers, in the same order as the header
            cells = [_fmt(got[m]) for m in variables[var]["metric_units"]]
            assert f"| {model} | {var} | " + " | ".join(cells) + " |" in md
    assert "### t2m [K]" in md and "### u10 [m s-1]" in md
    assert "| model | channel | mae [m s-1] | mse [(m s-1)^2] | rmse [m s-1] |" in md


def test_levels_of_one_variable_are_grouped_under_it(tmp_path):
    chans = (
        Channel("t500", "K", "t", 500),
        Channel("t850", "K", "t", 850),
        Channel("u850", "m s-1", "u", 850),
    )
    spec = make_spec(chans)
    spec.normalizer = Normalizer(np.array([250.0, 270.0, 1.0]), np.array([8.0, 9.0, 5.0]))
    rows, forecasts, y, notes = score(spec, seed=1)
    write_test_report(tmp_path, rows, {}, notes=notes, spec=spec)
    variables = json.loads((tmp_path / "test_metrics.json").read_text())["variables"]
    assert list(variables) == ["t", "u"]
    t = variables["t"]["channels"]
    assert list(t) == ["t500", "t850"] and [t[c]["level"] for c in t] == [500, 850]
    want = numpy_channel_metrics(spec, forecasts["simvp"], y, 1)["rmse"]
    assert close(t["t850"]["rows"]["simvp"]["rmse"], want)
    md = (tmp_path / "test_metrics.md").read_text()
    assert md.index("### t [K]") < md.index("| simvp | t500 |") < md.index("| simvp | t850 |")
    assert md.index("| simvp | t850 |") < md.index("### u [m s-1]")


def test_mixed_units_headline_is_normalised_and_labelled(tmp_path):
    spec = make_spec()
    rows, forecasts, y, notes = score(spec)
    simvp = rows["simvp"]
    # no overall number in physical units: it would add K^2 to (m s-1)^2
    assert not {"mse", "mae", "rmse", "wrmse", "mse/lead_01"} & set(simvp)
    err = (forecasts["simvp"] - y).numpy() * 1.0  # normalised error: (phys err) / std
    assert close(simvp["mse_norm"], (err**2).mean())
    assert close(simvp["mae_norm"], np.abs(err).mean())
    assert close(simvp["rmse_norm"], math.sqrt((err**2).mean()))
    assert close(simvp["mse_norm/lead_02"], (err[:, 1] ** 2).mean())
    w = lat_weights(spec.lat, H).numpy()
    per_map = np.sqrt((err**2 * w[:, None]).mean(axis=(-2, -1)))  # (B, T, C)
    assert close(simvp["wrmse_norm"], per_map.mean())
    assert any("different units" in n and "normalised" in n for n in notes)

    write_test_report(tmp_path, rows, {}, notes=notes, spec=spec)
    report = json.loads((tmp_path / "test_metrics.json").read_text())
    assert report["headline"]["units"] == "normalised"
    assert report["headline"]["metrics"] == [
        "mae_norm",
        "mse_norm",
        "rmse_norm",
        "wrmse_norm",
        "acc",
    ]
    md = (tmp_path / "test_metrics.md").read_text()
    assert md.startswith("| model | mae_norm | mse_norm | rmse_norm | wrmse_norm | acc |")
    assert "## rmse_norm by lead time [normalised units]" in md

    entry = {"preset": "mv", "metrics": simvp, "paper": {}, "run_dir": "r", "protocol": "standard"}
    paths = append_result(tmp_path / "results", entry)
    table = paths["md"].read_text()
    row = next(line for line in table.splitlines() if line.startswith("| mv |"))
    assert f"{simvp['mse_norm']:.4g} (normalised)" in row
    assert "normalised units (error / train-split std of each channel)" in table


@pytest.mark.parametrize("units", [("m s-1", "m s-1"), ("m s-1", "m/s")])
def test_same_units_keep_the_physical_headline(tmp_path, units):
    spec = make_spec((Channel("u10", units[0]), Channel("v10", units[1])))
    spec.normalizer = Normalizer(np.array([0.5, -0.5]), np.array([4.0, 3.0]))
    assert same_units(units) and not same_units(("K", "m s-1")) and not same_units(("K", ""))
    rows, forecasts, y, _ = score(spec)
    err = physical(spec, forecasts["simvp"]) - physical(spec, y)
    assert close(rows["simvp"]["mse"], (err**2).mean())
    assert not any(k.endswith("_norm") or "_norm/" in k for k in rows["simvp"])
    write_test_report(tmp_path, rows, {}, spec=spec)
    report = json.loads((tmp_path / "test_metrics.json").read_text())
    assert report["headline"] == {
        "metrics": ["mae", "mse", "rmse", "wrmse", "acc"], "units": "physical", "unit": units[0]
    }  # fmt: skip
    assert list(report["variables"]) == ["u10", "v10"]


def test_single_variable_report_numbers_unchanged(tmp_path):
    spec = make_spec((Channel("t2m", "K"),), climatology=CLIM_KIND)
    rows, forecasts, y, notes = score(spec)
    err = physical(spec, forecasts["simvp"]) - physical(spec, y)
    simvp = rows["simvp"]
    assert close(simvp["mse"], (err**2).mean()) and close(simvp["mae"], np.abs(err).mean())
    assert close(simvp["rmse"], math.sqrt((err**2).mean()))
    assert close(simvp["mse/lead_03"], (err[:, 2] ** 2).mean())
    assert not any("_norm" in k or "/t2m" in k for k in simvp)  # the same keys as before
    # the report's rows (JSON, CSV, headline table) are the plain write_report's
    write_test_report(tmp_path / "new", rows, {}, notes=notes, spec=spec)
    plain = write_report(rows, tmp_path / "plain", ["mae", "mse", "rmse", "wrmse", "acc"])
    new = json.loads((tmp_path / "new" / "test_metrics.json").read_text())
    assert new["rows"] == json.loads(plain["json"].read_text())["rows"]
    assert (tmp_path / "new" / "test_metrics.csv").read_text() == plain["csv"].read_text()
    md = (tmp_path / "new" / "test_metrics.md").read_text()
    assert md.startswith(plain["md"].read_text())
    assert "variables" not in new and "Per variable" not in md
    assert new["headline"] == {
        "metrics": ["mae", "mse", "rmse", "wrmse", "acc"], "units": "physical", "unit": "K"
    }  # fmt: skip
    assert "- units: mae, rmse, wrmse in K, mse in K^2; acc is unitless" in md


def test_video_with_mixed_units_gets_per_channel_sums():
    spec = make_spec()
    spec.convention, spec.data_range = "video", (0.0, 1.0)
    x, y, pred, _ = tensors(2)
    m = ForecastMetrics(spec)
    m.update(pred, y)
    got = {k: float(v) for k, v in m.compute().items()}
    err = physical(spec, pred) - physical(spec, y)  # (B, T, C, H, W)
    for j, ch in enumerate(("t2m", "u10")):  # per-frame sums over H x W, mean over frames
        assert close(got[f"mse/{ch}"], (err[:, :, j] ** 2).sum(axis=(-2, -1)).mean())
        assert close(got[f"mae/{ch}/lead_02"], np.abs(err[:, 1, j]).sum(axis=(-2, -1)).mean())
    norm = (pred - y).numpy()
    assert close(got["mse_norm"], (norm**2).sum(axis=(-3, -2, -1)).mean())
    assert "mse" not in got and "psnr" in got  # unitless: the same name


def test_mixed_units_plots_and_non_finite_values(tmp_path):
    from svqcast.evaluation.reports import write_test_plots

    spec = make_spec()
    rows = score(spec)[0]
    rows["simvp"]["rmse/u10"] = float("nan")  # e.g. a diverged model: null, "-", no crash
    written = write_test_plots(tmp_path, spec, rows, None, None)
    assert sorted(p.name for p in written) == ["mae_norm_vs_lead.png", "rmse_norm_vs_lead.png"]
    write_test_report(tmp_path, rows, {}, spec=spec)
    report = json.loads((tmp_path / "test_metrics.json").read_text())
    assert report["variables"]["u10"]["channels"]["u10"]["rows"]["simvp"]["rmse"] is None
    md = (tmp_path / "test_metrics.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| simvp | u10 |"))
    assert row.split(" | ")[4] == "-"  # model, channel, mae, mse, rmse


def test_one_variable_in_two_units_is_never_one_table():
    from svqcast.evaluation.reports import variable_groups

    spec = make_spec((Channel("t500", "K", "t", 500), Channel("t850", "degC", "t", 850)))
    groups = variable_groups(spec)
    assert list(groups) == ["t", "t in degC"]
    assert groups["t"] == {"units": "K", "channels": {"t500": 500}}


# --------------------------------------------------------------------------- climatology


def test_climatology_kind_stated_in_md_and_json(tmp_path):
    spec = make_spec(climatology=CLIM_KIND)
    rows = score(spec)[0]
    write_test_report(tmp_path / "a", rows, {}, spec=spec)
    assert (
        json.loads((tmp_path / "a" / "test_metrics.json").read_text())["climatology"] == CLIM_KIND
    )
    md = (tmp_path / "a" / "test_metrics.md").read_text()
    assert f"- persistence repeats the last input frame; climatology: {CLIM_KIND}\n" in md
    # an old checkpoint's spec (no kind recorded), or no spec at all
    for sub, s in (("b", make_spec()), ("c", None)):
        write_test_report(tmp_path / sub, rows, {}, spec=s)
        report = json.loads((tmp_path / sub / "test_metrics.json").read_text())
        assert report["climatology"] == NOT_RECORDED == "not recorded"
        assert "climatology: not recorded" in (tmp_path / sub / "test_metrics.md").read_text()


# --------------------------------------------------------------------------- lead labels


@pytest.mark.parametrize(
    "time_step, labels",
    [
        ("h", ["+1 h", "+2 h", "+3 h"]),
        ("6h", ["+6 h", "+12 h", "+18 h"]),
        ("D", ["+1 d", "+2 d", "+3 d"]),
        ("MS", ["+1 month", "+2 months", "+3 months"]),
        ("QS-DEC", ["+3 months", "+6 months", "+9 months"]),
        ("YS-JAN", ["+1 year", "+2 years", "+3 years"]),
        ("360D", ["+360 d", "+720 d", "+1080 d"]),
        ("30min", ["+30 min", "+60 min", "+90 min"]),
        ("not-a-frequency", ["+1 step", "+2 steps", "+3 steps"]),
        (None, ["+1 step", "+2 steps", "+3 steps"]),
    ],
)
def test_lead_labels_in_the_data_time_unit(time_step, labels):
    assert [plots.lead_label(k, time_step) for k in (1, 2, 3)] == labels
    assert plots.lead_labels(make_spec(time_step=time_step)) == labels


@pytest.mark.parametrize(
    "hours, labels",
    [
        (6.0, ["+6 h", "+12 h", "+18 h"]),
        (24.0, ["+1 d", "+2 d", "+3 d"]),
        (0.5, ["+30 min", "+60 min", "+90 min"]),
    ],
)
def test_lead_labels_of_an_old_checkpoint(hours, labels):
    # a spec saved with time_step_hours alone: DataSpec.from_dict turns it into time_step
    old = make_spec(time_step=None).to_dict()
    del old["time_step"]
    old["time_step_hours"] = hours
    assert plots.lead_labels(DataSpec.from_dict(old)) == labels


@pytest.mark.parametrize(
    "time_step, values, label",
    [
        ("6h", [6, 12, 18], "lead time [h]"),
        ("MS", [1, 2, 3], "lead time [months]"),
        ("30min", [30, 60, 90], "lead time [min]"),
        (None, [1, 2, 3], "lead [steps]"),
    ],
)
def test_lead_axis_of_the_error_plot(tmp_path, time_step, values, label):
    x, text = plots.lead_axis(3, time_step)
    assert x.tolist() == values and text == label
    curves = {"simvp": [1.0, 2.0, 3.0], "persistence": [2.0, 3.0, 4.0]}
    path = plots.plot_error_vs_lead(curves, "rmse", tmp_path / "r.png", time_step=time_step)
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_labels_leads(tmp_path):
    spec = make_spec((Channel("t2m", "K"),), time_step="6h")
    rows = score(spec)[0]
    write_test_report(tmp_path, rows, {}, spec=spec)
    report = json.loads((tmp_path / "test_metrics.json").read_text())
    assert report["time_step"] == "6h"
    assert report["leads"] == {"lead_01": "+6 h", "lead_02": "+12 h", "lead_03": "+18 h"}
    md = (tmp_path / "test_metrics.md").read_text()
    assert "## rmse by lead time [K]\n\n| model | +6 h | +12 h | +18 h |" in md
    cells = " | ".join(_fmt(rows["persistence"][f"rmse/lead_0{k}"]) for k in (1, 2, 3))
    assert f"| persistence | {cells} |" in md


# --------------------------------------------------------------------------- the engine


def test_engine_test_run_writes_per_variable_report(tmp_path):
    """ForecastModule.test passes its DataSpec to the report: per-variable rows in units,
    equal to numpy on the module's own predictions; lead labels; the climatology kind."""
    from svqcast.training.module import ForecastModule

    torch.manual_seed(0)
    spec = make_spec(climatology=CLIM_KIND)
    spec.in_len, spec.height, spec.width = 2, 8, 16
    spec.lat, spec.lon = np.linspace(-70, 70, 8), np.linspace(0, 337.5, 16)
    x = torch.randn(4, 2, 2, 8, 16)
    y = torch.randn(4, T_OUT, 2, 8, 16)
    module = ForecastModule(hid_S=4, hid_T=8, N_S=2, N_T=2, plots=False, spec=spec.to_dict())
    trainer = L.Trainer(
        default_root_dir=tmp_path, accelerator="cpu", devices=1, logger=False,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
    )  # fmt: skip
    trainer.test(module, DataLoader(TensorDataset(x, y), batch_size=2))
    module.eval()
    with torch.no_grad():
        pred = module(x).prediction.double()
    report = json.loads((tmp_path / "test_metrics.json").read_text())
    assert report["climatology"] == CLIM_KIND and report["headline"]["units"] == "normalised"
    assert report["leads"] == {"lead_01": "+6 h", "lead_02": "+12 h", "lead_03": "+18 h"}
    spec = module.spec
    for j, var in enumerate(("t2m", "u10")):
        got = report["variables"][var]["channels"][var]["rows"]["simvp"]
        want = numpy_channel_metrics(spec, pred, y.double(), j)
        for metric in ("mae", "mse", "rmse", "wrmse"):
            assert math.isclose(got[metric], want[metric], rel_tol=1e-5), (var, metric)


# --------------------------------------------------------------------------- loaders

from test_video_datasets import (  # noqa: E402  (fixtures and writers of the video tests)
    human_root,  # noqa: F401
    kth_root,  # noqa: F401
    write_kitti,
    write_mmnist,
    write_taxibj,
)


def test_video_loaders_state_their_climatology(tmp_path, kth_root, human_root):  # noqa: F811
    from svqcast.data.datasets import human, kitticaltech, kth, mmnist, taxibj

    write_taxibj(tmp_path / "t")
    write_mmnist(tmp_path / "m")
    write_kitti(tmp_path / "k")
    kinds = {
        "taxibj": taxibj.load("taxibj", tmp_path / "t"),
        "mmnist": mmnist.load(
            "mmnist", tmp_path / "m", val_size=2, train_size=4, climatology_samples=3
        ),  # fmt: skip
        "kitticaltech": kitticaltech.load("kitticaltech", tmp_path / "k"),
        "kth": kth.load("kth", kth_root, in_len=2, out_len=3, size=8, climatology_samples=5),
        "human": human.load(
            "human", human_root, in_len=2, out_len=2, size=8, climatology_samples=3
        ),
    }
    kinds = {name: s.spec.extra["climatology"] for name, s in kinds.items()}
    assert kinds == {
        "taxibj": "overall mean per grid cell over every input and target frame of the "
        "training samples",
        "mmnist": "overall mean per pixel over 3 generated training sequences",
        "kitticaltech": "overall mean per pixel over every frame of the training windows",
        "kth": "overall mean per pixel over 5 evenly spaced training windows",
        "human": "overall mean per pixel over 3 evenly spaced training windows (unaugmented)",
    }


def test_synthetic_weather_states_its_climatology(tmp_path):
    from svqcast.data.datasets import synthetic

    s = synthetic.load("synthetic_weather", tmp_path, first_year=2010, last_year=2012,
                       hours_per_year=48, in_len=2, out_len=2)  # fmt: skip
    assert "month" in s.spec.extra["climatology"] and "hour" in s.spec.extra["climatology"]


def test_weather_mv_files_in_four_units_end_to_end(tmp_path):
    """weather_mv read from files whose variables are in %, K and m s-1: one table per
    variable with its levels, in its units; a normalised headline; numpy-equal values."""
    from weather_files import write_var

    from svqcast.data.datasets import weather

    for i, (d, v, units) in enumerate(
        [("relative_humidity", "r", "%"), ("temperature", "t", "K"),
         ("u_component_of_wind", "u", "m s-1"), ("v_component_of_wind", "v", "m s-1")]
    ):  # fmt: skip
        write_var(tmp_path, d, v, range(2000, 2003), 48, [150, 500, 850], units, 1e3 * i)
    s = weather.load("weather_mv", tmp_path, train_years=2000, val_years=2001, test_years=2002)
    spec = s.spec
    x, y = (torch.stack(a).double() for a in zip(*(s.test[i] for i in range(len(s.test)))))
    pred = persistence(x, spec.out_len)
    m = ForecastMetrics(spec)
    m.update(pred, y)
    rows = {"persistence": {k: float(v) for k, v in m.compute().items()}}
    write_test_report(tmp_path / "run", rows, {}, notes=m.notes, spec=spec)
    report = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    # the official convention of the paper's WeatherBench-M numbers: means over variables
    assert report["headline"]["units"] == "mixed"
    assert report["headline"]["mean_over_variables"] == ["mse", "mae", "rmse"]
    variables = report["variables"]
    assert {k: v["units"] for k, v in variables.items()} == {
        "r": "%", "t": "K", "u": "m s-1", "v": "m s-1"
    }  # fmt: skip
    assert [c["level"] for c in variables["u"]["channels"].values()] == [150, 500, 850]
    err = physical(spec, pred) - physical(spec, y)
    j = spec.channel_names.index("u500")
    got = variables["u"]["channels"]["u500"]["rows"]["persistence"]
    assert close(got["mae"], np.abs(err[:, :, j]).mean())
    assert close(got["mse"], (err[:, :, j] ** 2).mean())
    per_var = [np.sqrt((err[:, :, 3 * i : 3 * i + 3] ** 2).mean()) for i in range(4)]
    assert [c.variable for c in spec.channels] == [v for v in "rtuv" for _ in range(3)]
    assert close(rows["persistence"]["rmse"], np.mean(per_var))
    assert close(rows["persistence"]["rmse/u"], per_var[2])
    md = (tmp_path / "run" / "test_metrics.md").read_text()
    assert "### r [%]" in md and "| persistence | u500 |" in md
    assert "## rmse by lead time [mean over variables, each in its units]" in md


def test_reproduce_summary_line_labels_normalised_numbers():
    from svqcast.commands.reproduce import describe_entry

    line = describe_entry(
        {"preset": "weather_mv_x", "metrics": {"mse_norm": 0.5, "mae": 1.25}, "run_dir": "r"}
    )
    assert "mse 0.5 (normalised units); " in line and "mae 1.25; " in line
