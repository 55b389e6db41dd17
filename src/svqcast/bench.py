"""The accuracy benchmark: does SVQ help forecasting, and does hard VQ fail?

Every variant (no quantizer, SVQ learnable / frozen, SVQ-raw, the library VQ baselines at the
paper's presets, a codebook-free bottleneck MLP, ...) is trained with the engine
(:class:`~svqcast.training.ForecastModule` on a Lightning ``Trainer``) for the SAME fixed
number of optimizer steps on the embedded synthetic data, with several seeds, then tested on
the whole test split. Each run happens in its own Python process so that its peak resident
memory (``ru_maxrss``) is its own; its result is a JSON file, and a run whose JSON exists is
skipped, so an interrupted benchmark continues where it stopped.

One table says what each variant is (:data:`VARIANTS`), one which rows each group shows
(:data:`GROUPS`), one what a run costs (:data:`BUDGETS`). The command line is :func:`main`
(``python benchmarks/accuracy.py`` or ``svqcast bench accuracy``).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from svqcast.errors import ConfigError, SvqcastError

# --------------------------------------------------------------------------- what is run


@dataclass(frozen=True)
class Variant:
    """One row of a table: the model changes relative to the plain SimVP.

    ``noise`` is the paper's training-time input corruption (a fraction of input elements
    multiplied by U(-2, 2), training only); ``obs_noise`` is Gaussian observation noise of
    that standard deviation (in normalised units, i.e. a fraction of the field's std) added
    to the INPUTS of every split, training and test alike (targets stay clean).
    ``warmup_steps`` is a linear learning-rate warm-up (from 1e-5) over that many of the
    budget's steps before the cosine decay; the budget's runs have none.
    """

    label: str
    quantizer: str = "none"
    options: Mapping[str, Any] = field(default_factory=dict)
    loss: str = "mae"
    position: str = "pre"
    noise: float = 0.0
    obs_noise: float = 0.0
    warmup_steps: int = 0

    @property
    def condition(self) -> tuple[str, float, float, int]:
        """What a row is compared against: the no-quantizer row with the same loss, noise and
        warm-up."""
        return (self.loss, self.noise, self.obs_noise, self.warmup_steps)


SVQ_K = 10_000  # the paper's codebook size for weather (REFERENCE.md section 1)
SVQ_RAW = {"codebook_size": 1024, "iterations": 5, "lam": 0.1}  # FISTA, a few iterations


def _svq(**options: Any) -> dict[str, Any]:
    return {"codebook_size": SVQ_K, **options}


def _library(name: str) -> dict[str, Any]:
    """The paper's preset options of a library quantizer (one place: quantizers.library)."""
    from svqcast.quantizers.library import PRESETS

    return dict(PRESETS[name]["options"])


def _build_variants() -> dict[str, Variant]:
    v: dict[str, Variant] = {
        # ---- main table
        "none": Variant("no quantizer (SimVP)"),
        "svq": Variant("SVQ learnable (K 10k)", "svq", _svq()),
        "svq_frozen": Variant("SVQ frozen codebook", "svq", _svq(freeze_codebook=True)),
        "svq_raw": Variant("SVQ-raw (FISTA, 5 it., K 1024)", "svq_raw", SVQ_RAW),
        "vq": Variant("VQ (K 1024, EMA 0.8)", "vq", _library("vq")),
        "mhvq": Variant("multi-head VQ (8 heads)", "mhvq", _library("mhvq")),
        "rvq": Variant("residual VQ (8 x 1024)", "rvq", _library("rvq")),
        "grvq": Variant("grouped residual VQ (2 x 8)", "grvq", _library("grvq")),
        "lfq": Variant("LFQ (K 8192)", "lfq", _library("lfq")),
        "fsq": Variant("FSQ (levels 8,5,5,3)", "fsq", _library("fsq")),
        "mlp": Variant("bottleneck MLP (dim-128-dim, no codebook)", "mlp", {"middim": 128}),
        "none_mse": Variant("no quantizer, MSE loss", loss="mse"),
        "svq_mse": Variant("SVQ learnable, MSE loss", "svq", _svq(), loss="mse"),
        # ---- ablations (same budget)
        "svq_post": Variant("SVQ after the translator", "svq", _svq(), position="post"),
        "svq_freeze_mlp": Variant("SVQ, frozen MLP", "svq", _svq(freeze_mlp=True)),
        "svq_freeze_both": Variant(
            "SVQ, frozen MLP and codebook", "svq", _svq(freeze_mlp=True, freeze_codebook=True)
        ),
    }
    for k in (256, 1024, 4096):
        v[f"svq_k{k}"] = Variant(f"SVQ K {k}", "svq", {"codebook_size": k})
    # the paper's four ReLU placements (default: ReLU after the hidden layer only)
    for name, hid, out in (("none", False, False), ("out", False, True), ("both", True, True)):
        label = {"none": "no ReLU", "out": "ReLU on the weights only", "both": "both ReLUs"}[name]
        v[f"svq_relu_{name}"] = Variant(f"SVQ, {label}", "svq", _svq(hid_relu=hid, out_relu=out))
    # SVQ's first Adam steps move its output by far more than the MLP's
    # (benchmarks/svq_update_scale.py): does a short warm-up (10% of the budget) remove the gap?
    v["none_warmup"] = Variant("no quantizer, 20 warm-up steps", warmup_steps=20)
    v["svq_warmup"] = Variant("SVQ, 20 warm-up steps", "svq", _svq(), warmup_steps=20)
    for init in ("kaiming", "xavier", "sparse", "trunc", "orthogonal"):
        v[f"svq_init_{init}"] = Variant(f"SVQ init {init}", "svq", _svq(init=init))
    for p in (0.1, 0.3, 0.5):
        v[f"none_noise{p}"] = Variant(f"no quantizer, train noise {p}", noise=p)
        v[f"svq_noise{p}"] = Variant(f"SVQ, train noise {p}", "svq", _svq(), noise=p)
    # ---- observation noise on the inputs (train and test)
    for s in (0.2, 0.5):
        v[f"none_obs{s}"] = Variant(f"no quantizer, obs. noise {s}", obs_noise=s)
        v[f"svq_obs{s}"] = Variant(f"SVQ, obs. noise {s}", "svq", _svq(), obs_noise=s)
        v[f"svq_frozen_obs{s}"] = Variant(
            f"SVQ frozen, obs. noise {s}", "svq", _svq(freeze_codebook=True), obs_noise=s
        )
        v[f"mlp_obs{s}"] = Variant(f"bottleneck MLP, obs. noise {s}", "mlp", {}, obs_noise=s)
        v[f"vq_obs{s}"] = Variant(f"VQ, obs. noise {s}", "vq", _library("vq"), obs_noise=s)
    return v


@dataclass(frozen=True)
class Group:
    """A table: its dataset, its rows, and the rows ``--quick`` keeps."""

    dataset: str  # a key of Budget.data
    rows: tuple[str, ...]
    quick_rows: tuple[str, ...]
    metrics: tuple[str, ...]
    title: str
    budget: str = "full"  # the key of BUDGETS its runs use (--quick: always "quick")


WEATHER_METRICS = ("mae", "rmse", "wrmse")
BASELINES = ("persistence", "climatology")  # what the engine's test reports beside the model
MAIN_ROWS = (
    "none",
    "svq",
    "svq_frozen",
    "svq_raw",
    "vq",
    "mhvq",
    "rvq",
    "grvq",
    "lfq",
    "fsq",
    "mlp",
    "none_mse",
    "svq_mse",
)
GROUPS: dict[str, Group] = {
    "main": Group(
        "weather",
        MAIN_ROWS,
        ("none", "svq", "fsq"),
        WEATHER_METRICS,
        "Main table: synthetic weather (t2m-like), every quantizer on the same budget",
    ),
    "ablations": Group(
        "weather",
        (
            "none",
            "svq",
            "svq_k256",
            "svq_k1024",
            "svq_k4096",
            "svq_frozen",
            "svq_freeze_mlp",
            "svq_freeze_both",
            "svq_init_kaiming",
            "svq_init_xavier",
            "svq_init_sparse",
            "svq_init_trunc",
            "svq_init_orthogonal",
            "svq_relu_none",
            "svq_relu_out",
            "svq_relu_both",
            "svq_post",
            "none_warmup",
            "svq_warmup",
            "none_noise0.1",
            "svq_noise0.1",
            "none_noise0.3",
            "svq_noise0.3",
            "none_noise0.5",
            "svq_noise0.5",
        ),
        ("none", "svq_k256", "svq_post"),
        WEATHER_METRICS,
        "Ablations: codebook size, freezing, codebook init, position, training-time noise",
    ),
    "noise": Group(
        "weather",
        tuple(
            f"{name}_obs{s}"
            for s in (0.2, 0.5)
            for name in ("none", "svq", "svq_frozen", "mlp", "vq")
        ),
        ("none_obs0.5", "svq_obs0.5"),
        WEATHER_METRICS,
        "Noise robustness: Gaussian observation noise on the inputs (train and test)",
    ),
    "digits": Group(
        "digits",
        ("none", "svq", "svq_frozen", "vq", "mlp"),
        ("none", "svq"),
        ("mae", "mse", "ssim"),
        "Moving digits (Moving MNIST from embedded digits)",
    ),
    "long": Group(
        "weather",
        ("none", "svq", "svq_frozen", "mlp", "vq"),
        ("none", "svq"),
        WEATHER_METRICS,
        "Ten times the budget (2,000 steps): does the SVQ gap close with training?",
        budget="long",
    ),
}


@dataclass(frozen=True)
class DataChoice:
    """A dataset and its load options, plus how many test batches to evaluate (None: all)."""

    dataset: str
    options: Mapping[str, Any]
    test_batches: int | None = None


@dataclass(frozen=True)
class Budget:
    """What every run of a benchmark gets: the same model size and optimizer steps."""

    name: str
    steps: int
    batch_size: int
    seeds: tuple[int, ...]
    data: Mapping[str, DataChoice]
    hid_S: int = 16
    hid_T: int = 64
    N_S: int = 2
    N_T: int = 2
    translator: str = "gsta"
    mlp_ratio: float = 4.0
    lr: float = 5e-3
    channels_last: bool = True  # same numbers, much faster depthwise convolutions on CPU
    timed_skip: int = 3  # first training steps left out of the median step time

    def fingerprint(self) -> str:
        """Hash of everything that changes results (a changed budget never reuses old runs)."""
        text = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


# The full budget: a small SimVP-gSTA (latent 8 x 16, so 4,096 tokens per step reach the
# quantizer), 4 -> 4 hourly frames, windows every 3 hours. The library quantizers cost far
# more per step on a CPU than the whole model (LFQ ~20x, GRVQ ~10x), so they set the size:
# the main table (13 rows x 3 seeds) took about 45 minutes on 2 idle CPU cores (15 per seed)
BUDGETS: dict[str, Budget] = {
    "full": Budget(
        name="full",
        steps=200,
        batch_size=8,
        seeds=(0, 1, 2),
        data={
            "weather": DataChoice("synthetic_weather", {"in_len": 4, "out_len": 4, "stride": 3}),
            "digits": DataChoice(
                "moving_digits",
                {"in_len": 4, "out_len": 4, "train_size": 2000, "val_size": 100},
                test_batches=25,
            ),
        },
        N_S=4,
    ),
    "quick": Budget(
        name="quick",
        steps=4,
        batch_size=4,
        seeds=(0,),
        data={
            "weather": DataChoice(
                "synthetic_weather", {"in_len": 2, "out_len": 2, "stride": 6}, test_batches=2
            ),
            "digits": DataChoice(
                "moving_digits",
                {"in_len": 2, "out_len": 2, "train_size": 64, "val_size": 16},
                test_batches=2,
            ),
        },
        hid_S=8,
        hid_T=16,
        N_T=2,
        mlp_ratio=2.0,
        timed_skip=1,
    ),
}

# The same model and data trained ten times longer (same cosine schedule, stretched): a
# check of whether the short budget's ranking holds once the models have trained more.
BUDGETS["long"] = replace(BUDGETS["full"], name="long", steps=2000)

# Seconds per training step at 4,096 quantizer tokens per step (the full weather budget),
# measured with ONE torch thread on this project's 2-core machine while other jobs kept it
# busy; FREE_MACHINE_SPEEDUP (an assumption, not a measurement) converts them to two idle
# cores with two threads. Only used for the estimate printed before a group, scaled by
# tokens per step; finished runs of a variant replace it with their own median step time.
STEP_SECONDS = {
    "none": 0.114,
    "svq": 0.133,
    "mlp": 0.102,
    "fsq": 0.099,
    "vq": 0.155,
    "mhvq": 0.93,
    "rvq": 0.61,
    "grvq": 1.15,
    "lfq": 2.58,
    "svq_raw": 0.58,
}
FREE_MACHINE_SPEEDUP = 2.5
REFERENCE_TOKENS = 4096
GRIDS = {"synthetic_weather": (32, 64), "moving_digits": (64, 64)}  # (H, W) of a frame
RUN_OVERHEAD_SECONDS = 8.0  # process start-up, data loading, the test epoch


@functools.cache
def variants() -> dict[str, Variant]:
    """All variants by name (built on first use: the library presets import lazily)."""
    return _build_variants()


def reference_row(name: str, rows: Sequence[str]) -> str | None:
    """The no-quantizer row of ``rows`` with the same loss and noise as ``name``."""
    table = variants()
    want = table[name].condition
    for row in rows:
        if table[row].quantizer == "none" and table[row].condition == want:
            return row
    return None


# --------------------------------------------------------------------------- one run


@dataclass(frozen=True)
class Task:
    """One training run: a variant, a seed, a budget, where to put the result."""

    variant: str
    seed: int
    dataset_key: str
    budget: str
    data_root: str
    out_dir: str
    threads: int | None = None

    @property
    def key(self) -> str:
        return f"{self.dataset_key}-{self.variant}-seed{self.seed}"

    def result_path(self) -> Path:
        return Path(self.out_dir) / "results" / self.budget / f"{self.key}.json"


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


def _no_diagnostics():
    import lightning as L

    class NoQuantizerDiagnostics(L.Callback):
        """Switch off the quantizers' test-time diagnostics (code usage, sparsity).

        For SVQ they compute the full (tokens x K) weights of every test batch, which costs
        more than the whole training run of this benchmark; accuracy does not need them.
        The engine switches them on at the start of the test epoch, so this runs per batch.
        """

        def on_test_batch_start(self, trainer: Any, pl_module: Any, *args: Any) -> None:
            for module in pl_module.modules():
                if hasattr(module, "collect_stats"):
                    module.collect_stats = False

    return NoQuantizerDiagnostics()


def _warmup_epochs(steps: int, dm: Any) -> float:
    """``steps`` in epochs of ``dm``'s train loader, the unit the engine's warm-up counts in.
    (No loader is built for no warm-up, so those runs do exactly what they always did.)"""
    return steps / len(dm.train_dataloader()) if steps else 0.0


def run_task(task: Task) -> dict[str, Any]:
    """Train and test one variant with the engine; return the result record."""
    import lightning as L
    import torch

    from svqcast.training import EngineDataModule, ForecastModule, NonFiniteLossError

    budget = BUDGETS[task.budget]
    variant = variants()[task.variant]
    choice = budget.data[task.dataset_key]
    if task.threads:
        torch.set_num_threads(task.threads)
    started = time.perf_counter()
    L.seed_everything(task.seed, workers=True, verbose=False)
    dm = EngineDataModule(
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
        callbacks=[timer, _no_diagnostics()],
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


def _atomic_json(path: Path, data: Any) -> None:
    from svqcast.runs import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return float(value)


def _worker(task_file: str) -> int:
    """Entry point of the per-run subprocess: read the task, run it, write its JSON."""
    task = Task(**json.loads(Path(task_file).read_text()))
    record = run_task(task)
    _atomic_json(task.result_path(), record)
    return 0


def execute(task: Task, isolate: bool = True) -> dict[str, Any]:
    """Run ``task`` (in a fresh Python process when ``isolate``) and return its record."""
    path = task.result_path()
    if not isolate:
        record = run_task(task)
        # a shared process: its peak memory is not this run's own
        record["peak_rss_mib"] = record["train_rss_mib"] = record["final_rss_mib"] = None
        _atomic_json(path, record)
        return record
    path.parent.mkdir(parents=True, exist_ok=True)
    task_file = path.with_suffix(".task.json")
    task_file.write_text(json.dumps(asdict(task)))
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("PYTHONWARNINGS", "ignore")
    proc = subprocess.run(
        [sys.executable, "-m", "svqcast.bench", "--worker", str(task_file)],
        env=env,
        capture_output=True,
        text=True,
    )
    task_file.unlink(missing_ok=True)
    if proc.returncode != 0 or not path.is_file():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
        raise RuntimeError(f"run {task.key} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(path.read_text())


def load_result(task: Task) -> dict[str, Any] | None:
    """The saved record of ``task`` if it exists and was made with the same budget."""
    path = task.result_path()
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("fingerprint") != BUDGETS[task.budget].fingerprint():
        return None
    return record


# --------------------------------------------------------------------------- tables


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return float("nan"), float("nan")
    std = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return statistics.fmean(finite), std


def _num(v: float, digits: int = 4) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{v:.{digits}g}" if abs(v) < 1e4 else f"{v:.0f}"


@dataclass
class RowSummary:
    """Mean and std over seeds of one variant, with its ratios to the reference row."""

    name: str
    label: str
    seeds: int
    diverged: int
    metrics: dict[str, tuple[float, float]]
    ratios: dict[str, float]
    step_ms: float
    peak_rss_mib: float | None
    train_rss_mib: float | None
    reference: str | None


def summarise(group: Group, records: Mapping[str, list[dict[str, Any]]]) -> list[RowSummary]:
    """One :class:`RowSummary` per row of ``group`` that has records."""
    table = variants()
    rows = [r for r in group.rows if records.get(r)]
    out: list[RowSummary] = []
    for name in rows:
        recs = records[name]
        ok = [r for r in recs if r.get("status") == "ok"]
        metrics = {m: _mean_std([r["metrics"].get(m, math.nan) for r in ok]) for m in group.metrics}
        ref = reference_row(name, rows)
        ratios: dict[str, float] = {}
        if ref is not None:
            ref_ok = [r for r in records[ref] if r.get("status") == "ok"]
            for m in group.metrics:
                base = _mean_std([r["metrics"].get(m, math.nan) for r in ref_ok])[0]
                ratios[m] = metrics[m][0] / base if base and math.isfinite(base) else math.nan
        peaks = [r["peak_rss_mib"] for r in recs if r.get("peak_rss_mib") is not None]
        trains = [r["train_rss_mib"] for r in recs if r.get("train_rss_mib") is not None]
        out.append(
            RowSummary(
                name=name,
                label=table[name].label,
                seeds=len(recs),
                diverged=len(recs) - len(ok),
                metrics=metrics,
                ratios=ratios,
                step_ms=1000.0 * statistics.median([r["step_seconds"] for r in recs]),
                peak_rss_mib=max(peaks) if peaks else None,
                train_rss_mib=max(trains) if trains else None,
                reference=ref,
            )
        )
    return out


def baseline_rows(group: Group, records: Mapping[str, list[dict[str, Any]]]) -> list[str]:
    """Markdown rows for the persistence and climatology baselines, taken from the test runs
    of the clean no-quantizer row and, for persistence, of each observation-noise level
    (persistence repeats the noisy last input; climatology ignores the inputs)."""
    lines, seen = [], set()
    blanks = " |" * 4
    for name in group.rows:
        v = variants()[name]
        ok = [r for r in records.get(name, []) if r.get("status") == "ok"]
        if v.quantizer != "none" or v.noise or not ok or v.obs_noise in seen:
            continue
        seen.add(v.obs_noise)
        for base in BASELINES:
            values = ok[0].get("baselines", {}).get(base)
            if values is None or (base == "climatology" and v.obs_noise):
                continue
            note = f" (inputs with obs. noise {v.obs_noise})" if v.obs_noise else ""
            cells = " | ".join(_num(values.get(m, math.nan)) for m in group.metrics)
            lines.append(f"| {base}{note} | {cells} |{blanks}")
    return lines


METRIC_TITLES = {"mae": "MAE", "rmse": "RMSE", "wrmse": "lat-w. RMSE", "mse": "MSE", "ssim": "SSIM"}


def markdown_table(group: Group, records: Mapping[str, list[dict[str, Any]]]) -> str:
    """The group's table: mean +- std over seeds, ratio to the matching no-quantizer row."""
    heads = [METRIC_TITLES.get(m, m) for m in group.metrics]
    ratio_head = " / ".join(heads)
    lines = [
        "| variant | "
        + " | ".join(heads)
        + f" | ratio to no quantizer ({ratio_head})"
        + " | step (ms) | peak RSS, training (MiB) | seeds |",
        "|---" * (len(heads) + 5) + "|",
    ]
    for row in summarise(group, records):
        cells = []
        for m in group.metrics:
            mean, std = row.metrics[m]
            cells.append(f"{_num(mean)} ± {_num(std, 2)}")
        if row.reference is None:
            ratio = "n/a"
        elif row.reference == row.name:
            ratio = "1 (reference)"
        else:
            ratio = " / ".join(f"{row.ratios[m]:.3f}" for m in group.metrics)
        peak = "n/a" if row.peak_rss_mib is None else f"{row.peak_rss_mib:.0f}"
        if row.train_rss_mib is not None:
            peak += f" (+{row.train_rss_mib:.0f})"
        seeds = f"{row.seeds}" + (f" ({row.diverged} diverged)" if row.diverged else "")
        lines.append(
            f"| {row.label} | "
            + " | ".join(cells)
            + f" | {ratio} | {row.step_ms:.0f} | {peak} | {seeds} |"
        )
    lines.extend(baseline_rows(group, records))
    return "\n".join(lines)


# --------------------------------------------------------------------------- driver


def plan(group_name: str, quick: bool, only: Sequence[str] | None = None) -> list[str]:
    """The rows a group runs: all of them, or its quick subset; ``only`` keeps those named."""
    group = GROUPS[group_name]
    rows = list(group.quick_rows if quick else group.rows)
    return rows if only is None else [row for row in rows if row in only]


def tokens_per_step(budget: Budget, dataset_key: str) -> int:
    """Latent tokens reaching the quantizer per training step (batch x frames x H' x W')."""
    choice = budget.data[dataset_key]
    in_len = int(choice.options.get("in_len", 4))
    shape = GRIDS[choice.dataset]
    factor = 2 ** (budget.N_S // 2)
    return budget.batch_size * in_len * (shape[0] // factor) * (shape[1] // factor)


def estimate_seconds(tasks: Sequence[Task], done: Iterable[dict[str, Any]]) -> float:
    """Time the pending ``tasks`` should take: steps x the median step time of finished runs
    of the same variant, else :data:`STEP_SECONDS` scaled by tokens per step; plus
    :data:`RUN_OVERHEAD_SECONDS` per run."""
    seen: dict[tuple[str, str], list[float]] = {}
    for rec in done:
        step = rec.get("step_seconds")
        if step is not None and math.isfinite(step):
            seen.setdefault((rec.get("dataset", ""), rec.get("variant", "")), []).append(step)
    total = 0.0
    for task in tasks:
        budget = BUDGETS[task.budget]
        dataset = budget.data[task.dataset_key].dataset
        measured = seen.get((dataset, task.variant))
        if measured:
            step = statistics.median(measured)
        else:
            quantizer = variants()[task.variant].quantizer
            scale = tokens_per_step(budget, task.dataset_key) / REFERENCE_TOKENS
            guess = STEP_SECONDS.get(quantizer, STEP_SECONDS["none"]) / FREE_MACHINE_SPEEDUP
            step = guess * max(scale, 0.05)
        total += budget.steps * step + RUN_OVERHEAD_SECONDS
    return total


def _fmt_duration(seconds: float) -> str:
    minutes, sec = divmod(int(round(seconds)), 60)
    return f"{minutes} min {sec:02d} s" if minutes else f"{sec} s"


def run_group(
    group_name: str,
    budget: Budget,
    *,
    out_dir: Path,
    data_root: Path,
    quick: bool,
    seeds: Sequence[int],
    threads: int | None,
    isolate: bool,
    only: Sequence[str] | None = None,
    report: bool = False,
    log=print,
) -> dict[str, list[dict[str, Any]]]:
    """Run (or resume) every run of one group (or its rows in ``only``); return records by
    row name. With ``report`` nothing is trained: the saved records alone are returned."""
    group = GROUPS[group_name]
    rows = plan(group_name, quick, only)
    tasks = [
        Task(
            variant=row,
            seed=seed,
            dataset_key=group.dataset,
            budget=budget.name,
            data_root=str(data_root),
            out_dir=str(out_dir),
            threads=threads,
        )
        for row in rows
        for seed in seeds
    ]
    records: dict[str, list[dict[str, Any]]] = {row: [] for row in rows}
    pending = []
    for task in tasks:
        saved = load_result(task)
        if saved is not None:
            records[task.variant].append(saved)
        else:
            pending.append(task)
    head = (
        f"== group {group_name}: {len(rows)} rows x {len(seeds)} seed(s) = {len(tasks)} runs, "
        f"{len(tasks) - len(pending)} already done"
    )
    if report:
        log(head)
        if pending:
            log(f"   not run (--report): {', '.join(task.key for task in pending)}")
        return records
    done = _saved_records(out_dir, budget.name)
    log(f"{head}; estimated {_fmt_duration(estimate_seconds(pending, done))} for the rest")
    _prepare_data(budget.data[group.dataset], data_root)
    failures = []
    for i, task in enumerate(pending, 1):
        t0 = time.perf_counter()
        try:
            record = execute(task, isolate=isolate)
        except (RuntimeError, SvqcastError) as exc:
            failures.append(task.key)
            log(f"[{group_name} {i}/{len(pending)}] {task.key}: FAILED {exc}")
            continue
        records[task.variant].append(record)
        log(_progress_line(group_name, i, len(pending), task, record, time.perf_counter() - t0))
    if failures:
        log(f"!! {len(failures)} run(s) failed and are left out: {', '.join(failures)}")
    return records


def _saved_records(out_dir: Path, budget: str) -> list[dict[str, Any]]:
    """Every readable result record of ``budget`` under ``out_dir`` (for time estimates)."""
    out = []
    for path in sorted((out_dir / "results" / budget).glob("*.json")):
        if path.name.endswith(".task.json"):
            continue
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return out


def _progress_line(group: str, i: int, n: int, task: Task, rec: dict, wall: float) -> str:
    head = f"[{group} {i}/{n}] {task.key}: "
    if rec.get("status") != "ok":
        return head + f"{rec.get('status')} after {rec.get('steps')} steps ({wall:.0f} s)"
    metrics = rec["metrics"]
    shown = ", ".join(f"{k} {metrics[k]:.4g}" for k in ("mae", "rmse", "wrmse") if k in metrics)
    return head + f"{shown}; step {1000 * rec['step_seconds']:.0f} ms; {wall:.0f} s"


def _prepare_data(choice: DataChoice, data_root: Path) -> None:
    """Generate the embedded dataset once, before the runs (each run would otherwise race)."""
    from svqcast.data.datamodule import load_splits

    load_splits(choice.dataset, data_root, "standard", dict(choice.options))


def describe_budget(budget: Budget) -> str:
    data = "; ".join(
        f"{key}: {c.dataset} {dict(c.options)}"
        + (f", first {c.test_batches} test batches" if c.test_batches else ", whole test split")
        for key, c in budget.data.items()
    )
    return (
        f"budget {budget.name}: {budget.steps} Adam steps of batch {budget.batch_size}, "
        f"lr {budget.lr} cosine to 1e-6; SimVP-{budget.translator} hid_S {budget.hid_S}, "
        f"hid_T {budget.hid_T}, N_S {budget.N_S}, N_T {budget.N_T}, mlp_ratio "
        f"{budget.mlp_ratio}; {data}"
    )


def run_benchmark(
    groups: Sequence[str],
    *,
    quick: bool = False,
    out_dir: str | Path = "runs/accuracy",
    data_root: str | Path = "data",
    seeds: Sequence[int] | None = None,
    threads: int | None = None,
    isolate: bool = True,
    rows: Sequence[str] | None = None,
    report: bool = False,
    log=print,
) -> Path:
    """Run the groups (only their ``rows``, if given), write ``accuracy.json`` and
    ``accuracy.md`` into ``out_dir``; return the Markdown path. Finished runs are reused
    (resume); with ``report`` nothing is trained and the tables show the saved runs."""
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ConfigError(
            f"unknown benchmark group(s) {', '.join(unknown)}; choose from "
            f"{', '.join(GROUPS)} or all"
        )
    if rows is not None:
        known = {row for name in groups for row in GROUPS[name].rows}
        missing = [row for row in rows if row not in known]
        if missing or not rows:
            raise ConfigError(
                f"--rows {','.join(missing) or '(empty)'}: not a row of group(s) "
                f"{', '.join(groups)}; see the rows with --list"
            )
    budgets = {name: BUDGETS["quick" if quick else GROUPS[name].budget] for name in groups}
    seeds = tuple(BUDGETS["quick" if quick else "full"].seeds if seeds is None else seeds)
    if not seeds:
        raise ConfigError("--seeds needs at least one seed")
    out_dir, data_root = Path(out_dir), Path(data_root)
    if quick and threads is None:
        threads = 1  # tiny tensors: a second thread only adds synchronisation (and load)
    used = {b.name: b for b in budgets.values()}  # each budget described once, in group order
    for budget in used.values():
        log(describe_budget(budget))
    tables, raw = [], {}
    for name in groups:
        records = run_group(
            name,
            budgets[name],
            out_dir=out_dir,
            data_root=data_root,
            quick=quick,
            seeds=seeds,
            threads=threads,
            isolate=isolate,
            only=rows,
            report=report,
            log=log,
        )
        raw[name] = records
        group = GROUPS[name]
        note = "" if budgets[name].name == "full" or quick else f" (budget {budgets[name].name})"
        tables.append(f"### {group.title}{note}\n\n{markdown_table(group, records)}\n")
        log("\n" + tables[-1])
    suffix = "_quick" if quick else ""
    stem = out_dir / f"accuracy{suffix}"
    meta = {
        "budgets": {b.name: asdict(b) for b in used.values()},
        "fingerprints": {b.name: b.fingerprint() for b in used.values()},
        "group_budgets": {name: b.name for name, b in budgets.items()},
        "seeds": list(seeds),
        "machine": machine_description(threads),
    }
    _atomic_json(stem.with_suffix(".json"), {"meta": meta, "groups": raw})
    from svqcast.runs import atomic_write_text

    described = "\n\n".join(describe_budget(b) for b in used.values())
    text = f"{described}\n\nseeds {list(seeds)}; machine: {meta['machine']}\n\n" + "\n".join(tables)
    md = stem.with_suffix(".md")
    atomic_write_text(md, text)
    log(f"wrote {md} and {stem.with_suffix('.json')}")
    return md


def machine_description(threads: int | None) -> str:
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    n = threads or torch.get_num_threads()
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__} with {n} threads, "
        f"Python {platform.python_version()}"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="svqcast bench accuracy",
        description="Train every quantizer variant with the same budget and compare accuracy.",
    )
    parser.add_argument(
        "--group",
        default="main",
        help=f"one of {', '.join(GROUPS)}, or all, or a comma-separated list (default main)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny budget, one seed, few rows")
    parser.add_argument("--out", default="runs/accuracy", help="output folder (runs/accuracy)")
    parser.add_argument("--data-root", default="data", help="data root (default data)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default 0,1,2)")
    parser.add_argument(
        "--rows",
        default=None,
        help="comma-separated rows of the group(s) to run (default: all; see --list)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per run (default: torch's choice; 1 with --quick)",
    )
    parser.add_argument(
        "--no-isolate",
        action="store_true",
        help="run in this process (faster start; no per-run peak memory)",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="train nothing: write the tables from the runs already saved under --out",
    )
    parser.add_argument("--list", action="store_true", help="list the groups and rows, then exit")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser


def list_groups() -> str:
    lines = []
    for name, group in GROUPS.items():
        lines.append(f"{name}: {group.title}")
        for row in group.rows:
            v = variants()[row]
            lines.append(f"  {row:22s} {v.label}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``svqcast bench accuracy [--group ...] [--quick] ...``; user errors exit with 2."""
    args = build_parser().parse_args(argv)
    if args.worker:
        return _worker(args.worker)
    try:
        if args.list:
            print(list_groups())
            return 0
        groups = list(GROUPS) if args.group == "all" else args.group.split(",")
        try:
            seeds = None if args.seeds is None else [int(s) for s in args.seeds.split(",") if s]
        except ValueError:
            raise ConfigError(
                f"--seeds must be comma-separated integers, got {args.seeds!r}"
            ) from None
        if args.threads is not None and args.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {args.threads}")
        run_benchmark(
            groups,
            quick=args.quick,
            out_dir=args.out,
            data_root=args.data_root,
            seeds=seeds,
            threads=args.threads,
            isolate=not args.no_isolate,
            rows=None if args.rows is None else [r for r in args.rows.split(",") if r],
            report=args.report,
            log=lambda msg: print(msg, flush=True),
        )
    except SvqcastError as exc:
        print(f"svqcast: error: {exc}", file=sys.stderr)
        return 2
    return 0


BENCHMARKS = ("accuracy",)  # what `svqcast bench NAME` runs


def command(argv: Sequence[str]) -> int:
    """``svqcast bench accuracy [options]``: the entry point the ``svqcast`` command calls."""
    if not argv or argv[0] not in BENCHMARKS:
        got = repr(argv[0]) if argv else "nothing"
        raise ConfigError(
            f"svqcast bench needs a benchmark name, got {got}; "
            f"choose one of {', '.join(BENCHMARKS)} (e.g. svqcast bench accuracy --quick)"
        )
    return main(list(argv[1:]))


if __name__ == "__main__":
    raise SystemExit(main())
