"""``weatherbench2`` under several processes: the statistics cache is computed once and
written atomically when ranks load at the same time, and a 2-process DDP fit + test over the
lazy windows gives the test metrics of one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_module import trainer
from test_module_ddp import assert_same_test_metrics, tiny_svq
from test_weatherbench2 import OPTS, make_store

from svqcast.cli import main
from svqcast.data.datamodule import ForecastDataModule
from svqcast.data.datasets import weatherbench2 as wb2
from svqcast.data.streaming import CACHE_ROOT

# One "rank": waits for the go file, loads with the cache on, records every statistics pass
# (slowed down so that the two ranks overlap) and prints what it got.
RANK = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from svqcast.data.datasets import weatherbench2 as wb2

    root, options, log, ready, go = sys.argv[1:]
    real = wb2.streaming_stats

    def slow(*args, **kwargs):
        with open(log, "a") as f:
            f.write("pass\\n")
        time.sleep(1.0)
        return real(*args, **kwargs)

    wb2.streaming_stats = slow
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.005)
    s = wb2.load("weatherbench2", root, **json.loads(options))
    print(json.dumps({"mean": s.spec.normalizer.mean.tolist(),
                      "clim": s.climatology.mean.astype(float).sum(),
                      "cache": s.spec.extra["stats_cache"]}))
    """
)

CACHE_DIR = Path(CACHE_ROOT) / wb2.CACHE_KIND  # where the dataset keeps its statistics


class Killed(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs."""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("wb2ranks") / "wb2.zarr"
    make_store(path)
    return path


@pytest.mark.slow  # two rank processes racing for the statistics cache
def test_concurrent_ranks_compute_the_cache_once(store, tmp_path):
    options = json.dumps({**OPTS, "path": str(store)})
    log, go = tmp_path / "passes.log", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                RANK,
                str(tmp_path),
                options,
                str(log),
                str(tmp_path / f"r{i}"),
                str(go),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"r{i}").exists() for i in range(2)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    go.touch()  # both ranks start loading now
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert log.read_text().splitlines() == ["pass"]  # one statistics pass, not one per rank
    assert results[0] == results[1] and results[0]["cache"]
    reference = wb2.load("weatherbench2", tmp_path, cache=False, **{**OPTS, "path": str(store)})
    np.testing.assert_allclose(results[0]["mean"], reference.spec.normalizer.mean)
    cache_dir = tmp_path / CACHE_DIR
    assert not list(cache_dir.glob(".*.tmp"))  # nothing half-written left behind


def test_interrupted_cache_write_leaves_no_cache_and_broken_files_are_recomputed(
    store, tmp_path, monkeypatch
):
    opts = {**OPTS, "path": str(store)}
    real_save = np.save

    def killed(file, array, *args, **kwargs):  # a process killed in the middle of the write
        with open(file, "wb") if isinstance(file, str | os.PathLike) else file as f:
            f.write(b"\x93NUMPY")
        raise Killed

    monkeypatch.setattr(wb2.np, "save", killed)
    with pytest.raises(Killed):
        wb2.load("weatherbench2", tmp_path, **opts)
    monkeypatch.setattr(wb2.np, "save", real_save)
    cache_dir = tmp_path / CACHE_DIR
    assert not list(cache_dir.glob("*.npy")) and not list(cache_dir.glob(".*.tmp"))
    first = wb2.load("weatherbench2", tmp_path, **opts)
    clim_file = next(cache_dir.glob("*.climatology.npy"))
    for broken in (b"", clim_file.read_bytes()[:200]):  # empty, or cut short by a crash
        clim_file.write_bytes(broken)
        again = wb2.load("weatherbench2", tmp_path, **opts)  # recomputed, not an error
        np.testing.assert_array_equal(again.climatology.mean, first.climatology.mean)
    assert np.load(clim_file).shape == first.climatology.mean.shape  # and saved again whole


def test_without_file_locks_the_cache_is_still_written(store, tmp_path, monkeypatch):
    import filelock

    def unsupported(self, *args, **kwargs):  # what filelock raises where flock is ENOSYS
        raise NotImplementedError("FileSystem does not appear to support flock")

    monkeypatch.setattr(filelock.FileLock, "acquire", unsupported)
    opts = {**OPTS, "path": str(store)}
    first = wb2.load("weatherbench2", tmp_path, **opts)
    assert first.spec.extra["stats_cache"] and Path(first.spec.extra["stats_cache"]).is_file()
    again = wb2.load("weatherbench2", tmp_path, **opts)
    assert again.spec.extra["stats_cache"] == first.spec.extra["stats_cache"]
    np.testing.assert_array_equal(again.climatology.mean, first.climatology.mean)


def build(root, store):
    torch.manual_seed(0)
    options = {**OPTS, "path": str(store)}
    data = ForecastDataModule("weatherbench2", root=str(root), batch_size=4, options=options)
    return tiny_svq(data.spec), data


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_ddp_fit_and_test_over_the_lazy_zarr_equal_one_process(store, tmp_path):
    """17 test windows in batches of 4: the ranks get 9 and 8 windows (3 and 2 batches)."""
    module, data = build(tmp_path / "parent", store)
    init = {k: v.clone() for k, v in module.state_dict().items()}
    # a data module that has not loaded yet, on a root without a cache: both ranks load it
    # (and compute or read the statistics cache) at the same time in setup
    fresh = ForecastDataModule(
        "weatherbench2", root=str(tmp_path / "ranks"), batch_size=4, options=data.options
    )
    fit = trainer(tmp_path / "fit", strategy="ddp_spawn", devices=2, max_epochs=1)
    fit.fit(module, fresh)
    trained = {k: v.clone() for k, v in module.state_dict().items()}  # back from rank 0
    assert any(not torch.equal(init[k], v) for k, v in trained.items())
    cache = tmp_path / "ranks" / CACHE_DIR
    assert len(list(cache.glob("*.json"))) == len(list(cache.glob("*.npy"))) == 1
    meta = json.loads(next(cache.glob("*.json")).read_text())
    np.testing.assert_allclose(meta["normalizer"]["mean"], data.spec.normalizer.mean, rtol=1e-12)

    def trained_module():  # a fresh module (no state of an earlier test) with those weights
        module, data = build(tmp_path / "parent", store)
        module.load_state_dict(trained)
        return module, data

    single = trainer(tmp_path / "one").test(*trained_module())[0]
    ddp = trainer(tmp_path / "two", strategy="ddp_spawn", devices=2)
    two_res = ddp.test(*trained_module())[0]
    assert_same_test_metrics(tmp_path / "one", single, tmp_path / "two", two_res)


def test_data_check_computes_the_cache_a_fit_then_reads(store, tmp_path, capsys, monkeypatch):
    """The recipe of training.md: `svqcast data check` before a multi-node job writes the
    cache that the ranks' load then finds (no statistics pass of their own)."""
    args = ["data", "check", "weatherbench2", "--root", str(tmp_path), "--option"]
    args += [f"path={store}", "--option", "variables=[2m_temperature, temperature]"]
    args += ["--option", "levels=[500, 850]", "--option", "train_years=[2001,2001]"]
    args += ["--option", "val_years=[2002,2002]", "--option", "test_years=[2003,2003]"]
    assert main(args) == 0 and "weatherbench2: ok" in capsys.readouterr().out
    assert len(list((tmp_path / CACHE_DIR).glob("*.climatology.npy"))) == 1
    data = ForecastDataModule(
        "weatherbench2", root=str(tmp_path), options={**OPTS, "path": str(store)}
    )
    passes = []
    real = wb2.streaming_stats
    monkeypatch.setattr(wb2, "streaming_stats", lambda *a, **k: passes.append(1) or real(*a, **k))
    assert data.spec.extra["stats_cache"].startswith(str(tmp_path / CACHE_DIR))
    assert passes == []
