"""``benchmarks/bench_scale.py`` and ``bench_step.py``'s shared model code: ``--device``
(the CPU path measures RSS as before; ``--device cuda`` without CUDA stops in one line).
No timings are asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
if str(BENCH) not in sys.path:  # the scripts are not part of svqcast
    sys.path.insert(0, str(BENCH))

import bench_scale  # noqa: E402
import bench_step  # noqa: E402

NO_CUDA = not torch.cuda.is_available()


def test_check_device(monkeypatch):
    assert bench_step.check_device("cpu") is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    problem = bench_step.check_device("cuda")
    assert problem.startswith("--device cuda:") and "\n" not in problem


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_train_step_runs_on_the_inputs_device(precision):
    v = bench_step.make_variant("fast", precision, bench_step.QUICK, 0, (2, 1, 8, 16))
    assert all(p.device.type == "cpu" for p in v.model.parameters())
    before = [p.detach().clone() for p in v.model.parameters()]
    x, y = torch.randn(1, 2, 1, 8, 16), torch.randn(1, 2, 1, 8, 16)
    assert bench_step.train_step(v, x, y) > 0
    assert any(not torch.equal(a, p) for a, p in zip(before, v.model.parameters(), strict=True))


def test_table_names_the_memory_of_the_device():
    row = {"variant": "none", "resolution": "5.625", "grid": [32, 64], "batch": 1,
           "tokens": 6144, "time_ms": 10.0, "peak_mib": 100.0, "extra_mib": 10.0,
           "exact_memory": True}  # fmt: skip
    cpu, cuda = (bench_scale.format_table([row], 10, d).splitlines()[0] for d in ("cpu", "cuda"))
    assert "peak RSS MiB" in cpu and "CUDA" not in cpu
    assert "peak CUDA alloc MiB" in cuda and "RSS" not in cuda


def test_cpu_quick_run_in_process_measures_rss(tmp_path, monkeypatch, capsys):
    """The driver with each worker's measurement run in this process (the slow test below
    runs the real worker processes)."""
    monkeypatch.setattr(bench_scale, "run_variant", bench_scale.measure)
    out = tmp_path / "rows.json"
    argv = ["--quick", "--threads", "1", "--variants", "none,fold", "--json", str(out)]
    assert bench_scale.main(argv) == 0
    stdout = capsys.readouterr().out
    assert "device cpu" in stdout and "peak RSS MiB" in stdout
    rows = json.loads(out.read_text())["rows"]
    assert [r["variant"] for r in rows] == ["none", "fold"]
    for r in rows:
        assert r["device"] == "cpu" and r["memory"] == "rss"
        assert r["peak_mib"] > 0 and r["grid"] == [32, 64] and r["tokens"] == 12 * 16 * 32


@pytest.mark.slow
def test_cpu_quick_run_measures_rss(tmp_path):
    out = tmp_path / "rows.json"
    cmd = [sys.executable, str(BENCH / "bench_scale.py"), "--quick", "--threads", "1",
           "--variants", "none,fold", "--json", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "device cpu" in done.stdout and "peak RSS MiB" in done.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [r["variant"] for r in rows] == ["none", "fold"]
    for r in rows:
        assert r["device"] == "cpu" and r["memory"] == "rss"
        assert r["peak_mib"] > 0 and r["grid"] == [32, 64] and r["tokens"] == 12 * 16 * 32


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("script", ["bench_scale.py", "bench_step.py"])
def test_cuda_without_cuda_fails_in_one_line(script):
    cmd = [sys.executable, str(BENCH / script), "--quick", "--device", "cuda"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode != 0 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--device cuda" in lines[0] and "no CUDA device" in lines[0]
