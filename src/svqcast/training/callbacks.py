"""The callbacks of the engine: the checkpoints of a run folder (best on the validation loss,
the latest for resuming) and the test report and plots (:class:`TestArtifacts`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from svqcast.evaluation.reports import write_test_plots, write_test_report

WEIGHT_SAMPLE_SIZE = 200_000  # code weights kept for the SVQ histogram


def run_checkpoints(run_dir: Path, every_n_steps: int = 0) -> list[ModelCheckpoint]:
    """``best.ckpt`` (lowest val_loss) and ``last.ckpt`` (end of every epoch, and every
    ``every_n_steps`` optimiser steps when > 0, for a mid-epoch resume; never on an epoch's
    last batch, see :class:`StepCheckpoint`)."""
    callbacks = [
        RunCheckpoint(
            dirpath=run_dir,
            filename="best",
            monitor="val_loss",
            mode="min",
            save_last=True,
            enable_version_counter=False,
        )
    ]
    if every_n_steps > 0:
        callbacks.append(
            StepCheckpoint(
                dirpath=run_dir,
                filename="last",
                save_top_k=0,
                save_last=True,
                every_n_train_steps=every_n_steps,
                enable_version_counter=False,
            )
        )
    return callbacks


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose end-of-training ``last.ckpt`` is written only when no
    checkpoint of the run holds the final step yet.

    Lightning's ``on_train_end`` writes ``last.ckpt`` whenever THIS callback has not written
    one in this process, after the loop has counted the last epoch as completed: in a resumed
    run whose ``last.ckpt`` at validation end came from the other callback, it overwrote that
    checkpoint with an epoch counter one higher than an uninterrupted run stores.
    """

    _start_step: int | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self._start_step = trainer.global_step

    def on_train_end(self, trainer, pl_module) -> None:
        step = trainer.global_step
        for cb in trainer.checkpoint_callbacks:
            saved = getattr(cb, "_last_global_step_saved", None) == step
            if saved and getattr(cb, "save_last", False) and getattr(cb, "last_model_path", ""):
                return  # last.ckpt already holds this step, with the loop state of that moment
        if step == self._start_step:
            return  # nothing trained in this process: the loaded checkpoint stays as it was
        super().on_train_end(trainer, pl_module)


class StepCheckpoint(RunCheckpoint):
    """``last.ckpt`` every n optimiser steps, except on an epoch's last batch.

    A checkpoint taken on the last batch, before that epoch's validation, is one Lightning
    does not resume exactly (it skips that validation and, after a second kill, trains an
    epoch twice). The checkpoint at validation end covers that moment instead; a kill in
    between resumes from the step before and redoes the last batch, bit-exactly.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        last = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        if last or batch_idx + 1 >= trainer.num_training_batches:
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


# --------------------------------------------------------------------------- test artifacts


class TestArtifacts(Callback):
    """Writes what a test of a :class:`~svqcast.training.module.ForecastModule` leaves in the
    run folder (``trainer.default_root_dir``), on the global-zero rank, once the module has
    its results: ``test_metrics.{json,csv,md}`` and ``quantizer.json``
    (:func:`~svqcast.evaluation.reports.write_test_report`) and the ``plots/``
    (:func:`~svqcast.evaluation.reports.write_test_plots`).

    For the plots it keeps, like Lightning's ``BasePredictionWriter`` keeps predictions,
    the first test batch (``first_batch``: the first sample's inputs, truth and the
    forecasts ``test_step`` returns) and, when the module's ``diagnostics`` are on, a
    sample of the first quantizer's code weights on that batch (``weight_sample``, through
    a forward hook on the quantizer: SVQ's weight histogram).

    ``ForecastModule.configure_callbacks`` attaches one to every trainer that has none, so
    ``plots=None`` (follow the module's ``plots`` hyper-parameter) is what runs by default;
    pass ``TestArtifacts(plots=False)`` in the trainer's callbacks to decide here instead.
    """

    __test__ = False  # a Lightning callback, not a pytest class

    def __init__(self, plots: bool | None = None) -> None:
        super().__init__()
        self.plots = plots
        self.first_batch: dict[str, Any] | None = None
        self.weight_sample: torch.Tensor | None = None
        self._hook: Any = None
        self._captured: dict[str, torch.Tensor] = {}

    def plots_on(self, pl_module: L.LightningModule) -> bool:
        """Whether this test writes plots: ``plots``, else the module's hyper-parameter."""
        if self.plots is not None:
            return bool(self.plots)
        return bool(pl_module.hparams.get("plots", True))

    def _capture(self, trainer: L.Trainer, pl_module: L.LightningModule) -> bool:
        return trainer.is_global_zero and self.plots_on(pl_module)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._remove_hook()
        self.first_batch, self.weight_sample = None, None

    def on_test_batch_start(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx != 0 or self.weight_sample is not None or self._hook is not None:
            return
        if not (self._capture(trainer, pl_module) and pl_module.hparams.get("diagnostics", True)):
            return
        quantizers = pl_module.quantizers()
        if not quantizers or not hasattr(quantizers[0], "weight_sample"):
            return
        captured = self._captured = {}

        def keep_input(module, inputs, output) -> None:  # returns None: output unchanged
            captured.setdefault("z", inputs[0].detach())

        self._hook = (quantizers[0], quantizers[0].register_forward_hook(keep_input))

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        quantizer = self._hook[0] if self._hook is not None else None
        z = self._captured.pop("z", None)
        self._remove_hook()
        if quantizer is not None and z is not None:
            # in the precision context of test_step, where the forward ran
            with trainer.precision_plugin.test_step_context(), torch.no_grad():
                # all K weights of each sampled token: keep the sample near 200k numbers
                k = int(getattr(quantizer, "codebook_size", 1000))
                tokens = max(1, WEIGHT_SAMPLE_SIZE // k)
                self.weight_sample = quantizer.weight_sample(z, tokens).cpu()
        if (
            self.first_batch is None
            and isinstance(outputs, dict)
            and self._capture(trainer, pl_module)
        ):
            self.first_batch = {
                "x": batch[0][:1].detach().float().cpu(),
                "y": batch[1][:1].detach().float().cpu(),
                "preds": {k: v[:1].detach().cpu() for k, v in outputs.items()},
            }

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._remove_hook()
        if not trainer.is_global_zero:
            return
        run_dir = Path(trainer.default_root_dir)
        rows, spec = pl_module.test_results, pl_module.spec
        write_test_report(
            run_dir,
            rows,
            pl_module.quantizer_stats,
            protocol=protocol_of(trainer),
            notes=pl_module.test_notes,
            spec=spec,
        )
        if self.plots_on(pl_module):
            write_test_plots(run_dir, spec, rows, self.first_batch, self.weight_sample)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._remove_hook()

    def _remove_hook(self) -> None:
        if self._hook is not None:
            self._hook[1].remove()
            self._hook = None
        self._captured = {}


def protocol_of(trainer: L.Trainer) -> str:
    """The evaluation protocol of the trainer's data module (``standard`` when it has none)."""
    dm = getattr(trainer, "datamodule", None)
    hp = getattr(dm, "hparams", {}) or {}
    return str(hp.get("protocol", "standard"))
