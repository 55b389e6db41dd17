"""ForecastModule, resumable loaders and schedules on tiny models and tiny in-memory data."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import pytest
import torch
from conftest import make_tiny_spec
from torch.utils.data import TensorDataset

from svqcast.data.climatology import Climatology, WithClimatology
from svqcast.data.loaders import EpochSampler, ResumableLoader, make_loader
from svqcast.errors import CheckpointError, ConfigError
from svqcast.inference.predict import load_module
from svqcast.training.module import ForecastModule, NonFiniteLossError, cosine_factor

TINY = dict(hid_S=8, hid_T=16, N_S=2, N_T=2, translator="gsta")


def waves(n: int, t: int, h: int = 8, w: int = 16, seed: int = 0) -> torch.Tensor:
    """(n, t, 1, h, w) travelling waves: predictable, so a model can beat persistence."""
    g = torch.Generator().manual_seed(seed)
    phase = torch.rand(n, 1, 1, 1, 1, generator=g) * 2 * math.pi
    k = torch.randint(1, 3, (n, 1, 1, 1, 1), generator=g).float()
    tt = torch.arange(t).view(1, t, 1, 1, 1).float()
    xx = torch.arange(w).view(1, 1, 1, 1, w).float()
    yy = torch.arange(h).view(1, 1, 1, h, 1).float()
    field = torch.sin(2 * math.pi * k * (xx - 1.5 * tt) / w + phase) * torch.cos(yy / h)
    return field + 0.05 * torch.randn(field.shape, generator=g)


class Windows(torch.utils.data.Dataset):
    """(x, y) pairs with the ForecastDataset interface (no calendar phases)."""

    def __init__(self, pairs: TensorDataset) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i):
        return self.pairs[i]

    def target_phases(self, i):
        return None


class TinyData(L.LightningDataModule):
    """In-memory weather-like data behind the engine's resumable loaders."""

    def __init__(self, n_train=24, n_val=8, n_test=10, batch_size=4, in_len=4, out_len=4, seed=0):
        super().__init__()
        self.spec = make_tiny_spec(in_len=in_len, out_len=out_len)
        self.batch_size, self.seed = batch_size, seed
        t = in_len + out_len

        def split(n, s):
            seq = waves(n, t, seed=s)
            return TensorDataset(seq[:, :in_len].contiguous(), seq[:, in_len:].contiguous())

        self.train, self.val, test = split(n_train, 1), split(n_val, 2), split(n_test, 3)
        clim = Climatology(np.zeros((1, 1, 8, 16), dtype=np.float32))
        self.test = WithClimatology(Windows(test), clim)

    def train_dataloader(self):
        return make_loader(self.train, self.batch_size, train=True, seed=self.seed)

    def val_dataloader(self):
        return make_loader(self.val, self.batch_size, train=False)

    def test_dataloader(self):
        return make_loader(self.test, self.batch_size, train=False)


def trainer(tmp_path, **kw) -> L.Trainer:
    opts = dict(
        default_root_dir=tmp_path,
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
    )
    opts.update(kw)
    return L.Trainer(**opts)


# ----------------------------------------------------------------------------- samplers


@pytest.mark.parametrize("world", [1, 2, 3])
def test_eval_sampler_covers_every_index_once(world):
    n = 10
    seen = []
    for rank in range(world):
        s = EpochSampler(n, shuffle=False, pad=False, num_replicas=world, rank=rank)
        idx = list(s)
        assert len(idx) == len(s)
        seen += idx
    assert sorted(seen) == list(range(n))


def test_train_sampler_order_depends_on_seed_and_epoch_only():
    a = EpochSampler(50, shuffle=True, seed=3, num_replicas=1, rank=0)
    b = EpochSampler(50, shuffle=True, seed=3, num_replicas=1, rank=0)
    first = list(a)
    assert first == list(b) and sorted(first) == list(range(50))
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)
    c = EpochSampler(50, shuffle=True, seed=4, num_replicas=1, rank=0)
    assert list(c) != first


def test_padded_train_sampler_gives_equal_lengths():
    lens = [len(list(EpochSampler(7, shuffle=True, num_replicas=3, rank=r))) for r in range(3)]
    assert lens == [3, 3, 3]


def test_resumable_loader_skips_served_batches():
    ds = TensorDataset(torch.arange(10).float())
    loader = make_loader(ds, 3, train=True, seed=1)
    assert isinstance(loader, ResumableLoader)
    loader.sampler.set_epoch(2)
    full = [b[0].tolist() for b in loader]
    it = iter(loader)
    next(it), next(it)
    state = loader.state_dict()
    assert state == {"epoch": 2, "batches": 2}
    fresh = make_loader(ds, 3, train=True, seed=1)
    fresh.load_state_dict(state)
    it = iter(fresh)
    assert [b[0].tolist() for b in it] == full[2:]
    assert fresh.state_dict() == {"epoch": 2, "batches": 4}
    assert [b[0].tolist() for b in fresh] == full  # the skip applies once
    assert len(fresh) == len(full)


def test_resumable_loader_state_from_last_batch_starts_next_epoch():
    ds = TensorDataset(torch.arange(10).float())
    fresh = make_loader(ds, 5, train=True, seed=1)
    fresh.load_state_dict({"epoch": 0, "batches": 2})
    assert fresh.sampler.epoch == 1
    ref = make_loader(ds, 5, train=True, seed=1)
    ref.sampler.set_epoch(1)
    assert [b[0].tolist() for b in fresh] == [b[0].tolist() for b in ref]


def test_resumable_loader_skip_waits_for_its_epoch():
    """Lightning sets the epoch after restoring: a skip for epoch 3 must not hit epoch 4."""
    ds = TensorDataset(torch.arange(12).float())
    loader = make_loader(ds, 4, train=True, seed=0)
    loader.load_state_dict({"epoch": 3, "batches": 1})
    loader.sampler.set_epoch(4)
    assert sorted(torch.cat([b[0] for b in loader]).tolist()) == list(range(12))


def test_resumable_loader_passes_the_epoch_to_datasets_that_draw_per_epoch():
    """Moving MNIST generates fresh training sequences per epoch: they follow the sampler."""
    from svqcast.data.datasets.mmnist import GeneratedSequences

    seen = []

    class PerEpoch(TensorDataset):
        def set_epoch(self, epoch: int) -> None:
            seen.append(epoch)

    loader = make_loader(PerEpoch(torch.arange(6).float()), 3, train=True, seed=0)
    loader.sampler.set_epoch(5)
    list(loader)
    loader.load_state_dict({"epoch": 7, "batches": 1})
    list(loader)
    assert seen == [5, 7]
    assert callable(getattr(GeneratedSequences, "set_epoch", None))


# ----------------------------------------------------------------------------- schedules


def test_cosine_factor_warmup_and_floor():
    lr, wl, ml = 1e-2, 1e-5, 1e-6
    assert cosine_factor(0, 10, 2, lr, wl, ml) * lr == pytest.approx(wl)
    assert cosine_factor(1, 10, 2, lr, wl, ml) * lr == pytest.approx((wl + lr) / 2)
    assert cosine_factor(2, 10, 2, lr, wl, ml) == pytest.approx(1.0)
    assert cosine_factor(10, 10, 2, lr, wl, ml) * lr == pytest.approx(ml)
    vals = [cosine_factor(t, 10, 2, lr, wl, ml) for t in range(2, 11)]
    assert all(a >= b for a, b in zip(vals, vals[1:]))


def _learning_rates(tmp_path, scheduler: str, interval: str, **stop) -> list[float]:
    """The lr of every training step of a tiny fit (2 steps an epoch, one warm-up epoch)."""
    data = TinyData(n_train=8, batch_size=4)  # 2 steps per epoch
    module = ForecastModule(
        **TINY, lr=1e-2, scheduler=scheduler, scheduler_interval=interval, warmup_epochs=1
    )
    lrs = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer(tmp_path, callbacks=[Record()], limit_val_batches=0, **stop).fit(module, data)
    return lrs


@pytest.mark.slow
@pytest.mark.parametrize(
    "scheduler,interval", [("cosine", "epoch"), ("cosine", "step"), ("onecycle", "epoch")]
)
def test_schedules_step_as_configured(tmp_path, scheduler, interval):
    lrs = _learning_rates(tmp_path, scheduler, interval, max_epochs=3)
    assert len(lrs) == 6
    if scheduler == "cosine" and interval == "epoch":
        assert lrs[0] == lrs[1] == pytest.approx(1e-5)  # constant within an epoch
        assert lrs[2] == pytest.approx(1e-2)
        assert lrs[4] < lrs[2]
    elif scheduler == "cosine":
        assert lrs[0] == pytest.approx(1e-5) and lrs[1] > lrs[0]
        assert lrs[2] == pytest.approx(1e-2)
        assert len(set(lrs[2:])) == 4
    else:  # onecycle: warms up then anneals, per step
        assert lrs[0] < max(lrs) and lrs[-1] < max(lrs)


@pytest.mark.slow
def test_step_warmup_counts_loader_epochs_when_max_steps_ends_the_fit(tmp_path):
    """With only max_steps, ``warmup_epochs=1`` warms up over one epoch of the train loader
    (2 steps here), not over the whole fit (6 steps)."""
    lrs = _learning_rates(tmp_path, "cosine", "step", max_epochs=None, max_steps=6)
    assert len(lrs) == 6
    assert lrs[0] == pytest.approx(1e-5)
    assert lrs[1] == pytest.approx((1e-5 + 1e-2) / 2)
    assert lrs[2] == pytest.approx(1e-2)  # warm-up over after one epoch, cosine from here
    assert lrs[3] < lrs[2]


# ----------------------------------------------------------------------------- module


def test_bad_options_raise_config_error():
    with pytest.raises(ConfigError, match="loss"):
        ForecastModule(**TINY, loss="l3")
    with pytest.raises(ConfigError, match="scheduler"):
        ForecastModule(**TINY, scheduler="step")
    with pytest.raises(ConfigError, match="lr"):
        ForecastModule(**TINY, lr=0)


@pytest.mark.parametrize("loss", ["mae", "mse", "huber"])
def test_loss_matches_torch(loss):
    m = ForecastModule(**TINY, loss=loss)
    a, b = torch.randn(2, 3), torch.randn(2, 3) * 3
    ref = {"mae": torch.nn.functional.l1_loss, "mse": torch.nn.functional.mse_loss}
    expect = ref.get(loss, torch.nn.functional.huber_loss)(a, b)
    assert torch.allclose(m._loss(a, b), expect)


@pytest.mark.slow
@pytest.mark.parametrize("quantizer", ["none", "svq"])
def test_fit_test_beats_persistence_and_writes_report(tmp_path, quantizer):
    torch.manual_seed(0)
    data = TinyData(n_train=32, batch_size=8)
    opts = {"codebook_size": 64} if quantizer == "svq" else None
    module = ForecastModule(
        **TINY, quantizer=quantizer, quantizer_options=opts, lr=5e-3, scheduler="none"
    )
    t = trainer(tmp_path, max_epochs=8)
    t.fit(module, data)
    t.test(module, data)
    rows = module.test_results
    label = "simvp" if quantizer == "none" else "simvp+svq"
    assert set(rows) == {label, "persistence", "climatology"}
    assert rows[label]["mae"] < 0.8 * rows["persistence"]["mae"]
    assert (tmp_path / "test_metrics.json").is_file()
    assert (tmp_path / "test_metrics.md").read_text().count("|") > 10
    assert (tmp_path / "plots" / "forecast_panels.png").stat().st_size > 0
    if quantizer == "svq":
        assert module.quantizer_stats and (tmp_path / "quantizer.json").is_file()
        assert (tmp_path / "plots" / "svq_weight_histogram.png").is_file()


@pytest.mark.slow
def test_checkpoint_alone_rebuilds_model(tmp_path):
    data = TinyData(n_train=8, n_val=4, batch_size=4)
    module = ForecastModule(**TINY, quantizer="svq", quantizer_options={"codebook_size": 32})
    t = trainer(tmp_path, max_epochs=1, limit_val_batches=0)
    t.fit(module, data)
    path = tmp_path / "m.ckpt"
    t.save_checkpoint(path)
    loaded = load_module(path)
    x = data.val[0][0][None]
    module.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x).prediction, module(x).prediction)
    assert loaded.spec.to_dict() == data.spec.to_dict()
    pred = loaded.predict_step(x, 0)  # physical units
    assert pred.mean() > 200


@pytest.mark.slow
def test_mismatched_checkpoint_raises(tmp_path):
    data = TinyData(n_train=8, batch_size=4)
    module = ForecastModule(**TINY)
    t = trainer(tmp_path, max_epochs=1, limit_val_batches=0)
    t.fit(module, data)
    path = tmp_path / "m.ckpt"
    t.save_checkpoint(path)
    other = ForecastModule(**{**TINY, "hid_S": 4})
    with pytest.raises(CheckpointError, match="does not match the model"):
        trainer(tmp_path, max_epochs=1).test(other, data, ckpt_path=path)
    wider = ForecastModule(**{**TINY, "hid_T": 12})  # same keys, other shapes
    with pytest.raises(CheckpointError, match="has shape"):
        trainer(tmp_path, max_epochs=1).test(wider, data, ckpt_path=path)
    wrong_len = TinyData(n_train=8, batch_size=4, out_len=2)
    with pytest.raises(CheckpointError, match="frames"):
        trainer(tmp_path).test(ForecastModule(**TINY), wrong_len, ckpt_path=path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_module(tmp_path / "missing.ckpt")
    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_module(tmp_path / "junk.ckpt")


@pytest.mark.slow
def test_non_finite_loss_stops_with_step_and_keeps_last_good(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    from svqcast.training.checkpoints import AtomicCheckpointIO

    data = TinyData(n_train=16, batch_size=4)
    module = ForecastModule(**TINY, scheduler="none")

    class Poison(L.Callback):  # NaN weights from step 5 on
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 5:
                with torch.no_grad():
                    next(pl_module.model.parameters()).fill_(float("nan"))

    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True, every_n_train_steps=2)
    t = trainer(
        tmp_path,
        max_epochs=5,
        callbacks=[Poison(), ckpt],
        enable_checkpointing=True,
        plugins=[AtomicCheckpointIO()],
        limit_val_batches=0,
    )
    with pytest.raises(NonFiniteLossError, match="step 5"):
        t.fit(module, data)
    last = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert last["global_step"] == 4
    assert all(
        torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point()
    )
    assert not list(tmp_path.glob(".*.tmp"))  # no temp files left


@pytest.mark.slow
def test_ema_tracks_weights(tmp_path):
    data = TinyData(n_train=8, batch_size=4)
    module = ForecastModule(**TINY, ema_decay=0.5, scheduler="none")
    trainer(tmp_path, max_epochs=1, limit_val_batches=0).fit(module, data)
    assert module.ema is not None and int(module.ema.n_averaged) == 2
    p_model = next(module.model.parameters())
    p_ema = next(module.ema.module.parameters())
    assert not torch.equal(p_model, p_ema)
    assert not p_ema.requires_grad
    assert module.net is module.ema.module


@pytest.mark.slow
@pytest.mark.parametrize("precision,channels_last", [("bf16-mixed", True), ("32", True)])
def test_bf16_and_channels_last_train(tmp_path, precision, channels_last):
    data = TinyData(n_train=8, batch_size=4)
    module = ForecastModule(
        **TINY,
        quantizer="svq",
        quantizer_options={"codebook_size": 32},
        channels_last=channels_last,
        scheduler="none",
    )
    before = [p.detach().clone() for p in module.parameters()] if module.model else None
    t = trainer(tmp_path, max_epochs=1, precision=precision)
    t.fit(module, data)
    assert before is None  # built in setup from the data's spec
    assert torch.isfinite(torch.tensor(t.callback_metrics["val_loss"].item()))
    assert t.global_step == 2
    t.test(module, data)
    assert module.test_results["simvp+svq"]["mae"] > 0


def test_atomic_checkpoint_io_keeps_old_file_on_failure(tmp_path, monkeypatch):
    from svqcast.training.checkpoints import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)
    assert torch.load(path)["step"] == 1

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.load(path)["step"] == 1  # the old checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left
