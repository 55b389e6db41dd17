"""``svqcast data bench``'s model options and ``benchmarks/bench_loader.py``'s weatherbench2
store: the options reach the measurement, the model built has the requested sizes, the
generated store has the WeatherBench2 layout and loads lazily. No timings are asserted."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from svqcast.cli import main
from svqcast.commands import data_bench as loader_bench
from svqcast.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "benchmarks") not in sys.path:  # the scripts are not part of svqcast
    sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_loader  # noqa: E402

FAKE_ROW = {
    "lazy": True, "workers": 0, "train_windows": 1, "load_s": 0.1, "load_peak_mib": 1.0,
    "peak_mib": 1.0, "model_peak_mib": 1.0, "worker_peak_mib": 0.0, "loader_wps": 2.0,
    "model_wps": 1.0,
}  # fmt: skip


@pytest.fixture
def seen(monkeypatch):
    """Runs of ``svqcast data bench`` record the model options given to measure."""
    calls = []

    def fake(*args, model=None, **kwargs):
        calls.append(model)
        return {**FAKE_ROW, "model": loader_bench.describe_model(model)}

    monkeypatch.setattr(loader_bench, "measure", fake)
    return calls


def bench(tmp_path, *flags):
    return main(["data", "bench", "weather_t2m", "--root", str(tmp_path), *flags])


def test_default_model_is_unchanged(tmp_path, seen, capsys):
    assert bench(tmp_path) == 0
    assert seen == [loader_bench.MODEL]
    assert loader_bench.MODEL == {"translator": "gsta", "hid_S": 16, "hid_T": 64, "N_S": 2,
                                  "N_T": 2, "quantizer": None}  # fmt: skip
    out = capsys.readouterr().out
    assert "model measured: SimVP-gsta hid_S 16, hid_T 64, N_S 2, N_T 2, no quantizer" in out


def test_flags_choose_the_model(tmp_path, seen, capsys):
    flags = ["--translator", "incepu", "--hid-S", "8", "--hid-T", "24", "--N-S", "4"]
    assert bench(tmp_path, *flags, "--N-T", "3", "--quantizer", "svq") == 0
    assert seen[-1] == {"translator": "incepu", "hid_S": 8, "hid_T": 24, "N_S": 4, "N_T": 3,
                        "quantizer": "svq"}  # fmt: skip
    assert "SimVP-incepu hid_S 8, hid_T 24, N_S 4, N_T 3, quantizer svq" in capsys.readouterr().out
    assert bench(tmp_path, "--quantizer", "none") == 0
    assert seen[-1]["quantizer"] is None


def test_config_model_section_then_flags(tmp_path, seen):
    config = tmp_path / "fit.yaml"
    config.write_text(
        "model:\n  hid_S: 12\n  hid_T: 20\n  N_S: 2\n  N_T: 4\n  translator: tau\n"
        "  quantizer: svq\n  quantizer_options: {codebook_size: 64}\n  mlp_ratio: 2.0\n"
        "  lr: 0.1\n  loss: mse\ndata:\n  batch_size: 3\n"
    )
    assert bench(tmp_path, "--config", str(config), "--N-T", "2") == 0
    assert seen[-1] == {"translator": "tau", "hid_S": 12, "hid_T": 20, "N_S": 2, "N_T": 2,
                        "quantizer": "svq", "quantizer_options": {"codebook_size": 64},
                        "mlp_ratio": 2.0}  # fmt: skip
    # lr, loss, data: not the network's
    assert bench(tmp_path, "--config", str(config), "--quantizer", "vq") == 0
    assert seen[-1]["quantizer"] == "vq" and "quantizer_options" not in seen[-1]
    packaged = loader_bench.model_options("weather_t2m")  # a packaged config by name
    assert (packaged["hid_S"], packaged["hid_T"], packaged["N_T"]) == (32, 256, 8)
    with pytest.raises(ConfigError, match="no such file"):
        loader_bench.model_options(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "model",
    [
        {"translator": "gsta", "hid_S": 4, "hid_T": 8, "N_S": 2, "N_T": 2, "quantizer": None},
        {"translator": "incepu", "hid_S": 6, "hid_T": 10, "N_S": 4, "N_T": 3, "quantizer": "svq",
         "quantizer_options": {"codebook_size": 16}},
    ],
)  # fmt: skip
def test_the_model_built_has_the_requested_sizes(model):
    from svqcast.quantizers import quantizer_class

    net = loader_bench.build_model((4, 1, 16, 32), 4, model)
    assert net.translator_name == model["translator"] and net.hid_S == model["hid_S"]
    assert len(net.encoder.layers) == len(net.decoder.layers) == model["N_S"]
    assert net.encoder.layers[-1].conv.out_channels == model["hid_S"]
    assert net.latent_shape == (16 // 2 ** (model["N_S"] // 2), 32 // 2 ** (model["N_S"] // 2))
    widths = {m.out_channels for m in net.translator.modules() if hasattr(m, "out_channels")}
    assert model["hid_T"] in widths
    if model["quantizer"] is None:
        assert net.quantizer is None
    else:
        assert isinstance(net.quantizer, quantizer_class(model["quantizer"]))
        assert net.quantizer.codebook_size == 16


def test_bad_model_option_is_a_config_error():
    with pytest.raises(ConfigError):
        loader_bench.build_model((4, 1, 16, 32), 4, {**loader_bench.MODEL, "no_such": 1})


def test_generated_weatherbench2_store_loads_lazily_and_measures(tmp_path):
    import xarray as xr

    from svqcast.data import dataset_module

    root = bench_loader.generate_zarr(tmp_path, 4, 48)  # 4 years x 8 six-hourly frames
    with xr.open_zarr(root / bench_loader.STORE) as ds:
        t2m = ds["2m_temperature"]
        assert t2m.dims == ("time", "longitude", "latitude")
        assert t2m.shape == (32, 64, 32) and t2m.dtype == "float32"
        assert t2m.encoding["chunks"] == (1, 64, 32)
        assert str(ds["time"].values[8])[:13] == "2001-01-01T00"
    assert bench_loader.generate_zarr(tmp_path, 4, 48) == root  # kept, not rewritten
    options = bench_loader.options_of("weatherbench2", 2, "lazy", 2, 2)
    assert "lazy" not in options and options["train_years"] == [2000, 2001]
    splits = dataset_module("weatherbench2").load("weatherbench2", root, **options)
    assert len(splits.train) == 2 * (8 - 4 + 1) and splits.spec.in_shape == (2, 1, 32, 64)
    model = {**loader_bench.MODEL, "hid_S": 4, "hid_T": 8}
    row = loader_bench.measure("weatherbench2", root, options, batches=2, batch_size=2,
                               model_steps=1, model=model)  # fmt: skip
    built = loader_bench.build_model((2, 1, 32, 64), 2, model)
    assert row["params"] == sum(p.numel() for p in built.parameters())
    assert row["model"].startswith("SimVP-gsta hid_S 4, hid_T 8, N_S 2, N_T 2, no quantizer")
    assert row["train_windows"] == 10 and row["loader_wps"] > 0 and row["model_wps"] > 0


def test_load_chunks_sweep_in_process(tmp_path, monkeypatch, capsys):
    """--load-chunks, each child's measurement run in this process (the slow test below runs
    the real child processes): one weatherbench2.load per (years, block) with that chunk;
    the table has a column per block size and a row per train years."""
    import argparse

    seen = []

    def in_process(args, data, years, mode, workers, chunk=0):
        seen.append((years, mode, workers, chunk))
        child = argparse.Namespace(root=str(data), train_years=years, mode=mode,
                                   dataset=args.dataset, in_len=args.in_len,
                                   out_len=args.out_len, load_chunk=chunk)  # fmt: skip
        return bench_loader.measure(child)

    monkeypatch.setattr(bench_loader, "child", in_process)
    argv = ["bench_loader.py", "--dataset", "weatherbench2", "--quick",
            "--load-chunks", "16", "4", "--data-dir", str(tmp_path)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    bench_loader.main()
    assert seen == [(1, "lazy", 0, 16), (1, "lazy", 0, 4), (2, "lazy", 0, 16), (2, "lazy", 0, 4)]
    lines = capsys.readouterr().out.splitlines()
    assert "| train years | 16 frames (0.25 MiB) | 4 frames (0.0625 MiB) |" in lines
    rows = [line for line in lines if line.startswith(("| 1 |", "| 2 |"))]
    assert len(rows) == 2 and all(row.count("MiB, ") == 2 for row in rows)
    monkeypatch.setattr(sys, "argv", argv[:1] + ["--load-chunks", "4"])
    with pytest.raises(SystemExit) as bad:
        bench_loader.main()
    assert bad.value.code == 2 and "needs --dataset weatherbench2" in capsys.readouterr().err


@pytest.mark.slow
def test_load_chunks_measures_the_weatherbench2_load_per_block_size(tmp_path):
    """--load-chunks: one fresh process per (years, block) running weatherbench2.load with
    that chunk; the table has a column per block size and a row per train years."""
    import subprocess

    script = Path(bench_loader.__file__)
    cmd = [sys.executable, str(script), "--dataset", "weatherbench2", "--quick",
           "--load-chunks", "16", "4", "--data-dir", str(tmp_path)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "| train years | 16 frames (0.25 MiB) | 4 frames (0.0625 MiB) |" in lines
    rows = [line for line in lines if line.startswith(("| 1 |", "| 2 |"))]
    assert len(rows) == 2 and all(row.count("MiB, ") == 2 for row in rows)
    bad = subprocess.run([*cmd[:2], "--load-chunks", "4"], capture_output=True, text=True)
    assert bad.returncode == 2 and "needs --dataset weatherbench2" in bad.stderr
