"""The paper's experiments as presets: a base YAML per dataset plus small overrides.

Each base file ``<dataset>.yaml`` of the package's presets (:mod:`svqcast.configs`) holds
that dataset's recipe from the paper (translator, sizes, lr, batch, K, codebook init, loss,
schedule, epochs; the table is in docs/reproduce.md) with SVQ switched on. Every other
experiment is the base plus a few overrides, composed here (one fact in one place):
``<dataset>_svq``, ``<dataset>_svq_frozen``, ``<dataset>_simvp`` (no quantizer, MSE loss)
for every base, TaxiBJ's official SimVP-Swin baseline ``taxibj_simvp_swin`` and SVQ on
ConvNeXt; the t2m VQ baselines of :data:`svqcast.quantizers.library.PRESETS` and their
figures without an official config (``t2m_grvq_k<K>``, ``t2m_vq_post``); the t2m
ablations (input noise with and without SVQ, ReLUs, frozen parts, SVQ after the
translator, every translator, codebook sizes and inits); TAU + residual VQ on r
(``r_tau_rvq``, the fork's ``TAUVQ`` config).

Every preset's resolved values equal the official configs (the paper's code; OpenSTL's for
the SimVP baselines; where a config leaves a value out, the official parser's default):
:func:`preset_table` writes them as the table of docs/reproduce.md and
tests/test_reproduce.py holds them against a frozen copy of the official values.

``svqcast reproduce NAME`` runs one preset (fit, then test of the best validation
checkpoint) and appends the result to ``<runs_dir>/results.{json,md}`` beside the paper's
number where the paper gives one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svqcast.configs import config_path
from svqcast.errors import ConfigError, choices_error

TRANSLATOR_NAMES = (
    "gsta", "incepu", "tau", "convmixer", "convnext", "hornet", "mlpmixer", "moganet",
    "poolformer", "swin", "uniformer", "van", "vit",
)  # fmt: skip
VQ_BASELINES = ("vq", "mhvq", "rvq", "rvq_stochastic", "grvq", "lfq", "rlfq", "rfsq")
CODEBOOK_SIZES = (1000, 2000, 5000, 10000, 20000)
NOISE_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5)
INITS = ("normal", "kaiming", "xavier", "sparse", "trunc", "orthogonal")
BASES = (
    "weather_t2m", "weather_r", "weather_uv10", "weather_tcc", "weather_mv", "weather_hmv",
    "taxibj", "kth", "kitticaltech", "human",
)  # fmt: skip
SHORT = {"weather_t2m": "t2m", "weather_r": "r", "weather_uv10": "uv10", "weather_tcc": "tcc"}

# Input shapes (T_in, C, H, W) and output lengths of the paper's data, used only to build a
# preset's model WITHOUT data (tests, `--print-config`); runs take them from the data.
PAPER_SHAPES: dict[str, tuple[tuple[int, int, int, int], int]] = {
    "weather_t2m": ((12, 1, 32, 64), 12),
    "weather_r": ((12, 1, 32, 64), 12),
    "weather_uv10": ((12, 2, 32, 64), 12),
    "weather_tcc": ((12, 1, 32, 64), 12),
    "weather_mv": ((4, 12, 32, 64), 4),
    "weather_hmv": ((4, 110, 32, 64), 4),
    "taxibj": ((4, 2, 32, 32), 4),
    "kth": ((10, 1, 128, 128), 20),
    "kitticaltech": ((10, 3, 128, 160), 1),
    "human": ((4, 3, 256, 256), 4),
}

# Per-translator values of the official configs (values only). SVQ on each translator (the
# paper's translator ablation): learning rate, all with a kaiming codebook, no warm-up.
SVQ_TRANSLATOR_LR = {
    "convmixer": 1e-2, "convnext": 1e-2, "incepu": 1e-2, "hornet": 1e-3, "mlpmixer": 1e-3,
    "swin": 1e-3, "vit": 1e-3, "poolformer": 5e-4, "moganet": 5e-3, "uniformer": 5e-3,
    "van": 5e-3,
}  # fmt: skip
# SimVP without a quantizer on each translator: OpenSTL's t2m learning rates, no warm-up.
SIMVP_TRANSLATOR_LR = {
    "gsta": 5e-3, "incepu": 1e-2, "tau": 1e-3, "convmixer": 1e-2, "convnext": 1e-2,
    "hornet": 1e-3, "mlpmixer": 1e-3, "moganet": 5e-3, "poolformer": 5e-4, "swin": 1e-3,
    "uniformer": 1e-3, "van": 1e-3, "vit": 1e-3,
}  # fmt: skip
TRANSLATOR_DROP_PATH = {"moganet": 0.2}  # else the base's 0.1
TAU_DDR_WEIGHT = 0.1  # OpenSTL's TAU: MSE + 0.1 x differential divergence regularisation
NOISE_WARMUP = {0.1: 5}  # the official noise configs: warm-up only at 0.1, patience 5
TAXIBJ_CONVNEXT_LR = 1e-3  # TaxiBJ with SimVP-ConvNeXt + SVQ (else taxibj.yaml's recipe)
# the fork's TAUVQ.py: residual VQ, not shared, library defaults for the rest
TAU_RVQ_OPTIONS = {"codebook_size": 64, "codebook_dim": 16, "num_quantizers": 8,
                   "shared_codebook": False}  # fmt: skip
SIMVP_NO_QUANTIZER = {"model.quantizer": "none", "model.quantizer_options": None,
                      "model.loss": "mse"}  # fmt: skip
PARSER_EPOCHS = 200  # the official parser's default, for configs that set no epoch
PARSER_PATIENCE = 10  # likewise for patience


def _simvp_overrides() -> dict[str, dict[str, Any]]:
    """Where the SimVP baselines' official configs differ from their base's SVQ recipe:
    OpenSTL's single-variable WeatherBench ones train without warm-up, its WeatherBench-M
    one with the default lr; the video ones with their own lr, batch and patience, KTH's
    and Human3.6M's for the parser's epochs (their configs set none)."""
    no_warmup = {"model.warmup_epochs": 0}
    parser = {
        "trainer.max_epochs": PARSER_EPOCHS,
        "trainer.callbacks": early_stopping(PARSER_PATIENCE),
    }
    return {
        "weather_t2m": no_warmup,
        "weather_r": no_warmup,
        "weather_uv10": no_warmup,
        "weather_tcc": no_warmup,
        "weather_mv": {"model.lr": 1e-3},
        "kth": {"model.lr": 1e-3, "data.batch_size": 8, **parser},
        "kitticaltech": {"model.lr": 5e-3, "data.batch_size": 8},
        "human": {"model.lr": 1e-3, "data.batch_size": 16, **parser},
    }


def early_stopping(patience: int) -> list[dict[str, Any]]:
    """``trainer.callbacks`` of a preset: early stopping on ``val_loss`` (the official code
    stops after ``patience`` epochs without a new lowest validation loss)."""
    return [
        {
            "class_path": "lightning.pytorch.callbacks.EarlyStopping",
            "init_args": {"monitor": "val_loss", "mode": "min", "patience": patience},
        }
    ]


# Published test numbers of the paper per group: its source (where in the paper) and, per
# preset, the numbers as printed (weather: de-normalised, MSE in physical units squared;
# video: per-frame sums; TaxiBJ as published; OpenSTL protocol: checkpoint chosen on the
# test set). Only numbers read in the paper itself, for the same experiment as the preset.
PAPER: dict[str, dict[str, Any]] = {
    "t2m": {
        "source": "the paper's WeatherBench-S t2m results (MSE in K^2; the SimVP row is "
        "OpenSTL's published SimVP-gSTA; table number not verified)",
        "rows": {
            "t2m_simvp": {"mse": 1.105, "mae": 0.6567, "rmse": 1.051},
            "t2m_svq": {"mse": 1.018},
            "t2m_svq_frozen": {"mse": 1.023},
        },
    },
    "t2m_vq": {
        "source": "the paper's VQ comparison on t2m (MSE in K^2; table number not verified)",
        "rows": {"t2m_vq": {"mse": 1.854}, "t2m_rvq": {"mse": 1.213}, "t2m_grvq": {"mse": 1.174}},
    },
}
PAPER_T2M = {n: v for g in ("t2m", "t2m_vq") for n, v in PAPER[g]["rows"].items()}
PAPER_METRICS = ("mse", "mae", "rmse", "ssim", "psnr", "lpips")  # the column: first present


def paper_cell(numbers: dict[str, float]) -> str:
    """The paper's MSE as printed ("1.018"); without an MSE the first metric it gives, named
    ("mae 12.5"); "" without numbers."""
    for key in PAPER_METRICS:
        if key in numbers:
            v = numbers[key]
            text = f"{v:g}" if float(f"{v:g}") == v else repr(float(v))  # every digit
            return text if key == "mse" else f"{key} {text}"
    return ""


@dataclass
class Preset:
    name: str
    base: str  # configs/<base>.yaml
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted keys -> values
    description: str = ""
    paper: dict[str, float] = field(default_factory=dict)
    paper_source: str = ""  # where in the paper (PAPER's group source)


def _presets() -> dict[str, Preset]:
    out: dict[str, Preset] = {}

    def add(p: Preset) -> None:
        out[p.name] = p

    for base in BASES:
        short = SHORT.get(base, base)
        add(Preset(f"{short}_svq", base, {}, f"{base}: SimVP + SVQ, learnable codebook"))
        add(
            Preset(
                f"{short}_svq_frozen",
                base,
                {"model.quantizer_options.freeze_codebook": True},
                f"{base}: SimVP + SVQ, frozen random codebook",
            )
        )
        simvp = dict(SIMVP_NO_QUANTIZER)
        simvp.update(_simvp_overrides().get(base, {}))
        add(
            Preset(
                f"{short}_simvp", base, simvp, f"{base}: SimVP baseline (no quantizer, MSE loss)"
            )
        )
    for name in VQ_BASELINES:
        from svqcast.quantizers.library import PRESETS

        lib = PRESETS[name]
        add(
            Preset(
                f"t2m_{name}",
                "weather_t2m",
                {
                    "model.quantizer": lib["quantizer"],
                    "model.quantizer_options": dict(lib["options"]),
                    "model.loss": "mse",
                },
                f"t2m VQ baseline: {lib['paper_row']} (MSE loss)",
            )
        )
    for p in NOISE_LEVELS:
        noise = {
            "model.noise": p,
            "model.warmup_epochs": NOISE_WARMUP.get(p, 0),
            "trainer.callbacks": early_stopping(5),
        }
        add(Preset(f"t2m_noise_{p}", "weather_t2m", noise, f"t2m SVQ, input noise {p}"))
    q = "model.quantizer_options."
    for hid, outr in ((0, 0), (0, 1), (1, 0), (1, 1)):
        relu = {q + "hid_relu": bool(hid), q + "out_relu": bool(outr)}
        text = f"hidden ReLU {'on' if hid else 'off'}, output ReLU {'on' if outr else 'off'}"
        add(Preset(f"t2m_relu_hid{hid}_out{outr}", "weather_t2m", relu, f"t2m SVQ, {text}"))
    appendix = {  # the appendix ablations: kaiming codebook
        "t2m_freeze_mlp": ({q + "freeze_mlp": True}, ", MLP frozen at its random init"),
        "t2m_freeze_both": (
            {q + "freeze_mlp": True, q + "freeze_codebook": True},
            ", MLP and codebook both frozen",
        ),
        "t2m_post": (
            {"model.quantizer_position": "post", q + "codebook_size": 1024},
            " after the translator (K 1024)",
        ),
    }
    for name, (over, text) in appendix.items():
        add(Preset(name, "weather_t2m", {**over, q + "init": "kaiming"}, f"t2m SVQ{text}"))
    for tr in TRANSLATOR_NAMES:
        svq: dict[str, Any] = {"model.translator": tr}
        if tr in SVQ_TRANSLATOR_LR:  # gsta is t2m_svq; tau: no official SVQ config on t2m
            svq.update(
                {
                    "model.lr": SVQ_TRANSLATOR_LR[tr],
                    "model.quantizer_options.init": "kaiming",
                    "model.warmup_epochs": 0,
                    "model.drop_path": TRANSLATOR_DROP_PATH.get(tr, 0.1),
                }
            )
        add(Preset(f"t2m_svq_{tr}", "weather_t2m", svq, f"t2m SVQ on {tr}"))
        simvp: dict[str, Any] = {
            "model.translator": tr,
            "model.quantizer": "none",
            "model.quantizer_options": None,
            "model.loss": "mse",
            "model.lr": SIMVP_TRANSLATOR_LR[tr],
            "model.warmup_epochs": 0,
            "model.drop_path": TRANSLATOR_DROP_PATH.get(tr, 0.1),
        }
        if tr == "tau":
            simvp["model.ddr_weight"] = TAU_DDR_WEIGHT
        add(Preset(f"t2m_simvp_{tr}", "weather_t2m", simvp, f"t2m SimVP baseline on {tr}"))
    for k in CODEBOOK_SIZES:
        add(
            Preset(
                f"t2m_k{k}",
                "weather_t2m",
                {"model.quantizer_options.codebook_size": k},
                f"t2m SVQ, codebook size {k}",
            )
        )
    for init in INITS:
        add(
            Preset(
                f"t2m_init_{init}",
                "weather_t2m",
                {"model.quantizer_options.init": init},
                f"t2m SVQ, codebook init {init}",
            )
        )
    _add_extra_presets(add)
    for group in PAPER.values():
        for name, numbers in group["rows"].items():
            out[name].paper, out[name].paper_source = dict(numbers), group["source"]
    return out


def _add_extra_presets(add) -> None:
    """The experiments added after the first set: the SimVP + input-noise baselines, TaxiBJ
    on ConvNeXt, the grouped residual VQ codebook-size sweep and hard VQ after the
    translator (figures of the paper with no official config), TaxiBJ's official SimVP-Swin
    baseline and the fork's TAU + residual VQ config on r."""
    from svqcast.quantizers.library import PRESETS as LIB

    for p in NOISE_LEVELS:  # the official raw-<p> configs: SimVP, no warm-up, patience 5
        add(
            Preset(
                f"t2m_simvp_noise_{p}",
                "weather_t2m",
                {
                    "model.quantizer": "none",
                    "model.quantizer_options": None,
                    "model.loss": "mse",
                    "model.noise": p,
                    "model.warmup_epochs": 0,
                    "trainer.callbacks": early_stopping(5),
                },
                f"t2m SimVP baseline (no quantizer), input noise {p}",
            )
        )
    for frozen in (False, True):
        add(
            Preset(
                f"taxibj_svq{'_frozen' if frozen else ''}_convnext",
                "taxibj",
                {
                    "model.translator": "convnext",
                    "model.lr": TAXIBJ_CONVNEXT_LR,
                    "model.quantizer_options.freeze_codebook": frozen,
                },
                f"taxibj: SimVP-ConvNeXt + SVQ, {'frozen random' if frozen else 'learnable'} "
                "codebook",
            )
        )
    grvq = LIB["grvq"]
    for k in CODEBOOK_SIZES:
        add(
            Preset(
                f"t2m_grvq_k{k}",
                "weather_t2m",
                {
                    "model.quantizer": grvq["quantizer"],
                    "model.quantizer_options": {**grvq["options"], "codebook_size": k},
                    "model.loss": "mse",
                },
                f"t2m VQ baseline: {grvq['paper_row']}, codebook size {k} (MSE loss)",
            )
        )
    add(  # the fork's only TaxiBJ SimVP config (configs/taxibj/simvp/SimVP_Swin.py)
        Preset(
            "taxibj_simvp_swin",
            "taxibj",
            {**SIMVP_NO_QUANTIZER, "model.translator": "swin"},
            "taxibj: SimVP-Swin baseline (no quantizer, MSE loss), the official TaxiBJ one",
        )
    )
    add(  # the fork's configs/weather/r_5_625/TAUVQ.py (no TAUVQ method in the fork)
        Preset(
            "r_tau_rvq",
            "weather_r",
            {
                "model.translator": "tau",
                "model.quantizer": "rvq",
                "model.quantizer_options": dict(TAU_RVQ_OPTIONS),
                "model.loss": "mse",
                "model.ddr_weight": TAU_DDR_WEIGHT,
                "model.drop_path": 0.1,
                "trainer.max_epochs": PARSER_EPOCHS,
            },
            "r: TAU + residual VQ (K 64 x 8, dim 16), MSE + 0.1 DDR as TAU",
        )
    )
    vq = LIB["vq"]
    add(
        Preset(
            "t2m_vq_post",
            "weather_t2m",
            {
                "model.quantizer": vq["quantizer"],
                "model.quantizer_options": dict(vq["options"]),
                "model.quantizer_position": "post",
                "model.loss": "mse",
            },
            f"t2m VQ baseline: {vq['paper_row']} after the translator (MSE loss)",
        )
    )


PRESETS: dict[str, Preset] = _presets()


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise choices_error("preset", name, tuple(PRESETS))
    return PRESETS[name]


def _set_dotted(cfg: dict[str, Any], key: str, value: Any) -> None:
    node = cfg
    parts = key.split(".")
    for part in parts[:-1]:
        if node.get(part) is None:
            node[part] = {}
        node = node[part]
    node[parts[-1]] = copy.deepcopy(value)


def preset_config(name: str, data_root: str | None = None) -> dict[str, Any]:
    """The composed configuration of preset ``name`` (base YAML + overrides)."""
    import yaml

    preset = get_preset(name)
    cfg = yaml.safe_load(config_path(preset.base).read_text(encoding="utf-8"))
    for key, value in preset.overrides.items():
        _set_dotted(cfg, key, value)
    if data_root is not None:
        _set_dotted(cfg, "data.root", str(data_root))
    return cfg


def preset_yaml(name: str, data_root: str | None = None) -> str:
    import yaml

    preset = get_preset(name)
    head = f"# preset {name}: {preset.description}\n# base configs/{preset.base}.yaml\n"
    return head + yaml.safe_dump(preset_config(name, data_root), sort_keys=False)


def build_model(name: str, device: str = "meta"):
    """The preset's SimVP at the paper's data shape, on ``device`` (meta: no memory)."""
    import torch

    from svqcast.models.simvp import SimVP

    cfg = preset_config(name)
    model = dict(cfg["model"])
    in_shape, out_len = PAPER_SHAPES[get_preset(name).base]
    keys = ("hid_S", "hid_T", "N_S", "N_T", "translator", "quantizer", "quantizer_options",
            "quantizer_position", "noise", "mlp_ratio", "drop", "drop_path")  # fmt: skip
    kwargs = {k: model[k] for k in keys if k in model}
    if kwargs.get("quantizer") == "none":
        kwargs["quantizer"] = None
    extra = dict(model.get("model_options") or {})
    try:
        with torch.device(device):
            return SimVP(in_shape, out_len, **kwargs, **extra)
    except (RuntimeError, NotImplementedError):
        if device != "meta":
            raise
        # some library quantizers compute values while building: build those on the CPU
        return SimVP(in_shape, out_len, **kwargs, **extra)


def same_configuration() -> dict[str, str]:
    """Presets whose resolved configuration equals that of a preset with a paper number
    (``t2m_svq_gsta`` is ``t2m_svq``): name -> that preset. Their own ``paper`` stays empty
    (the paper prints the number once); ``--list`` names the twin."""
    import json

    published = {json.dumps(preset_config(p.name), sort_keys=True): p.name
                 for p in PRESETS.values() if p.paper}  # fmt: skip
    out = {}
    for p in PRESETS.values():
        twin = published.get(json.dumps(preset_config(p.name), sort_keys=True))
        if not p.paper and twin:
            out[p.name] = twin
    return out


def list_presets() -> str:
    """Every preset, the paper's MSE where the paper gives one, and its description."""
    twins = same_configuration()
    lines = [f"{'preset':<30} {'paper':>11}   description"]
    for p in PRESETS.values():
        text = p.description
        if p.name in twins:
            twin = PRESETS[twins[p.name]]
            text += f" (same configuration as {twin.name}: paper {paper_cell(twin.paper)})"
        lines.append(f"{p.name:<30} {paper_cell(p.paper) or '-':>11}   {text}")
    lines.append(
        "paper: the published test MSE (weather in physical units squared, video per-frame "
        "sums), else the metric named; sources in docs/reproduce.md; '-': the paper prints "
        "no number for this preset that svqcast records"
    )
    return "\n".join(lines)


TABLE_MARKERS = ("<!-- preset table: generated by svqcast.commands.reproduce.preset_table -->",
                 "<!-- end of the preset table -->")  # fmt: skip


def _patience(cfg: dict[str, Any]) -> str:
    for cb in (cfg.get("trainer") or {}).get("callbacks") or []:
        if isinstance(cb, dict) and cb.get("class_path", "").endswith("EarlyStopping"):
            return str(cb.get("init_args", {}).get("patience", "-"))
    return "-"


def _quantizer_cell(m: dict[str, Any]) -> str:
    q = m.get("quantizer", "none")
    if q in (None, "none"):
        return "none"
    opts = dict(m.get("quantizer_options") or {})
    where = ", post" if m.get("quantizer_position", "pre") != "pre" else ""
    if q != "svq":
        k = opts.get("codebook_size")
        return (f"{q} K {k}" if k else q) + where
    parts = [f"svq K {opts.get('codebook_size')}", str(opts.get("init", "normal"))]
    if opts.get("freeze_codebook"):
        parts.append("frozen")
    if opts.get("freeze_mlp"):
        parts.append("MLP frozen")
    if "hid_relu" in opts or "out_relu" in opts:
        parts.append(f"ReLU {int(bool(opts.get('hid_relu')))}/{int(bool(opts.get('out_relu')))}")
    return ", ".join(parts) + where


def _num(v: float) -> str:
    """5e-3, 1.25e-3, 0.1: short, exact decimal forms for the table."""
    if v == 0 or 0.01 < abs(v) < 1000:
        return f"{v:g}"
    mantissa, exponent = f"{v:.6e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def preset_table() -> str:
    """A markdown table of every preset's resolved hyper-parameters, with the paper's MSE
    where it gives one (docs/reproduce.md holds a copy; a test keeps the two equal)."""
    head = (
        "| preset | translator | quantizer | loss | lr | batch | drop_path | warm-up | "
        "schedule, epochs | early stop | paper MSE (else named) |"
    )
    lines = [head, "|" + "---|" * 11]
    for p in PRESETS.values():
        cfg = preset_config(p.name)
        m, d = cfg["model"], cfg["data"]
        loss = str(m.get("loss", "mae"))
        if m.get("ddr_weight"):
            loss += f" + {m['ddr_weight']:g} DDR"
        if m.get("noise"):
            loss += f", noise {m['noise']:g}"
        cells = [
            f"`{p.name}`",
            str(m.get("translator", "gsta")),
            _quantizer_cell(m),
            loss,
            _num(m.get("lr", 1e-3)),
            str(d.get("batch_size")),
            f"{m.get('drop_path', 0.0):g}",
            f"{m.get('warmup_epochs', 0):g}" if m.get("scheduler", "cosine") == "cosine" else "-",
            f"{m.get('scheduler', 'cosine')}, {cfg['trainer'].get('max_epochs')}",
            _patience(cfg),
            paper_cell(p.paper),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_preset(
    name: str,
    data_root: str = "data",
    runs_dir: str = "runs",
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Fit and test preset ``name``; append the result to ``<runs_dir>/results.{json,md}``."""
    from svqcast.commands.fit import run_lightning
    from svqcast.evaluation.reports import append_result

    text = preset_yaml(name, data_root)
    args = ["fit", "--config", text, "--name", name, "--runs_dir", runs_dir, *(overrides or [])]
    cli = run_lightning(args)
    module = cli.model
    rows = module.test_results
    label = module.model_label()
    if label not in rows:
        raise ConfigError(f"preset {name} produced no test results; was testing disabled?")
    entry = {
        "preset": name,
        "description": get_preset(name).description,
        "metrics": rows[label],
        "baselines": {k: v for k, v in rows.items() if k != label},
        "paper": get_preset(name).paper,
        "paper_source": get_preset(name).paper_source,
        "protocol": cli.datamodule.hparams.get("protocol", "standard"),
        "run_dir": str(cli.trainer.default_root_dir),
    }
    append_result(Path(runs_dir) / "results", entry)
    return entry


def describe_entry(entry: dict[str, Any]) -> str:
    ours, paper = entry["metrics"], entry.get("paper") or {}
    parts = [f"{entry['preset']}: "]
    for key in ("mse", "mae", "rmse"):
        if key in ours:
            text = f"{key} {ours[key]:.4g}"
            if key in paper:
                text += f" (paper {paper[key]:.4g})"
            parts.append(text + "; ")
        elif f"{key}_norm" in ours:  # channels in different units: no physical overall number
            parts.append(f"{key} {ours[key + '_norm']:.4g} (normalised units); ")
    parts.append(f"run folder {entry['run_dir']}")
    return "".join(parts)
