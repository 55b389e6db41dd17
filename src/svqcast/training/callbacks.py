"""The callbacks of the engine: the checkpoints of a run folder (best on the validation loss,
the latest for resuming)."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint


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
