"""Forecast metrics under the two conventions of the benchmarks, per lead time, DDP-safe.

Two conventions (``DataSpec.convention``), both in PHYSICAL units (predictions are
de-normalised with ``spec.normalizer`` first):

- ``"weather"`` (OpenSTL's WeatherBench protocol, plus WeatherBench's own scores):
  ``mse``/``mae`` per-pixel means; ``rmse = sqrt(mse)`` of the global MSE; ``wrmse`` the
  WeatherBench latitude-weighted RMSE (mean over samples of the per-sample weighted RMSE);
  ``acc`` the latitude-weighted, centred anomaly correlation against the climatology.
- ``"video"`` (OpenSTL's video and TaxiBJ protocol): ``mse``/``mae`` per-frame SUMS over
  C*H*W averaged over samples and frames; ``ssim`` (uniform 7x7 window, sample covariance,
  data range 1, as scikit-image's defaults), ``ssim_gauss`` (Wang et al.: Gaussian sigma 1.5,
  population covariance), ``ssim_openstl`` (the uniform SSIM with data range 2, which is what
  OpenSTL's published tables computed with scikit-image < 0.20 on float frames), ``psnr``
  per frame with the data range as peak; SSIM and PSNR on predictions clipped to the range.

:class:`ForecastMetrics` keeps every quantity as sums (``dist_reduce_fx="sum"``), so under
DDP ``compute()`` gives exactly the single-process result over the whole test set. Keys:
``"<metric>"``, ``"<metric>/lead_01"`` ... (1-based lead = output frame index), and for
multi-channel weather ``"<metric>/<channel>"`` and ``"<metric>/<channel>/lead_01"``.

Units are never mixed in one number: when the channels have different units (K and m s-1,
say), the overall and per-lead ``mse``, ``mae``, ``rmse`` and ``wrmse`` are computed on the
NORMALISED errors (error / train-split std of its channel, dimensionless) under the keys
``mse_norm``, ``mae_norm``, ``rmse_norm``, ``wrmse_norm``; the per-channel keys stay in
physical units (video data gets per-channel ``mse`` and ``mae`` then). ``acc``, ``ssim``,
``psnr`` and ``lpips`` have no units and keep their names.

Multi-variable weather data with levels (WeatherBench-M: r, t, u, v at three levels each;
see :func:`variable_channels`) also gets the official code's convention, in which the paper
reports WeatherBench-M: ``mse``, ``mae`` and ``rmse`` are the MEANS OVER VARIABLES of each
variable's value (over all its levels) in its own units, ``<metric>/<variable>`` each
variable's value, and ``rmse_global`` the root of the pooled MSE (same units only; with
different units the pooled one is ``rmse_norm``, as above). With equal channel counts per
variable, ``mse`` and ``mae`` equal the pooled means; ``rmse`` is at most ``rmse_global``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import Metric

from svqcast.data.spec import DataSpec
from svqcast.errors import ConfigError

WEATHER_METRICS: tuple[str, ...] = ("mse", "mae", "rmse", "wrmse", "acc")
VIDEO_METRICS: tuple[str, ...] = ("mse", "mae", "ssim", "ssim_gauss", "ssim_openstl", "psnr")

SSIM_WIN = 7  # uniform window (scikit-image default)
SSIM_GAUSS_SIGMA = 1.5  # Wang et al. 2004; 11 taps (scipy truncate 3.5)
SSIM_GAUSS_WIN = 11
SSIM_K1, SSIM_K2 = 0.01, 0.03
PSNR_MIN_MSE = 1e-10  # a perfect frame scores 100 dB (peak 1) instead of inf
OPENSTL_SSIM_RANGE = 2.0  # scikit-image < 0.20 took float images as spanning [-1, 1]

Array = torch.Tensor | np.ndarray


# ----------------------------------------------------------------------------- helpers


def lead_name(lead: int, out_len: int) -> str:
    """Stable per-lead key suffix: ``lead_01`` ... (1-based, at least two digits)."""
    return f"lead_{lead:0{max(2, len(str(out_len)))}d}"


def per_lead(results: Mapping[str, Any], metric: str, prefix: str = "") -> list[float]:
    """The per-lead curve ``[metric/lead_01, metric/lead_02, ...]`` from a results dict."""
    head = f"{prefix}{metric}/lead_"
    leads = {int(k[len(head) :]): v for k, v in results.items() if k.startswith(head)}
    if not leads:
        raise ConfigError(f"no per-lead values for metric {metric!r} (prefix {prefix!r})")
    return [float(leads[i]) for i in sorted(leads)]


def same_units(units: Sequence[str]) -> bool:
    """True when every entry names the same unit: equal strings, or spellings that pint
    converts into each other with factor 1 ("m s-1", "m/s"; :mod:`svqcast.data.gridded.units`)."""
    from svqcast.data.gridded.units import conversion

    distinct = list(dict.fromkeys(str(u).strip() for u in units))
    if "" in distinct and len(distinct) > 1:  # a channel without units next to one with
        return False
    return all(conversion(distinct[0], u) == (1.0, 0.0) for u in distinct[1:])


def variable_channels(channels: Sequence[Any]) -> dict[str, list[int]] | None:
    """Channel indices per variable when the official per-variable convention applies, else
    None: every channel names its ``variable``, there are several variables and at least one
    of them spans several channels (levels), as WeatherBench-M (r, t, u, v x 3 levels) and
    -HMV. One channel per variable (u10 + v10) keeps the pooled convention, as OpenSTL does.
    """
    groups: dict[str, list[int]] = {}
    for i, ch in enumerate(channels):
        if getattr(ch, "variable", None) is None:
            return None
        groups.setdefault(str(ch.variable), []).append(i)
    if len(groups) < 2 or all(len(idx) == 1 for idx in groups.values()):
        return None
    return groups


def _tensor(x: Array, name: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.ndim != 5:
        raise ConfigError(f"{name} must be (B, T, C, H, W), got shape {tuple(t.shape)}")
    return t.detach()


def _work_dtype(device: torch.device) -> torch.dtype:
    # float64 for exact sums; MPS has no float64.
    return torch.float32 if device.type == "mps" else torch.float64


def _pair(pred: Array, target: Array) -> tuple[torch.Tensor, torch.Tensor]:
    p, t = _tensor(pred, "pred"), _tensor(target, "target")
    if p.shape != t.shape:
        raise ConfigError(f"pred {tuple(p.shape)} and target {tuple(t.shape)} differ in shape")
    dtype = _work_dtype(p.device)
    return p.to(dtype), t.to(device=p.device, dtype=dtype)


def lat_weights(lat: Array | None, height: int, device=None, dtype=torch.float64) -> torch.Tensor:
    """cos(latitude) weights normalised to mean 1 over the H rows; uniform when lat is None."""
    if lat is None:
        return torch.ones(height, device=device, dtype=dtype)
    # np.array copies: lat may be a read-only array, which torch warns about
    lat = torch.as_tensor(np.array(lat, dtype=np.float64), device=device).to(dtype)
    if lat.shape != (height,):
        raise ConfigError(f"spec.lat has shape {tuple(lat.shape)}, expected ({height},) rows")
    w = torch.cos(torch.deg2rad(lat)).clamp_min(0)
    if not torch.all(torch.isfinite(w)) or w.sum() <= 0:
        raise ConfigError("latitudes must be finite degrees in [-90, 90] with one not at a pole")
    return w / w.mean()


# ------------------------------------------------------------------ per-sample kernels


def _weighted_rmse(err: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(B, T, C) sqrt of the lat-weighted spatial mean of err**2; err is (B, T, C, H, W)."""
    return torch.sqrt((err.square() * w[:, None]).mean(dim=(-2, -1)))


def _weighted_acc(
    pred: torch.Tensor, target: torch.Tensor, clim: torch.Tensor, w: torch.Tensor
) -> torch.Tensor:
    """(B, T, C) centred, lat-weighted anomaly correlation of each map (0 where undefined)."""
    w = w[:, None] / w.sum()  # (H, 1): weights of the spatial mean, summing to 1 per column
    w = w / pred.shape[-1]
    a, b = pred - clim, target - clim
    a = a - (w * a).sum(dim=(-2, -1), keepdim=True)
    b = b - (w * b).sum(dim=(-2, -1), keepdim=True)
    num = (w * a * b).sum(dim=(-2, -1))
    den = torch.sqrt((w * a.square()).sum(dim=(-2, -1)) * (w * b.square()).sum(dim=(-2, -1)))
    return torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), 0.0)


def _gauss_taps(dtype, device) -> torch.Tensor:
    r = (SSIM_GAUSS_WIN - 1) // 2
    x = torch.arange(-r, r + 1, dtype=dtype, device=device)
    g = torch.exp(-0.5 * (x / SSIM_GAUSS_SIGMA) ** 2)
    return g / g.sum()


def _filter(x: torch.Tensor, gaussian: bool) -> torch.Tensor:
    """Weighted local means over the valid region of (N, 1, H, W) maps."""
    if not gaussian:
        return F.avg_pool2d(x, SSIM_WIN, stride=1)
    g = _gauss_taps(x.dtype, x.device)
    x = F.conv2d(x, g.view(1, 1, -1, 1))
    return F.conv2d(x, g.view(1, 1, 1, -1))


def _ssim_from_moments(mx, my, vx, vy, vxy, data_range: float) -> torch.Tensor:
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx.square() + my.square() + c1) * (vx + vy + c2))
    return s.mean(dim=(-2, -1))


def _ssim_moments(pred: torch.Tensor, target: torch.Tensor, gaussian: bool):
    """Local means, variances and covariance of (B, T, C, H, W) frames, per channel map."""
    b, t, c, h, w = pred.shape
    win = SSIM_GAUSS_WIN if gaussian else SSIM_WIN
    if h < win or w < win:
        raise ConfigError(f"SSIM needs frames of at least {win}x{win}, got {h}x{w}")
    x = pred.reshape(b * t * c, 1, h, w)
    y = target.reshape(b * t * c, 1, h, w)
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (N, 5, H, W)
    n = stack.shape[0]
    m = _filter(stack.reshape(n * 5, 1, h, w), gaussian).reshape(n, 5, h - win + 1, w - win + 1)
    mx, my = m[:, 0], m[:, 1]
    cov = 1.0
    if not gaussian:  # scikit-image's use_sample_covariance=True for the uniform window
        cov = win * win / (win * win - 1)
    vx = cov * (m[:, 2] - mx.square())
    vy = cov * (m[:, 3] - my.square())
    vxy = cov * (m[:, 4] - mx * my)
    return (b, t, c), (mx, my, vx, vy, vxy)


def ssim_frames(
    pred: Array, target: Array, data_range: float = 1.0, gaussian: bool = False
) -> torch.Tensor:
    """(B, T) SSIM of each frame, averaged over channels; no clipping (see :func:`ssim`).

    Uniform: scikit-image's ``structural_similarity`` defaults (7x7, sample covariance).
    Gaussian: sigma 1.5, 11 taps, population covariance (Wang et al. 2004). Both average the
    SSIM map over the region whose windows stay inside the frame, like scikit-image.
    """
    pred, target = _pair(pred, target)
    (b, t, c), mom = _ssim_moments(pred, target, gaussian)
    return _ssim_from_moments(*mom, data_range).reshape(b, t, c).mean(-1)


def psnr_frames(pred: Array, target: Array, data_range: float = 1.0) -> torch.Tensor:
    """(B, T) PSNR of each frame in dB with ``data_range`` as peak; no clipping."""
    pred, target = _pair(pred, target)
    mse = (pred - target).square().mean(dim=(-3, -2, -1)).clamp_min(PSNR_MIN_MSE)
    return 10.0 * torch.log10(data_range**2 / mse)


# ------------------------------------------------------------------ functional metrics


def _check_convention(convention: str) -> None:
    if convention not in ("weather", "video"):
        raise ConfigError(f"unknown metric convention {convention!r}; use 'weather' or 'video'")


def mse(pred: Array, target: Array, convention: str = "weather") -> torch.Tensor:
    """MSE: per-pixel mean (weather) or per-frame sum over C*H*W, mean over frames (video)."""
    _check_convention(convention)
    pred, target = _pair(pred, target)
    per_pixel = (pred - target).square().mean()
    return per_pixel if convention == "weather" else per_pixel * math.prod(pred.shape[-3:])


def mae(pred: Array, target: Array, convention: str = "weather") -> torch.Tensor:
    """MAE: per-pixel mean (weather) or per-frame sum over C*H*W, mean over frames (video)."""
    _check_convention(convention)
    pred, target = _pair(pred, target)
    per_pixel = (pred - target).abs().mean()
    return per_pixel if convention == "weather" else per_pixel * math.prod(pred.shape[-3:])


def rmse(pred: Array, target: Array, convention: str = "weather") -> torch.Tensor:
    """sqrt of the global :func:`mse` (not the mean of per-sample RMSEs)."""
    return torch.sqrt(mse(pred, target, convention))


def rmse_per_variable(pred: Array, target: Array, groups: Mapping[str, Sequence[int]]):
    """The official multi-variable RMSE: each variable's RMSE over its channels (levels),
    samples, leads and pixels, then the mean over variables. Returns (mean, {var: rmse})."""
    pred, target = _pair(pred, target)
    sq = (pred - target).square()
    per_var = {v: sq[:, :, list(idx)].mean().sqrt() for v, idx in groups.items()}
    return torch.stack(list(per_var.values())).mean(), per_var


def wrmse(pred: Array, target: Array, lat: Array | None = None) -> torch.Tensor:
    """WeatherBench RMSE: mean over samples, leads, channels of sqrt(cos-lat weighted MSE)."""
    pred, target = _pair(pred, target)
    w = lat_weights(lat, pred.shape[-2], pred.device, pred.dtype)
    return _weighted_rmse(pred - target, w).mean()


def acc(pred: Array, target: Array, clim: Array, lat: Array | None = None) -> torch.Tensor:
    """Anomaly correlation vs ``clim`` (lat-weighted, centred), mean over maps."""
    pred, target = _pair(pred, target)
    clim = _tensor(clim, "clim").to(device=pred.device, dtype=pred.dtype)
    if clim.shape != pred.shape:
        raise ConfigError(f"clim {tuple(clim.shape)} must be shaped like pred {pred.shape}")
    w = lat_weights(lat, pred.shape[-2], pred.device, pred.dtype)
    return _weighted_acc(pred, target, clim, w).mean()


def ssim(
    pred: Array,
    target: Array,
    value_range: tuple[float, float] = (0.0, 1.0),
    gaussian: bool = False,
) -> torch.Tensor:
    """Video SSIM: prediction clipped to ``value_range``, mean over frames of frame SSIM."""
    lo, hi = value_range
    pred = _tensor(pred, "pred").clamp(lo, hi)
    return ssim_frames(pred, target, hi - lo, gaussian).mean()


def psnr(pred: Array, target: Array, value_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """Video PSNR: prediction clipped to ``value_range``, mean over frames of frame PSNR."""
    lo, hi = value_range
    pred = _tensor(pred, "pred").clamp(lo, hi)
    return psnr_frames(pred, target, hi - lo).mean()


# ------------------------------------------------------------------ LPIPS (optional)

_LPIPS_CACHE: dict[str, Any] = {}


def lpips_status() -> tuple[Any | None, str]:
    """The LPIPS (AlexNet) network when usable offline, else None and the reason.

    Needs the optional ``lpips`` package and AlexNet weights already in the torch hub cache:
    svqcast never downloads anything at run time.
    """
    if "net" in _LPIPS_CACHE:
        return _LPIPS_CACHE["net"], _LPIPS_CACHE["note"]
    net, note = None, ""
    try:
        import lpips  # optional extra, never installed by svqcast
    except ImportError:
        note = "LPIPS unavailable: the optional 'lpips' package is not installed"
    else:
        ckpt_dir = Path(torch.hub.get_dir()) / "checkpoints"
        if not list(ckpt_dir.glob("alexnet-*.pth")):
            note = f"LPIPS unavailable: no AlexNet weights (alexnet-*.pth) in {ckpt_dir}"
        else:
            try:
                net = lpips.LPIPS(net="alex", verbose=False).eval()
                for p in net.parameters():
                    p.requires_grad_(False)
            except Exception as exc:  # a broken optional extra must not stop an evaluation
                net, note = None, f"LPIPS unavailable: {type(exc).__name__}: {exc}"
    _LPIPS_CACHE.update(net=net, note=note)
    return net, note


def lpips_frames(net: Any, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, T) LPIPS of frames in [0, 1] (mapped to [-1, 1]; 1 channel repeated to RGB)."""
    b, t, c = pred.shape[:3]
    if c not in (1, 3):
        raise ConfigError(f"LPIPS needs 1 or 3 channels per frame, got {c}")
    x = pred.reshape(b * t, c, *pred.shape[-2:]).float() * 2 - 1
    y = target.reshape(b * t, c, *target.shape[-2:]).float() * 2 - 1
    if c == 1:
        x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
    net = net.to(x.device)
    with torch.no_grad():
        d = net(x, y)
    return d.reshape(b, t).to(pred.dtype)


# ------------------------------------------------------------------ the torchmetrics class


class ForecastMetrics(Metric):
    """Every metric of ``spec.convention``, overall, per lead and (weather) per channel.

    ``update(pred, target, clim=None)`` takes (B, T, C, H, W) tensors in NORMALISED units
    (the dataset's); ``clim`` (shaped like target, normalised) enables ``acc``. ``compute()``
    returns a flat ``dict[str, Tensor]``: see the module docstring for the key names; each
    key starts with ``prefix``. ``notes`` lists caveats for reports (LPIPS unavailable,
    no latitudes). All states are sums, so DDP gives the 1-process result.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(self, spec: DataSpec, out_len: int | None = None, prefix: str = "") -> None:
        super().__init__()
        if spec.convention not in ("weather", "video"):
            raise ConfigError(
                f"dataset {spec.name!r} has convention {spec.convention!r}; "
                "use 'weather' or 'video' in its DataSpec"
            )
        self.spec = spec
        self.out_len = int(out_len if out_len is not None else spec.out_len)
        if self.out_len < 1:
            raise ConfigError(f"out_len must be >= 1, got {self.out_len}")
        self.prefix = prefix
        self.channels = len(spec.channels)
        self.notes: list[str] = []
        units = [c.units for c in spec.channels]
        self.mixed_units = not same_units(units)
        if self.mixed_units:
            shown = ", ".join(repr(u) for u in dict.fromkeys(units))
            self.notes.append(
                f"channels have different units ({shown}): the overall and per-lead "
                "mse_norm, mae_norm, rmse_norm, wrmse_norm are in normalised units (error / "
                "train-split std of each channel); per-channel values are in physical units"
            )
        # the official per-variable convention (weather only): see variable_channels
        groups = variable_channels(spec.channels) if spec.convention == "weather" else None
        self.variables = groups
        if groups is not None:
            self.notes.append(
                "mse, mae, rmse: the mean over variables of each variable's value over its "
                f"levels, in its own units ({', '.join(groups)}), the official convention of "
                "the paper's multi-variable tables; "
                + ("rmse_norm" if self.mixed_units else "rmse_global")
                + " is the root of the pooled MSE"
            )
        lo, hi = spec.data_range if spec.data_range is not None else (0.0, 1.0)
        self.value_range = (float(lo), float(hi))
        t, c = self.out_len, self.channels

        def zeros(*shape: int) -> torch.Tensor:
            return torch.zeros(*shape, dtype=torch.float64)

        self.add_state("n", zeros(()), dist_reduce_fx="sum")
        self.add_state("se", zeros(t, c), dist_reduce_fx="sum")  # sum of squared errors
        self.add_state("ae", zeros(t, c), dist_reduce_fx="sum")  # sum of absolute errors
        # Kept out of the module tree: LPIPS weights must not enter checkpoints or .to() moves.
        self.__dict__["_lpips"] = None
        if spec.convention == "weather":
            if spec.lat is None:
                self.notes.append("no latitudes in the DataSpec: wrmse and acc use equal weights")
            lat_weights(spec.lat, spec.height)  # validate early
            self.add_state("wrmse_sum", zeros(t, c), dist_reduce_fx="sum")
            self.add_state("acc_sum", zeros(t, c), dist_reduce_fx="sum")
            self.add_state("n_acc", zeros(()), dist_reduce_fx="sum")
        else:
            side = min(spec.height, spec.width)
            self._video_names = tuple(
                name
                for name in VIDEO_METRICS[2:]
                if not name.startswith("ssim")
                or side >= (SSIM_GAUSS_WIN if name == "ssim_gauss" else SSIM_WIN)
            )
            if len(self._video_names) < len(VIDEO_METRICS) - 2:
                self.notes.append(
                    f"frames of {spec.height}x{spec.width} are smaller than an SSIM window: "
                    f"only {', '.join(self._video_names)} reported"
                )
            for name in self._video_names:
                self.add_state(f"{name}_sum", zeros(t), dist_reduce_fx="sum")
            self.__dict__["_lpips"], note = lpips_status()
            if self._lpips is None:
                self.notes.append(note)
            else:
                self.add_state("lpips_sum", zeros(t), dist_reduce_fx="sum")

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Top-level metric names this instance reports (``acc`` needs clim in updates)."""
        norm = "_norm" if self.mixed_units else ""  # see the module docstring
        if self.spec.convention == "weather":
            names = tuple(m if m == "acc" else m + norm for m in WEATHER_METRICS)
            if self.variables is not None:  # the official per-variable means come first
                pooled = () if self.mixed_units else ("rmse_global",)
                names = ("mse", "mae", "rmse", *pooled) + tuple(
                    n for n in names if n not in ("mse", "mae", "rmse")
                )
            return names
        lpips = ("lpips",) if self._lpips is not None else ()
        return tuple(m + norm for m in VIDEO_METRICS[:2]) + self._video_names + lpips

    def _check(self, name: str, x: torch.Tensor) -> None:
        want = (self.out_len, self.channels, self.spec.height, self.spec.width)
        if tuple(x.shape[1:]) != want:
            raise ConfigError(
                f"{name} has shape {tuple(x.shape)} but the metrics were built for "
                f"(B, {', '.join(map(str, want))}) from DataSpec {self.spec.name!r}"
            )

    def update(
        self, pred: torch.Tensor, target: torch.Tensor, clim: torch.Tensor | None = None
    ) -> None:
        pred, target = _pair(pred, target)
        self._check("pred", pred)
        pred = self.spec.normalizer.denormalize(pred)  # physical units
        target = self.spec.normalizer.denormalize(target)
        err = pred - target  # (B, T, C, H, W)
        b = pred.shape[0]
        self.n += b
        self.se += err.square().sum(dim=(0, -2, -1)).to(self.se)
        self.ae += err.abs().sum(dim=(0, -2, -1)).to(self.ae)
        if self.spec.convention == "weather":
            w = lat_weights(self.spec.lat, self.spec.height, pred.device, pred.dtype)
            self.wrmse_sum += _weighted_rmse(err, w).sum(0).to(self.wrmse_sum)
            if clim is not None:
                clim = _tensor(clim, "clim").to(device=pred.device, dtype=pred.dtype)
                self._check("clim", clim)
                clim = self.spec.normalizer.denormalize(clim)
                self.acc_sum += _weighted_acc(pred, target, clim, w).sum(0).to(self.acc_sum)
                self.n_acc += b
            return
        lo, hi = self.value_range
        clipped = pred.clamp(lo, hi)
        if "ssim" in self._video_names:  # one set of uniform moments, two data ranges
            (bb, t, c), mom = _ssim_moments(clipped, target, gaussian=False)
            for name, rng in (("ssim", hi - lo), ("ssim_openstl", OPENSTL_SSIM_RANGE * (hi - lo))):
                s = _ssim_from_moments(*mom, rng).reshape(bb, t, c).mean(-1)
                getattr(self, f"{name}_sum").add_(s.sum(0).to(self.se))
        if "ssim_gauss" in self._video_names:
            self.ssim_gauss_sum += ssim_frames(clipped, target, hi - lo, True).sum(0).to(self.se)
        self.psnr_sum += psnr_frames(clipped, target, hi - lo).sum(0).to(self.se)
        if self._lpips is not None:
            unit = ((clipped - lo) / (hi - lo), (target - lo) / (hi - lo))
            self.lpips_sum += lpips_frames(self._lpips, *unit).sum(0).to(self.se)

    def _per_variable(self, out: dict[str, torch.Tensor], put, n_pix) -> None:
        """The official convention: each variable's mse/mae/rmse over its levels in its own
        units (``<metric>/<variable>``, skipped where a channel has that name: the same
        number), and ``mse``/``mae``/``rmse`` their mean over variables, overall and per lead.
        """
        t_len = self.out_len
        for metric, s in (("mse", self.se), ("mae", self.ae), ("rmse", self.se)):
            f = torch.sqrt if metric == "rmse" else torch.clone
            parts = [s[:, idx] / n_pix for idx in (self.variables or {}).values()]  # (T, c)
            overall = [f(p.mean()) for p in parts]
            leads = [f(p.mean(1)) for p in parts]
            for var, o, lead in zip(self.variables or {}, overall, leads, strict=True):
                key = f"{self.prefix}{metric}/{var}"
                if key not in out:  # else a channel of that name holds the same number
                    out[key] = o
                    out.update({f"{key}/{lead_name(i + 1, t_len)}": x for i, x in enumerate(lead)})
            put(metric, torch.stack(overall).mean(), torch.stack(leads).mean(0))

    def compute(self) -> dict[str, torch.Tensor]:
        t_len, names = self.out_len, self.spec.channel_names
        out: dict[str, torch.Tensor] = {}

        def put(metric: str, overall, leads) -> None:
            out[f"{self.prefix}{metric}"] = overall
            for i in range(t_len):
                out[f"{self.prefix}{metric}/{lead_name(i + 1, t_len)}"] = leads[i]

        def per_channel(metric: str, chans, chan_leads) -> None:
            if len(names) < 2:
                return
            for j, ch in enumerate(names):
                out[f"{self.prefix}{metric}/{ch}"] = chans[j]
                for i in range(t_len):
                    out[f"{self.prefix}{metric}/{ch}/{lead_name(i + 1, t_len)}"] = chan_leads[i, j]

        # headline sums: physical, or divided by std**power per channel when units differ
        suffix = "_norm" if self.mixed_units else ""
        inv_std = torch.as_tensor(1.0 / self.spec.normalizer.std, dtype=self.se.dtype)

        def head(s: torch.Tensor, power: int) -> torch.Tensor:
            return s * inv_std.to(s.device) ** power if self.mixed_units else s

        n = self.n
        pix = self.spec.height * self.spec.width
        if self.spec.convention == "weather":
            for metric, s, power in (("mse", self.se, 2), ("mae", self.ae, 1)):
                h = head(s, power)
                put(metric + suffix, h.sum() / (n * pix * h.numel()),
                    h.sum(1) / (n * pix * h.shape[1]))  # fmt: skip
                per_channel(metric, s.sum(0) / (n * pix * t_len), s / (n * pix))
            m, mh = self.se / (n * pix), head(self.se, 2) / (n * pix)  # (T, C) per-pixel MSE
            pooled = "rmse" + suffix if self.variables is None or suffix else "rmse_global"
            put(pooled, mh.mean().sqrt(), mh.mean(1).sqrt())
            per_channel("rmse", m.mean(0).sqrt(), m.sqrt())
            if self.variables is not None:
                self._per_variable(out, put, n * pix)
            r, rh = self.wrmse_sum / n, head(self.wrmse_sum, 1) / n
            put("wrmse" + suffix, rh.mean(), rh.mean(1))
            per_channel("wrmse", r.mean(0), r)
            if self.n_acc > 0:
                a = self.acc_sum / self.n_acc
                put("acc", a.mean(), a.mean(1))
                per_channel("acc", a.mean(0), a)
            return out
        # video: per-frame sums over C*H*W, mean over samples and frames
        for metric, s, power in (("mse", self.se, 2), ("mae", self.ae, 1)):
            lead = head(s, power).sum(1) / n
            put(metric + suffix, lead.mean(), lead)
            if self.mixed_units:  # per-frame sums over H*W of each channel, physical
                per_channel(metric, s.sum(0) / (n * t_len), s / n)
        for metric in self.metric_names[2:]:
            lead = getattr(self, f"{metric}_sum") / n
            put(metric, lead.mean(), lead)
        return out


__all__ = [
    "VIDEO_METRICS",
    "WEATHER_METRICS",
    "ForecastMetrics",
    "acc",
    "lat_weights",
    "lead_name",
    "lpips_status",
    "mae",
    "mse",
    "per_lead",
    "psnr",
    "psnr_frames",
    "rmse",
    "rmse_per_variable",
    "same_units",
    "ssim",
    "ssim_frames",
    "variable_channels",
    "wrmse",
]
