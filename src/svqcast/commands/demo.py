"""`svqcast demo`: SimVP + SVQ versus SimVP without a quantizer on synthetic weather.

Generates the embedded ``synthetic_weather`` data if absent, trains both models with the
same budget (the ``demo.yaml`` preset), tests the best validation checkpoint of each with the
persistence and climatology baselines on the same test windows, and prints one table
(MAE, RMSE, latitude-weighted RMSE, ACC; physical units, K). Plots and reports are in each
run folder. The verdict lines are computed from the numbers, never assumed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from svqcast.configs import config_path
from svqcast.errors import ConfigError
from svqcast.evaluation.baselines import BASELINES

DEMO_COLUMNS = ("mae", "rmse", "wrmse", "acc")
TIE_PERCENT = 2.0  # MAE differences below this are reported as a tie (one seed)
QUICK_OVERRIDES = [
    "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
    "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "2",
    # one YAML value: dotted `--data.options.x` overrides would arrive as strings
    "--data.options", "{in_len: 6, out_len: 6, stride: 6, first_year: 2010, last_year: 2012, "
    "hours_per_year: 48}",
    "--model.hid_T", "16", "--model.N_T", "2", "--model.quantizer_options.codebook_size", "64",
    "--trainer.enable_progress_bar", "false",
]  # fmt: skip


def demo_config() -> Path:
    return config_path("demo")


def run_demo(
    root: str = "data",
    runs_dir: str = "runs",
    epochs: int | None = None,
    quick: bool = False,
    extra: list[str] | None = None,
) -> dict[str, Any]:
    """Train and test both models; print and return the comparison."""
    from svqcast.commands.fit import run_lightning

    stamp = time.strftime("%Y%m%d-%H%M%S")
    common = ["--config", str(demo_config()), "--data.root", str(root), "--runs_dir", runs_dir]
    if quick:
        common += QUICK_OVERRIDES
        root_path = Path(root)
        if (root_path / "synthetic_weather").exists() and not _is_quick_data(root_path):
            raise_quick_root(root_path)
    if epochs is not None:
        common += ["--trainer.max_epochs", str(epochs)]
    common += list(extra or [])
    rows: dict[str, dict[str, float]] = {}
    baselines: dict[str, dict[str, float]] = {}
    run_dirs: dict[str, str] = {}
    seconds: dict[str, float] = {}
    for label, quantizer in (("SimVP+SVQ", "svq"), ("SimVP (no quantizer)", "none")):
        name = f"demo_{quantizer}_{stamp}"
        args = ["fit", *common, "--name", name, "--model.quantizer", quantizer]
        if quantizer == "none":
            args += ["--model.quantizer_options", "null"]
        start = time.perf_counter()
        cli = run_lightning(args)
        seconds[label] = time.perf_counter() - start
        results = cli.model.test_results
        rows[label] = results[cli.model.model_label()]
        for baseline in BASELINES:
            if baseline in results:  # the same test windows for both runs
                baselines.setdefault(baseline, results[baseline])
        run_dirs[label] = str(cli.trainer.default_root_dir)
    rows.update(baselines)
    text = format_demo(rows, run_dirs, seconds)
    print(text)
    return {"rows": rows, "run_dirs": run_dirs, "seconds": seconds, "text": text}


def _is_quick_data(root: Path) -> bool:
    import json

    marker = root / "synthetic_weather" / "synthetic_weather.json"
    try:
        return json.loads(marker.read_text()).get("hours_per_year") == 48
    except (OSError, ValueError):
        return False


def raise_quick_root(root: Path) -> None:
    raise ConfigError(
        f"--quick would regenerate the full synthetic data under {root} with a tiny size; "
        "pass another --root for the quick demo"
    )


def format_demo(
    rows: dict[str, dict[str, float]], run_dirs: dict[str, str], seconds: dict[str, float]
) -> str:
    """The demo's table and verdicts (Markdown table, plain sentences)."""
    head = "| model | " + " | ".join(c.upper() for c in DEMO_COLUMNS) + " |"
    lines = [
        "svqcast demo: synthetic 2 m temperature, test split, physical units (K; ACC unitless)",
        "",
        head,
        "|---|" + "---|" * len(DEMO_COLUMNS),
    ]
    for name, values in rows.items():
        cells = [f"{values[c]:.4f}" if c in values else "-" for c in DEMO_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    svq, plain = rows.get("SimVP+SVQ"), rows.get("SimVP (no quantizer)")
    persistence = rows.get("persistence")
    if svq and persistence:
        gain = 100 * (1 - svq["mae"] / persistence["mae"])
        if gain > 0:
            lines.append(f"SimVP+SVQ beats persistence: its MAE is {gain:.1f}% lower.")
        else:
            lines.append(
                f"SimVP+SVQ does NOT beat persistence at this budget: its MAE is "
                f"{-gain:.1f}% higher (train longer: --epochs)."
            )
    if svq and plain:
        diff = 100 * (1 - svq["mae"] / plain["mae"])
        if abs(diff) < TIE_PERCENT:
            side = "lower" if diff > 0 else "higher"
            lines.append(
                f"SimVP+SVQ and SimVP without a quantizer are tied on MAE at this budget: "
                f"SVQ's is {abs(diff):.1f}% {side}, within {TIE_PERCENT:.0f}% (one seed, "
                "within run-to-run noise)."
            )
        elif diff > 0:
            lines.append(
                f"SimVP+SVQ has a {diff:.1f}% lower MAE than SimVP without a quantizer "
                "at this budget (one seed; small differences are within run-to-run noise)."
            )
        else:
            lines.append(
                f"SimVP+SVQ does NOT beat SimVP without a quantizer here: its MAE is "
                f"{-diff:.1f}% higher at this budget (one seed, a few minutes of CPU training)."
            )
    if svq and plain and "rmse" in svq and "rmse" in plain:
        change = 100 * (svq["rmse"] / plain["rmse"] - 1)
        lines.append(
            f"On RMSE, SimVP+SVQ is {abs(change):.1f}% {'higher' if change > 0 else 'lower'} "
            "than SimVP without a quantizer."
        )
    for label, folder in run_dirs.items():
        took = f" ({seconds[label]:.0f} s)" if label in seconds else ""
        lines.append(f"{label}: run folder {folder}{took} (plots/, test_metrics.md)")
    return "\n".join(lines)
