"""DDP on CPU (2 processes, gloo): test metrics over ranks equal the 1-process metrics.

The evaluation sampler shards without padding, and ForecastMetrics keeps sums that are
all-reduced, so every test sample counts exactly once. 9 test samples in batches of 4 give
the two ranks different numbers of batches (2 and 1), which must not hang either.
"""

from __future__ import annotations

import json

import pytest
import torch
from test_training import TINY, TinyData, trainer

from svqcast.training.module import ForecastModule


def build(tmp_path):
    torch.manual_seed(0)
    data = TinyData(n_train=8, n_val=4, n_test=9, batch_size=4)
    module = ForecastModule(
        **TINY,
        quantizer="svq",
        quantizer_options={"codebook_size": 32},
        plots=False,
        spec=data.spec.to_dict(),
    )
    return module, data


@pytest.mark.slow
def test_ddp_test_metrics_equal_single_process(tmp_path):
    module, data = build(tmp_path)
    single = trainer(tmp_path / "one").test(module, data)[0]
    one = json.loads((tmp_path / "one" / "test_metrics.json").read_text())["rows"]

    module, data = build(tmp_path)
    ddp = trainer(
        tmp_path / "two", strategy="ddp_spawn", devices=2, max_epochs=1, limit_val_batches=0
    )
    ddp.fit(module, data)  # one short DDP epoch: the training loop runs under DDP too
    module, data = build(tmp_path)
    two_res = trainer(tmp_path / "two", strategy="ddp_spawn", devices=2).test(module, data)[0]
    two = json.loads((tmp_path / "two" / "test_metrics.json").read_text())["rows"]

    assert one.keys() == two.keys() == {"simvp+svq", "persistence", "climatology"}
    for name in one:
        for key, value in one[name].items():
            assert two[name][key] == pytest.approx(value, rel=1e-6, abs=1e-9), (name, key)
    for key in ("test_mae", "test_rmse", "test_persistence_mae"):
        assert two_res[key] == pytest.approx(single[key], rel=1e-6)
