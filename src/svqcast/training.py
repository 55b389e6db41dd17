"""The training engine: :class:`ForecastModule` (a LightningModule) and resumable data loading.

``ForecastModule`` holds a SimVP forecaster built from its keyword arguments plus the
dataset's :class:`~svqcast.data.spec.DataSpec` (input shape, output length). It trains on
NORMALISED targets (loss ``mae`` / ``mse`` / ``huber`` plus ``aux_weight`` times the
quantizer's auxiliary loss), validates with the same loss and physical-unit metrics, and at
test time evaluates the model AND the persistence and climatology baselines on the same
batches, plus quantizer diagnostics, writing a report and plots into the run folder.

Exact resume (mid-epoch included) needs three things Lightning does not do by itself:
a sampler whose order depends only on ``(seed, epoch)`` (:class:`EpochSampler`), a data
loader that remembers how many batches of the epoch it has handed out and skips them after a
restart (:class:`ResumableLoader`, picked up by Lightning through ``state_dict`` /
``load_state_dict``), and the global RNG states saved in the checkpoint (done here in
``on_save_checkpoint`` / ``on_load_checkpoint``). :class:`EngineDataModule` wraps the
datasets of :class:`~svqcast.data.datamodule.ForecastDataModule` into such loaders; its
evaluation loaders shard the data across DDP ranks WITHOUT padding, so test metrics summed
over ranks count every test sample exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from svqcast.data.spec import DataSpec
from svqcast.errors import CheckpointError, ConfigError, SvqcastError, choices_error

LOSSES = ("mae", "mse", "huber")
OPTIMIZERS = ("adam", "adamw")
SCHEDULERS = ("cosine", "onecycle", "none")
INTERVALS = ("epoch", "step")
# what the test report and demo table show, in this order (absent keys are skipped)
SUMMARY_METRICS = ("mae", "mse", "rmse", "wrmse", "acc", "ssim", "ssim_openstl", "psnr")
WEIGHT_SAMPLE_SIZE = 200_000  # code weights kept for the SVQ histogram


class NonFiniteLossError(SvqcastError, FloatingPointError):
    """Training produced a NaN/inf loss; the last good checkpoint is kept."""


# --------------------------------------------------------------------------- data loading


def _dist_info() -> tuple[int, int]:
    """(world size, rank) of the default process group, (1, 0) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


class EpochSampler(Sampler[int]):
    """Indices whose order depends only on ``(seed, epoch)``; sharded across DDP ranks.

    ``pad=True`` (training) repeats a few indices so that every rank gets the same number of
    samples (DDP needs equal step counts); ``pad=False`` (evaluation) gives rank r the indices
    r, r + world, ... so that every sample is seen exactly once over all ranks.
    ``resume_at(epoch, n)`` drops the first ``n`` indices of that epoch's next iteration only
    (mid-epoch resume); it is checked when iteration starts, after Lightning's set_epoch.
    """

    def __init__(
        self,
        length: int,
        *,
        shuffle: bool,
        seed: int = 0,
        pad: bool = True,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        world, this_rank = _dist_info()
        self.length = length
        self.shuffle = shuffle
        self.seed = seed
        self.pad = pad
        self.num_replicas = world if num_replicas is None else num_replicas
        self.rank = this_rank if rank is None else rank
        self.epoch = 0
        self.skipped = 0  # indices dropped by the current/last iteration
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, indices: int) -> None:
        self._resume = (epoch, indices)

    def _indices(self) -> list[int]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.length, generator=gen).tolist()
        else:
            order = list(range(self.length))
        if self.pad and self.num_replicas > 1:
            total = math.ceil(self.length / self.num_replicas) * self.num_replicas
            order = order + order[: total - self.length]
        return order[self.rank :: self.num_replicas]

    def __len__(self) -> int:
        if self.pad:
            return math.ceil(self.length / self.num_replicas)
        return len(range(self.rank, self.length, self.num_replicas))

    def __iter__(self) -> Iterator[int]:
        self.skipped = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            self.skipped = self._resume[1]
        self._resume = None
        return iter(self._indices()[self.skipped :])


class ResumableLoader(DataLoader):
    """A DataLoader over an :class:`EpochSampler` that Lightning can checkpoint mid-epoch.

    ``state_dict()`` records the epoch and how many batches of it were handed out;
    ``load_state_dict()`` makes the next iteration of that epoch skip exactly those
    batches. Lightning calls both (a loader with these two methods counts as stateful) and
    sets the epoch via ``sampler.set_epoch``. The length stays the full epoch length, as
    Lightning expects. The loader draws its worker seeds from its own generator, seeded by
    (seed, epoch), so it never consumes the global RNG (which would shift the model's random
    numbers after a resume).
    """

    def __init__(self, dataset: Dataset, sampler: EpochSampler, **kwargs: Any) -> None:
        super().__init__(dataset, sampler=sampler, generator=torch.Generator(), **kwargs)
        self._counted = 0

    def __iter__(self) -> Iterator[Any]:
        sampler: EpochSampler = self.sampler  # type: ignore[assignment]
        sampler.skipped = 0
        self._counted = 0
        self.generator.manual_seed(sampler.seed * 1_000_003 + sampler.epoch)
        # datasets that draw fresh samples every epoch (Moving MNIST's generated training
        # sequences) follow the sampler's epoch, so a resumed run sees the same samples
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(sampler.epoch)
        return _Counting(self, super().__iter__())  # the real iterator is created now

    def state_dict(self) -> dict[str, int]:
        sampler: EpochSampler = self.sampler  # type: ignore[assignment]
        served = sampler.skipped // (self.batch_size or 1) + self._counted
        return {"epoch": sampler.epoch, "batches": served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler: EpochSampler = self.sampler  # type: ignore[assignment]
        epoch, batches = int(state["epoch"]), int(state["batches"])
        if batches >= len(self):  # saved on the epoch's last batch: the next epoch is due
            sampler.set_epoch(epoch + 1)
            return
        sampler.set_epoch(epoch)
        sampler.resume_at(epoch, batches * (self.batch_size or 1))


class _Counting:
    """Iterator wrapper counting the batches a :class:`ResumableLoader` has handed out."""

    def __init__(self, loader: ResumableLoader, it: Iterator[Any]) -> None:
        self.loader, self.it = loader, it

    def __iter__(self) -> _Counting:
        return self

    def __next__(self) -> Any:
        batch = next(self.it)
        self.loader._counted += 1
        return batch


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    train: bool,
    seed: int = 0,
    num_workers: int = 0,
    **kwargs: Any,
) -> ResumableLoader:
    """A resumable loader: shuffled and padded across ranks for training, in order otherwise."""
    sampler = EpochSampler(len(dataset), shuffle=train, seed=seed, pad=train)
    return ResumableLoader(
        dataset,
        sampler,
        batch_size=batch_size,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        **kwargs,
    )


def _engine_datamodule_class() -> type:
    from svqcast.data.datamodule import ForecastDataModule

    class EngineDataModule(ForecastDataModule):
        """ForecastDataModule whose loaders are resumable and shard without padding.

        Same arguments as :class:`~svqcast.data.datamodule.ForecastDataModule`; only the
        loaders differ. Use with ``Trainer(use_distributed_sampler=False)``.
        """

        def _rewrap(self, loader: DataLoader, train: bool) -> ResumableLoader:
            return make_loader(
                loader.dataset,
                loader.batch_size or self.hparams.get("batch_size", 1),
                train=train,
                seed=int(self.hparams.get("seed", 0)),
                num_workers=loader.num_workers,
                collate_fn=loader.collate_fn,
                pin_memory=loader.pin_memory,
            )

        def train_dataloader(self) -> ResumableLoader:
            return self._rewrap(super().train_dataloader(), train=True)

        def val_dataloader(self) -> ResumableLoader:
            return self._rewrap(super().val_dataloader(), train=False)

        def test_dataloader(self) -> ResumableLoader:
            return self._rewrap(super().test_dataloader(), train=False)

        def predict_dataloader(self) -> ResumableLoader:
            return self._rewrap(super().predict_dataloader(), train=False)

    return EngineDataModule


def __getattr__(name: str) -> Any:
    # EngineDataModule subclasses the data package's module: built on first access so that
    # importing this file does not import every dataset dependency.
    if name == "EngineDataModule":
        cls = _engine_datamodule_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


# --------------------------------------------------------------------------- schedules


def cosine_factor(
    t: float, total: float, warmup: float, lr: float, warmup_lr: float, min_lr: float
) -> float:
    """lr(t) / lr: linear warm-up from ``warmup_lr`` over ``warmup``, then cosine to ``min_lr``."""
    if warmup > 0 and t < warmup:
        return (warmup_lr + (lr - warmup_lr) * t / warmup) / lr
    span = max(total - warmup, 1.0)
    progress = min(max((t - warmup) / span, 0.0), 1.0)
    return (min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))) / lr


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

    Optimisation: ``optimizer`` adam | adamw, ``lr``, ``weight_decay`` (0 as in the paper).
    ``scheduler`` cosine (linear warm-up from ``warmup_lr`` over ``warmup_epochs``, then
    cosine to ``min_lr``; stepped per epoch as in the paper, or per step with
    ``scheduler_interval="step"``) | onecycle (per step, max lr = ``lr``) | none.
    ``ema_decay`` (e.g. 0.999) keeps an exponential moving average of the weights, updated
    after every optimiser step and used for validation, test and predict.
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
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str = "cosine",
        scheduler_interval: str = "epoch",
        warmup_epochs: float = 0.0,
        warmup_lr: float = 1e-5,
        min_lr: float = 1e-6,
        ema_decay: float | None = None,
        channels_last: bool = False,
        plots: bool = True,
        spec: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        for value, choices, kind in (
            (loss, LOSSES, "loss"),
            (optimizer, OPTIMIZERS, "optimizer"),
            (scheduler, SCHEDULERS, "scheduler"),
            (scheduler_interval, INTERVALS, "scheduler_interval"),
        ):
            if value not in choices:
                raise choices_error(kind, value, choices)
        if lr <= 0 or weight_decay < 0 or aux_weight < 0:
            raise ConfigError(
                f"model: lr must be > 0, weight_decay and aux_weight >= 0 "
                f"(got lr={lr}, weight_decay={weight_decay}, aux_weight={aux_weight})"
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
        """Build the forecaster and metrics for ``spec`` (done once; a second spec must match)."""
        if self.model is not None and self.spec is not None:
            if (tuple(spec.in_shape), spec.out_len) != (
                tuple(self.spec.in_shape),
                self.spec.out_len,
            ):
                raise CheckpointError(
                    f"the model was built for data of shape {tuple(self.spec.in_shape)} -> "
                    f"{self.spec.out_len} frames but the data gives {tuple(spec.in_shape)} -> "
                    f"{spec.out_len}; use the dataset options of the checkpoint's run"
                )
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
        from svqcast.metrics import ForecastMetrics

        self.val_metrics = ForecastMetrics(spec, spec.out_len)
        self.test_metrics = nn.ModuleDict(
            {
                name: ForecastMetrics(spec, spec.out_len)
                for name in ("model", "persistence", "climatology")
            }
        )

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        spec = getattr(dm, "spec", None)
        if spec is None and self.model is None:
            raise ConfigError(
                "ForecastModule needs the data's DataSpec: pass a datamodule with a .spec "
                "or build the module from a checkpoint"
            )
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

    # ---- losses

    def _loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred, target = pred.float(), target.float()
        if self.hparams.loss == "mae":
            return F.l1_loss(pred, target)
        if self.hparams.loss == "mse":
            return F.mse_loss(pred, target)
        return F.huber_loss(pred, target, delta=1.0)

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

    def on_test_epoch_start(self) -> None:
        for metric in self.test_metrics.values():
            metric.reset()
        self._stat_sums: dict[str, torch.Tensor] = {}
        self._first_batch: dict[str, Any] | None = None
        self._weight_sample: torch.Tensor | None = None
        for q in _find_quantizers(self.net):
            q.collect_stats = True

    def test_step(self, batch, batch_idx: int) -> None:
        from svqcast import baselines

        x, y = batch[0], batch[1]
        clim = batch[2] if len(batch) > 2 else None
        capture = self._weight_sample is None and batch_idx == 0
        handle, captured = None, {}
        quantizers = _find_quantizers(self.net)
        if capture and quantizers and hasattr(quantizers[0], "weight_sample"):

            def keep_input(module, inputs, output) -> None:  # returns None: output unchanged
                captured.setdefault("z", inputs[0].detach())

            handle = quantizers[0].register_forward_hook(keep_input)
        try:
            out = self.net(x)
        finally:
            if handle is not None:
                handle.remove()
        pred = out.prediction.float()
        y = y.float()
        clim_t = None if clim is None else clim.float()
        self.test_metrics["model"].update(pred, y, clim_t)
        persist = baselines.persistence(x.float(), y.shape[1])
        self.test_metrics["persistence"].update(persist, y, clim_t)
        preds = {self._model_label(): pred, "persistence": persist}
        if clim_t is not None:
            climo = baselines.climatology(clim_t)
            self.test_metrics["climatology"].update(climo, y, clim_t)
            preds["climatology"] = climo
        # quantizer diagnostics: sum per batch here, mean over batches (all ranks) at the end
        one = torch.ones((), device=pred.device)
        for key, value in out.stats.items():
            total = self._stat_sums.setdefault(key, torch.zeros(2, device=pred.device))
            total += torch.stack([value.detach().float().to(pred.device), one])
        if "z" in captured:
            with torch.no_grad():
                # all K weights of each sampled token: keep the sample near 200k numbers
                k = int(getattr(quantizers[0], "codebook_size", 1000))
                tokens = max(1, WEIGHT_SAMPLE_SIZE // k)
                self._weight_sample = quantizers[0].weight_sample(captured["z"], tokens).cpu()
        if self._first_batch is None:
            self._first_batch = {
                "x": x[:1].detach().float().cpu(),
                "y": y[:1].detach().cpu(),
                "preds": {k: v[:1].detach().cpu() for k, v in preds.items()},
            }

    def _model_label(self) -> str:
        q = self.hparams.quantizer
        return "simvp" if q in (None, "none") else f"simvp+{q}"

    def on_test_epoch_end(self) -> None:
        for q in _find_quantizers(self.net):
            q.collect_stats = False
        label = self._model_label()
        full: dict[str, dict[str, float]] = {}
        for name, metric in self.test_metrics.items():
            if name == "climatology" and not metric.update_called:
                continue
            values = {k: float(v) for k, v in metric.compute().items()}
            full[label if name == "model" else name] = values
            prefix = "test_" if name == "model" else f"test_{name}_"
            self.log_dict({prefix + k: v for k, v in values.items() if "/" not in k})
        stats: dict[str, float] = {}
        for key in sorted(self._stat_sums):
            total = self.trainer.strategy.reduce(self._stat_sums[key], reduce_op="sum")
            stats[key] = float(total[0] / total[1].clamp_min(1))
        if stats:
            self.log_dict({f"test_quantizer_{k}": v for k, v in stats.items()})
        self.quantizer_stats = stats
        self.test_results = full
        if self.trainer.is_global_zero:
            self._write_test_outputs(full, stats)

    def _write_test_outputs(
        self, full: dict[str, dict[str, float]], stats: dict[str, float]
    ) -> None:
        from svqcast.runs import write_test_report

        run_dir = Path(self.trainer.default_root_dir)
        # the metrics' own caveats (no latitudes, LPIPS unavailable, ...), once each
        notes = list(dict.fromkeys(n for m in self.test_metrics.values() for n in m.notes))
        write_test_report(run_dir, full, stats, protocol=self._protocol(), notes=notes)
        if not self.hparams.plots:
            return
        from svqcast.runs import write_test_plots

        write_test_plots(run_dir, self.spec, full, self._first_batch, self._weight_sample)

    def _protocol(self) -> str:
        dm = getattr(self.trainer, "datamodule", None)
        hp = getattr(dm, "hparams", {}) or {}
        return str(hp.get("protocol", "standard"))

    # ---- predict

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        """De-normalised forecast (B, T_out, C, H, W) in physical units."""
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        pred = self.net(x).prediction.float()
        return self.spec.normalizer.denormalize(pred)

    # ---- optimisation

    def configure_optimizers(self):
        h = self.hparams
        params = [p for p in self.model.parameters() if p.requires_grad]
        cls = torch.optim.Adam if h.optimizer == "adam" else torch.optim.AdamW
        opt = cls(params, lr=h.lr, weight_decay=h.weight_decay)
        if h.scheduler == "none":
            return opt
        if h.scheduler == "onecycle":
            total = self._schedule_steps()[1]
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=h.lr, total_steps=total)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        if h.scheduler_interval == "epoch":
            total = float(self.trainer.max_epochs if self.trainer.max_epochs > 0 else 1)
            warmup = float(h.warmup_epochs)
        else:
            per_epoch, total = self._schedule_steps()
            # warm-up counts epochs of the train loader, also when max_steps ends the fit
            warmup = float(h.warmup_epochs) * per_epoch

        def factor(t: int) -> float:
            return cosine_factor(t, total, warmup, h.lr, h.warmup_lr, h.min_lr)

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": sched, "interval": h.scheduler_interval},
        }

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
            theirs = DataSpec.from_dict(saved)
            if (tuple(theirs.in_shape), theirs.out_len) != (
                tuple(self.spec.in_shape),
                self.spec.out_len,
            ):
                raise CheckpointError(
                    f"checkpoint was trained on data of shape {tuple(theirs.in_shape)} -> "
                    f"{theirs.out_len} frames but this data is {tuple(self.spec.in_shape)} -> "
                    f"{self.spec.out_len}; use the checkpoint with its own dataset options"
                )
        check_state_dict(self, checkpoint.get("state_dict", {}))

    def on_train_start(self) -> None:
        if self._pending_rng is not None:
            set_rng_states(self._pending_rng)
            self._pending_rng = None


def rng_states() -> dict[str, Any]:
    """Global RNG states of torch, CUDA, NumPy and Python, as tensors and plain types only
    (loadable with ``torch.load(weights_only=True)``, which Lightning uses to resume)."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    version, state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": [version, torch.tensor(state, dtype=torch.int64), gauss],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` saved."""
    import random

    import numpy as np

    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    version, state, gauss = states["python"]
    random.setstate((version, tuple(int(v) for v in state.tolist()), gauss))


def check_state_dict(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Raise CheckpointError naming the first missing/unexpected/mis-shaped weight."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = [
            f"{what} {keys[0]!r} (+{len(keys) - 1} more)"
            for what, keys in (("missing", missing), ("unexpected", unexpected))
            if keys
        ]
        raise CheckpointError(
            f"checkpoint does not match the model: {', '.join(parts)}; build the model with "
            "the checkpoint's model options (its config.yaml)"
        )
    for key, value in state.items():
        if tuple(own[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"checkpoint does not match the model: {key!r} has shape {tuple(value.shape)} "
                f"in the checkpoint but {tuple(own[key].shape)} in the model; use the "
                "checkpoint's model and data options (its config.yaml)"
            )


def load_module(path: str | Path, map_location: str = "cpu") -> ForecastModule:
    """Rebuild a trained ForecastModule (model, EMA, DataSpec) from a checkpoint alone."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass a run's best.ckpt")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error here
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    # keys with a leading underscore are Lightning's (e.g. the CLI's "_instantiator")
    hp = {k: v for k, v in (ckpt.get("hyper_parameters") or {}).items() if not k.startswith("_")}
    if hp.get("spec") is None or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not an svqcast checkpoint (no DataSpec / state_dict)")
    module = ForecastModule(**hp)
    check_state_dict(module, ckpt["state_dict"])
    module.load_state_dict(ckpt["state_dict"])
    module.eval()
    return module


# --------------------------------------------------------------------------- predict files


def _read_input(path: Path, spec: DataSpec) -> tuple[Any, dict[str, Any] | None]:
    """(T, C, H, W) float32 physical array and, for netCDF, its time/lat/lon coordinates."""
    import numpy as np

    from svqcast.errors import DataError, DataNotFoundError

    if not path.is_file():
        raise DataNotFoundError(f"input file {path} does not exist")
    if path.suffix == ".npy":
        arr = np.load(path)
        if arr.ndim == 3 and len(spec.channels) == 1:
            arr = arr[:, None]  # (T, H, W) -> (T, 1, H, W)
        return np.asarray(arr, dtype=np.float32), None
    if path.suffix not in (".nc", ".nc4", ".netcdf"):
        raise DataError(f"input {path}: use a .npy (T, C, H, W) array or a netCDF file")
    import xarray as xr

    with xr.open_dataset(path) as ds:
        names = spec.channel_names
        missing = [n for n in names if n not in ds.data_vars]
        if missing:
            raise DataError(
                f"input {path} lacks variable(s) {', '.join(missing)} the model was trained on; "
                f"it has {', '.join(map(str, ds.data_vars))}"
            )
        fields = []
        for n in names:
            da = ds[n].squeeze(drop=True)
            if set(da.dims) != {"time", "lat", "lon"}:
                raise DataError(
                    f"variable {n} in {path} has dims {da.dims}; expected (time, lat, lon)"
                )
            fields.append(da.transpose("time", "lat", "lon").values)
        coords = {k: ds[k].values for k in ("time", "lat", "lon")}
    return np.stack(fields, axis=1).astype(np.float32), coords


def predict_file(
    ckpt: str | Path,
    input_path: str | Path,
    output: str | Path,
    windows: str = "last",
    batch_size: int = 16,
) -> Path:
    """Forecast ``input_path`` with the checkpoint and write de-normalised forecasts.

    The input is in physical units, (T, C, H, W) with T >= in_len: the last window
    (``windows="last"``) or every window (``"all"``) is forecast. ``.npy`` output is
    (N, T_out, C, H, W); ``.nc`` output has one variable per channel with dims
    (init_time, lead, lat, lon) and the valid ``time`` of every forecast frame when the
    input carried times.
    """
    import numpy as np

    from svqcast.errors import DataError
    from svqcast.runs import atomic_write_bytes

    module = load_module(ckpt)
    spec = module.spec
    input_path, output = Path(input_path), Path(output)
    if output.suffix not in (".npy", ".nc"):
        raise ConfigError(f"--output {output}: use a .npy or .nc file name")
    arr, coords = _read_input(input_path, spec)
    want = tuple(spec.in_shape[1:])
    if arr.ndim != 4 or tuple(arr.shape[1:]) != want:
        raise DataError(
            f"input {input_path} has shape {arr.shape}; the checkpoint expects (T, "
            f"{', '.join(map(str, want))}) with T >= {spec.in_len}"
        )
    if arr.shape[0] < spec.in_len:
        raise DataError(
            f"input {input_path} has {arr.shape[0]} frames; the model needs {spec.in_len}"
        )
    if not np.isfinite(arr).all():
        raise DataError(f"input {input_path} contains NaN or inf values")
    t_total = arr.shape[0]
    starts = [t_total - spec.in_len] if windows == "last" else range(t_total - spec.in_len + 1)
    x_all = torch.from_numpy(spec.normalizer.normalize(arr).astype(np.float32))
    outs = []
    with torch.no_grad():
        for i in range(0, len(starts), batch_size):
            chunk = [x_all[s : s + spec.in_len] for s in list(starts)[i : i + batch_size]]
            outs.append(module.predict_step(torch.stack(chunk), 0).numpy())
    pred = np.concatenate(outs)  # (N, T_out, C, H, W) physical units
    if output.suffix == ".npy":
        import io

        buf = io.BytesIO()
        np.save(buf, pred)
        atomic_write_bytes(output, buf.getvalue())
        return output
    _write_netcdf(output, pred, spec, coords, list(starts))
    return output


def _write_netcdf(output: Path, pred, spec: DataSpec, coords, starts: list[int]) -> None:
    import os
    import tempfile

    import numpy as np
    import xarray as xr

    step = spec.time_step_hours or 1.0
    lead = np.arange(1, spec.out_len + 1) * step
    lat = coords["lat"] if coords else spec.lat
    lon = coords["lon"] if coords else spec.lon
    data_coords: dict[str, Any] = {"lead": ("lead", lead, {"units": "hours"})}
    if lat is not None:
        data_coords["lat"] = ("lat", np.asarray(lat))
    if lon is not None:
        data_coords["lon"] = ("lon", np.asarray(lon))
    if coords is not None and np.issubdtype(np.asarray(coords["time"]).dtype, np.datetime64):
        times = np.asarray(coords["time"])
        init = times[[s + spec.in_len - 1 for s in starts]]  # the last input frame
        data_coords["init_time"] = ("init_time", init)
        valid = init[:, None] + (lead * 3600).astype("timedelta64[s]")[None, :]
        data_coords["time"] = (("init_time", "lead"), valid)
    else:
        data_coords["init_time"] = ("init_time", np.asarray(starts) + spec.in_len - 1)
    variables = {
        ch.name: (
            ("init_time", "lead", "lat", "lon"),
            pred[:, :, c],
            {"units": ch.units, "long_name": f"forecast of {ch.name}"},
        )
        for c, ch in enumerate(spec.channels)
    }
    ds = xr.Dataset(variables, coords=data_coords, attrs={"source": "svqcast predict"})
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    os.close(fd)
    try:
        ds.to_netcdf(tmp)
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
