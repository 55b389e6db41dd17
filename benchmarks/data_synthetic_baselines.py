"""Model-free baselines on the default synthetic_weather test split (numbers for the docs).

Prints generation + load time and, in K on the test split (per-pixel means over all 12
lead times): persistence, training climatology ((month, hour) phases) and anomaly
persistence (last anomaly from climatology kept on top of the target's climatology), the
last being an oracle-free predictor that shows how much of the signal is predictable.

    .venv/bin/python benchmarks/data_synthetic_baselines.py [--hours-per-year 360]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def main() -> None:
    from svqcast.data.climatology import month_hour_phase
    from svqcast.data.datasets import synthetic

    parser = argparse.ArgumentParser()
    parser.add_argument("--hours-per-year", type=int, default=360)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        t0 = time.perf_counter()
        s = synthetic.load(
            "synthetic_weather", root, seed=args.seed, hours_per_year=args.hours_per_year
        )
        elapsed = time.perf_counter() - t0
    test, clim, std = s.test, s.climatology.mean, s.spec.normalizer.std[0]
    errors = {"persistence": [], "climatology": [], "anomaly persistence": []}
    for i in range(len(test)):
        x, y = (a.numpy() for a in test[i])
        idx = test.frame_indices(i)
        c_out = clim[test.target_phases(i)]
        c_last = clim[month_hour_phase(test.times[idx[test.in_len - 1 : test.in_len]])]
        preds = {
            "persistence": np.repeat(x[-1:], len(y), axis=0),
            "climatology": c_out,
            "anomaly persistence": x[-1:] - c_last + c_out,
        }
        for k, p in preds.items():
            errors[k].append(((p - y) * std).reshape(len(y), -1))
    print(
        f"generated and loaded in {elapsed:.1f} s; windows train/val/test = "
        f"{len(s.train)}/{len(s.val)}/{len(s.test)}"
    )
    for k, e in errors.items():
        e = np.stack(e)  # (N, T_out, pixels)
        print(
            f"{k:>20}: MAE {np.abs(e).mean():.3f} K  RMSE {np.sqrt((e**2).mean()):.3f} K  "
            f"MAE at lead 1/6/12 h: "
            + " / ".join(f"{np.abs(e[:, k - 1]).mean():.2f}" for k in (1, 6, 12))
        )


if __name__ == "__main__":
    main()
