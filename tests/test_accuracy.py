"""The accuracy benchmark (benchmarks/accuracy/, beside the package): its variant table
builds, its tables are right, its saved records are found, ``--quick`` runs."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the benchmark is a folder of the repository, not of svqcast
    sys.path.insert(0, str(ROOT))

from benchmarks.accuracy import run, runner, study, tables, train  # noqa: E402
from benchmarks.accuracy.variants import (  # noqa: E402
    BUDGETS,
    GROUPS,
    Group,
    reference_row,
    variants,
)
from svqcast.errors import ConfigError  # noqa: E402
from svqcast.quantizers import build_quantizer  # noqa: E402

SCRIPT = ROOT / "benchmarks" / "accuracy" / "run.py"
COMMAND = "python benchmarks/accuracy/run.py"

ALL_ROWS = sorted({row for group in GROUPS.values() for row in group.rows})


@pytest.mark.parametrize("row", ALL_ROWS)
def test_every_row_builds_its_quantizer_at_the_benchmark_width(row):
    """Every row's quantizer builds at hid_S of the full budget and keeps the latent shape."""
    v = variants()[row]
    dim = BUDGETS["full"].hid_S
    options = dict(v.options)
    if "codebook_size" in options and v.quantizer == "svq":
        options["codebook_size"] = min(options["codebook_size"], 512)  # keep the test light
    q = build_quantizer(v.quantizer, dim, **options)
    z = torch.randn(2, dim, 4, 8)
    out = q(z)
    assert out.quantized.shape == z.shape
    assert torch.isfinite(out.quantized).all()


def test_groups_only_name_known_rows_and_have_a_reference():
    table = variants()
    for name, group in GROUPS.items():
        assert set(group.rows) <= set(table), name
        assert set(group.quick_rows) <= set(group.rows), name
        for row in group.rows:  # every row has a no-quantizer row to be compared with
            assert reference_row(row, group.rows) is not None, (name, row)


def test_main_table_has_the_thirteen_rows_of_the_issue():
    rows = GROUPS["main"].rows
    assert len(rows) == 13
    quantizers = {variants()[r].quantizer for r in rows}
    assert {"none", "svq", "svq_raw", "vq", "rvq", "grvq", "lfq", "fsq", "mlp"} <= quantizers
    assert variants()["svq_frozen"].options["freeze_codebook"] is True
    assert variants()["svq_mse"].loss == "mse"


@pytest.mark.parametrize(
    ("row", "reference"),
    [
        ("svq", "none"),
        ("svq_mse", "none_mse"),
        ("svq_noise0.3", "none_noise0.3"),
        ("svq_warmup", "none_warmup"),
    ],
)
def test_ratio_reference_matches_loss_and_noise(row, reference):
    rows = GROUPS["main"].rows + GROUPS["ablations"].rows
    assert reference_row(row, rows) == reference


def _record(variant, seed, mae, status="ok"):
    return {
        "variant": variant,
        "seed": seed,
        "status": status,
        "metrics": {"mae": mae, "rmse": 2 * mae, "wrmse": 3 * mae},
        "baselines": {"persistence": {"mae": 9.0, "rmse": 9.0, "wrmse": 9.0}},
        "step_seconds": 0.01,
        "peak_rss_mib": 100.0,
        "train_rss_mib": 10.0,
    }


def test_markdown_table_mean_std_and_ratio_are_computed_over_seeds():
    group = Group("weather", ("none", "svq"), ("none",), ("mae", "rmse", "wrmse"), "t")
    records = {
        "none": [_record("none", 0, 1.0), _record("none", 1, 3.0)],
        "svq": [_record("svq", 0, 1.0), _record("svq", 1, 2.0), _record("svq", 2, 0, "diverged")],
    }
    rows = {r.name: r for r in tables.summarise(group, records)}
    assert rows["none"].metrics["mae"] == pytest.approx((2.0, math.sqrt(2.0)))
    assert rows["svq"].metrics["mae"][0] == pytest.approx(1.5)  # diverged run left out
    assert rows["svq"].ratios["rmse"] == pytest.approx(0.75)
    assert rows["svq"].diverged == 1
    text = tables.markdown_table(group, records)
    assert "0.750 / 0.750 / 0.750" in text
    assert "| 3 (1 diverged) |" in text
    assert "| persistence |" in text


def test_warmup_steps_become_epochs_of_the_train_loader():
    class DM:
        def train_dataloader(self):
            return range(400)  # 400 batches an epoch

    assert train._warmup_epochs(20, DM()) == pytest.approx(0.05)
    assert train._warmup_epochs(0, object()) == 0.0  # no loader built without a warm-up


def test_noisy_inputs_are_fixed_per_sample_and_leave_targets_alone():
    class Data:
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.zeros(2, 1, 4, 4), torch.full((2, 1, 4, 4), float(i))

        def target_phases(self, i):
            return [i]

    noisy = train.NoisyInputs(Data(), sigma=0.5, seed=1)
    x1, y1 = noisy[1]
    x2, _ = noisy[1]
    assert torch.equal(x1, x2)  # same noise every epoch
    assert not torch.equal(x1, noisy[2][0])
    assert torch.equal(y1, torch.ones(2, 1, 4, 4))
    assert 0.2 < x1.std().item() < 0.8
    assert noisy.target_phases(2) == [2]


def test_bad_group_and_seeds_are_user_errors(capsys):
    with pytest.raises(ConfigError, match="unknown benchmark group"):
        study.run_benchmark(["nope"], quick=True)
    assert run.main(["--group", "nope", "--quick"]) == 2
    assert run.main(["--seeds", "a,b", "--quick"]) == 2
    assert f"{COMMAND}: error:" in capsys.readouterr().err


def test_rows_option_keeps_only_the_named_rows_and_rejects_unknown_ones(tmp_path, monkeypatch):
    """``--rows lfq`` runs that row of the group alone (e.g. to add seeds to one row)."""
    assert study.plan("main", quick=False, only=["lfq", "none"]) == ["none", "lfq"]
    assert study.plan("main", quick=True, only=["lfq"]) == []  # not a quick row
    planned = {}

    def fake_execute(task, isolate=True):
        planned.setdefault(task.variant, []).append(task.seed)
        raise RuntimeError("not run in this test")

    monkeypatch.setattr(study, "execute", fake_execute)
    monkeypatch.setattr(study, "_prepare_data", lambda *a: None)
    study.run_benchmark(["main"], rows=["lfq"], seeds=[1, 2], out_dir=tmp_path, log=lambda m: None)
    assert planned == {"lfq": [1, 2]}
    with pytest.raises(ConfigError, match="--rows svq_k256: not a row of group"):
        study.run_benchmark(["main"], rows=["svq_k256"], out_dir=tmp_path)
    assert run.main(["--group", "main", "--rows", "nope", "--quick"]) == 2


def test_report_trains_nothing_and_tables_the_saved_runs(tmp_path, monkeypatch):
    """``--report`` writes the tables from the saved records and names the missing runs."""

    def no_execute(task, isolate=True):
        raise AssertionError("--report must not train")

    monkeypatch.setattr(study, "execute", no_execute)
    monkeypatch.setattr(study, "_prepare_data", no_execute)
    fingerprint = BUDGETS["full"].fingerprint()
    for variant, seed, mae in (("none", 0, 1.0), ("none", 1, 3.0), ("svq", 0, 1.5)):
        task = runner.Task(variant, seed, "weather", "full", str(tmp_path), str(tmp_path))
        record = {**_record(variant, seed, mae), "fingerprint": fingerprint}
        runner.write_json(task.result_path(), record)
    lines = []
    md = study.run_benchmark(
        ["main"], seeds=[0, 1], out_dir=tmp_path, report=True, log=lines.append
    )
    text = md.read_text()
    assert "| no quantizer (SimVP) | 2 ± 1.4 |" in text
    assert "| 0.750 / 0.750 / 0.750 |" in text  # SVQ 1.5 against the mean 2.0
    assert "| 1 |" in text  # SVQ: its one saved seed
    missing = next(ln for ln in lines if "not run (--report)" in ln)
    assert "weather-svq-seed1" in missing and "weather-lfq-seed0" in missing
    assert "weather-none-seed0" not in missing
    # --name writes the same tables under another stem, leaving accuracy.md alone
    other = study.run_benchmark(
        ["main"], seeds=[0, 1], out_dir=tmp_path, report=True, report_name="mine", log=print
    )
    assert other == tmp_path / "mine.md" and other.read_text() == text
    assert (tmp_path / "mine.json").is_file() and md.read_text() == text
    with pytest.raises(ConfigError, match="--name"):
        study.run_benchmark(["main"], out_dir=tmp_path, report=True, report_name="../x")


def test_budget_fingerprint_changes_with_the_budget():
    full = BUDGETS["full"]
    assert full.fingerprint() == dataclasses.replace(full).fingerprint()
    assert full.fingerprint() != dataclasses.replace(full, steps=full.steps + 1).fingerprint()


def _numbers(line: str) -> list[float]:
    return [float(v) for v in re.findall(r"-?\d+\.?\d*(?:e-?\d+)?", line)]


@pytest.mark.slow
def test_quick_benchmark_runs_writes_tables_and_resumes(tmp_path):
    """``--quick`` trains the quick rows in subprocesses, writes JSON + Markdown with finite
    numbers, and a second call reuses every saved run (resume)."""
    out, data = tmp_path / "out", tmp_path / "data"
    md = study.run_benchmark(["main"], quick=True, out_dir=out, data_root=data, log=lambda m: None)
    text = md.read_text()
    rows = [variants()[r].label for r in GROUPS["main"].quick_rows]
    for label in rows:
        line = next(ln for ln in text.splitlines() if ln.startswith(f"| {label} |"))
        values = _numbers(line.split("|", 2)[2])
        assert values and all(math.isfinite(v) for v in values), line
    raw = json.loads((out / "accuracy_quick.json").read_text())
    runs = raw["groups"]["main"]
    assert set(runs) == set(GROUPS["main"].quick_rows)
    for recs in runs.values():
        (rec,) = recs
        assert rec["status"] == "ok" and rec["steps"] == BUDGETS["quick"].steps
        assert rec["peak_rss_mib"] > 50  # its own process: at least torch's footprint
        assert all(math.isfinite(v) for v in rec["metrics"].values())
    lines = []
    study.run_benchmark(["main"], quick=True, out_dir=out, data_root=data, log=lines.append)
    assert any("3 already done" in ln for ln in lines), lines
    assert not any(ln.startswith("[main") for ln in lines)  # nothing retrained


@pytest.mark.slow
def test_benchmark_script_lists_groups_from_any_folder(tmp_path):
    """``python benchmarks/accuracy/run.py`` runs as a script from any working folder (it puts
    the repository root on the path)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "accuracy" / "run.py"), "--list"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    for name in GROUPS:
        assert f"{name}:" in proc.stdout


@pytest.mark.slow
def test_quick_noise_group_in_process_compares_at_the_same_noise(tmp_path):
    """The observation-noise rows run in-process (no per-run memory then) and are compared
    with the no-quantizer row at the same noise; persistence sees the noisy inputs."""
    md = study.run_benchmark(
        ["noise"],
        quick=True,
        out_dir=tmp_path / "out",
        data_root=tmp_path / "data",
        isolate=False,
        log=lambda m: None,
    )
    text = md.read_text()
    ref = variants()["none_obs0.5"].label
    svq = variants()["svq_obs0.5"].label
    assert f"| {ref} |" in text and "1 (reference)" in text
    svq_line = next(ln for ln in text.splitlines() if ln.startswith(f"| {svq} |"))
    assert "| n/a |" in svq_line  # in-process: no memory figure of its own
    assert "| persistence (inputs with obs. noise 0.5) |" in text


def test_the_benchmark_is_a_script_beside_the_package_and_its_messages_name_it(capsys):
    """No ``svqcast bench`` any more: the library has no benchmark module, and the usage and
    the user errors of the benchmark name ``python benchmarks/accuracy/run.py``."""
    assert importlib.util.find_spec("svqcast.bench") is None
    assert run.main(["--list"]) == 0
    assert "main: Main table" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        run.main(["--help"])
    assert f"usage: {COMMAND}" in capsys.readouterr().out
    assert run.main(["--group", "nope"]) == 2
    assert f"{COMMAND}: error: unknown benchmark group(s) nope" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=f"see the rows with {COMMAND} --list"):
        study.run_benchmark(["main"], rows=["nope"])


def test_the_committed_records_are_found_by_their_keys_and_fingerprints():
    """Every per-run record under docs/accuracy/results is found again (same task key, same
    budget fingerprint), so ``--report --out docs/accuracy`` and ``benchmarks/results.py``
    table them without training."""
    records = sorted(
        path
        for path in (ROOT / "docs" / "accuracy" / "results").glob("*/*.json")
        if not path.name.endswith(".task.json")  # a run in progress, not a record
    )
    if not records:
        pytest.skip("no committed accuracy records in this checkout")
    for path in records:
        saved = json.loads(path.read_text())
        dataset_key = path.name.split("-", 1)[0]
        task = runner.Task(
            saved["variant"],
            saved["seed"],
            dataset_key,
            path.parent.name,
            "data",
            str(ROOT / "docs" / "accuracy"),
        )
        assert task.result_path() == path
        assert runner.load_result(task) == saved, path


def test_each_group_runs_on_its_own_budget_and_the_json_says_which(tmp_path, monkeypatch):
    """``long`` trains ten times the steps of ``full`` on the same model and data; a run
    of both groups hands each its budget and records both in the JSON."""
    full, long = BUDGETS["full"], BUDGETS["long"]
    assert long.steps == 10 * full.steps
    assert dataclasses.replace(long, name="full", steps=full.steps) == full
    assert long.fingerprint() != full.fingerprint()  # runs of one never resume the other
    seen = {}

    def fake_run_group(name, budget, **kwargs):
        seen[name] = budget.name
        return {row: [] for row in GROUPS[name].rows}

    monkeypatch.setattr(study, "run_group", fake_run_group)
    md = study.run_benchmark(["digits", "long"], out_dir=tmp_path, log=lambda m: None)
    assert seen == {"digits": "full", "long": "long"}
    meta = json.loads((tmp_path / "accuracy.json").read_text())["meta"]
    assert meta["group_budgets"] == seen
    assert set(meta["fingerprints"]) == {"full", "long"}
    assert "budget long: 2000 Adam steps" in md.read_text()
    study.run_benchmark(["long"], quick=True, out_dir=tmp_path, log=lambda m: None)
    assert seen["long"] == "quick"  # --quick shrinks every group, long included


def test_relu_placement_rows_cover_the_papers_four_combinations():
    table = variants()
    rows = [r for r in GROUPS["ablations"].rows if table[r].quantizer == "svq"]
    placements = {
        (table[r].options.get("hid_relu", True), table[r].options.get("out_relu", False))
        for r in rows
    }
    assert {(True, False), (False, False), (False, True), (True, True)} <= placements


def _rec(seed: int, mae: float) -> dict:
    return {"seed": seed, "status": "ok", "metrics": {"mae": mae}, "step_seconds": 0.1}


def test_paired_ratio_is_the_t_interval_of_the_log_ratios_over_shared_seeds():
    from scipy import stats

    a = [1.0, 0.9, 1.2, 0.8, 1.05]
    b = [1.1, 1.0, 1.0, 1.0, 1.0, 0.7]  # seed 5 has no partner: left out
    records = {
        "x": [_rec(s, v) for s, v in enumerate(a)],
        "y": [_rec(s, v) for s, v in enumerate(b)],
    }
    pr = tables.paired_ratio("x", "y", "mae", records)
    logs = [math.log(u / v) for u, v in zip(a, b)]
    ci = stats.ttest_1samp(logs, 0.0).confidence_interval(0.95)
    assert pr.seeds == [0, 1, 2, 3, 4]
    assert pr.mean == pytest.approx(math.exp(sum(logs) / 5))
    assert (pr.low, pr.high) == pytest.approx((math.exp(ci.low), math.exp(ci.high)))
    assert tables.paired_ratio("x", "y", "mae", {"x": records["x"][:1], "y": records["y"]}) is None
    # the same ratio in every seed: no spread, the interval is that ratio
    same = {
        "x": [_rec(s, 2.0 * s + 2) for s in range(3)],
        "y": [_rec(s, s + 1.0) for s in range(3)],
    }
    pr = tables.paired_ratio("x", "y", "mae", same)
    assert pr.low == pytest.approx(2.0) and pr.high == pytest.approx(2.0)


def test_paired_groups_list_every_row_against_no_quantizer_and_the_codebook_pairs():
    group = GROUPS["param"]
    records = {row: [_rec(s, 1.0 + 0.01 * s + 0.001 * i) for s in range(3)]
               for i, row in enumerate(group.rows)}  # fmt: skip
    text = tables.paired_table(group, records)
    table = variants()
    for row in group.rows[1:]:
        assert f"| {table[row].label} | {table['none'].label} | 3 |" in text
    for row, against in group.pairs:
        assert f"| {table[row].label} | {table[against].label} | 3 |" in text
    assert "Paired by seed" in tables.group_section("param", BUDGETS["full"], False, records)


def test_decision_rule_makes_a_default_only_when_both_budgets_pass():
    short = {
        "none": [_rec(s, 1.0 + 0.01 * s) for s in range(5)],
        "svq_p_readout": [_rec(s, 0.95 + 0.01 * s) for s in range(5)],  # -5%, tight CI
        "svq_p_rmsnorm": [_rec(s, (0.9, 1.1, 0.95, 1.05, 1.0)[s]) for s in range(5)],  # wide
    }
    long = {
        "none": [_rec(s, 0.5) for s in range(5)],
        "svq_p_readout": [_rec(s, 0.45) for s in range(5)],  # -10%: passes (b)
        "svq_p_rmsnorm": [_rec(s, 0.40) for s in range(5)],
    }
    cands = ["svq_p_readout", "svq_p_rmsnorm"]
    text = tables.decision_section(short, long, cands)
    assert "Verdict: SVQ, readout x 1/K (init x sqrt K) passes both" in text
    # rmsnorm wins at 2,000 steps but its 200-step CI reaches above 1.02: not a default
    assert "| SVQ, RMS-normalised output, gain |" in text and "| no | 0.800, 5 | yes |" in text
    long["svq_p_readout"] = [_rec(s, 0.48) for s in range(5)]  # only -4% at 2,000 steps
    text = tables.decision_section(short, long, cands)
    assert "no candidate passes both conditions; the paper's parametrisation stays" in text
    assert "recommended candidate is SVQ, RMS-normalised output, gain" in text  # (1.0 + 0.8)/2
