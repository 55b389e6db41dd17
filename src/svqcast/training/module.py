"""The training engine: :class:`ForecastModule`, a LightningModule.

``ForecastModule`` holds a SimVP forecaster built from its keyword arguments plus the
dataset's :class:`~svqcast.data.spec.DataSpec` (input shape, output length). It trains on
NORMALISED targets (loss ``mae`` / ``mse`` / ``huber`` plus ``aux_weight`` times the
quantizer's auxiliary loss), validates with the same loss and physical-unit metrics, and at
test time evaluates the model AND the persistence and climatology baselines on the same
batches (:class:`~svqcast.evaluation.baselines.BaselineEvaluator`), plus quantizer
diagnostics; the report and plots in the run folder are written by the
:class:`~svqcast.training.callbacks.TestArtifacts` callback it attaches.

Exact resume needs the resumable loaders of :mod:`svqcast.data.loaders` and the global RNG
states, which this module saves in ``on_save_checkpoint`` and restores when training starts
(:mod:`svqcast.training.checkpoints`).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from svqcast.data.gridded.identity import check_same_data
from svqcast.data.spec import DataSpec
from svqcast.errors import ConfigError, SvqcastError, choices_error
from svqcast.evaluation import baselines
from svqcast.training.callbacks import TestArtifacts
from svqcast.training.checkpoints import check_state_dict, rng_states, set_rng_states

LOSSES = ("mae", "mse", "huber")
OPTIMIZERS = ("adam", "adamw")
SCHEDULERS = ("cosine", "onecycle", "none")
INTERVALS = ("epoch", "step")


class NonFiniteLossError(SvqcastError, FloatingPointError):
    """Training produced a NaN/inf loss; the last good checkpoint is kept."""


# --------------------------------------------------------------------------- schedules


WARMUP_SCHEDULES = ("timm", "stretched")


def cosine_factor(
    t: float,
    total: float,
    warmup: float,
    lr: float,
    warmup_lr: float,
    min_lr: float,
    stretch: bool = True,
) -> float:
    """lr(t) / lr: linear warm-up from ``warmup_lr`` over ``warmup``, then cosine to ``min_lr``.

    ``stretch=False`` is timm's ``CosineLRScheduler`` (the official code's): the cosine runs
    over ``[0, total]`` from ``t = 0``, the warm-up only replacing its start, so the first
    step after the warm-up is already below ``lr``. ``stretch=True`` fits the whole cosine
    into ``[warmup, total]`` (``lr`` right after the warm-up). Without warm-up both agree.
    """
    if warmup > 0 and t < warmup:
        return (warmup_lr + (lr - warmup_lr) * t / warmup) / lr
    start = warmup if stretch else 0.0
    span = max(total - start, 1.0)
    progress = min(max((t - start) / span, 0.0), 1.0)
    return (min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))) / lr


def differential_divergence(
    pred: torch.Tensor, target: torch.Tensor, tau: float = 0.1, eps: float = 1e-12
) -> torch.Tensor:
    """TAU's differential divergence regularisation of (B, T, ...) forecasts: the frame-to-frame
    changes of each sample, flattened, turned into distributions by a softmax at temperature
    ``tau``; the KL-type divergence of the forecast's from the target's, averaged over all
    entries. Zero for two frames or fewer (OpenSTL's TAU method; weight ``alpha`` 0.1 there)."""
    b, t = pred.shape[:2]
    if t <= 2:
        return pred.new_zeros(())
    dp = (pred[:, 1:] - pred[:, :-1]).reshape(b, t - 1, -1)
    dt = (target[:, 1:] - target[:, :-1]).reshape(b, t - 1, -1)
    p = F.softmax(dp / tau, dim=-1)
    q = F.softmax(dt / tau, dim=-1)
    return (p * torch.log(p / (q + eps) + eps)).mean()


# --------------------------------------------------------------------------- the module


def _find_quantizers(model: nn.Module) -> list[nn.Module]:
    from svqcast.quantizers.base import Identity, Quantizer

    return [m for m in model.modules() if isinstance(m, Quantizer) and not isinstance(m, Identity)]


class ForecastModule(L.LightningModule):
    """SimVP (+ quantizer) trained on normalised targets; see the module docstring.

    Model arguments (``hid_S`` ... ``model_options``) go to
    :class:`svqcast.models.simvp.SimVP`; ``in_shape`` and ``out_len`` come from the data's
    DataSpec, which is stored in the hyper-parameters so that a checkpoint alone rebuilds
    the model (``ForecastModule.load_from_checkpoint(path)``).

    ``ddr_weight`` > 0 adds that times TAU's :func:`differential_divergence` to the training
    loss (not to the validation loss).

    Optimisation: ``optimizer`` adam | adamw, ``lr``, ``weight_decay`` (0 as in the paper).
    ``scheduler`` cosine (linear warm-up from ``warmup_lr`` over ``warmup_epochs``, then
    cosine to ``min_lr``; stepped per epoch as in the paper, or per step with
    ``scheduler_interval="step"``; ``warmup_schedule`` stretched: the cosine fitted into the
    epochs after the warm-up | timm: the official code's timm schedule, whose cosine counts
    from step 0, as the presets use; see :func:`cosine_factor`) | onecycle (per step, max
    lr = ``lr``) | none.
    ``ema_decay`` (e.g. 0.999) keeps an exponential moving average of the weights, updated
    after every optimiser step and used for validation, test and predict.

    Test: the model and the baselines are scored on the same batches; ``diagnostics``
    (default on) also collects the quantizer's statistics (``quantizer_stats``, e.g. SVQ's
    code usage; costly for SVQ) and the SVQ weight sample of the plots; ``plots`` (default
    on) makes the :class:`~svqcast.training.callbacks.TestArtifacts` callback, attached by
    :meth:`configure_callbacks`, write the plots beside the report.
    """

    def __init__(
        self,
        hid_S: int = 16,
        hid_T: int = 256,
        N_S: int = 4,
        N_T: int = 4,
        translator: str = "gsta",
        quantizer: str = "none",
        quantizer_options: dict[str, Any] | None = None,
        quantizer_position: str = "pre",
        noise: float = 0.0,
        mlp_ratio: float = 8.0,
        drop: float = 0.0,
        drop_path: float = 0.0,
        model_options: dict[str, Any] | None = None,
        loss: str = "mae",
        aux_weight: float = 1.0,
        ddr_weight: float = 0.0,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str = "cosine",
        scheduler_interval: str = "epoch",
        warmup_epochs: float = 0.0,
        warmup_schedule: str = "stretched",
        warmup_lr: float = 1e-5,
        min_lr: float = 1e-6,
        ema_decay: float | None = None,
        channels_last: bool = False,
        plots: bool = True,
        diagnostics: bool = True,
        spec: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        for value, choices, kind in (
            (loss, LOSSES, "loss"),
            (optimizer, OPTIMIZERS, "optimizer"),
            (scheduler, SCHEDULERS, "scheduler"),
            (scheduler_interval, INTERVALS, "scheduler_interval"),
            (warmup_schedule, WARMUP_SCHEDULES, "warmup_schedule"),
        ):
            if value not in choices:
                raise choices_error(kind, value, choices)
        if lr <= 0 or weight_decay < 0 or aux_weight < 0 or ddr_weight < 0:
            raise ConfigError(
                f"model: lr must be > 0, weight_decay, aux_weight and ddr_weight >= 0 "
                f"(got lr={lr}, weight_decay={weight_decay}, aux_weight={aux_weight}, "
                f"ddr_weight={ddr_weight})"
            )
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ConfigError(f"model.ema_decay must be in (0, 1) or null, got {ema_decay}")
        self.save_hyperparameters()
        self.model: nn.Module | None = None
        self.ema: nn.Module | None = None
        self.spec: DataSpec | None = None
        self.test_results: dict[str, dict[str, float]] = {}
        self.quantizer_stats: dict[str, float] = {}
        self._pending_rng: dict[str, Any] | None = None
        if spec is not None:
            self.build(DataSpec.from_dict(spec))

    # ---- building

    def build(self, spec: DataSpec) -> None:
        """Build the forecaster and metrics for ``spec`` (done once; a second spec, e.g. the
        data given to test or resume a checkpoint, must have the same identity: windows,
        channels, units, grid and coordinates, step, calendar, normalisation)."""
        if self.model is not None and self.spec is not None:
            check_same_data(self.spec, spec)
            return
        from svqcast.models.simvp import SimVP

        h = self.hparams
        try:
            self.model = SimVP(
                in_shape=tuple(spec.in_shape),
                out_len=spec.out_len,
                hid_S=h.hid_S,
                hid_T=h.hid_T,
                N_S=h.N_S,
                N_T=h.N_T,
                translator=h.translator,
                quantizer=h.quantizer,
                quantizer_options=dict(h.quantizer_options or {}),
                quantizer_position=h.quantizer_position,
                noise=h.noise,
                mlp_ratio=h.mlp_ratio,
                drop=h.drop,
                drop_path=h.drop_path,
                **dict(h.model_options or {}),
            )
        except TypeError as exc:
            raise ConfigError(f"bad model option: {exc}") from None
        if h.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if h.ema_decay is not None:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(
                self.model, multi_avg_fn=get_ema_multi_avg_fn(h.ema_decay), use_buffers=True
            )
            self.ema.requires_grad_(False)
        self.spec = spec
        self.hparams["spec"] = spec.to_dict()
        self._build_metrics(spec)

    def _build_metrics(self, spec: DataSpec) -> None:
        from svqcast.evaluation.metrics import ForecastMetrics

        self.val_metrics = ForecastMetrics(spec, spec.out_len)
        self.test_metrics = ForecastMetrics(spec, spec.out_len)  # the model's
        self.test_baselines = baselines.BaselineEvaluator(spec, spec.out_len)

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        spec = getattr(dm, "spec", None)
        if spec is None and self.model is None:
            raise ConfigError(
                "ForecastModule needs the data's DataSpec: pass a datamodule with a .spec "
                "or build the module from a checkpoint"
            )
        if spec is not None and self.spec is not None and callable(getattr(dm, "align_to", None)):
            # the checkpoint's grid in another lat/lon order, or its data in other units:
            # map the data to the checkpoint's layout and units
            done = self.spec.first_difference(spec) is not None and dm.align_to(self.spec)
            if done:
                print(f"svqcast: {done}", file=sys.stderr)
                spec = dm.spec
        if spec is not None:
            self.build(spec)

    @property
    def net(self) -> nn.Module:
        """The network used for evaluation: the EMA copy when enabled, else the model."""
        if self.model is None:
            raise ConfigError("the model is not built yet: call build(spec) or fit with data")
        return self.ema.module if self.ema is not None else self.model

    def forward(self, x: torch.Tensor):  # (B, T_in, C, H, W) -> ForecastOutput
        return self.net(x)

    def quantizers(self) -> list[nn.Module]:
        """The quantizers of :attr:`net` in module order (the pass-through Identity left out)."""
        return _find_quantizers(self.net)

    # ---- losses

    def _loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred, target = pred.float(), target.float()
        if self.hparams.loss == "mae":
            loss = F.l1_loss(pred, target)
        elif self.hparams.loss == "mse":
            loss = F.mse_loss(pred, target)
        else:
            loss = F.huber_loss(pred, target, delta=1.0)
        ddr = self.hparams.ddr_weight
        if ddr and self.training:  # a training term only, as in TAU (validation: the loss)
            loss = loss + ddr * differential_divergence(pred, target)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch[0], batch[1]
        out = self.model(x)
        fit = self._loss(out.prediction, y)
        loss = fit + self.hparams.aux_weight * out.aux_loss.float()
        finite = bool(torch.isfinite(loss))
        if self.trainer.world_size > 1:  # every rank must stop together
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        if not finite:
            ckpt = self._last_checkpoint_hint()
            raise NonFiniteLossError(
                f"non-finite training loss at step {self.global_step} (epoch "
                f"{self.current_epoch}, batch {batch_idx}); {ckpt}lower model.lr or enable "
                "trainer.gradient_clip_val"
            )
        bs = x.shape[0]
        self.log("train_loss", loss, prog_bar=True, batch_size=bs)
        if self.hparams.aux_weight and out.aux_loss.requires_grad:
            self.log("train_aux_loss", out.aux_loss.float(), batch_size=bs)
        return loss

    def _last_checkpoint_hint(self) -> str:
        for cb in self.trainer.checkpoint_callbacks:
            last = getattr(cb, "last_model_path", "") or getattr(cb, "best_model_path", "")
            if last:
                return f"the last good checkpoint is {last}; "
        return ""

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch[0], batch[1]
        out = self.net(x)
        loss = self._loss(out.prediction, y) + self.hparams.aux_weight * out.aux_loss.float()
        self.log("val_loss", loss, prog_bar=True, sync_dist=True, batch_size=x.shape[0])
        self.val_metrics.update(out.prediction.float(), y.float())

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()
        self.val_metrics.reset()
        scalars = {f"val_{k}": v for k, v in values.items() if "/" not in k}
        self.log_dict(scalars, prog_bar=False)

    # ---- test

    def configure_callbacks(self) -> list[L.Callback]:
        """:class:`~svqcast.training.callbacks.TestArtifacts` (the test report and plots),
        unless the trainer already has one (e.g. from an earlier fit or test)."""
        have = self._trainer is not None and any(
            isinstance(cb, TestArtifacts) for cb in self.trainer.callbacks
        )
        return [] if have else [TestArtifacts()]

    def on_test_epoch_start(self) -> None:
        self.test_metrics.reset()
        self.test_baselines.reset()
        self._stat_sums: dict[str, torch.Tensor] = {}
        for q in self.quantizers():
            q.collect_stats = bool(self.hparams.diagnostics)

    def test_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        """Scores the model and the baselines on one batch; returns the forecasts by name
        (the model's label first), for callbacks such as TestArtifacts."""
        x, y = batch[0], batch[1]
        clim = batch[2].float() if len(batch) > 2 else None
        out = self.net(x)
        pred = out.prediction.float()
        y = y.float()
        self.test_metrics.update(pred, y, clim)
        forecasts = {self.model_label(): pred, **self.test_baselines.update(x.float(), y, clim)}
        # quantizer diagnostics: sum per batch here, mean over batches (all ranks) at the end
        one = torch.ones((), device=pred.device)
        for key, value in out.stats.items():
            total = self._stat_sums.setdefault(key, torch.zeros(2, device=pred.device))
            total += torch.stack([value.detach().float().to(pred.device), one])
        return forecasts

    def model_label(self) -> str:
        q = self.hparams.quantizer
        return "simvp" if q in (None, "none") else f"simvp+{q}"

    @property
    def test_notes(self) -> list[str]:
        """The test metrics' own caveats (no latitudes, LPIPS unavailable, ...), once each."""
        return list(dict.fromkeys([*self.test_metrics.notes, *self.test_baselines.notes]))

    def on_test_epoch_end(self) -> None:
        for q in self.quantizers():
            q.collect_stats = False
        model = {k: float(v) for k, v in self.test_metrics.compute().items()}
        full = {self.model_label(): model, **self.test_baselines.compute()}
        for name, values in full.items():
            prefix = "test_" if values is model else f"test_{name}_"
            self.log_dict({prefix + k: v for k, v in values.items() if "/" not in k})
        stats: dict[str, float] = {}
        for key in sorted(self._stat_sums):
            total = self.trainer.strategy.reduce(self._stat_sums[key], reduce_op="sum")
            stats[key] = float(total[0] / total[1].clamp_min(1))
        if stats:
            self.log_dict({f"test_quantizer_{k}": v for k, v in stats.items()})
        self.quantizer_stats = stats
        self.test_results = full

    # ---- predict

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        """De-normalised forecast (B, T_out, C, H, W) in physical units."""
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        pred = self.net(x).prediction.float()
        return self.spec.normalizer.denormalize(pred)

    # ---- optimisation

    def configure_optimizers(self):
        from svqcast.quantizers.base import optimizer_param_groups

        h = self.hparams
        # a quantizer may ask for its own groups (SVQ's lr_scaled / warmup parametrisations);
        # otherwise one group of every trainable parameter
        groups = optimizer_param_groups(self.model, h.lr)
        params = groups if len(groups) > 1 else groups[0]["params"]
        cls = torch.optim.Adam if h.optimizer == "adam" else torch.optim.AdamW
        opt = cls(params, lr=h.lr, weight_decay=h.weight_decay)
        if h.scheduler == "none":
            return opt
        if h.scheduler == "onecycle":
            total = self._schedule_steps()[1]
            max_lr = [g["lr"] for g in opt.param_groups] if len(groups) > 1 else h.lr
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        if h.scheduler_interval == "epoch":
            total = float(self.trainer.max_epochs if self.trainer.max_epochs > 0 else 1)
            warmup = float(h.warmup_epochs)
        else:
            per_epoch, total = self._schedule_steps()
            # warm-up counts epochs of the train loader, also when max_steps ends the fit
            warmup = float(h.warmup_epochs) * per_epoch

        stretch = h.warmup_schedule == "stretched"

        def factor(t: int) -> float:
            return cosine_factor(t, total, warmup, h.lr, h.warmup_lr, h.min_lr, stretch=stretch)

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": sched, "interval": h.scheduler_interval},
        }

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        """The optimiser step, with the warm-up of the parameter groups that declare one
        (SVQ's ``warmup`` parametrisation) applied on top of the scheduled learning rate."""
        inner = getattr(optimizer, "optimizer", optimizer)
        if not any(g.get("warmup_steps") for g in inner.param_groups):
            return super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        from svqcast.quantizers.base import apply_group_warmup

        with apply_group_warmup(inner, self.global_step):
            return super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)

    def _schedule_steps(self) -> tuple[int, int]:
        """(optimiser steps per epoch, optimiser steps of the whole fit), for per-step schedules.

        Not ``trainer.estimated_stepping_batches``: that sets up the fit loop's train loader
        before a checkpoint is restored, so the loader's mid-epoch state would never be
        loaded and a resumed run would repeat batches.
        """
        t = self.trainer
        dm = t.datamodule
        loader = dm.train_dataloader() if dm is not None else t.fit_loop._data_source.dataloader()
        per_epoch = len(loader)
        limit = t.limit_train_batches
        if isinstance(limit, int):
            per_epoch = min(per_epoch, limit)
        elif limit is not None:
            per_epoch = int(per_epoch * limit)
        per_epoch = max(math.ceil(per_epoch / t.accumulate_grad_batches), 1)
        epochs = t.max_epochs if t.max_epochs is not None and t.max_epochs > 0 else None
        total = per_epoch * epochs if epochs is not None else None
        if t.max_steps is not None and t.max_steps > 0:
            total = t.max_steps if total is None else min(total, t.max_steps)
        if total is None:
            raise ConfigError("per-step schedules need trainer.max_epochs or trainer.max_steps")
        return per_epoch, int(total)

    # ---- checkpoints: RNG states, compatibility checks

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["svqcast_rng_states"] = rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._pending_rng = checkpoint.get("svqcast_rng_states")
        saved = (checkpoint.get("hyper_parameters") or {}).get("spec")
        if saved is not None and self.model is None:
            self.build(DataSpec.from_dict(saved))
        if saved is not None and self.spec is not None:
            check_same_data(DataSpec.from_dict(saved), self.spec)
        check_state_dict(self, checkpoint.get("state_dict", {}))

    def on_train_start(self) -> None:
        if self._pending_rng is not None:
            set_rng_states(self._pending_rng)
            self._pending_rng = None
