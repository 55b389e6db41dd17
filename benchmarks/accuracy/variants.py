"""What the accuracy benchmark runs: its variants, groups (tables) and budgets.

One table says what each variant is (:func:`variants`), one which rows each group shows
(:data:`GROUPS`), one what a run costs (:data:`BUDGETS`). A budget's :meth:`Budget.fingerprint`
is part of every saved run record: a run is reused only by the budget that made it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any


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


SVQ_K = 10_000  # the paper's codebook size for weather
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
    _add_parametrisations(v)
    return v


# SVQ's parametrisations (svqcast.quantizers.svq.PARAMETRISATIONS, each at its default knob)
# and the codebook-free MLP under the same one where it applies (the codebook question)
PARAMETRISATIONS = ("lr_scaled", "readout", "rmsnorm", "residual", "warmup")
MLP_PARAMETRISATIONS = ("rmsnorm", "residual", "warmup")
PARAM_LABELS = {
    "lr_scaled": "SVQ, lr of W2 and codebook x 1/K",
    "readout": "SVQ, readout x 1/K (init x sqrt K)",
    "rmsnorm": "SVQ, RMS-normalised output, gain",
    "residual": "SVQ, residual x + a SVQ(x), a = 0",
    "warmup": "SVQ, own lr warm-up (100 steps)",
}


def _add_parametrisations(v: dict[str, Variant]) -> None:
    """``svq_p_<name>`` and ``mlp_p_<name>`` rows, plus their MSE-loss and observation-noise
    forms (``..._mse``, ``..._obs0.2``), and the MSE-loss MLP."""
    rows = {
        f"svq_p_{n}": (PARAM_LABELS[n], "svq", _svq(parametrisation=n)) for n in PARAMETRISATIONS
    }
    rows.update(
        (f"mlp_p_{n}", (f"bottleneck MLP, {n}", "mlp", {"middim": 128, "parametrisation": n}))
        for n in MLP_PARAMETRISATIONS
    )
    for name, (label, quantizer, options) in rows.items():
        v[name] = Variant(label, quantizer, options)
        v[f"{name}_mse"] = Variant(f"{label}, MSE loss", quantizer, options, loss="mse")
        for s in (0.2, 0.5):
            v[f"{name}_obs{s}"] = Variant(
                f"{label}, obs. noise {s}", quantizer, options, obs_noise=s
            )
    v["mlp_mse"] = Variant("bottleneck MLP, MSE loss", "mlp", {"middim": 128}, loss="mse")


@dataclass(frozen=True)
class Group:
    """A table: its dataset, its rows, and the rows ``--quick`` keeps."""

    dataset: str  # a key of Budget.data
    rows: tuple[str, ...]
    quick_rows: tuple[str, ...]
    metrics: tuple[str, ...]
    title: str
    budget: str = "full"  # the key of BUDGETS its runs use (--quick: always "quick")
    paired: bool = False  # add the paired-by-seed ratios with 95% confidence intervals
    pairs: tuple[tuple[str, str], ...] = ()  # extra paired comparisons (row, against)


WEATHER_METRICS = ("mae", "rmse", "wrmse")
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
# the codebook question: SVQ against the codebook-free MLP under the same parametrisation
# (lr_scaled and readout only rescale the K-code sum: the plain MLP is their control)
CODEBOOK_PAIRS = (
    ("svq", "mlp"),
    ("svq_p_lr_scaled", "mlp"),
    ("svq_p_readout", "mlp"),
    *((f"svq_p_{n}", f"mlp_p_{n}") for n in MLP_PARAMETRISATIONS),
)
PARAM_ROWS = (
    "none",
    "svq",
    "mlp",
    *(f"svq_p_{n}" for n in PARAMETRISATIONS),
    *(f"mlp_p_{n}" for n in MLP_PARAMETRISATIONS),
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
    # ---- SVQ's parametrisations (issue: SVQ that helps at every budget); seeds 0-4 for
    # every candidate, 0-7 for no quantizer, the paper's SVQ, the MLP and the winner
    "param": Group(
        "weather",
        PARAM_ROWS,
        ("none", "svq", "svq_p_readout"),
        WEATHER_METRICS,
        "SVQ's parametrisations at 200 steps, against no quantizer, the paper's SVQ and the MLP",
        paired=True,
        pairs=CODEBOOK_PAIRS,
    ),
    "param_long": Group(
        "weather",
        PARAM_ROWS,
        ("none", "svq_p_readout"),
        WEATHER_METRICS,
        "SVQ's parametrisations at 2,000 steps",
        paired=True,
        pairs=CODEBOOK_PAIRS,
        budget="long",
    ),
    "param_noise": Group(
        "weather",
        tuple(
            f"{name}_obs{s}"
            for s in (0.2, 0.5)
            for name in ("none", "svq", "mlp", *(f"svq_p_{n}" for n in PARAMETRISATIONS))
        ),
        ("none_obs0.5", "svq_p_readout_obs0.5"),
        WEATHER_METRICS,
        "Observation noise on the inputs with SVQ's parametrisations (200 steps)",
        paired=True,
    ),
    "param_digits": Group(
        "digits",
        ("none_mse", "svq_mse", "mlp_mse", *(f"svq_p_{n}_mse" for n in PARAMETRISATIONS)),
        ("none_mse", "svq_p_readout_mse"),
        ("mse", "mae", "ssim"),  # trained with MSE: the paired ratios compare MSE
        "Moving digits with the MSE loss, SVQ's parametrisations",
        paired=True,
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


def describe_budget(budget: Budget) -> str:
    """One line saying what every run of ``budget`` gets (the head of accuracy.md)."""
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


def list_groups() -> str:
    """The groups and their rows, as ``--list`` prints them."""
    lines = []
    for name, group in GROUPS.items():
        lines.append(f"{name}: {group.title}")
        for row in group.rows:
            v = variants()[row]
            lines.append(f"  {row:22s} {v.label}")
    return "\n".join(lines)
