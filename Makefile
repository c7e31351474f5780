# The two README commands, `make demo` and `make test`, set everything up themselves:
# they create .venv and install the project (pinned by constraints.txt) when needed.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SERVE  ?= 1
PORT   ?= 8080
export AIRFLOW_HOME ?= $(CURDIR)/.airflow-home

.PHONY: venv demo test test-fast lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (set PYTHON=...)"; exit 2; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: venv
	$(BIN)/wfe demo --dags-folder dags --port $(PORT) $(if $(filter 0,$(SERVE)),--no-serve,)

test: venv
	$(BIN)/python -m pytest

test-fast: venv
	$(BIN)/python -m pytest -m "not slow"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check airflow_wfe tests dags plugins bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# Benchmarks (not part of `make test`): prints the table and writes it into docs/performance.md.
# BENCH_RUNS=5 runs per figure; BENCH_QUICK=1 only smoke-checks the harness (writes nothing).
BENCH_RUNS ?= 5
bench: venv
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[bench]'
	BENCH_RUNS=$(BENCH_RUNS) $(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .airflow-home .pytest_cache .mypy_cache .ruff_cache
