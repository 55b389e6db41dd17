"""Killing a run mid-epoch and resuming from last.ckpt ends with the same weights.

The model uses input noise and drop-path (global RNG), SVQ, Adam and a per-step cosine
schedule, so the optimiser, scheduler, RNG and data order all have to be restored. On CPU
the resumed weights are BIT-EXACT equal to the uninterrupted run's (``torch.equal``).
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from test_module import TINY, TinyData, trainer

from svqcast.training.checkpoints import AtomicCheckpointIO
from svqcast.training.module import ForecastModule


class Killed(RuntimeError):
    pass


class KillAt(L.Callback):
    """Simulates a crash just before optimiser step ``step`` (the process dies)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise Killed(f"killed at step {self.step}")


def make_module() -> ForecastModule:
    """SVQ, noise, drop-path and a per-step schedule: every source of randomness and state."""
    return ForecastModule(
        **TINY,
        quantizer="svq",
        quantizer_options={"codebook_size": 32},
        noise=0.2,
        drop_path=0.1,
        lr=3e-3,
        scheduler="cosine",
        scheduler_interval="step",
        warmup_epochs=1,
        plots=False,
    )


def run(tmp_path, *, kill_at=None, ckpt_path=None, every=3, epochs=3):
    torch.manual_seed(1234)  # the same start for every run
    data = TinyData(n_train=20, n_val=4, batch_size=4, seed=7)  # 5 steps per epoch
    module = make_module()
    callbacks = [ModelCheckpoint(dirpath=tmp_path, save_last=True, every_n_train_steps=every)]
    if kill_at is not None:
        callbacks.append(KillAt(kill_at))
    t = trainer(
        tmp_path,
        max_epochs=epochs,
        callbacks=callbacks,
        enable_checkpointing=True,
        plugins=[AtomicCheckpointIO()],
    )
    if kill_at is not None:
        with pytest.raises(Killed):
            t.fit(module, data)
        return None
    t.fit(module, data, ckpt_path=ckpt_path)
    return module, t


def weights(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.slow
@pytest.mark.parametrize("kill_at,every", [(8, 3), (11, 5)])
def test_resume_mid_epoch_is_bit_exact(tmp_path, kill_at, every):
    ref, ref_trainer = run(tmp_path / "ref", every=every)
    run(tmp_path / "resumed", kill_at=kill_at, every=every)
    last = torch.load(tmp_path / "resumed" / "last.ckpt", weights_only=False)
    saved_step = (kill_at // every) * every
    assert last["global_step"] == saved_step
    resumed, res_trainer = run(tmp_path / "resumed", ckpt_path="last", every=every)
    assert res_trainer.global_step == ref_trainer.global_step == 15
    a, b = weights(ref), weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    lr_a = ref_trainer.optimizers[0].param_groups[0]["lr"]
    assert lr_a == res_trainer.optimizers[0].param_groups[0]["lr"]


@pytest.mark.slow
def test_resume_without_kill_changes_nothing_else(tmp_path):
    """Sanity: the reference is sensitive to data order (a different seed differs)."""
    ref, _ = run(tmp_path / "a", epochs=1)
    torch.manual_seed(1234)
    data = TinyData(n_train=20, n_val=4, batch_size=4, seed=8)
    other = make_module()
    trainer(tmp_path / "b", max_epochs=1).fit(other, data)
    a, b = weights(ref), weights(other)
    assert any(not torch.equal(a[k], b[k]) for k in a)
