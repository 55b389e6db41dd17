"""The `svqcast` command: presets, clean errors, fit/test/predict/resume, data commands."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from svqcast.cli import main
from svqcast.commands import reproduce
from svqcast.commands.fit import config_parser

# The paper's experiment table (its section on the training recipe), written out here
# independently of the presets and reproduce.py:
# data -> (translator, hid_S, hid_T, N_S, N_T, lr, batch, K, init, loss, schedule, epochs)
PAPER_TABLE = {
    "weather_t2m": ("gsta", 32, 256, 2, 8, 5e-3, 16, 10000, "normal", "mae", "cosine", 50),
    "weather_r": ("swin", 32, 256, 2, 8, 1e-3, 16, 10000, "kaiming", "mae", "cosine", 50),
    "weather_uv10": ("swin", 32, 256, 2, 8, 1e-3, 16, 10000, "kaiming", "mae", "cosine", 50),
    "weather_tcc": ("gsta", 32, 256, 2, 8, 1e-2, 16, 10000, "kaiming", "mse", "cosine", 50),
    "weather_mv": ("moganet", 32, 256, 2, 8, 5e-3, 16, 10000, "kaiming", "mae", "cosine", 200),
    "weather_hmv": ("gsta", 32, 256, 2, 8, 2.5e-3, 8, 10000, "normal", "mae", "cosine", 50),
    "taxibj": ("gsta", 32, 256, 2, 8, 5e-4, 16, 10000, "kaiming", "mae", "cosine", 50),
    "kth": ("incepu", 64, 256, 2, 6, 5e-4, 4, 6000, "kaiming", "mae", "onecycle", 100),
    "kitticaltech": ("gsta", 64, 256, 2, 6, 1.25e-3, 4, 6000, "kaiming", "mae", "onecycle", 100),
    "human": ("gsta", 64, 512, 4, 6, 2.5e-4, 4, 10000, "kaiming", "mae", "cosine", 50),
}


# ----------------------------------------------------------------------------- presets


def test_every_experiment_has_a_preset():
    names = set(reproduce.PRESETS)
    for base in PAPER_TABLE:
        short = reproduce.SHORT.get(base, base)
        assert {f"{short}_svq", f"{short}_svq_frozen", f"{short}_simvp"} <= names
    for q in ("vq", "mhvq", "rvq", "rvq_stochastic", "grvq", "lfq", "rlfq", "rfsq"):
        assert f"t2m_{q}" in names
    assert {f"t2m_noise_{p}" for p in (0.1, 0.2, 0.3, 0.4, 0.5)} <= names
    assert {f"t2m_relu_hid{a}_out{b}" for a in (0, 1) for b in (0, 1)} <= names
    assert {"t2m_freeze_mlp", "t2m_freeze_both", "t2m_post"} <= names
    from svqcast.models.translators import TRANSLATORS

    assert {f"t2m_svq_{t}" for t in TRANSLATORS} <= names
    assert len([n for n in names if n.startswith("t2m_k")]) >= 4
    assert {f"t2m_simvp_noise_{p}" for p in (0.1, 0.2, 0.3, 0.4, 0.5)} <= names
    assert {"taxibj_svq_convnext", "taxibj_svq_frozen_convnext", "t2m_vq_post"} <= names
    assert len([n for n in names if n.startswith("t2m_grvq_k")]) >= 4


@pytest.mark.parametrize("base", sorted(PAPER_TABLE))
def test_base_presets_match_reference_table(base):
    translator, hs, ht, ns, nt, lr, batch, k, init, loss, sched, epochs = PAPER_TABLE[base]
    short = reproduce.SHORT.get(base, base)
    cfg = reproduce.preset_config(f"{short}_svq")
    m, d = cfg["model"], cfg["data"]
    assert (m["translator"], m["hid_S"], m["hid_T"], m["N_S"], m["N_T"]) == (
        translator, hs, ht, ns, nt
    )  # fmt: skip
    assert m["lr"] == pytest.approx(lr) and d["batch_size"] == batch
    assert m["quantizer"] == "svq" and m["quantizer_options"]["codebook_size"] == k
    assert m["quantizer_options"]["init"] == init and m["loss"] == loss
    assert m["scheduler"] == sched and cfg["trainer"]["max_epochs"] == epochs
    assert m.get("weight_decay", 0.0) == 0.0 and m.get("optimizer", "adam") == "adam"
    if sched == "cosine":
        assert (m["warmup_lr"], m["min_lr"]) == (1e-5, 1e-6)
    assert d["dataset"] == base
    frozen = reproduce.preset_config(f"{short}_svq_frozen")["model"]
    assert frozen["quantizer_options"]["freeze_codebook"] is True
    simvp = reproduce.preset_config(f"{short}_simvp")["model"]
    assert simvp["quantizer"] == "none" and simvp["loss"] == "mse"


def test_vq_baselines_use_mse_and_library_presets():
    from svqcast.quantizers.library import PRESETS

    cfg = reproduce.preset_config("t2m_rvq_stochastic")["model"]
    assert cfg["loss"] == "mse" and cfg["quantizer"] == "rvq"
    assert cfg["quantizer_options"] == PRESETS["rvq_stochastic"]["options"]
    assert cfg["quantizer_options"]["sample_codebook_temp"] == 0.1


def test_paper_numbers_attached():
    assert reproduce.PRESETS["t2m_simvp"].paper["mse"] == 1.105
    assert reproduce.PRESETS["t2m_svq"].paper["mse"] == 1.018
    assert reproduce.PRESETS["t2m_svq_frozen"].paper["mse"] == 1.023
    assert reproduce.PRESETS["t2m_vq"].paper["mse"] == 1.854
    assert reproduce.PRESETS["t2m_rvq"].paper["mse"] == 1.213
    assert reproduce.PRESETS["t2m_grvq"].paper["mse"] == 1.174
    assert reproduce.PRESETS["t2m_simvp"].paper == {"mse": 1.105, "mae": 0.6567, "rmse": 1.051}
    # each attached number says where in the paper it comes from (PAPER's group source)
    assert reproduce.PRESETS["t2m_svq"].paper_source == reproduce.PAPER["t2m"]["source"]
    assert reproduce.PRESETS["t2m_vq"].paper_source == reproduce.PAPER["t2m_vq"]["source"]
    # the same run under another name: --list names the preset that carries the number
    twins = reproduce.same_configuration()
    assert twins["t2m_svq_gsta"] == "t2m_svq" and twins["t2m_simvp_gsta"] == "t2m_simvp"
    listing = reproduce.list_presets()
    assert "(same configuration as t2m_svq: paper 1.018)" in listing
    assert all(name in listing for name in reproduce.PRESETS)


@pytest.fixture(scope="module")
def parser():
    return config_parser()


@pytest.mark.parametrize("name", sorted(reproduce.PRESETS))
def test_every_preset_parses_and_builds(name, parser):
    text = reproduce.preset_yaml(name)
    cfg = parser.parse_args(["--config", text])
    assert cfg.model.hid_S == reproduce.preset_config(name)["model"]["hid_S"]
    model = reproduce.build_model(name, device="meta")  # the paper-size model, no memory
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params > 100_000
    want_q = reproduce.preset_config(name)["model"]["quantizer"]
    assert (model.quantizer is None) == (want_q == "none")


# ----------------------------------------------------------------------------- errors


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    err = [line for line in err if line.startswith("svqcast: error:")]
    assert len(err) == 1, err
    return err[0]


def test_unknown_command_and_usage(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command" in one_line_error(capsys)
    assert main([]) == 2


def test_removed_bench_command_says_where_the_benchmarks_went(capsys):
    assert main(["bench", "accuracy"]) == 2
    assert "benchmarks/accuracy/run.py" in one_line_error(capsys)


def test_bad_config_key_is_one_line_exit_2(tmp_path, capsys):
    rc = main(["fit", "--model.hid_Z", "3", "--runs_dir", str(tmp_path)])
    assert rc == 2
    assert "hid_Z" in one_line_error(capsys)
    assert not list(tmp_path.iterdir())  # nothing written


def test_bad_option_value_is_one_line_exit_2(tmp_path, capsys):
    rc = main(["fit", "--model.loss", "l7", "--runs_dir", str(tmp_path)])
    assert rc == 2
    assert "loss" in one_line_error(capsys)


@pytest.mark.slow
def test_missing_data_is_one_line_and_leaves_nothing(tmp_path, capsys):
    args = ["fit", "--data.dataset", "weather_t2m", "--data.root", str(tmp_path / "nodata")]
    rc = main([*args, "--runs_dir", str(tmp_path / "runs"), "--name", "x"])
    assert rc == 2
    assert "weather_5_625deg" in one_line_error(capsys)
    assert not (tmp_path / "runs" / "x").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_runs_dir_is_one_line(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    rc = main(["fit", "--runs_dir", str(ro), "--name", "x"])
    assert rc == 2
    assert "cannot write" in one_line_error(capsys)


def test_unwritable_runs_dir_under_a_file_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    rc = main(["fit", "--runs_dir", str(blocker), "--name", "x"])
    assert rc == 2
    assert "cannot write" in one_line_error(capsys)


def test_garbage_checkpoint_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"garbage")
    rc = main(["test", "--ckpt_path", str(bad), "--runs_dir", str(tmp_path)])
    assert rc == 2
    assert "checkpoint" in one_line_error(capsys)


def test_reproduce_list_and_unknown(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert "t2m_svq" in out and "1.018" in out
    assert main(["reproduce", "nope"]) == 2
    assert "unknown preset" in one_line_error(capsys)


def test_reproduce_print_config_is_valid_yaml(capsys):
    assert main(["reproduce", "t2m_k1000", "--print-config", "--data-root", "/d"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["model"]["quantizer_options"]["codebook_size"] == 1000
    assert cfg["data"]["root"] == "/d"


# ----------------------------------------------------------------------------- end to end

TINY_YAML = """
model:
  hid_S: 8
  hid_T: 16
  N_S: 2
  N_T: 2
  translator: convmixer
  quantizer: svq
  quantizer_options: {codebook_size: 64}
  lr: 0.005
  scheduler: none
data:
  dataset: synthetic_weather
  batch_size: 16
  options: {first_year: 2010, last_year: 2012, hours_per_year: 48, in_len: 4, out_len: 4,
            stride: 4}
trainer:
  max_epochs: 1
  enable_progress_bar: false
  enable_model_summary: false
  limit_train_batches: 2
  limit_val_batches: 1
  limit_test_batches: 1
"""


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One tiny `svqcast fit` shared by the end-to-end tests below."""
    root = tmp_path_factory.mktemp("cli")
    (root / "tiny.yaml").write_text(TINY_YAML)
    args = ["fit", "--config", str(root / "tiny.yaml"), "--data.root", str(root / "data")]
    rc = main([*args, "--runs_dir", str(root / "runs"), "--name", "tiny"])
    assert rc == 0
    return root, args


@pytest.mark.slow
def test_fit_writes_run_folder(fitted):
    root, _ = fitted
    run = root / "runs" / "tiny"
    for name in ("config.yaml", "best.ckpt", "last.ckpt", "metrics.csv", "test_metrics.json"):
        assert (run / name).is_file(), name
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["model"]["quantizer"] == "svq" and cfg["name"] == "tiny"
    rows = json.loads((run / "test_metrics.json").read_text())["rows"]
    assert {"simvp+svq", "persistence", "climatology"} <= set(rows)
    assert not list((root / "runs").glob("**/.*.tmp"))


@pytest.mark.slow
def test_fit_refuses_to_overwrite_then_resumes(fitted, capsys):
    root, args = fitted
    rc = main([*args, "--runs_dir", str(root / "runs"), "--name", "tiny"])
    assert rc == 2
    assert "--ckpt_path last" in one_line_error(capsys)
    first = torch.load(root / "runs" / "tiny" / "last.ckpt", weights_only=False)
    more = ["--trainer.max_epochs", "2", "--ckpt_path", "last", "--test_after_fit", "false"]
    rc = main([*args, "--runs_dir", str(root / "runs"), "--name", "tiny", *more])
    assert rc == 0
    last = torch.load(root / "runs" / "tiny" / "last.ckpt", weights_only=False)
    assert (first["epoch"], last["epoch"]) == (0, 1)
    assert last["global_step"] == 2 * first["global_step"] > 0


@pytest.mark.slow
def test_test_command_on_checkpoint_and_mismatch(fitted, capsys):
    root, args = fitted
    ckpt = root / "runs" / "tiny" / "best.ckpt"
    rc = main(["test", *args[1:], "--ckpt_path", str(ckpt)])
    assert rc == 0
    assert (root / "runs" / "tiny" / "config_test.yaml").is_file()
    # the same checkpoint on data with another output length: CheckpointError, exit 2
    rc = main(["test", *args[1:], "--ckpt_path", str(ckpt), "--data.options.out_len", "2"])
    assert rc == 2
    assert "frames" in one_line_error(capsys)


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".npy", ".nc"])
def test_predict_writes_denormalised_forecast(fitted, tmp_path, suffix):
    import xarray as xr

    root, _ = fitted
    ckpt = root / "runs" / "tiny" / "best.ckpt"
    src = sorted((root / "data").rglob("*2012*.nc"))[0]
    out = tmp_path / f"fc{suffix}"
    assert main(["predict", "--ckpt", str(ckpt), "--input", str(src), "--output", str(out)]) == 0
    with xr.open_dataset(src) as ds:
        truth = ds["t2m"].values
    if suffix == ".npy":
        pred = np.load(out)
        assert pred.shape == (1, 4, 1, 32, 64)
    else:
        with xr.open_dataset(out) as ds, xr.open_dataset(src) as inp:
            pred = ds["t2m"].values
            assert ds["t2m"].dims == ("time", "prediction_timedelta", "lat", "lon")
            assert np.array_equal(ds["lat"].values, inp["lat"].values)
            assert ds["time"].values[0] == inp["time"].values[-1]  # the last input frame
            lead = ds["prediction_timedelta"].values
            assert (lead == np.arange(1, 5) * np.timedelta64(1, "h")).all()
            assert ds["t2m"].attrs["units"] == inp["t2m"].attrs["units"]
    assert abs(float(pred.mean()) - float(truth.mean())) < 15  # physical units (K)
    npy = tmp_path / "x.npy"
    np.save(npy, truth[-4:, None])
    assert main(["predict", "--ckpt", str(ckpt), "--input", str(npy), "--output", str(out)]) == 0
    # the same last window from the .npy (no coordinates: matched by shape) as from the file
    again = np.load(out) if suffix == ".npy" else xr.open_dataset(out)["t2m"].values
    assert np.array_equal(again, pred)


def test_predict_errors_are_one_line(tmp_path, capsys):
    rc = main(["predict", "--ckpt", str(tmp_path / "no.ckpt"), "--input", "x.npy"])
    assert rc == 2
    assert "does not exist" in one_line_error(capsys)
    assert main(["predict", "--input", "x.npy"]) == 2
    assert "--ckpt" in one_line_error(capsys)


def test_commands_data(tmp_path, capsys):
    assert main(["data", "list", "--root", str(tmp_path)]) == 0
    assert "synthetic_weather" in capsys.readouterr().out
    assert main(["data", "check", "weather_t2m", "--root", str(tmp_path)]) == 1
    assert main(["data", "check", "nope", "--root", str(tmp_path)]) == 2
    assert "unknown dataset" in one_line_error(capsys)


def test_results_table_appends_and_replaces(tmp_path):
    from svqcast.evaluation.reports import append_result

    e = {"preset": "t2m_svq", "metrics": {"mse": 1.2}, "paper": {"mse": 1.018}, "run_dir": "r"}
    append_result(tmp_path / "results", e)
    append_result(tmp_path / "results", {**e, "preset": "t2m_vq", "paper": {}})
    append_result(tmp_path / "results", {**e, "metrics": {"mse": 1.1}})
    entries = json.loads((tmp_path / "results.json").read_text())
    assert [x["preset"] for x in entries] == ["t2m_vq", "t2m_svq"]
    md = (tmp_path / "results.md").read_text()
    assert "| t2m_svq | standard | 1.1 | 1.018 |" in md


def test_configs_ship_inside_the_package():
    from svqcast.configs import configs_dir

    folder = configs_dir()
    assert (folder / "weather_t2m.yaml").is_file() and (folder / "demo.yaml").is_file()
    assert folder.parent == Path(reproduce.__file__).parents[1]  # package data, not the checkout


@pytest.mark.slow
def test_reproduce_runs_a_preset_and_records_paper_numbers(tmp_path, capsys):
    """`reproduce t2m_svq` on WeatherBench-layout files (the synthetic generator writes
    them), shrunk by overrides; the row carries the paper's MSE beside ours."""
    from svqcast.commands.data import synth

    synth("synthetic_weather", tmp_path, first_year=2010, last_year=2012, hours_per_year=48)
    wb_root = tmp_path / "synthetic_weather"
    years = "{train_years: [2010, 2010], val_years: [2011, 2011], test_years: [2012, 2012]"
    overrides = [
        "--data.options", years + ", in_len: 4, out_len: 4, stride: 4}",
        "--model.hid_S", "8", "--model.hid_T", "16", "--model.N_T", "2",
        "--model.translator", "convmixer", "--model.quantizer_options.codebook_size", "64",
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    ]  # fmt: skip
    runs = tmp_path / "runs"
    args = ["reproduce", "t2m_svq", "--data-root", str(wb_root), "--runs-dir", str(runs)]
    assert main([*args, *overrides]) == 0
    assert "paper 1.018" in capsys.readouterr().out
    entries = json.loads((runs / "results.json").read_text())
    assert entries[0]["preset"] == "t2m_svq" and entries[0]["paper"]["mse"] == 1.018
    assert entries[0]["metrics"]["mse"] > 0
    assert "| t2m_svq |" in (runs / "results.md").read_text()
    assert (runs / "t2m_svq" / "config.yaml").is_file()
