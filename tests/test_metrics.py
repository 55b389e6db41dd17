"""Metrics against scikit-image and direct NumPy implementations of the documented formulas."""

from __future__ import annotations

import csv
import json
import sys
import types

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from svqcast.data.spec import Channel, DataSpec, Normalizer
from svqcast.errors import ConfigError
from svqcast.evaluation import metrics as M
from svqcast.evaluation.reports import format_table, write_report

T, H, W = 3, 8, 16
LAT = np.linspace(-78.75, 78.75, H)


def weather_spec(channels: int = 1, lat: np.ndarray | None = LAT) -> DataSpec:
    names = ["t2m"] if channels == 1 else ["u10", "v10", "r"][:channels]
    return DataSpec(
        name="test_weather",
        in_len=2,
        out_len=T,
        channels=tuple(Channel(n, "K") for n in names),
        height=H,
        width=W,
        convention="weather",
        normalizer=Normalizer(np.linspace(270.0, 280.0, channels), np.linspace(5.0, 9.0, channels)),
        lat=lat,
        lon=np.linspace(0, 360, W, endpoint=False),
    )


def video_spec(channels: int = 1, h: int = 16, w: int = 20) -> DataSpec:
    return DataSpec(
        name="test_video",
        in_len=2,
        out_len=T,
        channels=tuple(Channel(f"c{i}") for i in range(channels)),
        height=h,
        width=w,
        convention="video",
        normalizer=Normalizer.identity(channels),
        data_range=(0.0, 1.0),
    )


def smooth_frames(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Smooth images in [0, 1]: sums of low-frequency sinusoids."""
    h, w = shape[-2:]
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    out = np.zeros(shape)
    for _ in range(3):
        fy, fx, ph = rng.uniform(0.5, 2.0), rng.uniform(0.5, 2.0), rng.uniform(0, 6.3)
        amp = rng.uniform(0.2, 1.0, size=shape[:-2] + (1, 1))
        out += amp * np.sin(2 * np.pi * (fy * yy + fx * xx) + ph)
    return (out - out.min()) / (out.max() - out.min())


def video_pair(kind: str, channels: int, seed: int = 0, b: int = 2):
    rng = np.random.default_rng(seed)
    shape = (b, T, channels, 16, 20)
    truth = rng.random(shape) if kind == "random" else smooth_frames(rng, shape)
    pred = truth + 0.15 * rng.standard_normal(shape)  # overshoots [0, 1]: clipping matters
    return pred, truth


# ------------------------------------------------------------------ video vs scikit-image


@pytest.mark.parametrize("kind", ["random", "smooth"])
@pytest.mark.parametrize("channels", [1, 3])
def test_video_ssim_psnr_match_skimage(kind, channels):
    pred, truth = video_pair(kind, channels)
    m = M.ForecastMetrics(video_spec(channels))
    m.update(torch.tensor(pred, dtype=torch.float32), torch.tensor(truth, dtype=torch.float32))
    out = m.compute()
    p32, t32 = pred.astype(np.float32).astype(np.float64), truth.astype(np.float32)
    clipped = np.clip(p32, 0, 1)
    ref = {"ssim": [], "ssim_gauss": [], "ssim_openstl": [], "psnr": []}
    for b in range(pred.shape[0]):
        row = {k: [] for k in ref}
        for t in range(T):
            x, y = clipped[b, t], t32[b, t].astype(np.float64)
            row["ssim"].append(structural_similarity(x, y, data_range=1.0, channel_axis=0))
            row["ssim_openstl"].append(structural_similarity(x, y, data_range=2.0, channel_axis=0))
            row["ssim_gauss"].append(
                structural_similarity(
                    x,
                    y,
                    data_range=1.0,
                    channel_axis=0,
                    gaussian_weights=True,
                    sigma=1.5,
                    use_sample_covariance=False,
                )
            )
            row["psnr"].append(peak_signal_noise_ratio(y, x, data_range=1.0))
        for k in ref:
            ref[k].append(row[k])
    for k, v in ref.items():
        v = np.asarray(v)  # (B, T)
        assert float(out[k]) == pytest.approx(v.mean(), abs=1e-6), k
        for t in range(T):
            assert float(out[f"{k}/lead_{t + 1:02d}"]) == pytest.approx(v[:, t].mean(), abs=1e-6)


@pytest.mark.parametrize("gaussian", [False, True])
def test_ssim_frames_identity_and_functional_clip(gaussian):
    pred, truth = video_pair("smooth", 1)
    same = M.ssim_frames(truth, truth, gaussian=gaussian)
    assert torch.allclose(same, torch.ones_like(same))
    clipped = M.ssim_frames(np.clip(pred, 0, 1), truth, gaussian=gaussian).mean()
    assert float(M.ssim(pred, truth, gaussian=gaussian)) == pytest.approx(float(clipped))
    assert float(M.ssim(pred, truth, gaussian=gaussian)) < 1.0


def test_ssim_too_small_frames_raise():
    x = np.zeros((1, 1, 1, 6, 30))
    with pytest.raises(ConfigError, match="at least 7x7"):
        M.ssim_frames(x, x)


@pytest.mark.parametrize("side, names", [(6, ("psnr",)), (8, ("ssim", "ssim_openstl", "psnr"))])
def test_small_frames_drop_ssim_windows_that_do_not_fit(side, names):
    m = M.ForecastMetrics(video_spec(h=side, w=side))
    assert m.metric_names[2:] == tuple(n for n in M.VIDEO_METRICS[2:] if n in names)
    assert any("smaller than an SSIM window" in n for n in m.notes)
    x = torch.rand(2, T, 1, side, side)
    m.update(x, x)
    assert [k for k in m.compute() if "/" not in k] == ["mse", "mae", *names]


def test_psnr_perfect_frame_is_capped():
    x = np.random.default_rng(0).random((1, 2, 1, 8, 8))
    assert M.psnr_frames(x, x).tolist() == [[pytest.approx(100.0)] * 2]


@pytest.mark.parametrize("channels", [1, 2])
def test_video_mse_mae_are_per_frame_sums(channels):
    pred, truth = video_pair("random", channels)
    m = M.ForecastMetrics(video_spec(channels))
    m.update(torch.tensor(pred), torch.tensor(truth))
    out = m.compute()
    err = pred - truth  # unclipped, like OpenSTL
    per_frame_se = (err**2).sum(axis=(2, 3, 4))  # (B, T)
    per_frame_ae = np.abs(err).sum(axis=(2, 3, 4))
    assert float(out["mse"]) == pytest.approx(per_frame_se.mean(), rel=1e-10)
    assert float(out["mae"]) == pytest.approx(per_frame_ae.mean(), rel=1e-10)
    for t in range(T):
        assert float(out[f"mse/lead_{t + 1:02d}"]) == pytest.approx(per_frame_se[:, t].mean())
    assert float(M.mse(pred, truth, "video")) == pytest.approx(per_frame_se.mean())
    assert float(M.mae(pred, truth, "video")) == pytest.approx(per_frame_ae.mean())
    # Moving MNIST: per-frame sum = per-pixel mean * 64 * 64
    assert float(M.mse(pred, truth, "video")) == pytest.approx(
        float(M.mse(pred, truth, "weather")) * channels * 16 * 20
    )


def test_lpips_note_when_unavailable(monkeypatch):
    monkeypatch.setattr(M, "_LPIPS_CACHE", {})
    monkeypatch.setitem(sys.modules, "lpips", None)  # import lpips -> ImportError
    m = M.ForecastMetrics(video_spec())
    assert any(n.startswith("LPIPS unavailable:") for n in m.notes)
    assert "lpips" not in m.metric_names
    x = torch.rand(1, T, 1, 16, 20)
    m.update(x, x)
    assert "lpips" not in m.compute()


def test_lpips_plumbing_with_local_weights(monkeypatch, tmp_path):
    """A stand-in lpips network: checks the [-1, 1] mapping, RGB repeat and per-lead means."""

    class FakeLPIPS(torch.nn.Module):
        def __init__(self, net: str, verbose: bool) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

        def forward(self, x, y):
            assert x.shape[1] == 3 and x.min() >= -1 and x.max() <= 1
            return ((x - y).abs().mean(dim=(1, 2, 3)) * self.scale)[:, None, None, None]

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "alexnet-owt-0000.pth").write_bytes(b"x")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(M, "_LPIPS_CACHE", {})
    monkeypatch.setitem(sys.modules, "lpips", types.SimpleNamespace(LPIPS=FakeLPIPS))
    pred, truth = video_pair("smooth", 1)
    m = M.ForecastMetrics(video_spec())
    assert m.notes == [] and "lpips" in m.metric_names
    assert list(m.parameters()) == []  # the network stays out of checkpoints
    m.update(torch.tensor(pred), torch.tensor(truth))
    out = m.compute()
    ref = (2 * np.abs(np.clip(pred, 0, 1) - truth)).mean(axis=(2, 3, 4))  # (B, T)
    assert float(out["lpips"]) == pytest.approx(ref.mean(), rel=1e-5)
    assert float(out["lpips/lead_02"]) == pytest.approx(ref[:, 1].mean(), rel=1e-5)


# ------------------------------------------------------------------ weather vs NumPy


def weather_batch(channels: int, b: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (b, T, channels, H, W)
    y = rng.standard_normal(shape)
    pred = y + 0.5 * rng.standard_normal(shape) + 0.3
    clim = 0.5 * y + 0.5 * rng.standard_normal(shape)
    return pred, y, clim


def np_weights(lat):
    w = np.cos(np.deg2rad(lat))
    return w / w.mean()


def np_wrmse(p, y, lat):  # (B, T, C) WeatherBench per-map weighted RMSE
    w = np_weights(lat)[:, None]
    return np.sqrt((w * (p - y) ** 2).mean(axis=(-2, -1)))


def np_acc(p, y, c, lat):  # (B, T, C) the documented centred, weighted ACC, map by map
    w = np_weights(lat)[:, None] * np.ones(W)
    out = np.zeros(p.shape[:3])
    for idx in np.ndindex(*p.shape[:3]):
        a, b = p[idx] - c[idx], y[idx] - c[idx]
        a = a - (w * a).sum() / w.sum()
        b = b - (w * b).sum() / w.sum()
        out[idx] = (w * a * b).sum() / np.sqrt((w * a * a).sum() * (w * b * b).sum())
    return out


@pytest.mark.parametrize("channels", [1, 3])
def test_weather_metrics_match_numpy(channels):
    spec = weather_spec(channels)
    pred, y, clim = weather_batch(channels)
    m = M.ForecastMetrics(spec)
    m.update(torch.tensor(pred), torch.tensor(y), torch.tensor(clim))
    out = m.compute()
    phys = [spec.normalizer.denormalize(a) for a in (pred, y, clim)]
    p, t, c = phys
    se, ae = (p - t) ** 2, np.abs(p - t)
    wr, ac = np_wrmse(p, t, LAT), np_acc(p, t, c, LAT)
    assert float(out["mse"]) == pytest.approx(se.mean(), rel=1e-10)
    assert float(out["mae"]) == pytest.approx(ae.mean(), rel=1e-10)
    assert float(out["rmse"]) == pytest.approx(np.sqrt(se.mean()), rel=1e-10)
    assert float(out["wrmse"]) == pytest.approx(wr.mean(), rel=1e-10)
    assert float(out["acc"]) == pytest.approx(ac.mean(), rel=1e-10)
    for i in range(T):
        lead = f"lead_{i + 1:02d}"
        assert float(out[f"mse/{lead}"]) == pytest.approx(se[:, i].mean(), rel=1e-10)
        assert float(out[f"rmse/{lead}"]) == pytest.approx(np.sqrt(se[:, i].mean()), rel=1e-10)
        assert float(out[f"wrmse/{lead}"]) == pytest.approx(wr[:, i].mean(), rel=1e-10)
        assert float(out[f"acc/{lead}"]) == pytest.approx(ac[:, i].mean(), rel=1e-10)
    names = spec.channel_names
    if channels == 1:
        assert not any(k.startswith("mse/t2m") for k in out)
    for j, ch in enumerate(names if channels > 1 else []):
        assert float(out[f"mae/{ch}"]) == pytest.approx(ae[:, :, j].mean(), rel=1e-10)
        assert float(out[f"acc/{ch}"]) == pytest.approx(ac[:, :, j].mean(), rel=1e-10)
        assert float(out[f"mse/{ch}/lead_02"]) == pytest.approx(se[:, 1, j].mean(), rel=1e-10)
    # functional versions agree with the class on the same physical arrays
    assert float(M.rmse(p, t)) == pytest.approx(float(out["rmse"]))
    assert float(M.wrmse(p, t, LAT)) == pytest.approx(float(out["wrmse"]))
    assert float(M.acc(p, t, c, LAT)) == pytest.approx(float(out["acc"]))


def test_weather_rmse_is_global_not_mean_of_sample_rmse():
    pred, y, _ = weather_batch(1)
    pred[0] += 5.0  # one bad sample: sqrt(mean) > mean(sqrt)
    p, t = (weather_spec().normalizer.denormalize(a) for a in (pred, y))
    per_sample = np.sqrt(((p - t) ** 2).mean(axis=(1, 2, 3, 4))).mean()
    assert float(M.rmse(p, t)) > per_sample + 1e-3
    assert float(M.wrmse(p, t, lat=None)) < float(M.rmse(p, t))


def test_lat_weights_mean_one_and_favour_equator():
    w = M.lat_weights(LAT, H)
    assert float(w.mean()) == pytest.approx(1.0)
    assert float(w[H // 2]) > float(w[0])
    assert torch.equal(M.lat_weights(None, 5), torch.ones(5, dtype=torch.float64))
    with pytest.raises(ConfigError, match="rows"):
        M.lat_weights(LAT, H + 1)


def test_acc_perfect_and_climatology_forecasts():
    _, y, clim = weather_batch(1)
    assert float(M.acc(y, y, clim, LAT)) == pytest.approx(1.0)
    assert float(M.acc(clim, y, clim, LAT)) == 0.0  # zero anomaly: undefined, reported as 0


def test_weather_without_clim_has_no_acc_and_without_lat_notes():
    m = M.ForecastMetrics(weather_spec(lat=None))
    assert any("latitudes" in n for n in m.notes)
    pred, y, _ = weather_batch(1)
    m.update(torch.tensor(pred), torch.tensor(y))
    out = m.compute()
    assert "acc" not in out and "wrmse" in out


# ------------------------------------------------------------------ accumulation, DDP, API


@pytest.mark.parametrize("convention", ["weather", "video"])
def test_split_updates_and_merged_states_equal_one_update(convention):
    if convention == "weather":
        spec, (pred, y, clim) = weather_spec(2), weather_batch(2, b=5)
    else:
        spec, (pred, y), clim = video_spec(), video_pair("smooth", 1, b=5), None
    as_t = lambda a: None if a is None else torch.tensor(a, dtype=torch.float32)  # noqa: E731
    one = M.ForecastMetrics(spec)
    one.update(as_t(pred), as_t(y), as_t(clim))
    split = M.ForecastMetrics(spec)
    rank0, rank1 = M.ForecastMetrics(spec), M.ForecastMetrics(spec)
    for lo, hi, rank in ((0, 2, rank0), (2, 5, rank1)):
        part = [None if a is None else a[lo:hi] for a in (pred, y, clim)]
        split.update(*map(as_t, part))
        rank.update(*map(as_t, part))
    rank0.merge_state(rank1)  # what DDP's sum-reduction of the states does
    ref = one.compute()
    for other in (split.compute(), rank0.compute()):
        assert other.keys() == ref.keys()
        for k in ref:
            assert float(other[k]) == pytest.approx(float(ref[k]), rel=1e-9, abs=1e-12), k


def test_states_are_summed_across_processes():
    m = M.ForecastMetrics(weather_spec())
    assert m._reductions and all(
        fx is torch.sum or getattr(fx, "__name__", "") == "dim_zero_sum"
        for fx in m._reductions.values()
    )


def test_keys_prefix_and_lead_names():
    m = M.ForecastMetrics(video_spec(), prefix="test/")
    x = torch.rand(2, T, 1, 16, 20)
    m.update(x, x.clamp(0.1, 0.9))
    out = m.compute()
    assert all(k.startswith("test/") for k in out)
    assert {"test/mse", "test/ssim", "test/psnr/lead_03"} <= out.keys()
    assert len(M.per_lead(out, "ssim", prefix="test/")) == T
    assert M.lead_name(3, 12) == "lead_03" and M.lead_name(7, 120) == "lead_007"
    with pytest.raises(ConfigError, match="no per-lead"):
        M.per_lead(out, "acc", prefix="test/")


@pytest.mark.parametrize(
    "shape", [(2, T + 1, 1, H, W), (2, T, 2, H, W), (2, T, 1, H, W + 1), (T, 1, H, W)]
)
def test_bad_shapes_raise_config_error(shape):
    m = M.ForecastMetrics(weather_spec())
    x = torch.zeros(shape)
    with pytest.raises(ConfigError):
        m.update(x, x)


def test_out_len_override_and_bad_convention():
    m = M.ForecastMetrics(weather_spec(), out_len=5)
    x = torch.zeros(1, 5, 1, H, W)
    m.update(x, x + 1)
    assert len(M.per_lead(m.compute(), "mae")) == 5
    with pytest.raises(ConfigError, match="convention"):
        M.mse(x, x, convention="pixels")


def test_gradients_do_not_leak_into_states():
    m = M.ForecastMetrics(weather_spec())
    pred = torch.randn(2, T, 1, H, W, requires_grad=True)
    m.update(pred, torch.zeros_like(pred))
    assert not m.compute()["mse"].requires_grad


# ------------------------------------------------------------------ reports


ROWS = {
    "svq": {"mse": torch.tensor(1.018), "mae": 0.6512, "mse/lead_01": 0.5},
    "persistence": {"mse": 12.5, "mae": float("nan"), "acc": 0.5},
}


def test_format_table_markdown():
    md = format_table(ROWS, ["mse", "mae", "acc"])
    lines = md.strip().splitlines()
    assert lines[0] == "| model | mse | mae | acc |"
    assert lines[2].startswith("| svq | 1.018 | 0.6512 | - |")
    assert lines[3] == "| persistence | 12.5 | nan | 0.5000 |"


def test_write_report_round_trip(tmp_path):
    paths = write_report(ROWS, tmp_path / "sub" / "report", notes=["LPIPS unavailable: x"])
    data = json.loads(paths["json"].read_text())
    assert data["rows"]["svq"]["mse"] == pytest.approx(1.018)
    assert data["rows"]["persistence"]["mae"] is None and data["notes"] == ["LPIPS unavailable: x"]
    with paths["csv"].open() as f:
        table = list(csv.DictReader(f))
    assert [r["model"] for r in table] == ["svq", "persistence"]
    assert float(table[0]["mse/lead_01"]) == 0.5 and table[1]["mae"] == ""
    md = paths["md"].read_text()
    assert "| model | mse | mae | acc |" in md and "mse/lead_01" not in md
    assert "- LPIPS unavailable: x" in md
    assert sorted(p.name for p in paths["md"].parent.iterdir()) == [
        "report.csv",
        "report.json",
        "report.md",
    ]  # no temp files left behind
    with pytest.raises(ConfigError):
        write_report({}, tmp_path / "empty")


def _ddp_data(convention: str):
    if convention == "weather":
        return weather_spec(2), weather_batch(2, b=5)
    return video_spec(), (*video_pair("smooth", 1, b=5), None)


def _ddp_results(convention: str, rank: int | None) -> dict[str, float]:
    """compute() after updating with rank 0's or rank 1's uneven shard, or everything (None)."""
    spec, data = _ddp_data(convention)
    lo, hi = {None: (0, 5), 0: (0, 2), 1: (2, 5)}[rank]
    m = M.ForecastMetrics(spec)
    m.update(*(None if a is None else torch.tensor(a[lo:hi]) for a in data))
    return {k: float(v) for k, v in m.compute().items()}


def _ddp_worker(rank: int, port: int, queue) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        queue.put((rank, {c: _ddp_results(c, rank) for c in ("weather", "video")}))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_sync_equals_one_process():
    """A real 2-rank process group: each rank's compute() equals the 1-process result."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("fork")  # CPU only: fork skips re-importing torch in the workers
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ddp_worker, args=(r, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for convention in ("weather", "video"):
        ref = _ddp_results(convention, None)
        for rank in (0, 1):
            got = results[rank][convention]
            assert got.keys() == ref.keys()
            for k, v in ref.items():
                assert got[k] == pytest.approx(v, rel=1e-12, abs=1e-14), (convention, k)


# ------------------------------------------------- multi-variable: the official convention

MV_UNITS = {"r": "%", "t": "K", "u": "m s-1", "v": "m s-1"}


def mv_spec(units: dict[str, str] = MV_UNITS, levels=(150, 500, 850)) -> DataSpec:
    """WeatherBench-M's layout: variables in order, each at its levels (variable-major)."""
    chans = tuple(Channel(f"{v}_{lv}", u, v, lv) for v, u in units.items() for lv in levels)
    c = len(chans)
    return DataSpec(
        name="test_mv", in_len=2, out_len=T, channels=chans, height=H, width=W,
        convention="weather",
        normalizer=Normalizer(np.linspace(-5, 280, c), np.linspace(0.5, 30, c)),
        lat=LAT, lon=np.linspace(0, 360, W, endpoint=False),
    )  # fmt: skip


def official_mv(p: np.ndarray, y: np.ndarray, names: list[str]) -> dict[str, float]:
    """The official code's multi-variable metrics, written out in NumPy: the channels split
    into len(names) equal consecutive groups; each group's per-pixel MSE, MAE and RMSE, then
    the mean over groups."""
    width = p.shape[2] // len(names)
    out: dict[str, float] = {}
    for i, v in enumerate(names):
        e = p[:, :, i * width : (i + 1) * width] - y[:, :, i * width : (i + 1) * width]
        out[f"mse/{v}"], out[f"mae/{v}"] = np.mean(e**2), np.mean(np.abs(e))
        out[f"rmse/{v}"] = np.sqrt(np.mean(e**2))
    for m in ("mse", "mae", "rmse"):
        out[m] = float(np.mean([out[f"{m}/{v}"] for v in names]))
    return out


def _mv_results(spec: DataSpec, seed: int = 3):
    rng = np.random.default_rng(seed)
    c = len(spec.channels)
    y = rng.standard_normal((5, T, c, H, W))
    pred = y + rng.standard_normal((5, T, c, H, W)) * np.linspace(0.2, 2.0, c)[:, None, None]
    m = M.ForecastMetrics(spec)
    m.update(torch.from_numpy(pred[:2]), torch.from_numpy(y[:2]))
    m.update(torch.from_numpy(pred[2:]), torch.from_numpy(y[2:]))
    std, mean = spec.normalizer.std[:, None, None], spec.normalizer.mean[:, None, None]
    phys_p, phys_y = pred * std + mean, y * std + mean
    return {k: float(v) for k, v in m.compute().items()}, phys_p, phys_y, (pred - y), m


def test_multi_variable_weather_reports_the_official_per_variable_means():
    spec = mv_spec()
    res, p, y, err_norm, m = _mv_results(spec)
    assert M.variable_channels(spec.channels) == {
        v: [3 * i, 3 * i + 1, 3 * i + 2] for i, v in enumerate(MV_UNITS)
    }
    want = official_mv(p, y, list(MV_UNITS))
    for key, value in want.items():  # mse, mae, rmse and mse/r ... rmse/v, physical units
        assert res[key] == pytest.approx(value, rel=1e-10), key
    for k in range(T):  # per lead: the official formula on that lead alone
        lead = official_mv(p[:, k : k + 1], y[:, k : k + 1], list(MV_UNITS))
        assert res[f"rmse/lead_0{k + 1}"] == pytest.approx(lead["rmse"], rel=1e-10)
        assert res[f"rmse/t/lead_0{k + 1}"] == pytest.approx(lead["rmse/t"], rel=1e-10)
    # the pooled numbers stay: normalised (units differ), per channel physical
    assert res["rmse_norm"] == pytest.approx(np.sqrt(np.mean(err_norm**2)), rel=1e-10)
    assert res["rmse/t_500"] == pytest.approx(np.sqrt(np.mean((p - y)[:, :, 4] ** 2)), rel=1e-10)
    assert "rmse_global" not in res  # a pooled physical RMSE would add K to m s-1
    assert m.metric_names[:3] == ("mse", "mae", "rmse")
    assert any("official convention" in note for note in m.notes)
    mean, per_var = M.rmse_per_variable(p, y, M.variable_channels(spec.channels))
    assert float(mean) == pytest.approx(want["rmse"], rel=1e-10)
    assert float(per_var["u"]) == pytest.approx(want["rmse/u"], rel=1e-10)


def test_multi_variable_same_units_keeps_the_pooled_rmse_as_rmse_global():
    spec = mv_spec({"u": "m s-1", "v": "m s-1"}, levels=(500, 850))
    res, p, y, _, m = _mv_results(spec)
    want = official_mv(p, y, ["u", "v"])
    assert res["rmse"] == pytest.approx(want["rmse"], rel=1e-10)
    assert res["rmse_global"] == pytest.approx(np.sqrt(np.mean((p - y) ** 2)), rel=1e-10)
    assert res["rmse"] <= res["rmse_global"]  # mean of roots <= root of the mean
    assert res["mse"] == pytest.approx(np.mean((p - y) ** 2), rel=1e-10)  # equal groups
    assert "rmse_global" in m.metric_names and "rmse_norm" not in res


@pytest.mark.parametrize(
    "channels",
    [
        (Channel("u10", "m s-1", "u10"), Channel("v10", "m s-1", "v10")),  # uv10: pooled
        (Channel("a", "K"), Channel("b", "K")),  # no variables named
        (Channel("t_500", "K", "t", 500), Channel("t_850", "K", "t", 850)),  # one variable
    ],
)
def test_pooled_rmse_without_several_variables_with_levels(channels):
    assert M.variable_channels(channels) is None
