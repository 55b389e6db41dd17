"""The test-time side of the engine: ForecastModule scores its baselines through
BaselineEvaluator, the TestArtifacts callback it attaches writes the report and plots, and
``diagnostics`` switches the quantizer statistics and the SVQ weight sample."""

from __future__ import annotations

import json

import pytest
import torch
from test_module import TINY, TinyData, trainer

from svqcast.evaluation.baselines import (
    BASELINES,
    BaselineEvaluator,
    evaluate_baselines,
    persistence,
)
from svqcast.training.callbacks import TestArtifacts
from svqcast.training.module import ForecastModule


def same(a, b) -> bool:
    """Equal to the bit (NaN equal to NaN), through the JSON the report writes."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def artifacts(t) -> list[TestArtifacts]:
    return [cb for cb in t.callbacks if isinstance(cb, TestArtifacts)]


def test_evaluator_returns_its_forecasts_and_resets():
    """The engine's code path: update() gives the forecasts it scored; reset() starts over
    (climatology counted again once every batch of the new pass has one)."""
    data = TinyData(n_test=10, batch_size=4)
    ev = BaselineEvaluator(data.spec)
    assert isinstance(ev, torch.nn.Module) and ev.to("cpu") is ev
    first = list(data.test_dataloader())
    for x, y, c in first:
        forecasts = ev.update(x, y, c)
        assert list(forecasts) == list(BASELINES)
        assert torch.equal(forecasts["persistence"], persistence(x, y.shape[1]))
        assert forecasts["climatology"] is c
    rows = ev.compute()
    ev.reset()
    assert list(ev.update(*first[0][:2])) == ["persistence"]
    assert list(ev.compute()) == ["persistence"]
    ev.reset()
    for batch in first:
        ev.update(*batch)
    assert same(ev.compute(), rows)


def test_module_scores_its_baselines_as_evaluate_baselines_does(tmp_path):
    torch.manual_seed(0)
    data = TinyData(n_test=10, batch_size=4)
    module = ForecastModule(**TINY, plots=False, spec=data.spec.to_dict())
    trainer(tmp_path).test(module, data, verbose=False)
    rows = evaluate_baselines(data.test_dataloader(), data.spec)
    assert list(module.test_results) == ["simvp", *BASELINES]
    for name in BASELINES:
        assert same(module.test_results[name], rows[name]), name
    report = json.loads((tmp_path / "test_metrics.json").read_text())
    assert same(report["rows"]["persistence"], rows["persistence"])
    assert not (tmp_path / "plots").exists()  # plots=False: the report alone


@pytest.mark.slow
def test_artifacts_are_attached_once_and_diagnostics_switch_the_quantizer_part(tmp_path):
    torch.manual_seed(0)
    data = TinyData(n_train=8, n_val=4, batch_size=4)
    module = ForecastModule(
        **TINY, quantizer="svq", quantizer_options={"codebook_size": 32}, scheduler="none"
    )
    t = trainer(tmp_path / "on", max_epochs=1, limit_val_batches=0)
    t.fit(module, data)
    t.test(module, data, verbose=False)
    (writer,) = artifacts(t)  # attached by the module, once over fit and test
    assert list(writer.first_batch["preds"]) == ["simvp+svq", *BASELINES]
    assert writer.first_batch["x"].shape == (1, 4, 1, 8, 16)
    assert writer.weight_sample is not None and writer.weight_sample.numel() > 0
    on = tmp_path / "on"
    assert module.quantizer_stats and (on / "quantizer.json").is_file()
    assert (on / "plots" / "svq_weight_histogram.png").is_file()
    rows = module.test_results

    t.test(module, data, verbose=False)  # again on the same trainer: still one writer
    assert artifacts(t) == [writer] and same(module.test_results, rows)

    module.hparams.diagnostics = False
    second = trainer(tmp_path / "off")
    second.test(module, data, verbose=False)
    (writer,) = artifacts(second)
    assert same(module.test_results, rows)  # the same numbers without the diagnostics
    off = tmp_path / "off"
    assert module.quantizer_stats == {} and not (off / "quantizer.json").exists()
    assert writer.weight_sample is None and (off / "plots" / "forecast_panels.png").is_file()
    assert not (off / "plots" / "svq_weight_histogram.png").exists()
    assert not any(q.collect_stats for q in module.modules() if hasattr(q, "collect_stats"))

    # an application's own writer is kept (and decides on the plots itself)
    mine = TestArtifacts(plots=False)
    third = trainer(tmp_path / "mine", callbacks=[mine])
    third.test(module, data, verbose=False)
    assert artifacts(third) == [mine]
    assert same(module.test_results, rows)
    assert (tmp_path / "mine" / "test_metrics.json").is_file()
    assert not (tmp_path / "mine" / "plots").exists()
