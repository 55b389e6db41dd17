"""DDP on CPU (2 processes, gloo): test metrics over ranks equal the 1-process metrics.

The evaluation sampler shards without padding, and ForecastMetrics keeps sums that are
all-reduced, so every test sample counts exactly once. 9 test samples in batches of 4 give
the two ranks different numbers of batches (2 and 1), which must not hang either.
"""

from __future__ import annotations

import json

import pytest
import torch
from test_module import TINY, TinyData, trainer

from svqcast.training.module import ForecastModule


def tiny_svq(spec) -> ForecastModule:
    """The small SimVP+SVQ module of the DDP tests, for data of DataSpec ``spec``."""
    return ForecastModule(
        **TINY,
        quantizer="svq",
        quantizer_options={"codebook_size": 32},
        plots=False,
        spec=spec.to_dict(),
    )


def build(tmp_path):
    torch.manual_seed(0)
    data = TinyData(n_train=8, n_val=4, n_test=9, batch_size=4)
    return tiny_svq(data.spec), data


@pytest.mark.slow
def test_ddp_test_metrics_equal_single_process(tmp_path):
    module, data = build(tmp_path)
    single = trainer(tmp_path / "one").test(module, data)[0]

    module, data = build(tmp_path)
    ddp = trainer(
        tmp_path / "two", strategy="ddp_spawn", devices=2, max_epochs=1, limit_val_batches=0
    )
    ddp.fit(module, data)  # one short DDP epoch: the training loop runs under DDP too
    module, data = build(tmp_path)
    two_res = trainer(tmp_path / "two", strategy="ddp_spawn", devices=2).test(module, data)[0]
    assert_same_test_metrics(tmp_path / "one", single, tmp_path / "two", two_res)


def assert_same_test_metrics(one_dir, one_res, two_dir, two_res) -> None:
    """The reports (test_metrics.json) and returned metrics of two test runs agree to
    relative 1e-6: every row (model, persistence, climatology) and every metric."""
    one = json.loads((one_dir / "test_metrics.json").read_text())["rows"]
    two = json.loads((two_dir / "test_metrics.json").read_text())["rows"]
    assert one.keys() == two.keys() == {"simvp+svq", "persistence", "climatology"}
    for name in one:
        for key, value in one[name].items():
            assert two[name][key] == pytest.approx(value, rel=1e-6, abs=1e-9), (name, key)
    for key in ("test_mae", "test_rmse", "test_persistence_mae"):
        assert two_res[key] == pytest.approx(one_res[key], rel=1e-6)
