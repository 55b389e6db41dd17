"""Train and test one run of the accuracy benchmark with the engine, in this process.

:func:`run_task` trains a variant with :class:`~svqcast.training.module.ForecastModule` on a
Lightning ``Trainer`` for its budget's fixed number of optimizer steps, tests it on the test
split and returns the run's record (metrics, baselines, median step time, peak memory).
:mod:`.runner` calls it, normally in a fresh Python process of its own.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from svqcast.evaluation.baselines import BASELINES

from .task import Task
from .variants import BUDGETS, variants


class NoisyInputs:
    """A dataset whose inputs get fixed Gaussian noise (same noise for a sample every epoch).

    The noise of sample ``i`` is drawn from a generator seeded with ``(seed, i)``, so training
    sees a fixed noisy record (like real observations) and the test set is the same for every
    variant. Everything else (targets, calendar phases) passes through.
    """

    def __init__(self, dataset: Any, sigma: float, seed: int) -> None:
        self.dataset = dataset
        self.sigma = float(sigma)
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        import torch

        x, y = self.dataset[index][:2]
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + int(index))
        noise = torch.randn(x.shape, generator=gen, dtype=torch.float32)
        return x + self.sigma * noise.to(x.dtype), y

    def target_phases(self, index: int):
        return self.dataset.target_phases(index)


def _peak_rss_mib() -> float:
    """This process's peak resident memory (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def _step_timer(skip: int):
    import lightning as L

    class StepTimer(L.Callback):
        """Wall time of each training step (forward, backward, optimizer), data loading excluded."""

        def __init__(self) -> None:
            self.times: list[float] = []
            self._start = 0.0

        def on_train_batch_start(self, *args: Any) -> None:
            self._start = time.perf_counter()

        def on_train_batch_end(self, *args: Any) -> None:
            self.times.append(time.perf_counter() - self._start)

        def median(self) -> float:
            kept = self.times[skip:] or self.times
            return statistics.median(kept) if kept else float("nan")

    return StepTimer()


def _warmup_epochs(steps: int, dm: Any) -> float:
    """``steps`` in epochs of ``dm``'s train loader, the unit the engine's warm-up counts in.
    (No loader is built for no warm-up, so those runs do exactly what they always did.)"""
    return steps / len(dm.train_dataloader()) if steps else 0.0


def run_task(task: Task) -> dict[str, Any]:
    """Train and test one variant with the engine; return the result record."""
    import lightning as L
    import torch

    from svqcast.data.datamodule import ForecastDataModule
    from svqcast.training.module import ForecastModule, NonFiniteLossError

    budget = BUDGETS[task.budget]
    variant = variants()[task.variant]
    choice = budget.data[task.dataset_key]
    if task.threads:
        torch.set_num_threads(task.threads)
    started = time.perf_counter()
    L.seed_everything(task.seed, workers=True, verbose=False)
    dm = ForecastDataModule(
        dataset=choice.dataset,
        root=task.data_root,
        batch_size=budget.batch_size,
        seed=task.seed,
        options=dict(choice.options),
    )
    splits = dm.splits  # loads (and generates embedded data if absent)
    if variant.obs_noise:
        for i, name in enumerate(("train", "val", "test")):
            # the test noise does not depend on the seed: every run sees the same test inputs
            noise_seed = 10_000 + i if name == "test" else task.seed * 10 + i
            setattr(splits, name, NoisyInputs(getattr(splits, name), variant.obs_noise, noise_seed))
    module = ForecastModule(
        hid_S=budget.hid_S,
        hid_T=budget.hid_T,
        N_S=budget.N_S,
        N_T=budget.N_T,
        translator=budget.translator,
        mlp_ratio=budget.mlp_ratio,
        quantizer=variant.quantizer,
        quantizer_options=dict(variant.options),
        quantizer_position=variant.position,
        noise=variant.noise,
        loss=variant.loss,
        lr=budget.lr,
        channels_last=budget.channels_last,
        scheduler="cosine",
        scheduler_interval="step",
        warmup_epochs=_warmup_epochs(variant.warmup_steps, dm),
        plots=False,
        # no quantizer diagnostics (code usage, sparsity): for SVQ they compute the full
        # (tokens x K) weights of every test batch, which costs more than the whole training
        # run of this benchmark; accuracy does not need them
        diagnostics=False,
    )
    run_dir = Path(task.out_dir) / "runs" / task.budget / task.key
    timer = _step_timer(budget.timed_skip)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=budget.steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        limit_test_batches=choice.test_batches if choice.test_batches else 1.0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        default_root_dir=str(run_dir),
        callbacks=[timer],
    )
    rss_before = _peak_rss_mib()
    record: dict[str, Any] = {
        "variant": task.variant,
        "label": variant.label,
        "seed": task.seed,
        "dataset": choice.dataset,
        "budget": task.budget,
        "fingerprint": budget.fingerprint(),
        "quantizer": variant.quantizer,
        "options": dict(variant.options),
        "loss": variant.loss,
        "position": variant.position,
        "noise": variant.noise,
        "obs_noise": variant.obs_noise,
        "warmup_steps": variant.warmup_steps,
        "threads": torch.get_num_threads(),
    }
    try:
        trainer.fit(module, datamodule=dm)
    except NonFiniteLossError as exc:
        record.update(status="diverged", error=str(exc), steps=len(timer.times))
        return _finish(record, timer, started, rss_before, _peak_rss_mib())
    fit_peak = _peak_rss_mib()
    trainer.test(module, datamodule=dm, verbose=False)
    results = module.test_results  # {model label: metrics, "persistence": ..., ...}
    label = next(k for k in results if k not in BASELINES)
    record.update(
        status="ok",
        steps=len(timer.times),
        metrics={k: v for k, v in results[label].items() if "/" not in k},
        baselines={
            name: {k: v for k, v in values.items() if "/" not in k}
            for name, values in results.items()
            if name != label
        },
        quantizer_stats=dict(module.quantizer_stats),
        params=sum(p.numel() for p in module.parameters()),
    )
    return _finish(record, timer, started, rss_before, fit_peak)


def _finish(
    record: dict[str, Any], timer: Any, started: float, rss_before: float, fit_peak: float
) -> dict:
    """Add timing and memory: ``peak_rss_mib`` is the process's peak resident memory up to
    the end of training, ``train_rss_mib`` how far training raised it above the level after
    loading data and building the model, ``final_rss_mib`` the peak including the test
    (whose quantizer diagnostics can be memory-hungry)."""
    record.update(
        step_seconds=timer.median(),
        wall_seconds=time.perf_counter() - started,
        peak_rss_mib=fit_peak,
        train_rss_mib=max(fit_peak - rss_before, 0.0),
        final_rss_mib=_peak_rss_mib(),
    )
    return record
