"""Accuracy benchmark: SimVP with every quantizer, same budget, several seeds.

Does SVQ help forecasting, and does hard VQ hurt it? Each variant is trained with the
engine for the same number of optimizer steps on the embedded synthetic weather data (and
moving digits), then tested; the script prints and writes one Markdown table per group
(mean +- std over seeds of MAE, RMSE, latitude-weighted RMSE, the ratio to the no-quantizer
row, median time per training step and peak memory) plus all raw per-seed results as JSON.

    python benchmarks/accuracy.py --group main          # ~30 min on 2 CPU cores
    python benchmarks/accuracy.py --group all           # main, ablations, noise, digits
    python benchmarks/accuracy.py --quick               # smoke run, about half a minute
    python benchmarks/accuracy.py --list                # the groups and their rows

Outputs go to runs/accuracy/ (accuracy.md, accuracy.json, results/<budget>/*.json); a run
whose result file exists is skipped, so an interrupted benchmark resumes. The library side
is svqcast.bench (also ``svqcast bench accuracy``).
"""

from __future__ import annotations

import sys

from svqcast.bench import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
