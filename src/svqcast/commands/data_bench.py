"""How fast the train DataLoader of a dataset serves windows, beside a model's step.

:func:`measure` loads a dataset as ``svqcast fit`` does (:class:`ForecastDataModule`),
times ``batches`` batches of its shuffled train DataLoader after one warm-up batch
(windows/s), then times a SimVP's training step (forward, L1 loss plus the quantizer's
auxiliary loss, backward, Adam) on the first of those batches, and reads the peak resident
memory of this process after the load, after the loader's batches and after the model steps
(``ru_maxrss``), and of the DataLoader's workers (their VmHWM, shared pages they touched
included). ``svqcast data bench NAME`` and ``benchmarks/bench_loader.py`` (which runs each
measurement in a fresh process) print it with :func:`table`.

The model is :data:`MODEL` (a small SimVP-gSTA without quantizer) unless ``model`` names
others: :func:`model_options` merges the ``model`` section of a ``svqcast fit`` YAML config
and explicit options over it; :func:`describe_model` says which model was measured.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

#: The default model of the step rate: SimVP-gSTA of these sizes, no quantizer.
MODEL: dict[str, Any] = {
    "translator": "gsta",
    "hid_S": 16,
    "hid_T": 64,
    "N_S": 2,
    "N_T": 2,
    "quantizer": None,
}
#: The ``model`` keys of a fit config that build the network (the others, such as loss or
#: lr, belong to the training module and are ignored here).
SIMVP_KEYS = (*MODEL, "quantizer_options", "quantizer_position", "mlp_ratio", "drop",
              "drop_path", "spatio_kernel_enc", "spatio_kernel_dec")  # fmt: skip


def _config_model(config: str | Path) -> dict[str, Any]:
    """The network keys of the ``model`` section of a YAML config: a file, or the name of
    a packaged config (``weather_t2m``)."""
    import yaml

    from svqcast.configs import config_path
    from svqcast.errors import ConfigError

    path = Path(config)
    if not path.is_file():  # a preset by name, where svqcast finds its presets
        try:
            path = config_path(path.stem)
        except ConfigError:
            raise ConfigError(f"config {config}: no such file or packaged config") from None
    text = path.read_text()
    try:
        model = (yaml.safe_load(text) or {}).get("model") or {}
    except (yaml.YAMLError, AttributeError) as exc:
        raise ConfigError(f"config {config}: not a YAML mapping ({exc})") from None
    if not isinstance(model, dict):
        raise ConfigError(f"config {config}: its model section is not a mapping")
    return {k: v for k, v in model.items() if k in SIMVP_KEYS}


def model_options(config: str | Path | None = None, **overrides: Any) -> dict[str, Any]:
    """:data:`MODEL`, then the config's model section, then the ``overrides`` that are not
    None (quantizer "none" means no quantizer; a quantizer other than the config's drops
    the config's ``quantizer_options``)."""
    model = dict(MODEL)
    if config is not None:
        model.update(_config_model(config))
    given = {k: v for k, v in overrides.items() if v is not None}
    if "quantizer" in given:
        if given["quantizer"] != model.get("quantizer"):
            model.pop("quantizer_options", None)
        if str(given["quantizer"]).lower() == "none":
            given["quantizer"] = None
    model.update(given)
    return model


def build_model(in_shape: tuple[int, ...], out_len: int, model: dict[str, Any] | None = None):
    """The SimVP of ``model`` (default :data:`MODEL`) for (T, C, H, W) ``in_shape``."""
    from svqcast.errors import ConfigError
    from svqcast.models import SimVP

    try:
        return SimVP(tuple(in_shape), out_len=out_len, **(MODEL if model is None else model))
    except TypeError as exc:
        raise ConfigError(f"bad model option: {exc}") from None


def describe_model(model: dict[str, Any] | None = None, params: int | None = None) -> str:
    """One line naming the model, e.g. "SimVP-gsta hid_S 16, hid_T 64, N_S 2, N_T 2, no
    quantizer (41,857 parameters)"."""
    m = MODEL if model is None else model
    quantizer = m.get("quantizer")
    text = (f"SimVP-{m.get('translator', 'gsta')} hid_S {m.get('hid_S')}, hid_T {m.get('hid_T')}, "
            f"N_S {m.get('N_S')}, N_T {m.get('N_T')}, "
            f"{'no quantizer' if quantizer is None else f'quantizer {quantizer}'}")  # fmt: skip
    if m.get("quantizer_options"):
        text += f" {m['quantizer_options']}"
    extra = [f"{k} {m[k]}" for k in SIMVP_KEYS[len(MODEL) + 1 :] if k in m]
    if extra:
        text += ", " + ", ".join(extra)
    return text + ("" if params is None else f" ({params:,} parameters)")


def peak_mib() -> float:
    """Peak resident memory of this process so far, MiB (``ru_maxrss``, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def workers_peak_mib() -> float:
    """The largest VmHWM of this process's live children (the persistent DataLoader
    workers), MiB; 0 without children or without /proc."""
    peaks = [0.0]
    try:
        for task in Path("/proc/self/task").iterdir():
            for pid in (task / "children").read_text().split():
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks.append(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return max(peaks)


def measure(
    dataset: str,
    root: str | Path,
    options: dict[str, Any] | None = None,
    *,
    num_workers: int = 0,
    batch_size: int = 16,
    batches: int = 40,
    model_steps: int = 5,
    threads: int = 1,
    model: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One measurement (module docstring) as a dict of numbers (and ``model``, the line of
    :func:`describe_model`); ``model``: SimVP options (default :data:`MODEL`)."""
    import torch

    from svqcast.data.datamodule import ForecastDataModule

    torch.set_num_threads(int(threads))
    start = time.perf_counter()
    dm = ForecastDataModule(dataset, root=str(root), batch_size=batch_size,
                            num_workers=num_workers, options=dict(options or {}))  # fmt: skip
    spec = dm.spec
    load_s, load_mib = time.perf_counter() - start, peak_mib()
    loader = dm.train_dataloader()

    def epochs():  # a short split is read again (a new epoch)
        while True:
            yield from loader

    it = epochs()
    kept = [next(it)]  # warm-up (workers start); kept for the model steps
    windows = 0
    start = time.perf_counter()
    for _ in range(int(batches)):
        batch = next(it)
        windows += len(batch[0])
        if len(kept) <= model_steps:
            kept.append(batch)
    loader_s = time.perf_counter() - start
    loader_mib, worker_mib = peak_mib(), workers_peak_mib()
    torch.manual_seed(0)
    net = build_model(tuple(spec.in_shape), spec.out_len, model).train()
    params = sum(p.numel() for p in net.parameters())
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for i, (x, y) in enumerate(kept):
        if i == 1:
            start = time.perf_counter()  # the first step warms up
        out = net(x)
        loss = torch.nn.functional.l1_loss(out.prediction, y) + out.aux_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model_s = time.perf_counter() - start
    return {
        "lazy": bool(spec.extra.get("lazy", False)),
        "workers": int(num_workers),
        "train_windows": len(dm.splits.train),
        "load_s": load_s,
        "load_peak_mib": load_mib,
        "peak_mib": loader_mib,
        "model_peak_mib": peak_mib(),
        "worker_peak_mib": worker_mib,
        "loader_wps": windows / loader_s,
        "model_wps": sum(len(b[0]) for b in kept[1:]) / model_s,
        "model": describe_model(model, params),
        "params": params,
    }


def table(rows: list[dict[str, Any]], first: str = "run") -> str:
    """A Markdown table of :func:`measure` rows; ``first`` names the column of each row's
    ``label`` (e.g. "train years")."""
    lines = [
        f"| {first} | mode | workers | train windows | load s | loader peak RSS MiB | worker "
        "peak MiB | + model step MiB | loader windows/s | model windows/s | loader / model |",
        "|" + "---|" * 11,
    ]
    for r in rows:
        workers = f"{r['worker_peak_mib']:,.0f}" if r["workers"] else "-"
        lines.append(
            f"| {r.get('label', '')} | {'lazy' if r['lazy'] else 'eager'} | {r['workers']} | "
            f"{r['train_windows']:,} | {r['load_s']:.1f} | {r['peak_mib']:,.0f} | {workers} | "
            f"{r['model_peak_mib']:,.0f} | {r['loader_wps']:,.0f} | {r['model_wps']:,.1f} | "
            f"{r['loader_wps'] / r['model_wps']:,.0f} |"
        )
    return "\n".join(lines)


def ratios(rows: list[dict[str, Any]], first: str = "run") -> str:
    """Lazy / eager ratios of the rows with the same label and workers."""
    by = {(r.get("label", ""), r["lazy"], r["workers"]): r for r in rows}
    lines = [
        f"| {first} | workers | loader peak RSS lazy / eager | loader windows/s lazy / eager |",
        "|---|---|---|---|",
    ]
    for (label, lazy, workers), r in by.items():
        eager = by.get((label, False, workers))
        if lazy and eager:
            lines.append(
                f"| {label} | {workers} | {r['peak_mib'] / eager['peak_mib']:.2f} | "
                f"{r['loader_wps'] / eager['loader_wps']:.2f} |"
            )
    return "\n".join(lines)


__all__ = [
    "MODEL",
    "build_model",
    "describe_model",
    "measure",
    "model_options",
    "peak_mib",
    "ratios",
    "table",
    "workers_peak_mib",
]
