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

import numpy as np
import pytest
from test_weatherbench2 import OPTS, make_store

from svqcast.data.datasets import weatherbench2 as wb2

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


class Killed(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs."""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("wb2ranks") / "wb2.zarr"
    make_store(path)
    return path


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
    cache_dir = tmp_path / wb2.CACHE_DIR
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
    cache_dir = tmp_path / wb2.CACHE_DIR
    assert not list(cache_dir.glob("*.npy")) and not list(cache_dir.glob(".*.tmp"))
    first = wb2.load("weatherbench2", tmp_path, **opts)
    clim_file = next(cache_dir.glob("*.climatology.npy"))
    for broken in (b"", clim_file.read_bytes()[:200]):  # empty, or cut short by a crash
        clim_file.write_bytes(broken)
        again = wb2.load("weatherbench2", tmp_path, **opts)  # recomputed, not an error
        np.testing.assert_array_equal(again.climatology.mean, first.climatology.mean)
    assert np.load(clim_file).shape == first.climatology.mean.shape  # and saved again whole
