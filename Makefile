# The README's two commands: `make demo` and `make test`. Both build .venv from a bare Python.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.svqcast-installed
TORCH  ?= torch==2.13.0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint format install clean bench

install: $(STAMP)

# torch first (the local CPU build), then everything else under a constraint that pins the
# installed torch, so that no dependency can replace it or pull CUDA wheels.
$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH)"
	@$(BIN)/python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > $(VENV)/constraints.txt 2>/dev/null
	$(BIN)/python -m pip install -q -c $(VENV)/constraints.txt -e ".[dev]"
	@! $(BIN)/python -m pip show -q torchvision 2>/dev/null || { echo "error: torchvision is installed in $(VENV); it breaks torchmetrics.image here. Run: $(BIN)/pip uninstall -y torchvision" >&2; exit 2; }
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/svqcast demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

test: lint
	$(BIN)/python -m pytest -n 2 -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_svq.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
