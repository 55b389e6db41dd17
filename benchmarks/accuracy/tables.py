"""The accuracy benchmark's tables: per-row summaries over seeds and the written report.

:func:`markdown_table` makes one group's table (mean +- std over seeds of each metric, the
ratio to the matching no-quantizer row, median step time, peak memory, and the persistence
and climatology baselines); :func:`write_report` writes ``accuracy.md`` (the tables) and
``accuracy.json`` (every run's record) into the output folder.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from svqcast.errors import ConfigError
from svqcast.io import atomic_write_text

from .runner import write_json
from .variants import GROUPS, Budget, Group, describe_budget, reference_row, variants


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
    from svqcast.evaluation.baselines import BASELINES  # lazy: --help stays fast

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


def by_seed(records: Mapping[str, list[dict[str, Any]]], name: str, metric: str) -> dict:
    """{seed: metric} of the finished runs of row ``name`` (finite values only)."""
    return {
        r["seed"]: r["metrics"][metric]
        for r in records.get(name, [])
        if r.get("status") == "ok" and math.isfinite(r["metrics"].get(metric, math.nan))
    }


@dataclass
class PairedRatio:
    """``row`` against ``reference`` over the seeds both have: the per-seed ratios of one
    metric, their geometric mean and a 95% confidence interval (Student's t on the log
    ratios, n - 1 degrees of freedom)."""

    row: str
    reference: str
    metric: str
    seeds: list[int]
    ratios: list[float]
    mean: float
    low: float
    high: float


def paired_ratio(
    row: str, reference: str, metric: str, records: Mapping[str, list[dict[str, Any]]]
) -> PairedRatio | None:
    """The :class:`PairedRatio` of ``row`` to ``reference``; None with fewer than 2 pairs."""

    a, b = by_seed(records, row, metric), by_seed(records, reference, metric)
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None
    ratios = [a[s] / b[s] for s in seeds]
    logs = [math.log(r) for r in ratios]
    n, mean = len(logs), statistics.fmean(logs)
    from scipy.stats import t  # lazy: scipy comes with the dev tools

    half = t.ppf(0.975, n - 1) * statistics.stdev(logs) / math.sqrt(n)
    return PairedRatio(
        row,
        reference,
        metric,
        seeds,
        ratios,
        math.exp(mean),
        math.exp(mean - half),
        math.exp(mean + half),
    )


def paired_table(group: Group, records: Mapping[str, list[dict[str, Any]]]) -> str:
    """Paired comparisons of a group's first metric: every row against its no-quantizer
    row, then the group's extra ``pairs`` (e.g. SVQ against the MLP under the same
    parametrisation); per-seed values listed."""
    metric = group.metrics[0]
    rows = [r for r in group.rows if records.get(r)]
    pairs = [(r, reference_row(r, rows)) for r in rows]
    pairs = [(r, ref) for r, ref in pairs if ref is not None and ref != r]
    pairs += [(a, b) for a, b in group.pairs if records.get(a) and records.get(b)]
    title = METRIC_TITLES.get(metric, metric)
    lines = [
        f"| variant | against | paired seeds | {title} ratio, geometric mean [95% CI] | "
        f"per-seed {title} (variant / against) |",
        "|---|---|---|---|---|",
    ]
    table = variants()
    for row, ref in pairs:
        pr = paired_ratio(row, ref, metric, records)
        if pr is None:
            continue
        a, b = by_seed(records, row, metric), by_seed(records, ref, metric)
        values = ", ".join(f"{s}: {_num(a[s], 3)}/{_num(b[s], 3)}" for s in pr.seeds)
        lines.append(
            f"| {table[row].label} | {table[ref].label} | {len(pr.seeds)} | "
            f"{pr.mean:.3f} [{pr.low:.3f}, {pr.high:.3f}] | {values} |"
        )
    return "\n".join(lines)


# The decision rule of the parametrisation study (docs/results/parametrisations.md, written
# before the runs): a candidate becomes SVQ's default only if at 200 steps its MAE is at most
# no quantizer's with the 95% CI of the paired ratio at most 1.02, and at 2,000 steps it is
# at least 8% better.
DECISION_RULE = {"short_ratio": 1.0, "short_ci_high": 1.02, "long_ratio": 0.92}


def _ratio_of_means(row: str, ref: str, metric: str, records: Mapping[str, list]) -> float:
    """mean(row) / mean(reference) over the seeds both have (nan without a pair)."""
    pr = paired_ratio(row, ref, metric, records)
    if pr is None:
        return math.nan
    a, b = by_seed(records, row, metric), by_seed(records, ref, metric)
    return statistics.fmean(a[s] for s in pr.seeds) / statistics.fmean(b[s] for s in pr.seeds)


DECISION_TITLE = "The decision (the rule applied to the runs above)"


def decision_section(
    short: Mapping[str, list], long: Mapping[str, list], candidates: Sequence[str]
) -> str:
    """The decision rule applied to the saved runs of the short (200-step) and long
    (2,000-step) parametrisation groups: one row per candidate, then the verdict."""
    return f"### {DECISION_TITLE}\n\n{decision_table(short, long, candidates)}"


def decision_table(
    short: Mapping[str, list], long: Mapping[str, list], candidates: Sequence[str]
) -> str:
    """:func:`decision_section` without its heading: the table and the verdict."""
    rule, metric, ref = DECISION_RULE, "mae", "none"
    table = variants()
    lines = [
        "| candidate | 200 steps: MAE ratio (mean / mean), geometric [95% CI], seeds | "
        "(a) passes | 2,000 steps: MAE ratio, seeds | (b) passes |",
        "|---|---|---|---|---|",
    ]
    passed, both = [], {}
    for row in candidates:
        pr = paired_ratio(row, ref, metric, short)
        if pr is None:
            continue
        r_short = _ratio_of_means(row, ref, metric, short)
        a = r_short <= rule["short_ratio"] and pr.high <= rule["short_ci_high"]
        pl = paired_ratio(row, ref, metric, long)
        r_long = _ratio_of_means(row, ref, metric, long)
        b = pl is not None and r_long <= rule["long_ratio"]
        long_cell = "not run" if pl is None else f"{r_long:.3f}, {len(pl.seeds)}"
        lines.append(
            f"| {table[row].label} | {r_short:.3f}, {pr.mean:.3f} [{pr.low:.3f}, "
            f"{pr.high:.3f}], {len(pr.seeds)} | {'yes' if a else 'no'} | {long_cell} | "
            f"{'yes' if b else ('n/a' if pl is None else 'no')} |"
        )
        if a and b:
            passed.append((r_long, row))
        if pl is not None:
            both[row] = (r_short + r_long) / 2
    lines.append("")
    if passed:
        winner = min(passed)[1]
        lines.append(
            f"**Verdict: {table[winner].label} passes both conditions and becomes the "
            "default** (the lowest 2,000-step ratio among those that pass)."
        )
    else:
        best = min(both, key=both.get) if both else None
        pick = (
            f"the recommended candidate is {table[best].label} (lowest mean of its two "
            f"ratios: {both[best]:.3f})"
            if best
            else "no candidate ran at both budgets"
        )
        lines.append(
            "**Verdict: no candidate passes both conditions; the paper's parametrisation "
            f"stays the default**; {pick}."
        )
    return "\n".join(lines) + "\n"


def group_section(name: str, budget: Budget, quick: bool, records: Mapping[str, list]) -> str:
    """The Markdown section of group ``name``: its title (with its budget unless that is the
    full one) and its table; paired groups add the paired-ratio table."""
    note = "" if budget.name == "full" or quick else f" (budget {budget.name})"
    return f"### {GROUPS[name].title}{note}\n\n{group_tables(name, records)}"


def group_tables(name: str, records: Mapping[str, list]) -> str:
    """:func:`group_section` without its heading: the group's table and, for a paired group,
    the paired-ratio table."""
    group = GROUPS[name]
    text = f"{markdown_table(group, records)}\n"
    if group.paired:
        text += f"\nPaired by seed:\n\n{paired_table(group, records)}\n"
    return text


def write_report(
    out_dir: Path,
    *,
    quick: bool,
    budgets: Mapping[str, Budget],
    seeds: Sequence[int],
    threads: int | None,
    sections: Sequence[str],
    raw: Mapping[str, Mapping[str, list[dict[str, Any]]]],
    name: str = "accuracy",
    log=print,
) -> Path:
    """Write ``accuracy[_quick].json`` (budgets, seeds, machine and every record by group and
    row) and ``accuracy[_quick].md`` (the budgets and the group ``sections``) into
    ``out_dir``; return the Markdown path. ``budgets`` maps each group to its budget."""
    used = {b.name: b for b in budgets.values()}  # each budget described once, in group order
    suffix = "_quick" if quick else ""
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"--name must be a plain file stem such as accuracy, got {name!r}")
    stem = out_dir / f"{name}{suffix}"
    meta = {
        "budgets": {b.name: asdict(b) for b in used.values()},
        "fingerprints": {b.name: b.fingerprint() for b in used.values()},
        "group_budgets": {name: b.name for name, b in budgets.items()},
        "seeds": list(seeds),
        "machine": machine_description(threads),
    }
    write_json(stem.with_suffix(".json"), {"meta": meta, "groups": raw})
    described = "\n\n".join(describe_budget(b) for b in used.values())
    text = f"{described}\n\nseeds {list(seeds)}; machine: {meta['machine']}\n\n" + "\n".join(
        sections
    )
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
        f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__} with {n} "
        f"thread{'' if n == 1 else 's'}, "
        f"Python {platform.python_version()}"
    )
