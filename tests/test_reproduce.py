"""Every preset against a frozen copy of the official configs; the timm warm-up schedule;
TAU's differential divergence regularisation; the generated preset table of the docs."""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from svqcast.commands import reproduce
from svqcast.training.module import ForecastModule, cosine_factor, differential_divergence

ROOT = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------- official values

# The official values of every preset, copied by hand from the public configs (values only):
# S: the paper's code (Pachark/SVQ-Forecasting, configs/...), O: OpenSTL (chengtan9907/OpenSTL,
# configs/...). Where a config leaves a value out, the official code's parser default holds
# (patience 10, warm-up 0, drop_path 0). Rows without an official config say so: they are the
# named recipe with the one option the ablation varies.
# columns: source, translator, lr, batch, drop_path, warm-up epochs (None: OneCycle, which
# has no warm-up), epochs, early-stopping patience, loss, K, codebook init, frozen codebook
# (K, init, frozen None: no quantizer or a library quantizer). The official parser
# (openstl/utils/parser.py of the fork) defaults: epoch 200, patience 10, warmup_epoch 0,
# drop_path 0; its tools/train.py takes every key a config sets over them.
# fmt: off
S = "S weather/t2m_5_625/"
O = "O weather/"
_T2M = (S + "SimVPVQ_gSTA_learnable.py", "gsta", 5e-3, 16, 0.1, 5, 50, 10, "mae", 10000, "normal", False)  # noqa: E501
_FIELDS = ("source", "tr", "lr", "batch", "dp", "warm", "epochs", "pat", "loss", "k", "init", "frozen")  # noqa: E501


def _row(source, tr, lr, batch, dp, warm, epochs, pat, loss, k=None, init=None, frozen=None):
    return (source, tr, lr, batch, dp, warm, epochs, pat, loss, k, init, frozen)


def _t2m(source: str, **changes):
    base = dict(zip(_FIELDS, _T2M))
    base.update(source=source, **changes)
    return _row(**base)


_LIB = {"loss": "mse", "k": None, "init": None, "frozen": None}  # a library quantizer
OFFICIAL: dict[str, tuple] = {
    # t2m: the paper's headline and its SimVP baseline (OpenSTL's t2m config, MSE as SimVP)
    "t2m_svq": _T2M,
    "t2m_svq_frozen": _t2m(S + "SimVPVQ_gSTA_frozen.py", frozen=True),
    "t2m_simvp": _row(O + "t2m_5_625/SimVP_gSTA.py", "gsta", 5e-3, 16, 0.1, 0, 50, 10, "mse"),
    # the other WeatherBench-S variables
    "r_svq": _row("S weather/r_5_625/SimVPVQ_Swin_learnable.py", "swin", 1e-3, 16, 0.2, 5, 50, 10, "mae", 10000, "kaiming", False),  # noqa: E501
    "r_svq_frozen": _row("S weather/r_5_625/SimVPVQ_Swin_freeze.py", "swin", 1e-3, 16, 0.2, 5, 50, 10, "mae", 10000, "kaiming", True),  # noqa: E501
    "r_simvp": _row(O + "simvp_r_5_625/SimVP_Swin.py", "swin", 1e-3, 16, 0.2, 0, 50, 10, "mse"),
    "uv10_svq": _row("S weather/uv10_5_625/SimVPVQ_Swin_learnable.py", "swin", 1e-3, 16, 0.2, 5, 50, 10, "mae", 10000, "kaiming", False),  # noqa: E501
    "uv10_svq_frozen": _row("S weather/uv10_5_625/SimVPVQ_Swin_freeze.py", "swin", 1e-3, 16, 0.2, 5, 50, 10, "mae", 10000, "kaiming", True),  # noqa: E501
    "uv10_simvp": _row("no official uv10 SimVP-Swin config: uv10_svq's recipe, MSE, no warm-up as OpenSTL's r and tcc ones", "swin", 1e-3, 16, 0.2, 0, 50, 10, "mse"),  # noqa: E501
    "tcc_svq": _row("S weather/tcc_5_625/SimVPVQ_gSTA_learnable.py", "gsta", 1e-2, 16, 0.1, 5, 50, 10, "mse", 10000, "kaiming", False),  # noqa: E501
    "tcc_svq_frozen": _row("S weather/tcc_5_625/SimVPVQ_gSTA_freeze.py", "gsta", 1e-2, 16, 0.1, 5, 50, 10, "mse", 10000, "kaiming", True),  # noqa: E501
    "tcc_simvp": _row(O + "tcc_5_625/SimVP_gSTA.py", "gsta", 1e-2, 16, 0.1, 0, 50, 10, "mse"),
    # WeatherBench-M (no epochs in the configs: the parser's 200). The official "frozen"
    # config is learnable and after the translator, a bug there: ours is frozen, before it.
    "weather_mv_svq": _row("S weather/mv_4_s6_5_625/SimVPVQ_MogaNet_learnable.py", "moganet", 5e-3, 16, 0.1, 5, 200, 10, "mae", 10000, "kaiming", False),  # noqa: E501
    "weather_mv_svq_frozen": _row("S weather/mv_4_s6_5_625/SimVPVQ_MogaNet_frozen.py (fixed: frozen, before the translator)", "moganet", 5e-3, 16, 0.1, 5, 200, 10, "mae", 10000, "kaiming", True),  # noqa: E501
    "weather_mv_simvp": _row(O + "mv_4_s6_5_625/SimVP_MogaNet.py (lr not set: the default 1e-3)", "moganet", 1e-3, 16, 0.1, 5, 200, 10, "mse"),  # noqa: E501
    # WeatherBench-HMV (110 channels; the paper ran it on 2 GPUs: batch 8 per GPU)
    "weather_hmv_svq": _row("S weather/hmv_4_s6_5_625/SimVPVQ_gSTA_learnable.py (lr 5e-3 / 2)", "gsta", 2.5e-3, 8, 0.1, 5, 50, 10, "mae", 10000, "normal", False),  # noqa: E501
    "weather_hmv_svq_frozen": _row("S weather/hmv_4_s6_5_625/SimVPVQ_gSTA_frozen.py (lr 5e-3 / 2)", "gsta", 2.5e-3, 8, 0.1, 5, 50, 10, "mae", 10000, "normal", True),  # noqa: E501
    "weather_hmv_simvp": _row("S weather/hmv_4_s6_5_625/SimVP_gSTA.py (lr 5e-3 / 2; no loss set: SimVP's MSE)", "gsta", 2.5e-3, 8, 0.1, 5, 50, 10, "mse"),  # noqa: E501
    # TaxiBJ
    "taxibj_svq": _row("S taxibj/simvp/SimVPVQ_gSTA_learnable.py", "gsta", 5e-4, 16, 0.1, 5, 50, 10, "mae", 10000, "kaiming", False),  # noqa: E501
    "taxibj_svq_frozen": _row("S taxibj/simvp/SimVPVQ_gSTA_frozen.py", "gsta", 5e-4, 16, 0.1, 5, 50, 10, "mae", 10000, "kaiming", True),  # noqa: E501
    "taxibj_simvp": _row("no official TaxiBJ SimVP-gSTA config (the official one is Swin: taxibj_simvp_swin): taxibj_svq's recipe, MSE", "gsta", 5e-4, 16, 0.1, 5, 50, 10, "mse"),  # noqa: E501
    "taxibj_simvp_swin": _row("S taxibj/simvp/SimVP_Swin.py (epoch 50 set there; patience not: the parser's 10; no loss: SimVP's MSE)", "swin", 5e-4, 16, 0.1, 5, 50, 10, "mse"),  # noqa: E501
    "taxibj_svq_convnext": _row("S taxibj/simvp/SimVPVQ_ConvNeXt_learnable.py", "convnext", 1e-3, 16, 0.1, 5, 50, 10, "mae", 10000, "kaiming", False),  # noqa: E501
    "taxibj_svq_frozen_convnext": _row("S taxibj/simvp/SimVPVQ_ConvNeXt_frozen.py", "convnext", 1e-3, 16, 0.1, 5, 50, 10, "mae", 10000, "kaiming", True),  # noqa: E501
    # video (OneCycle: no warm-up; KittiCaltech's configs set 5, which OneCycle ignores)
    "kth_svq": _row("S kth/simvp/SimVPVQ_IncepU_learnable.py", "incepu", 5e-4, 4, 0.1, None, 100, 50, "mae", 6000, "kaiming", False),  # noqa: E501
    "kth_svq_frozen": _row("S kth/simvp/SimVPVQ_IncepU_frozen.py", "incepu", 5e-4, 4, 0.1, None, 100, 50, "mae", 6000, "kaiming", True),  # noqa: E501
    "kth_simvp": _row("S kth/simvp/SimVP_IncepU.py (no epoch or patience there, and no command line passing them in the fork: the parser's 200 and 10)", "incepu", 1e-3, 8, 0.1, None, 200, 10, "mse"),  # noqa: E501
    "kitticaltech_svq": _row("S kitticaltech/simvp/SimVPVQ_gSTA_learnable.py", "gsta", 1.25e-3, 4, 0.2, None, 100, 50, "mae", 6000, "kaiming", False),  # noqa: E501
    "kitticaltech_svq_frozen": _row("S kitticaltech/simvp/SimVPVQ_gSTA_freeze.py", "gsta", 1.25e-3, 4, 0.2, None, 100, 50, "mae", 6000, "kaiming", True),  # noqa: E501
    "kitticaltech_simvp": _row("S kitticaltech/simvp/SimVP_gSTA.py", "gsta", 5e-3, 8, 0.2, None, 100, 50, "mse"),  # noqa: E501
    "human_svq": _row("S human/simvp/SimVPVQ_gSTA_learnable.py", "gsta", 2.5e-4, 4, 0.1, 0, 50, 50, "mae", 10000, "kaiming", False),  # noqa: E501
    "human_svq_frozen": _row("S human/simvp/SimVPVQ_gSTA_frozen.py", "gsta", 2.5e-4, 4, 0.1, 0, 50, 50, "mae", 10000, "kaiming", True),  # noqa: E501
    "human_simvp": _row("S human/simvp/SimVP_gSTA.py (no epoch or patience there, and no command line passing them in the fork: the parser's 200 and 10)", "gsta", 1e-3, 16, 0.1, 0, 200, 10, "mse"),  # noqa: E501
    # TAU + residual VQ on r: the fork's TAUVQ.py (method TAUVQ, which the fork does not
    # implement); no epoch, patience or loss there: the parser's 200 and 10, TAU's MSE
    "r_tau_rvq": _row("S weather/r_5_625/TAUVQ.py", "tau", 1e-3, 16, 0.1, 5, 200, 10, "mse"),
    # the classic quantizers (MSE loss)
    "t2m_vq": _t2m(S + "ablation_vq/VQ.py", **_LIB),
    "t2m_mhvq": _t2m(S + "ablation_vq/MultiHeadVQ.py", **_LIB),
    "t2m_rvq": _t2m(S + "ablation_vq/ResidualVQ.py", **_LIB),
    "t2m_rvq_stochastic": _t2m(S + "ablation_vq/ResidualVQ-Stochastic.py", **_LIB),
    "t2m_grvq": _t2m(S + "ablation_vq/GroupedResidualVQ.py", **_LIB),
    "t2m_lfq": _t2m(S + "ablation_vq/LFQ.py", **_LIB),
    "t2m_rlfq": _t2m(S + "ablation_vq/ResidualLFQ.py", **_LIB),
    "t2m_rfsq": _t2m(S + "ablation_vq/ResidualFSQ.py", **_LIB),
    # input noise: warm-up only at 0.1, patience 5
    "t2m_noise_0.1": _t2m(S + "ablation_noise/SVQ-0.1.py", pat=5),
    "t2m_noise_0.2": _t2m(S + "ablation_noise/SVQ-0.2.py", warm=0, pat=5),
    "t2m_noise_0.3": _t2m(S + "ablation_noise/SVQ-0.3.py", warm=0, pat=5),
    "t2m_noise_0.4": _t2m(S + "ablation_noise/SVQ-0.4.py", warm=0, pat=5),
    "t2m_noise_0.5": _t2m(S + "ablation_noise/SVQ-0.5.py", warm=0, pat=5),
    # SimVP under the same input noise (no quantizer; no loss set: SimVP's MSE)
    **{f"t2m_simvp_noise_{p}": _row(S + f"ablation_noise/raw-{p}.py", "gsta", 5e-3, 16, 0.1, 0, 50, 5, "mse") for p in (0.1, 0.2, 0.3, 0.4, 0.5)},  # noqa: E501
    # the paper's figures without an official config: the GRVQ codebook-size sweep is
    # ablation_vq/GroupedResidualVQ.py with K changed (the K of the SVQ sweep); hard VQ after
    # the translator is ablation_vq/VQ.py with post_vq = True of
    # ablation_appendix/SimVPVQ_gSTA_learnable_postvq.py
    **{f"t2m_grvq_k{k}": _t2m(f"no official config: {S}ablation_vq/GroupedResidualVQ.py with K {k}", **_LIB) for k in (1000, 2000, 5000, 10000, 20000)},  # noqa: E501
    "t2m_vq_post": _t2m(f"no official config: {S}ablation_vq/VQ.py + post_vq of ablation_appendix/SimVPVQ_gSTA_learnable_postvq.py", **_LIB),  # noqa: E501
    # the ReLUs
    "t2m_relu_hid0_out0": _t2m(S + "ablation_relu/SimVPVQ_gSTA_relu_False_False.py"),
    "t2m_relu_hid0_out1": _t2m(S + "ablation_relu/SimVPVQ_gSTA_relu_False_True.py"),
    "t2m_relu_hid1_out0": _t2m(S + "ablation_relu/SimVPVQ_gSTA_relu_True_False.py"),
    "t2m_relu_hid1_out1": _t2m(S + "ablation_relu/SimVPVQ_gSTA_relu_True_True.py"),
    # the appendix ablations
    "t2m_freeze_mlp": _t2m(S + "ablation_appendix/freeze_projection.py", init="kaiming"),
    "t2m_freeze_both": _t2m(S + "ablation_appendix/freeze_both.py", init="kaiming", frozen=True),
    "t2m_post": _t2m(S + "ablation_appendix/SimVPVQ_gSTA_learnable_postvq.py", k=1024, init="kaiming"),  # noqa: E501
    # SVQ on each translator (kaiming, no warm-up, per-translator lr, below); gSTA: headline
    "t2m_svq_gsta": _t2m(S + "SimVPVQ_gSTA_learnable.py"),
    "t2m_svq_tau": _t2m("no official SVQ-TAU t2m config: t2m_svq's recipe", tr="tau"),
    # SimVP on each translator: OpenSTL's t2m configs (below; older ones in weather/simvp/,
    # or only as comments in weather/t2m_1_40625/ for ConvNeXt, HorNet and ViT)
    "t2m_simvp_gsta": _row(O + "t2m_5_625/SimVP_gSTA.py", "gsta", 5e-3, 16, 0.1, 0, 50, 10, "mse"),  # noqa: E501
    "t2m_simvp_tau": _row(O + "TAU.py (alpha 0.1: t2m_1_40625/TAU.py)", "tau", 1e-3, 16, 0.1, 0, 50, 10, "mse"),  # noqa: E501
    # codebook sizes and inits: no official configs, the t2m recipe with K / init changed
    **{f"t2m_k{k}": _t2m("no official config: t2m_svq with this K", k=k) for k in (1000, 2000, 5000, 10000, 20000)},  # noqa: E501
    **{f"t2m_init_{i}": _t2m("no official config: t2m_svq with this init", init=i) for i in ("normal", "kaiming", "xavier", "sparse", "trunc", "orthogonal")},  # noqa: E501
}
_SVQ_TR = {  # translator: (config file in S weather/t2m_5_625/ablation_modeltype/, lr, drop_path)
    "incepu": ("SimVPVQ_IncepU.py", 1e-2, 0.1), "convmixer": ("SimVPVQ_ConvMixer.py", 1e-2, 0.1),
    "convnext": ("SimVPVQ_ConvNeXt.py", 1e-2, 0.1), "hornet": ("SimVPVQ_HorNet.py", 1e-3, 0.1),
    "mlpmixer": ("SimVPVQ_MLPMixer.py", 1e-3, 0.1), "moganet": ("SimVPVQ_MogaNet.py", 5e-3, 0.2),
    "poolformer": ("SimVPVQ_Poolformer.py", 5e-4, 0.1), "swin": ("SimVPVQ_Swin.py", 1e-3, 0.1),
    "uniformer": ("SimVPVQ_Uniformer.py", 5e-3, 0.1), "van": ("SimVPVQ_VAN.py", 5e-3, 0.1),
    "vit": ("SimVPVQ_ViT.py", 1e-3, 0.1),
}
_SIMVP_TR = {  # translator: (config file in O weather/, lr, drop_path)
    "incepu": ("t2m_5_625/SimVP_IncepU.py", 1e-2, 0.1),
    "mlpmixer": ("t2m_5_625/SimVP_MLPMixer.py", 1e-3, 0.1),
    "poolformer": ("t2m_5_625/SimVP_Poolformer.py", 5e-4, 0.1),
    "convmixer": ("simvp/SimVP_ConvMixer.py", 1e-2, 0.1),
    "moganet": ("simvp/SimVP_MogaNet.py", 5e-3, 0.2),
    "swin": ("simvp/SimVP_Swin.py", 1e-3, 0.1),
    "uniformer": ("simvp/SimVP_Uniformer.py", 1e-3, 0.1),
    "van": ("simvp/SimVP_VAN.py", 1e-3, 0.1),
    "convnext": ("t2m_1_40625/SimVP_ConvNeXt.py (lr in a comment)", 1e-2, 0.1),
    "hornet": ("t2m_1_40625/SimVP_HorNet.py (lr in a comment)", 1e-3, 0.1),
    "vit": ("t2m_1_40625/SimVP_ViT.py (lr in a comment)", 1e-3, 0.1),
}
for _tr, (_file, _lr, _dp) in _SVQ_TR.items():
    OFFICIAL[f"t2m_svq_{_tr}"] = _t2m(S + "ablation_modeltype/" + _file, tr=_tr, lr=_lr, dp=_dp, warm=0, init="kaiming")  # noqa: E501
for _tr, (_file, _lr, _dp) in _SIMVP_TR.items():
    OFFICIAL[f"t2m_simvp_{_tr}"] = _row(O + _file, _tr, _lr, 16, _dp, 0, 50, 10, "mse")

# (hid_S, hid_T, N_S, N_T) of every official config of a dataset (the configs of the paper's
# code; OpenSTL's WeatherBench SimVP configs alike): S weather/*/*.py, S taxibj/simvp/*.py,
# S kth/simvp/*.py, S kitticaltech/simvp/*.py, S human/simvp/*.py
ARCH = {"weather": (32, 256, 2, 8), "taxibj": (32, 256, 2, 8), "kth": (64, 256, 2, 6),
        "kitticaltech": (64, 256, 2, 6), "human": (64, 512, 4, 6)}


def _arch(name: str) -> tuple[int, int, int, int]:
    return ARCH[next((d for d in ARCH if name.startswith(d + "_")), "weather")]


# what else each official config sets (dotted keys of the resolved preset)
EXTRA: dict[str, dict] = {
    **{f"t2m_noise_{p}": {"model.noise": p} for p in (0.1, 0.2, 0.3, 0.4, 0.5)},
    **{f"t2m_simvp_noise_{p}": {"model.noise": p} for p in (0.1, 0.2, 0.3, 0.4, 0.5)},
    **{f"t2m_grvq_k{k}": {"model.quantizer": "grvq", "model.quantizer_options.codebook_size": k,
                          "model.quantizer_options.num_quantizers": 8,
                          "model.quantizer_options.groups": 2,
                          "model.quantizer_options.shared_codebook": True}
       for k in (1000, 2000, 5000, 10000, 20000)},
    "t2m_vq_post": {"model.quantizer": "vq", "model.quantizer_position": "post",
                    "model.quantizer_options.codebook_size": 1024,
                    "model.quantizer_options.decay": 0.8,
                    "model.quantizer_options.commitment_weight": 1.0},
    **{f"weather_hmv_{v}": {"data.dataset": "weather_hmv"} for v in ("svq", "svq_frozen", "simvp")},  # noqa: E501
    **{f"t2m_relu_hid{h}_out{o}": {"model.quantizer_options.hid_relu": bool(h),
                                   "model.quantizer_options.out_relu": bool(o)}
       for h in (0, 1) for o in (0, 1)},
    "t2m_freeze_mlp": {"model.quantizer_options.freeze_mlp": True},
    "t2m_freeze_both": {"model.quantizer_options.freeze_mlp": True},
    "t2m_post": {"model.quantizer_position": "post"},
    "t2m_simvp_tau": {"model.ddr_weight": 0.1},
    # every option of the classic quantizers (S weather/t2m_5_625/ablation_vq/*.py, dim = hid_S;
    # MultiHeadVQ.py's codebook_dim 32 = hid_S is the adapter's default, checked below)
    "t2m_vq": {"model.quantizer": "vq", "model.quantizer_options": {"codebook_size": 1024, "decay": 0.8, "commitment_weight": 1.0}},  # noqa: E501
    "t2m_mhvq": {"model.quantizer": "mhvq", "model.quantizer_options": {"codebook_size": 1024, "heads": 8, "separate_codebook_per_head": False}},  # noqa: E501
    "t2m_rvq": {"model.quantizer": "rvq", "model.quantizer_options": {"codebook_size": 1024, "num_quantizers": 8, "shared_codebook": True}},  # noqa: E501
    "t2m_rvq_stochastic": {"model.quantizer": "rvq", "model.quantizer_options": {"codebook_size": 1024, "num_quantizers": 8, "shared_codebook": True, "stochastic_sample_codes": True, "sample_codebook_temp": 0.1}},  # noqa: E501
    "t2m_grvq": {"model.quantizer": "grvq", "model.quantizer_options": {"codebook_size": 1024, "num_quantizers": 8, "groups": 2, "shared_codebook": True}},  # noqa: E501
    "t2m_lfq": {"model.quantizer": "lfq", "model.quantizer_options": {"codebook_size": 8192, "entropy_loss_weight": 0.1, "diversity_gamma": 1.0}},  # noqa: E501
    "t2m_rlfq": {"model.quantizer": "rlfq", "model.quantizer_options": {"codebook_size": 256, "num_quantizers": 8}},  # noqa: E501
    "t2m_rfsq": {"model.quantizer": "rfsq", "model.quantizer_options": {"levels": [8, 5, 5, 3], "num_quantizers": 8}},  # noqa: E501
    # TAUVQ.py: codebook_size 64, codebook_dim 16, num_quantizers 8, shared_codebook False;
    # alpha 0.1 read as OpenSTL's TAU reads it (the differential divergence weight)
    "r_tau_rvq": {"model.quantizer": "rvq", "model.quantizer_options": {"codebook_size": 64, "codebook_dim": 16, "num_quantizers": 8, "shared_codebook": False}, "model.ddr_weight": 0.1},  # noqa: E501
}
# fmt: on


def _get(cfg: dict, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _lists(value):
    """Tuples as lists, at any depth (the official configs write lists)."""
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    return list(map(_lists, value)) if isinstance(value, (list, tuple)) else value


def _patience(cfg: dict) -> int | None:
    for cb in cfg["trainer"].get("callbacks") or []:
        if cb["class_path"].endswith("EarlyStopping"):
            assert cb["init_args"]["monitor"] == "val_loss" and cb["init_args"]["mode"] == "min"
            return cb["init_args"]["patience"]
    return None


def test_every_preset_has_an_official_row():
    assert set(OFFICIAL) == set(reproduce.PRESETS)


@pytest.mark.parametrize("name", sorted(reproduce.PRESETS))
def test_preset_matches_the_official_config(name):
    source, tr, lr, batch, dp, warm, epochs, pat, loss, k, init, frozen = OFFICIAL[name]
    cfg = reproduce.preset_config(name)
    m = cfg["model"]
    got = {
        "translator": m["translator"],
        "lr": m["lr"],
        "batch": cfg["data"]["batch_size"],
        "drop_path": m.get("drop_path", 0.0),
        "epochs": cfg["trainer"]["max_epochs"],
        "patience": _patience(cfg),
        "loss": m["loss"],
    }
    want = dict(translator=tr, lr=lr, batch=batch, drop_path=dp, epochs=epochs, patience=pat,
                loss=loss)  # fmt: skip
    assert got == pytest.approx(want), source
    assert (m["hid_S"], m["hid_T"], m["N_S"], m["N_T"]) == _arch(name), source
    if warm is None:
        assert m["scheduler"] == "onecycle", source
    else:
        assert m["scheduler"] == "cosine" and m.get("warmup_epochs", 0) == warm, source
        assert m["warmup_schedule"] == "timm", source
        assert (m["warmup_lr"], m["min_lr"]) == (1e-5, 1e-6), source
    opts = m.get("quantizer_options") or {}
    if k is not None:
        assert m["quantizer"] == "svq" and opts["middim"] == 128, source
        assert (opts["codebook_size"], opts["init"]) == (k, init), source
        assert bool(opts.get("freeze_codebook")) is frozen, source
        assert m.get("quantizer_position", "pre") == EXTRA.get(name, {}).get(
            "model.quantizer_position", "pre"
        )
    elif name.endswith("simvp") or "_simvp_" in name:
        assert m["quantizer"] == "none", source
    assert m.get("ddr_weight", 0.0) == EXTRA.get(name, {}).get("model.ddr_weight", 0.0)
    for key, value in EXTRA.get(name, {}).items():
        assert _lists(_get(cfg, key)) == value, (source, key)
    if m["quantizer"] not in ("svq", "none"):  # a library quantizer: every option frozen
        assert "model.quantizer_options" in EXTRA.get(name, {}) or any(
            k.startswith("model.quantizer_options.") for k in EXTRA.get(name, {})
        ), f"{name}: freeze its quantizer options in EXTRA"
    assert m.get("optimizer", "adam") == "adam" and m.get("weight_decay", 0.0) == 0.0


@pytest.mark.parametrize("name", sorted(reproduce.PRESETS))
def test_every_svq_preset_builds_the_papers_parametrisation(name):
    """The paper's experiments train the paper's SVQ: whatever the library default, every
    preset's SVQ is ``parametrisation: paper`` once built."""
    from svqcast.quantizers import build_quantizer

    m = reproduce.preset_config(name)["model"]
    if m["quantizer"] != "svq":
        return
    opts = dict(m.get("quantizer_options") or {})
    assert opts.get("parametrisation", "paper") == "paper"
    opts["codebook_size"] = 16  # the parametrisation, not the size, is under test
    assert build_quantizer("svq", 4, **opts).parametrisation == "paper"


def test_library_quantizers_build_the_official_codebooks():
    """What the option dicts become in the library: MultiHeadVQ.py's codebook_dim 32 (= hid_S,
    the adapter's default) and one codebook shared by the 8 heads; ResidualVQ.py's shared
    codebook; TAUVQ.py's 8 separate 64 x 16 codebooks behind a 32 -> 16 projection."""
    mhvq = reproduce.build_model("t2m_mhvq", device="cpu").quantizer.inner
    assert mhvq.heads == 8 and tuple(mhvq._codebook.embed.shape) == (1, 1024, 32)
    rvq = reproduce.build_model("t2m_rvq", device="cpu").quantizer.inner
    assert len(rvq.layers) == 8 and rvq.layers[0]._codebook is rvq.layers[7]._codebook
    tau = reproduce.build_model("r_tau_rvq", device="cpu")
    rvq = tau.quantizer.inner
    assert (rvq.project_in.in_features, rvq.project_in.out_features) == (32, 16)
    assert len(rvq.layers) == 8 and rvq.layers[0]._codebook is not rvq.layers[1]._codebook
    assert tuple(rvq.layers[0]._codebook.embed.shape) == (1, 64, 16)


def test_the_fit_command_builds_the_presets_early_stopping():
    """`svqcast fit --config` (and so `svqcast reproduce`) instantiates the preset's callback."""
    from lightning.pytorch.callbacks import EarlyStopping

    from svqcast.commands.fit import config_parser

    parser = config_parser()
    cfg = parser.parse_args(["--config", reproduce.preset_yaml("t2m_noise_0.3")])
    init = parser.instantiate(cfg) if hasattr(parser, "instantiate") else None
    if init is None:  # older jsonargparse
        init = parser.instantiate_classes(cfg)
    stops = [cb for cb in init.trainer.callbacks if isinstance(cb, EarlyStopping)]
    assert len(stops) == 1 and stops[0].patience == 5 and stops[0].monitor == "val_loss"


# ----------------------------------------------------------------------------- the schedule


def _timm_lr(t: float, lr: float, total: float, warmup: float, warmup_lr: float, lr_min: float):
    """timm's CosineLRScheduler (warmup_prefix False, one cycle, k_decay 1), written out."""
    if t < warmup:
        return warmup_lr + t * (lr - warmup_lr) / warmup
    if t >= total:
        return lr_min
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * t / total))


def _module_lrs(epochs: int, **hp) -> list[float]:
    module = ForecastModule(**hp)
    module.model = nn.Linear(2, 2)
    module._trainer = SimpleNamespace(max_epochs=epochs)
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_warmup_schedule_is_timms_per_epoch():
    hp = dict(lr=5e-3, warmup_epochs=5, warmup_lr=1e-5, min_lr=1e-6)
    got = _module_lrs(50, warmup_schedule="timm", **hp)
    want = [_timm_lr(e, 5e-3, 50, 5, 1e-5, 1e-6) for e in range(50)]
    assert got == pytest.approx(want, rel=1e-9, abs=1e-15)
    assert got[5] < 5e-3  # the cosine is not restarted after the warm-up
    # the module's default, one switch away: the cosine fitted into epochs 5..50
    old = _module_lrs(50, warmup_schedule="stretched", **hp)
    assert old[5] == pytest.approx(5e-3) and old[:5] == pytest.approx(got[:5])
    assert old[40] > got[40] * 1.15  # 17-23% higher late in training
    # no warm-up: both agree
    assert _module_lrs(50, lr=5e-3) == pytest.approx(
        _module_lrs(50, lr=5e-3, warmup_schedule="stretched")
    )  # noqa: E501


def test_warmup_schedule_is_timms_per_step():
    per_epoch, epochs, warm = 7, 10, 2
    total, warmup = per_epoch * epochs, warm * per_epoch
    for t in range(total + 3):
        got = cosine_factor(t, total, warmup, 1e-2, 1e-5, 1e-6, stretch=False) * 1e-2
        assert got == pytest.approx(_timm_lr(t, 1e-2, total, warmup, 1e-5, 1e-6), rel=1e-12)


def test_bad_warmup_schedule_is_a_config_error():
    from svqcast.errors import ConfigError

    with pytest.raises(ConfigError, match="warmup_schedule"):
        ForecastModule(warmup_schedule="linear")


# ----------------------------------------------------------------------------- TAU's DDR


def _ddr_direct(pred: np.ndarray, target: np.ndarray, tau=0.1, eps=1e-12) -> float:
    b, t = pred.shape[:2]
    terms = []
    for i in range(b):
        for j in range(t - 1):
            dp = (pred[i, j + 1] - pred[i, j]).ravel() / tau
            dt = (target[i, j + 1] - target[i, j]).ravel() / tau
            p = np.exp(dp - dp.max())
            p /= p.sum()
            q = np.exp(dt - dt.max())
            q /= q.sum()
            terms.append(p * np.log(p / (q + eps) + eps))
    return float(np.mean(np.concatenate(terms)))


def test_differential_divergence_against_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 5, 2, 4, 6, generator=g, dtype=torch.float64)
    target = torch.randn(3, 5, 2, 4, 6, generator=g, dtype=torch.float64)
    got = float(differential_divergence(pred, target))
    assert got == pytest.approx(_ddr_direct(pred.numpy(), target.numpy()), rel=1e-9)
    assert got > 0
    assert float(differential_divergence(target, target)) == pytest.approx(0.0, abs=1e-9)
    assert float(differential_divergence(pred[:, :2], target[:, :2])) == 0.0  # two frames


def test_ddr_weight_adds_to_the_training_loss_only():
    pred = torch.randn(2, 4, 1, 3, 3)
    target = torch.randn(2, 4, 1, 3, 3)
    module = ForecastModule(loss="mse", ddr_weight=0.1)
    mse = float(torch.nn.functional.mse_loss(pred, target))
    module.train()
    want = mse + 0.1 * float(differential_divergence(pred, target))
    assert float(module._loss(pred, target)) == pytest.approx(want, rel=1e-6)
    module.eval()  # validation: the loss alone, as TAU's
    assert float(module._loss(pred, target)) == pytest.approx(mse, rel=1e-6)


# ----------------------------------------------------------------------------- the docs table


def test_docs_preset_table_is_generated_from_the_presets():
    text = (ROOT / "docs" / "reproduce.md").read_text(encoding="utf-8")
    start, end = (re.escape(m) for m in reproduce.TABLE_MARKERS)
    found = re.search(start + r"\n(.*?)" + end, text, flags=re.S)
    assert found, "docs/reproduce.md lacks the generated preset table"
    assert found.group(1) == reproduce.preset_table(), (
        "regenerate it: python -c 'from svqcast.commands.reproduce import preset_table; "
        'print(preset_table(), end="")\''
    )


def test_table_shows_paper_numbers_and_official_values():
    table = reproduce.preset_table()
    assert "| `t2m_svq` | gsta | svq K 10000, normal | mae | 5e-3 | 16 | 0.1 | 5 |" in table
    assert "1.018" in table and "1.105" in table
    assert "| `t2m_simvp_tau` | tau | none | mse + 0.1 DDR | 1e-3 |" in table


# ----------------------------------------------------------------------------- the paper's numbers

# The published numbers attached to the presets, copied by hand (values only), with where in
# the paper each row comes from. Only numbers read in the paper itself for the same
# experiment as the preset; everything else stays without a number.
# fmt: off
T2M = "the paper's WeatherBench-S t2m results (table number not verified)"
T2M_VQ = "the paper's VQ comparison on t2m (table number not verified)"
PAPER_FROZEN: dict[str, tuple[str, dict[str, float]]] = {
    "t2m_simvp": (T2M + "; OpenSTL's published SimVP-gSTA", {"mse": 1.105, "mae": 0.6567, "rmse": 1.051}),  # noqa: E501
    "t2m_svq": (T2M, {"mse": 1.018}),
    "t2m_svq_frozen": (T2M, {"mse": 1.023}),
    "t2m_vq": (T2M_VQ, {"mse": 1.854}),
    "t2m_rvq": (T2M_VQ, {"mse": 1.213}),
    "t2m_grvq": (T2M_VQ, {"mse": 1.174}),
}
# fmt: on


def test_paper_numbers_are_attached_as_written():
    attached = {n: p.paper for n, p in reproduce.PRESETS.items() if p.paper}
    assert attached == {n: numbers for n, (_, numbers) in PAPER_FROZEN.items()}
    for name in PAPER_FROZEN:
        assert reproduce.PRESETS[name].paper_source  # every number says where it comes from
    groups = [set(g["rows"]) for g in reproduce.PAPER.values()]
    assert sum(map(len, groups)) == len(set().union(*groups))  # a preset in one group only
    assert all(g["source"] for g in reproduce.PAPER.values())


def test_paper_column_names_the_metric_when_there_is_no_mse():
    assert reproduce.paper_cell({"mse": 1.018, "mae": 0.6}) == "1.018"
    assert reproduce.paper_cell({"mse": 0.3171}) == "0.3171"  # as printed, not rounded
    assert reproduce.paper_cell({"mae": 1234.5, "ssim": 0.9}) == "mae 1234.5"
    assert reproduce.paper_cell({"lpips": 0.1}) == "lpips 0.1"
    assert reproduce.paper_cell({"mae": 14073.25}) == "mae 14073.25"  # no digit dropped
    assert reproduce.paper_cell({}) == ""
    table, listing = reproduce.preset_table(), reproduce.list_presets()
    for name, (_, numbers) in PAPER_FROZEN.items():
        cell = reproduce.paper_cell(numbers)
        assert f"| `{name}` |" in table and table.split(f"| `{name}` |")[1].split("\n")[0].endswith(
            f" {cell} |"
        )  # noqa: E501
        assert re.search(rf"^{re.escape(name)}\s+{re.escape(cell)}\s", listing, re.M)
